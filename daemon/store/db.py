"""The daemon's SQLite database: WAL mode, versioned migrations, one connection.

Migrations are append-only: each entry of ``MIGRATIONS`` moves ``PRAGMA user_version``
from its index to index + 1 inside one transaction, so a daemon killed mid-migration
restarts from the last complete version.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import aiosqlite

from attestables.shared import sqlite
from attestables.shared.sqlite import run_transaction

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # 0 -> 1: sources, builds, runs.
    """
    CREATE TABLE sources (
        source_id   TEXT PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE source_versions (
        source_id   TEXT NOT NULL REFERENCES sources(source_id) ON DELETE CASCADE,
        version     INTEGER NOT NULL,
        sha256      TEXT NOT NULL,
        size        INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        PRIMARY KEY (source_id, version)
    );
    CREATE TABLE builds (
        build_id        TEXT PRIMARY KEY,
        source_id       TEXT NOT NULL,
        source_name     TEXT NOT NULL,
        version         INTEGER NOT NULL,
        source_sha256   TEXT NOT NULL,
        toolchain       TEXT NOT NULL,
        flags           TEXT NOT NULL,
        state           TEXT NOT NULL,
        exit_code       INTEGER,
        error           TEXT,
        diagnostics     TEXT NOT NULL DEFAULT '[]',
        artefact_sha256 TEXT,
        artefact_size   INTEGER,
        elf             TEXT,
        log             TEXT NOT NULL DEFAULT '[]',
        log_truncated   INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL,
        started_at      TEXT,
        finished_at     TEXT,
        duration_s      REAL
    );
    CREATE INDEX builds_source ON builds(source_id);
    CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        build_id    TEXT NOT NULL REFERENCES builds(build_id),
        backend     TEXT NOT NULL,
        args        TEXT NOT NULL,
        limits      TEXT NOT NULL,
        state       TEXT NOT NULL,
        pid         INTEGER,
        exit_code   INTEGER,
        signal      INTEGER,
        reason      TEXT,
        error       TEXT,
        created_at  TEXT NOT NULL,
        started_at  TEXT,
        finished_at TEXT
    );
    CREATE INDEX runs_build ON runs(build_id);
    CREATE INDEX runs_state ON runs(state);
    """,
    # 1 -> 2: run certificates (the CA's CRL is the published revocation list; this is the record).
    """
    CREATE TABLE certificates (
        serial            TEXT PRIMARY KEY,
        run_id            TEXT NOT NULL UNIQUE REFERENCES runs(run_id),
        fingerprint       TEXT NOT NULL,
        not_before        TEXT NOT NULL,
        not_after         TEXT NOT NULL,
        pem               TEXT NOT NULL,
        document          TEXT NOT NULL,
        created_at        TEXT NOT NULL,
        revoked_at        TEXT,
        revocation_reason TEXT
    );
    """,
    # 2 -> 3: the broker: registered services and the trace of every message crossing.
    """
    CREATE TABLE services (
        service_id      TEXT PRIMARY KEY,
        url             TEXT NOT NULL,
        tls_ca_pem      TEXT,
        tls_fingerprint TEXT,
        public_key      TEXT NOT NULL,
        endpoints       TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );
    CREATE TABLE traces (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        ts              TEXT NOT NULL,
        run_id          TEXT NOT NULL,
        service_id      TEXT NOT NULL,
        op              TEXT NOT NULL,
        request_id      INTEGER NOT NULL,
        bytes_in        INTEGER NOT NULL,
        bytes_out       INTEGER NOT NULL,
        sha256_in       TEXT NOT NULL,
        sha256_out      TEXT,
        latency_ms      REAL NOT NULL,
        http_status     INTEGER,
        outcome         TEXT NOT NULL,
        verification    TEXT NOT NULL
    );
    CREATE INDEX traces_run ON traces(run_id, id);
    CREATE INDEX traces_service ON traces(service_id, id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
T = TypeVar("T")


class Database:
    """A single aiosqlite connection; aiosqlite serialises statements on its thread.

    Every method is one function run whole on that thread: a statement in autocommit, or
    a transaction from BEGIN to COMMIT (``run``). No transaction stays open across two
    round trips, so no other coroutine's statement can land inside one, and writers need
    no lock of their own here: they queue on the thread, in order, and a writer never
    waits for another writer's queueing behind reads.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, path: Path) -> "Database":
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        db = cls(conn)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL is consistent and durable across a killed process (what the
            # crash tests exercise); a power cut may lose the last transactions, never the
            # database's consistency. FULL would fsync every commit: several per build or run.
            await conn.execute("PRAGMA synchronous=NORMAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            await db._migrate()
        except BaseException:
            await conn.close()
            raise
        return db

    async def _migrate(self) -> None:
        (current,) = await (await self.conn.execute("PRAGMA user_version")).fetchone()  # type: ignore[misc]
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema {current} is newer than this daemon ({SCHEMA_VERSION}); upgrade the daemon"
            )
        for version in range(current, SCHEMA_VERSION):
            log.info("migrating database schema %d -> %d", version, version + 1)
            script = f"BEGIN IMMEDIATE;\n{MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
            await self.conn.executescript(script)

    async def close(self) -> None:
        await self.conn.close()

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement in its own transaction; returns the number of rows changed.
        One round trip to the database's thread (statement, row count, cursor closed)."""
        return (await sqlite.execute(self.conn, sql, tuple(params)))[0]

    async def transaction(self, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run several statements atomically, in one round trip."""

        def apply(conn: sqlite3.Connection) -> None:
            for sql, params in statements:
                conn.execute(sql, params).close()

        await self.run(apply)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(conn)`` whole on the database's thread, in one transaction, one round trip
        (``attestables.shared.sqlite``): for batches on a hot path."""
        return await run_transaction(self.conn, fn)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        """The first row of a query, or None: one round trip to the database's thread."""
        return await sqlite.fetch_one(self.conn, sql, tuple(params))

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        """Every row of a query: one round trip to the database's thread."""
        return await sqlite.fetch_all(self.conn, sql, tuple(params))

    async def integrity_ok(self) -> bool:
        row = await self.fetchone("PRAGMA integrity_check")
        return row is not None and row[0] == "ok"

