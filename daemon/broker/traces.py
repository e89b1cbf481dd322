"""The trace log: one row per crossing, written in batches off the request path.

The broker answers the compartment as soon as the service has answered; the crossing's
row is handed to :class:`TraceLog`, whose one writer task stores whatever has
accumulated within ``BATCH_WINDOW_S`` (10 ms) of the first in one transaction (one trip
to the database's thread, ``attestables.shared.sqlite``) and then publishes each stored
row on ``traces.message`` with its id: a row reaches subscribers ~10 ms after its
crossing, and crossings share transactions.

What this trades: a daemon killed between answering a compartment and the next batch
commit loses those crossings' rows (about a batch window's worth; ``docs/architecture.md``). Rows
that were listed or streamed were stored first: :meth:`TraceLog.flush` (called by
``traces.list``) waits for every row added before it, and cuts the batch window short. The pending list is bounded: a
broker that gets ahead of the database by ``MAX_PENDING`` rows waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from attestables.shared import protocol

if TYPE_CHECKING:
    from ..events import EventBus
    from ..store.db import Database

log = logging.getLogger(__name__)

MAX_PENDING = 4096
# After the first row of a batch arrives the writer waits this long for more: one
# transaction (one thread hand-off, one commit) then carries every crossing of that
# window instead of each its own, and its work competes less with the crossings'.
BATCH_WINDOW_S = 0.01
_INSERT = """INSERT INTO traces (ts, run_id, service_id, op, request_id, bytes_in, bytes_out, sha256_in,
                                 sha256_out, latency_ms, http_status, outcome, verification)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


class TraceLog:
    def __init__(self, db: "Database", bus: "EventBus") -> None:
        self.db = db
        self.bus = bus
        self._pending: list[dict[str, Any]] = []
        self._added = 0  # rows ever added
        self._done = 0  # rows ever stored (or given up on)
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # a flush is waiting: no batch window
        self._writer: asyncio.Task[None] | None = None

    async def add(self, trace: dict[str, Any]) -> None:
        """Queue one crossing's row; returns at once unless ``MAX_PENDING`` rows wait."""
        self._pending.append(trace)
        self._added += 1
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever(), name="trace-writer")
        if len(self._pending) >= MAX_PENDING:
            await self.flush()

    async def flush(self) -> None:
        """Wait until every row added so far is stored."""
        target = self._added
        if self._done < target:
            self._hurry.set()
        async with self._changed:
            await self._changed.wait_for(lambda: self._done >= target)

    async def close(self) -> None:
        if self._writer is None:
            return
        await self.flush()
        self._writer.cancel()
        try:
            await self._writer
        except asyncio.CancelledError:
            pass

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            if len(self._pending) < MAX_PENDING // 2 and not self._hurry.is_set():
                try:
                    await asyncio.wait_for(self._hurry.wait(), BATCH_WINDOW_S)
                except TimeoutError:
                    pass
            self._hurry.clear()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                ids = await self.db.run(lambda conn: _insert(conn, batch))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cannot store %d trace row(s); they are lost", len(batch))
                ids = []
            for trace, row_id in zip(batch, ids):
                self.bus.publish(protocol.TRACES_MESSAGE, {"id": row_id, **trace}, run_id=trace["run_id"],
                                 service_id=trace["service_id"])
            async with self._changed:
                self._done += len(batch)
                self._changed.notify_all()


def _insert(conn: sqlite3.Connection, batch: list[dict[str, Any]]) -> list[int]:
    ids = []
    for t in batch:
        cursor = conn.execute(_INSERT, (
            t["ts"], t["run_id"], t["service_id"], t["op"], t["request_id"], t["bytes_in"], t["bytes_out"],
            t["sha256_in"], t["sha256_out"], t["latency_ms"], t["http_status"], t["outcome"],
            json.dumps(t["verification"])))
        ids.append(int(cursor.lastrowid or 0))
    return ids
