"""A service's SQLite database: WAL mode, versioned migrations, one connection, one writer.

Two schemas live in it, each with its own version in ``schema_versions``: ``base`` (the
replay cache and the verification log, the same for every service) and the service's
kind (its business tables). Migrations are append-only lists; each step runs in one
transaction, and the kind's first step also writes the seed data, so a service killed
mid-start restarts from the last complete step.

All statements go through one ``aiosqlite`` connection; an ``asyncio.Lock`` is held around
every use of it, so statements of concurrent requests never interleave inside another's
transaction and the connection is never used from two threads at once.

Two ways to run a transaction:

- :meth:`transaction` (admin routes, migrations, housekeeping): ``BEGIN IMMEDIATE`` …
  ``COMMIT`` as awaited statements on aiosqlite's thread;
- :meth:`run` (the attested requests, the hot path): a plain function of the
  ``sqlite3.Connection``, run whole between ``BEGIN IMMEDIATE`` and ``COMMIT`` on the event
  loop's thread when the write lock is free (``attestables.shared.sqlite.transaction_now``:
  a request's nonce claim, indexed read or write and verification row take tens of
  microseconds, less than one hand-off to the thread), else on aiosqlite's thread, where
  waiting for another process's lock cannot stall the loop.

Because commits can happen on the loop, SQLite's automatic WAL checkpoint (which copies
pages into the database file and fsyncs, at whichever commit crosses the threshold) is
turned off; :meth:`checkpoint` runs on aiosqlite's thread after every
``CHECKPOINT_EVERY`` quick transactions and from the housekeeping task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, Sequence, TypeVar

import aiosqlite

from attestables.shared.sqlite import Locked, fetch_all, run_transaction, transaction_now

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
log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
CHECKPOINT_EVERY = 256


class ServiceDatabase:
    """Open with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path, *, kind: str, migrations: Sequence[str], seed: Seed) -> ServiceDatabase:
        # check_same_thread=False: :meth:`run` uses the connection on the loop's thread,
        # always under the lock (see the module's docstring).
        conn = await aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = aiosqlite.Row
            # Pragmas that answer a row are read to the end (execute_fetchall): a statement
            # left mid-result would keep :meth:`run`'s COMMIT from committing.
            await conn.execute_fetchall("PRAGMA journal_mode = WAL")
            # WAL + NORMAL: a committed transaction survives a crash of the process; a
            # power loss may lose the last few (docs/services.md).
            await conn.execute_fetchall("PRAGMA synchronous = NORMAL")
            await conn.execute_fetchall("PRAGMA foreign_keys = ON")
            await conn.execute_fetchall(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute_fetchall("PRAGMA wal_autocheckpoint = 0")  # :meth:`checkpoint` instead
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
        """``fn(conn)`` between ``BEGIN IMMEDIATE`` and ``COMMIT`` (``ROLLBACK`` if it raises;
        the exception reaches the caller), one at a time: on the loop's thread if the write
        lock is free, else on aiosqlite's. ``fn`` must be quick (indexed statements)."""
        async with self._lock:
            try:
                result = transaction_now(self.conn._conn, fn, busy_timeout_ms=BUSY_TIMEOUT_MS)
            except Locked:  # another process writes: wait for it off the loop
                result = await run_transaction(self.conn, fn)
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpointing is None:
            self._checkpointing = asyncio.create_task(self._checkpoint_soon(), name="wal-checkpoint")
        return result

    async def checkpoint(self) -> None:
        """Copy the WAL's committed pages into the database file (``PASSIVE``: never waits
        for readers), on aiosqlite's thread."""
        async with self._lock:
            self._since_checkpoint = 0
            await self.conn.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)")

    async def _checkpoint_soon(self) -> None:
        try:
            await self.checkpoint()
        except Exception:  # the next one will try again; the WAL only grows meanwhile
            log.exception("WAL checkpoint failed")
        finally:
            self._checkpointing = None

    async def fetchall(self, sql: str, params: Sequence[object] = ()) -> list[aiosqlite.Row]:
        async with self._lock:
            return await fetch_all(self.conn, sql, params)

    async def close(self) -> None:
        if self._checkpointing is not None:
            await self._checkpointing
        async with self._lock:
            await self.conn.close()


def _statements(script: str) -> list[str]:
    # executescript would COMMIT the open transaction; split the script instead (the
    # migrations hold no semicolons inside literals).
    return [s.strip() for s in script.split(";") if s.strip()]
