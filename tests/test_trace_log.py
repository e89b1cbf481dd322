"""The broker's trace log on a real SQLite file: rows stored in batches, published with
their ids once stored, listed only after every earlier crossing is stored."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from attestables.daemon.broker.traces import TraceLog
from attestables.daemon.events import Event, EventBus
from attestables.daemon.store.db import Database
from attestables.shared import protocol


def crossing(run_id: str, request_id: int) -> dict[str, Any]:
    return {"ts": "2026-11-22T00:00:00Z", "run_id": run_id, "service_id": "store", "op": "read",
            "request_id": request_id, "bytes_in": 80, "sha256_in": "0" * 64, "bytes_out": 120,
            "sha256_out": "1" * 64, "http_status": 200, "outcome": "ok", "latency_ms": 1.5,
            "verification": {"status": "affirming", "reasons": []}}


async def test_rows_are_stored_in_order_and_published_once_stored(tmp_path: Path):
    db = await Database.open(tmp_path / "attestables.db")
    bus = EventBus(10_000)
    published: list[tuple[Event, int]] = []

    def seen(event: Event) -> None:
        # What a subscriber learns must already be in the database: count the stored rows
        # with this id from another connection, synchronously, at publish time.
        with sqlite3.connect(tmp_path / "attestables.db") as other:
            stored = other.execute("SELECT COUNT(*) FROM traces WHERE id = ?", (event.data["id"],)).fetchone()[0]
        published.append((event, stored))

    bus.listeners.append(seen)
    traces = TraceLog(db, bus)
    try:
        # Three compartments, 40 crossings each, interleaved as they would be.
        async def compartment(run_id: str) -> None:
            for n in range(1, 41):
                await traces.add(crossing(run_id, n))
                await asyncio.sleep(0)

        await asyncio.gather(*(compartment(f"run-{i}") for i in range(3)))
        await traces.flush()
        rows = await db.fetchall("SELECT * FROM traces ORDER BY id")
        assert len(rows) == 120
        for run in ("run-0", "run-1", "run-2"):
            assert [r["request_id"] for r in rows if r["run_id"] == run] == list(range(1, 41))
        assert json.loads(rows[0]["verification"]) == {"status": "affirming", "reasons": []}
        assert len(published) == 120
        assert all(event.topic == protocol.TRACES_MESSAGE and stored == 1 for event, stored in published)
        assert [event.data["id"] for event, _ in published] == [r["id"] for r in rows]
        assert published[0][0].keys == {"run_id": "run-0", "service_id": "store"}
    finally:
        await traces.close()
        await db.close()


async def test_close_stores_what_is_pending(tmp_path: Path):
    db = await Database.open(tmp_path / "attestables.db")
    traces = TraceLog(db, EventBus(100))
    for n in range(5):
        await traces.add(crossing("run-x", n))
    await traces.close()  # the daemon's shutdown: nothing added is dropped
    assert len(await db.fetchall("SELECT id FROM traces")) == 5
    await db.close()


async def test_a_failed_batch_is_logged_and_the_next_one_is_stored(tmp_path: Path, caplog):
    db = await Database.open(tmp_path / "attestables.db")
    traces = TraceLog(db, EventBus(100))
    try:
        bad = crossing("run-y", 1)
        bad["op"] = None  # NOT NULL: the whole batch is refused
        await traces.add(bad)
        await traces.flush()
        assert "cannot store 1 trace row(s)" in caplog.text
        await traces.add(crossing("run-y", 2))
        await traces.flush()
        assert [r["request_id"] for r in await db.fetchall("SELECT request_id FROM traces")] == [2]
    finally:
        await traces.close()
        await db.close()


async def test_a_flush_does_not_wait_out_the_batch_window(tmp_path: Path, monkeypatch):
    from attestables.daemon.broker import traces as traces_module

    monkeypatch.setattr(traces_module, "BATCH_WINDOW_S", 30.0)  # a window no test could wait out
    db = await Database.open(tmp_path / "attestables.db")
    traces = TraceLog(db, EventBus(100))
    try:
        await traces.add(crossing("run-z", 1))
        await asyncio.wait_for(traces.flush(), 5)  # traces.list's wait: cut short
        assert len(await db.fetchall("SELECT id FROM traces")) == 1
    finally:
        await traces.close()
        await db.close()
