"""A server of ours in a child process on loopback: the lifecycle the local daemon and the
local services share (start on a free port, wait until healthy, stop, crash)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Self

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChildServer:
    """Subclasses give ``argv()``, ``what`` (for messages) and ``probe()`` (one health check)."""

    what = "server"
    stop_timeout = 20.0

    def __init__(self, state_dir: Path, *, port: int | None, log: IO[bytes] | int | None,
                 env: dict[str, str] | None) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        # A port picked here may be taken by someone else before the child binds it; such
        # a first start is retried on a fresh port. A given port, or a restart, is not.
        self._may_move = port is None
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    async def probe(self, session: aiohttp.ClientSession) -> bool:
        """One health check: True once the child answers as healthy."""
        raise NotImplementedError

    async def start(self, timeout: float = 30.0) -> Self:
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTABLES_")}
        env.update(self.env or {})
        for attempt in range(3):
            self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=self.log, env=env,
                                         start_new_session=True)
            try:
                await self.wait_healthy(timeout)
            except RuntimeError:
                if not self._may_move or attempt == 2:
                    raise
                self.port = free_port()
                continue
            self._may_move = False
            return self
        raise AssertionError("unreachable")

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"the {self.what} exited with status {self.proc.returncode} during start")
                try:
                    if await self.probe(session):
                        return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {self.what} did not become healthy within {timeout} s")
                await asyncio.sleep(0.05)

    async def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout or self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
