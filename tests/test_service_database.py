"""A service's database on a real SQLite file: the attested requests' quick transactions
(``ServiceDatabase.run``), their rollback, a second process's write lock, checkpoints."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from attestables.apps.base import database as database_module
from attestables.apps.base.database import ServiceDatabase
from attestables.apps.store.handlers import SERVICE


@pytest.fixture
async def db(tmp_path: Path):
    database = await ServiceDatabase.open(tmp_path / "store.db", kind="store", migrations=SERVICE.migrations,
                                          seed=SERVICE.seed)
    yield database
    await database.close()


def claim(nonce: str):
    def fn(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO replay (nonce, expires_at) VALUES (?, ?)", (nonce, time.time() + 60))
        return conn.execute("SELECT COUNT(*) FROM replay").fetchone()[0]
    return fn


async def test_a_transaction_commits_and_a_failed_one_leaves_nothing(db: ServiceDatabase, tmp_path: Path):
    assert await db.run(claim("a")) == 1

    def fails(conn: sqlite3.Connection) -> None:
        claim("b")(conn)
        raise ValueError("the handler refused")

    with pytest.raises(ValueError, match="the handler refused"):
        await db.run(fails)
    assert await db.run(claim("c")) == 2  # "b" was rolled back, the connection is usable
    with sqlite3.connect(tmp_path / "store.db") as other:  # committed, as another reader sees it
        assert sorted(r[0] for r in other.execute("SELECT nonce FROM replay")) == ["a", "c"]


async def test_another_process_holding_the_write_lock_is_waited_for_off_the_loop(db: ServiceDatabase,
                                                                                 tmp_path: Path):
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. an operator's sqlite3 shell in the middle of a write
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(ticker())
    waiting = asyncio.create_task(db.run(claim("d")))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # it waits for the lock ...
    assert ticks >= 10  # ... and the event loop runs meanwhile
    other.execute("COMMIT")
    assert await asyncio.wait_for(waiting, 5) == 1
    ticking.cancel()
    other.close()


def rows_in_database_file(path: Path, copy: Path) -> int:
    """Replay rows in the database file itself, without its WAL (what a checkpoint wrote)."""
    copy.write_bytes(path.read_bytes())
    with sqlite3.connect(copy) as conn:
        try:
            return conn.execute("SELECT COUNT(*) FROM replay").fetchone()[0]
        except sqlite3.OperationalError:  # not even the schema is in the file yet
            return 0


async def test_the_wal_is_checkpointed_by_the_database_not_at_a_commit(db: ServiceDatabase, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(database_module, "CHECKPOINT_EVERY", 5)
    assert (await db.conn.execute_fetchall("PRAGMA wal_autocheckpoint"))[0][0] == 0
    for n in range(4):
        await db.run(claim(f"w{n}"))
    assert rows_in_database_file(tmp_path / "store.db", tmp_path / "copy.db") == 0  # all still in the WAL
    await db.run(claim("w4"))  # the 5th: a checkpoint is started in the background
    assert db._checkpointing is not None
    await db._checkpointing
    assert rows_in_database_file(tmp_path / "store.db", tmp_path / "copy2.db") == 5
