"""Fixtures of the reliability tests: a daemon of their own (its log is checked for
tracebacks at the end), driven from an event loop in a thread so that synchronous
hypothesis tests can use it too.

``RELIABILITY_FULL=1`` (set by ``make reliability``) raises the case counts from what
``make test`` can afford to the full counts of docs/reliability.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

from .common import LoopThread, log_problems

FULL = os.environ.get("RELIABILITY_FULL") == "1"


def scaled(quick: int, full: int) -> int:
    """A case count: ``quick`` in ``make test``, ``full`` in ``make reliability``."""
    return full if FULL else quick


@dataclass
class Harness:
    loop: LoopThread
    daemon: LocalDaemon
    client: Client
    log: Path

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def run(self, coro: Any, timeout: float | None = 300) -> Any:
        return self.loop.run(coro, timeout)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    base = tmp_path_factory.mktemp("reliability")
    log_path = base / "daemon.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    loop = LoopThread()
    daemon = LocalDaemon(base / "state", log=log, config={"stop_grace_s": 1.0, "run_wall_s": 30})
    try:
        loop.run(daemon.start())
        client = loop.run(Client.connect(daemon.url, daemon.token))
    except BaseException:
        loop.run(daemon.stop())
        loop.close()
        log.close()
        raise
    pid = daemon.proc.pid if daemon.proc else 0
    try:
        yield Harness(loop, daemon, client, log_path)
        # Whatever the module did, the daemon is the one it started, and it logged no bug.
        assert daemon.proc is not None and daemon.proc.poll() is None and daemon.proc.pid == pid, \
            "the daemon died during the module"
    finally:
        loop.run(client.close())
        status = loop.run(daemon.stop())
        loop.close()
        log.close()
    assert status == 0, f"the daemon stopped with status {status}"
    problems = log_problems(log_path)
    assert not problems, "the daemon's log shows bugs:\n" + "\n".join(problems[:20])
