"""``attestables daemon``: start, serve until SIGTERM/SIGINT, stop cleanly."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from attestables.shared import __version__
from attestables.shared.errors import AttestablesError
from attestables.shared.paths import PID_FILE

from .api.auth import load_or_create_token
from .app import make_app
from .config import ConfigError, Settings, load_settings
from .daemon import Daemon

log = logging.getLogger("attestables.daemon")


class PidFile:
    """``STATE_DIR/daemon.pid``, locked while the daemon runs: a second daemon on the same
    state dir is refused, and a stale file from a killed daemon is simply taken over."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                raise RuntimeError(f"another daemon (pid {other or '?'}) is using {self.path.parent}") from None
            # A daemon stopping unlinks the file before releasing its lock: if we locked
            # that unlinked file, the lock guards nothing; open the current one again.
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve(settings: Settings) -> None:
    daemon = await Daemon.open(settings)
    daemon.start_housekeeping()
    try:
        token = load_or_create_token(settings.state_dir)
    except BaseException:
        await daemon.close()
        raise
    app = make_app(daemon, token)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    host, port = settings.listen_host_port
    site = web.TCPSite(runner, host, port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await site.start()
        log.info("attestables %s listening on %s:%d (state dir %s)", __version__, host, port, settings.state_dir)
        await stop.wait()
        log.info("stopping: no new connections; ending runs within %.0f s", settings.stop_grace_s)
        await site.stop()
        await daemon.runs.shutdown()
    finally:
        await runner.cleanup()
        await daemon.close()
        log.info("stopped")


def run_daemon(flags: dict[str, Any]) -> int:
    """Entry point of ``attestables daemon``; ``flags`` holds only options given."""
    try:
        settings = load_settings(flags)
    except ConfigError as exc:
        print(f"attestables daemon: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    os.umask(0o077)  # every file the daemon creates is private unless it says otherwise
    try:
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        pidfile = PidFile(settings.state_dir / PID_FILE)
        pidfile.acquire()
    except (RuntimeError, OSError) as exc:
        log.error("%s", exc)
        return 1
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except (RuntimeError, AttestablesError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    finally:
        pidfile.release()
    return 0
