"""A real daemon in a child process, on loopback, for the demo, the tests and benchmarks.

It is started exactly as an operator would start it (``attestables daemon``), so what
the demo and the tests exercise is the shipped program, not an in-process imitation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import aiohttp

from .child_server import ChildServer, free_port
from .paths import TOKEN_FILE

__all__ = ["LocalDaemon", "free_port"]


class LocalDaemon(ChildServer):
    """Start with ``await start()`` (or ``async with``); ``url``/``token`` once healthy."""

    what = "daemon"

    def __init__(self, state_dir: Path, *, port: int | None = None, config: dict[str, Any] | None = None,
                 log: IO[bytes] | int | None = subprocess.DEVNULL, env: dict[str, str] | None = None) -> None:
        super().__init__(state_dir, port=port, log=log, env=env)
        self.config = config or {}

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

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "attestables.cli.main", "daemon", "--listen", self.listen,
                "--state-dir", str(self.state_dir)]
        config = self._write_config()
        return argv + (["--config", str(config)] if config else [])

    async def probe(self, session: aiohttp.ClientSession) -> bool:
        async with session.get(f"{self.http_url}/healthz") as resp:
            return resp.status == 200
