"""Where the daemon keeps its state, as both the daemon and its clients find it."""

from __future__ import annotations

import os
from pathlib import Path

TOKEN_FILE = "api-token"
PID_FILE = "daemon.pid"
DEFAULT_LISTEN = "127.0.0.1:7480"


def default_state_dir(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """``$STATE_DIRECTORY`` under systemd, else ``$XDG_STATE_HOME/attestables``.

    systemd may pass several colon-separated directories; the first is ours.
    """
    env = os.environ if environ is None else environ
    state_directory = env.get("STATE_DIRECTORY")
    if state_directory:
        return Path(state_directory.split(":")[0])
    xdg = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(xdg) / "attestables"


def default_url(listen: str = DEFAULT_LISTEN) -> str:
    host, _, port = listen.rpartition(":")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"ws://{host}:{port}/api/v1/ws"
