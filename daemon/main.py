"""``attestables daemon``: start, serve until SIGTERM/SIGINT, reload on SIGHUP, stop cleanly.

Under systemd it speaks the service manager's protocols (``daemon/systemd.py``):
``READY=1`` once listening, ``RELOADING=1``/``READY=1`` around a reload, ``STOPPING=1``,
watchdog pings, and sockets passed by socket activation.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from aiohttp import web

from attestables.shared import __version__
from attestables.shared.errors import AttestablesError
from attestables.shared.paths import PID_FILE

from .api.auth import load_or_create_token
from .app import METRICS, make_app
from .ca.files import read_passphrase
from .config import ConfigError, Settings, load_settings
from .daemon import Daemon
from .logs import add_secret, set_level, setup_logging
from .metrics import Metrics
from .systemd import (ActivationError, ListenSocket, Notifier, take_listen_sockets, take_watchdog_interval,
                      watchdog_pings)

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


async def _reload(daemon: Daemon, flags: dict[str, Any], notifier: Notifier, metrics: Metrics) -> None:
    """SIGHUP: read the configuration again and apply what can change while serving."""
    notifier.reloading()
    try:
        new = load_settings(flags)
    except ConfigError as exc:
        metrics.reloads["refused"] += 1
        log.error("reload refused, the running configuration stays: %s", exc)
    else:
        applied, restart = await daemon.reload(new)
        set_level(daemon.settings.log_level)
        metrics.reloads["applied"] += 1
        log.info("configuration reloaded: %s", ", ".join(applied) if applied else "nothing changed")
        if restart:
            log.warning("changed settings that need a restart to take effect: %s", ", ".join(restart))
    finally:
        notifier.ready(status=_status(daemon))


def _status(daemon: Daemon) -> str:
    return f"serving {len(daemon.connections)} API clients"


async def serve(settings: Settings, *, flags: dict[str, Any] | None = None, notifier: Notifier | None = None,
                sockets: Sequence[ListenSocket] = (), watchdog_s: float | None = None) -> None:
    """Serve the API until SIGTERM/SIGINT; SIGHUP reloads the configuration from ``flags``' sources.

    ``sockets``, if given (socket activation), are served instead of binding ``listen``.
    """
    notifier = notifier or Notifier(None)
    daemon = await Daemon.open(settings)
    daemon.start_housekeeping()
    try:
        token = load_or_create_token(settings.state_dir)
    except BaseException:
        await daemon.close()
        raise
    add_secret(token)
    _register_passphrase(settings)
    app = make_app(daemon, token)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    if sockets:
        sites: list[web.BaseSite] = [web.SockSite(runner, item.sock) for item in sockets]
        where = ", ".join(f"{item.address} ({item.name})" for item in sockets) + " (socket activation)"
    else:
        host, port = settings.listen_host_port
        sites = [web.TCPSite(runner, host, port, reuse_address=True)]
        where = f"{host}:{port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloading: list[asyncio.Task[None]] = []

    def on_hangup() -> None:
        if stop.is_set():
            return  # stopping: READY=1 after STOPPING=1 would confuse the service manager
        if reloading and not reloading[-1].done():
            log.info("SIGHUP ignored: a reload is under way")
            return
        reloading[:] = [asyncio.create_task(_reload(daemon, dict(flags or {}), notifier, app[METRICS]),
                                            name="reload")]

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    pinger: asyncio.Task[None] | None = None
    try:
        for site in sites:
            await site.start()
        log.info("attestables %s listening on %s (state dir %s)", __version__, where, settings.state_dir)
        notifier.ready(status=f"listening on {where}")
        if watchdog_s:
            pinger = asyncio.create_task(watchdog_pings(notifier, watchdog_s), name="watchdog")
        await stop.wait()
        notifier.stopping(f"stopping: ending runs within {daemon.settings.stop_grace_s:g} s")
        log.info("stopping: no new connections; ending runs within %.0f s", daemon.settings.stop_grace_s)
        for site in sites:
            await site.stop()
        await daemon.runs.shutdown()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for task in reloading:
            task.cancel()
        await runner.cleanup()
        await daemon.close()
        if pinger is not None:
            pinger.cancel()
        log.info("stopped")


def _register_passphrase(settings: Settings) -> None:
    """Keep the CA passphrase out of the log, should any message ever carry it."""
    if not (settings.ca_passphrase_file or settings.ca_passphrase_credential):
        return
    try:
        if settings.ca_passphrase_file:
            add_secret(read_passphrase(file=settings.ca_passphrase_file))
        else:
            add_secret(read_passphrase(credential=settings.ca_passphrase_credential))
    except AttestablesError:
        pass  # the CA opened with it a moment ago; nothing to redact if it is gone now


def loop_factory(choice: str) -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The event loop ``event_loop`` names, and how the log names it (None: asyncio's)."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise ConfigError("event_loop: uvloop is not installed (pip install uvloop, or use auto)") from None
            return None, "asyncio"
        return uvloop.new_event_loop, f"uvloop {uvloop.__version__}"
    return None, "asyncio"


def run_daemon(flags: dict[str, Any]) -> int:
    """Entry point of ``attestables daemon``; ``flags`` holds only options given."""
    # systemd's variables first, before anything starts a child that could inherit them.
    notifier = Notifier.from_environ()
    watchdog_s = take_watchdog_interval()
    try:
        sockets = take_listen_sockets()
    except ActivationError as exc:
        print(f"attestables daemon: {exc}", file=sys.stderr)
        notifier.status(f"cannot start: {exc}")
        return 1
    try:
        try:
            settings = load_settings(flags)
            factory, loop_name = loop_factory(settings.event_loop)
        except ConfigError as exc:
            print(f"attestables daemon: {exc}", file=sys.stderr)
            notifier.status(f"cannot start: {exc}")
            return 2
        setup_logging(settings.log_level, settings.log_format)
        os.umask(0o077)  # every file the daemon creates is private unless it says otherwise
        try:
            settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            pidfile = PidFile(settings.state_dir / PID_FILE)
            pidfile.acquire()
        except (RuntimeError, OSError) as exc:
            log.error("%s", exc)
            notifier.status(f"cannot start: {exc}")
            return 1
        log.info("event loop: %s", loop_name)
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(serve(settings, flags=flags, notifier=notifier, sockets=sockets, watchdog_s=watchdog_s))
        except (OSError, RuntimeError, AttestablesError) as exc:
            log.error("cannot start: %s", exc)
            notifier.status(f"cannot start: {exc}")
            return 1
        finally:
            pidfile.release()
        return 0
    finally:
        for item in sockets:
            item.sock.close()
        notifier.close()
