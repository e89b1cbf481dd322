"""What the reliability tests and scripts share: their C programs, a daemon of their own
with its log kept, a daemon's health check, and the log check that finds tracebacks."""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Awaitable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from attestables.shared.client import Client

T = TypeVar("T")

C_DIR = Path(__file__).resolve().parent / "c"
TERMINAL_RUN = frozenset({"exited", "failed", "killed", "lost"})
TERMINAL_BUILD = frozenset({"succeeded", "failed", "cancelled"})
# Lines of a daemon's log that mean a bug, whatever the test did: an unhandled exception
# (a traceback), a handler that fell through to ``internal``, a channel handler that failed.
_BUG_LINES = re.compile(r"Traceback|method \S+ failed|channel handler failed|internal error|"
                        r"Task exception was never retrieved|Exception in callback")


def c_program(name: str) -> str:
    """``c/NAME``: one compartment program, ready to upload."""
    return (C_DIR / name).read_text()


def log_problems(path: Path, start: int = 0) -> list[str]:
    """Lines of the daemon's log (from byte ``start``) that reveal a bug."""
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if _BUG_LINES.search(line)]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def serves_normally(client: Client, build_id: str | None = None) -> dict[str, Any]:
    """The daemon answers, and (given a build of ``attest_hello.c``) runs and certifies a
    program end to end; returns that run's record."""
    info = await asyncio.wait_for(client.call("system.info"), 10)
    assert info["version"]
    if build_id is None:
        return {}
    started = await client.call("runs.start", {"build_id": build_id})
    record = await wait_terminal(client, "runs", started["run_id"])
    assert record["state"] == "exited" and record["exit_code"] == 0, record
    cert = await client.call("certs.get", {"run_id": record["run_id"]})
    assert cert["revoked"] is True  # issued at HELLO, revoked when the run ended
    return record


async def wait_terminal(client: Client, kind: str, ident: str, timeout: float = 60) -> dict[str, Any]:
    """Wait (by events, checking the record first) until a build or run has ended."""
    key, terminal = ("build_id", TERMINAL_BUILD) if kind == "builds" else ("run_id", TERMINAL_RUN)
    async with await client.subscribe([f"{kind}.state"], filter={key: ident}) as sub:
        record = await client.call(f"{kind}.get", {key: ident})
        if record["state"] in terminal:
            return record
        async with asyncio.timeout(timeout):
            async for event in sub:
                if event.topic == "events.gap":
                    record = await client.call(f"{kind}.get", {key: ident})
                elif event.data.get(key) == ident:
                    record = event.data
                if record["state"] in terminal:
                    return record
    raise AssertionError(f"{ident}: the event stream ended before a terminal state")


async def build(client: Client, name: str, source: str) -> dict[str, Any]:
    """Upload and build one source; the build must succeed."""
    uploaded = await client.call("sources.upload", {"name": name, "content": source})
    started = await client.call("builds.start", {"source_id": uploaded["source_id"]})
    record = await wait_terminal(client, "builds", started["build_id"])
    assert record["state"] == "succeeded", (name, record["error"], record["diagnostics"][:3])
    return record


async def run_to_end(client: Client, build_id: str, timeout: float = 60, **params: Any) -> tuple[dict[str, Any], str]:
    """Start a run, wait for its end: (record, stdout+stderr text)."""
    started = await client.call("runs.start", {"build_id": build_id, **params})
    record = await wait_terminal(client, "runs", started["run_id"], timeout)
    logs = await client.call("runs.logs", {"run_id": started["run_id"]})
    return record, "".join(c["data"] for c in logs["chunks"])


class LoopThread:
    """An event loop in a thread, so that synchronous tests (hypothesis) can drive
    asynchronous clients: ``loop.run(coro)`` blocks until the coroutine is done."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="reliability-loop", daemon=True)
        self._thread.start()

    def run(self, awaitable: Awaitable[T], timeout: float | None = 300) -> T:
        async def wrapped() -> T:
            return await awaitable

        future: Future[T] = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def is_root() -> bool:
    return os.geteuid() == 0
