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

import sqlite3

from .database import ServiceDatabase


def claim(conn: sqlite3.Connection, nonce: str, *, now: float, expires_at: float) -> bool:
    """Record ``nonce``; False if it is already recorded and not yet expired.

    One statement: a new nonce is inserted; a known one is taken over only if its row has
    expired (the purge had not removed it yet). No row changed means a replay."""
    cursor = conn.execute(
        "INSERT INTO replay (nonce, expires_at) VALUES (?, ?) "
        "ON CONFLICT(nonce) DO UPDATE SET expires_at = excluded.expires_at WHERE replay.expires_at <= ?",
        (nonce, expires_at, now),
    )
    return cursor.rowcount == 1


async def purge(db: ServiceDatabase, now: float) -> int:
    async with db.transaction() as conn:
        cursor = await conn.execute("DELETE FROM replay WHERE expires_at <= ?", (now,))
        return cursor.rowcount
