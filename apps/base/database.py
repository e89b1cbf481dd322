"""A service's SQLite database: WAL mode, versioned migrations, one connection, one writer.

Two schemas live in it, each with its own version in ``schema_versions``: ``base`` (the
replay cache and the verification log, the same for every service) and the service's
kind (its business tables). Migrations are append-only lists; each step runs in one
transaction, and the kind's first step also writes the seed data, so a service killed
mid-start restarts from the last complete step.

All statements go through one ``aiosqlite`` connection, whose one thread owns the
``sqlite3`` connection; an ``asyncio.Lock`` is held for the whole of a transaction, so
statements of concurrent requests never interleave inside another's transaction.

Two ways to run a transaction:

- :meth:`transaction` (admin routes, migrations, housekeeping): ``BEGIN IMMEDIATE`` …
  ``COMMIT`` as awaited statements, one thread hop each;
- :meth:`run` (the attested requests, the hot path): a plain function of the
  ``sqlite3.Connection`` runs whole on the database's thread, between ``BEGIN
  IMMEDIATE`` and ``COMMIT``, in one hop. A request's nonce claim, read or write and
  verification row cost one round trip to the thread instead of about ten, and the
  lock is held for the time the statements take, not for ten event-loop wake-ups.
(``attestables.shared.sqlite``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Sequence, TypeVar

import aiosqlite

from attestables.shared.sqlite import run_transaction

BASE_MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    """
    CREATE TABLE replay (
        nonce       TEXT PRIMARY KEY,
        expires_at  REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX replay_expiry ON replay(expires_at);
    CREATE TABLE verifications (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        ts          TEXT NOT NULL,
        endpoint    TEXT NOT NULL,
        serial      TEXT,
        fingerprint TEXT,
        status      TEXT NOT NULL,
        reasons     TEXT NOT NULL,
        http_status INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        nonce       TEXT
    );
    """,
)

Seed = Callable[[aiosqlite.Connection], Awaitable[None]]
T = TypeVar("T")


class ServiceDatabase:
    """Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, kind: str, migrations: Sequence[str], seed: Seed) -> ServiceDatabase:
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await conn.execute("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: a committed transaction survives a crash of the process; a
            # power loss may lose the last few (docs/services.md).
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA busy_timeout = 5000")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            database = cls(conn)
            await database._migrate("base", BASE_MIGRATIONS, None)
            await database._migrate(kind, migrations, seed)
        except BaseException:
            await conn.close()
            raise
        return database

    async def _migrate(self, component: str, migrations: Sequence[str], seed: Seed | None) -> None:
        async with self.conn.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        ) as cursor:
            row = await cursor.fetchone()
        version = row[0] if row else 0
        if version > len(migrations):
            raise RuntimeError(
                f"the database's {component} schema is version {version}, newer than this program's "
                f"({len(migrations)}): use a newer attestables"
            )
        for index in range(version, len(migrations)):
            async with self.transaction() as conn:
                for statement in _statements(migrations[index]):
                    await conn.execute(statement)
                if index == 0 and seed is not None:
                    await seed(conn)
                await conn.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                    (component, index + 1),
                )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception), one at a time."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(conn)`` on the database's thread between ``BEGIN IMMEDIATE`` and ``COMMIT``
        (``ROLLBACK`` if it raises; the exception reaches the caller), one at a time."""
        async with self._lock:
            return await run_transaction(self.conn, fn)

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[aiosqlite.Row]:
        async with self._lock:
            async with self.conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())

    async def close(self) -> None:
        async with self._lock:
            await self.conn.close()


def _statements(script: str) -> list[str]:
    # executescript would COMMIT the open transaction; split the script instead (the
    # migrations hold no semicolons inside literals).
    return [s.strip() for s in script.split(";") if s.strip()]
