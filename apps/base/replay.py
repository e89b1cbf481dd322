"""The replay cache: a nonce is accepted once.

A nonce is remembered until the later of (now + the replay window) and the moment its
certificate stops being accepted (the earlier of the certificate's notAfter and the
document's ``exp``): a sealed request can never be replayed while its certificate would
still pass. Rows live in the service's database, so a restart does not reopen the window;
expired rows are purged in the background.

:func:`claim` runs inside the request's transaction, together with what the request
writes: a request that fails leaves its nonce unclaimed, and one that succeeded has
claimed it for good.
"""

from __future__ import annotations

import aiosqlite

from .database import ServiceDatabase


async def claim(conn: aiosqlite.Connection, nonce: str, *, now: float, expires_at: float) -> bool:
    """Record ``nonce``; False if it is already recorded and not yet expired."""
    async with conn.execute("SELECT expires_at FROM replay WHERE nonce = ?", (nonce,)) as cursor:
        row = await cursor.fetchone()
    if row is not None and row[0] > now:
        return False
    await conn.execute(
        "INSERT INTO replay (nonce, expires_at) VALUES (?, ?) "
        "ON CONFLICT(nonce) DO UPDATE SET expires_at = excluded.expires_at",
        (nonce, expires_at),
    )
    return True


async def purge(db: ServiceDatabase, now: float) -> int:
    async with db.transaction() as conn:
        cursor = await conn.execute("DELETE FROM replay WHERE expires_at <= ?", (now,))
        return cursor.rowcount
