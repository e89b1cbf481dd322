"""A real daemon in a child process, on loopback, for the demo, the tests and benchmarks.

It is started exactly as an operator would start it (``attestables daemon``), so what
the demo and the tests exercise is the shipped program, not an in-process imitation.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from .paths import TOKEN_FILE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalDaemon:
    """Start with ``await start()`` (or ``async with``); ``url``/``token`` once healthy."""

    def __init__(self, state_dir: Path, *, port: int | None = None, config: dict[str, Any] | None = None,
                 log: IO[bytes] | int | None = subprocess.DEVNULL, env: dict[str, str] | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        # A port picked here may be taken by someone else before the child binds it; such
        # a first start is retried on a fresh port. A given port, or a restart, is not.
        self._may_move = port is None
        self.config = config or {}
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"ws://{self.listen}/api/v1/ws"

    @property
    def http_url(self) -> str:
        return f"http://{self.listen}"

    @property
    def token(self) -> str:
        return (self.state_dir / TOKEN_FILE).read_text().strip()

    def _write_config(self) -> Path | None:
        if not self.config:
            return None
        path = self.state_dir.parent / f"{self.state_dir.name}.toml"
        lines = []
        for key, value in self.config.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f'{key} = "{value}"')
        path.write_text("\n".join(lines) + "\n")
        return path

    async def start(self, timeout: float = 30.0) -> "LocalDaemon":
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "attestables.cli.main", "daemon", "--listen", self.listen,
                "--state-dir", str(self.state_dir)]
        config = self._write_config()
        if config:
            argv += ["--config", str(config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTABLES_")}
        env.update(self.env or {})
        for attempt in range(3):
            argv[argv.index("--listen") + 1] = self.listen
            self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log, env=env, start_new_session=True)
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
                    raise RuntimeError(f"the daemon exited with status {self.proc.returncode} during start")
                try:
                    async with session.get(f"{self.http_url}/healthz") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the daemon did not become healthy within {timeout} s")
                await asyncio.sleep(0.05)

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    async def __aenter__(self) -> "LocalDaemon":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
