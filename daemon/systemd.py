"""systemd's protocols, spoken without a library: readiness, watchdog, socket activation.

Modelled on nobodd's ``systemd.py``: plain ``sd_notify(3)`` datagrams to
``$NOTIFY_SOCKET`` and the ``sd_listen_fds(3)`` convention, each a few lines, so the
daemon needs no libsystemd binding and behaves the same with or without systemd (every
call is a no-op when the variables are absent).

What the daemon promises the service manager:

- ``READY=1`` once the API is listening (and again after each reload);
- ``RELOADING=1`` (with ``MONOTONIC_USEC``) when SIGHUP starts a reload;
- ``STOPPING=1`` when a stop begins;
- ``WATCHDOG=1`` every half ``$WATCHDOG_USEC``, sent from the event loop itself, so a
  wedged loop stops the pings and systemd restarts the daemon;
- sockets passed with ``LISTEN_FDS`` are used instead of binding ``listen``.

The variables are removed from the environment once read: the daemon starts children
(toolchain probes, compilers, sandboxes), and none of them must talk to systemd in its
name or believe it was socket-activated. Inherited listening sockets are moved off fds
3.. to close-on-exec descriptors above 9, because fd 3 is where every compartment gets
its control channel and no child may inherit the API's listening socket.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

LISTEN_FDS_START = 3
# Inherited sockets are moved to this descriptor or above (see the module docstring).
RELOCATE_FDS_FROM = 10
NOTIFY_TIMEOUT_S = 2.0

UNIT_DIR = Path(__file__).resolve().parent / "systemd"
UNITS = ("attestables.service", "attestables.socket")
RC_SCRIPT = Path(__file__).resolve().parent / "rc.d" / "attestables"
# The path the shipped unit runs; ``--print-unit`` puts the running installation's instead.
DEFAULT_EXECUTABLE = "/usr/local/bin/attestables"


class Notifier:
    """Sends ``sd_notify`` state changes; does nothing when ``$NOTIFY_SOCKET`` is unset."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        if not address or len(address) < 2 or address[0] not in "@/":
            self.address = None
            return
        target = "\0" + address[1:] if address[0] == "@" else address  # '@': abstract namespace
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.settimeout(NOTIFY_TIMEOUT_S)
        try:
            sock.connect(target)
        except OSError as exc:
            log.warning("cannot reach the service manager's notify socket %s: %s", address, exc.strerror or exc)
            sock.close()
            return
        self._socket = sock

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> "Notifier":
        """Take ``$NOTIFY_SOCKET`` out of the environment (children must not inherit it)."""
        env = os.environ if environ is None else environ
        return cls(env.pop("NOTIFY_SOCKET", None))

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``VAR=value`` lines as one datagram; never raises (a lost notice is logged)."""
        if self._socket is None:
            return False
        try:
            self._socket.send("\n".join(assignments).encode("utf-8"))
            return True
        except OSError as exc:
            log.warning("could not notify the service manager (%s): %s", assignments[0], exc.strerror or exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) tie this to its own request.
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
                           "STATUS=reloading the configuration")

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def take_watchdog_interval(environ: MutableMapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or ``None``.

    The variables are removed; ``WATCHDOG_PID``, when set, must name this process.
    """
    env = os.environ if environ is None else environ
    usec = env.pop("WATCHDOG_USEC", None)
    pid = env.pop("WATCHDOG_PID", None)
    if not usec:
        return None
    try:
        if pid is not None and int(pid) != os.getpid():
            return None
        value = int(usec)
    except ValueError:
        log.warning("ignoring a malformed watchdog setting (WATCHDOG_USEC=%r)", usec)
        return None
    return value / 2_000_000 if value > 0 else None


async def watchdog_pings(notifier: Notifier, interval: float) -> None:
    """Ping forever from the event loop: if the loop stalls, the pings stop."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class ListenSocket:
    name: str
    sock: socket.socket

    @property
    def address(self) -> str:
        try:
            name = self.sock.getsockname()
        except OSError:
            return "?"
        if isinstance(name, tuple):
            host = name[0]
            return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"
        return str(name) or "?"


class ActivationError(RuntimeError):
    """The sockets systemd passed cannot serve the API."""


def take_listen_sockets(environ: MutableMapping[str, str] | None = None) -> list[ListenSocket]:
    """The listening sockets passed by socket activation (``sd_listen_fds``), or ``[]``.

    Each inherited descriptor (3, 4, ...) is moved to a close-on-exec descriptor above 9
    and the original closed; ``LISTEN_PID``, ``LISTEN_FDS`` and ``LISTEN_FDNAMES`` are
    removed from the environment. Only listening stream sockets are accepted.
    """
    env = os.environ if environ is None else environ
    pid, count, names = env.pop("LISTEN_PID", None), env.pop("LISTEN_FDS", None), env.pop("LISTEN_FDNAMES", None)
    if pid is None or count is None:
        return []
    try:
        if int(pid) != os.getpid():
            return []  # meant for another process (a wrapper that did not exec us)
        n = int(count)
    except ValueError:
        raise ActivationError(f"malformed socket activation variables (LISTEN_PID={pid!r}, LISTEN_FDS={count!r})") \
            from None
    labels = names.split(":") if names else []
    if len(labels) != n:
        labels = ["unknown"] * n
    sockets: list[ListenSocket] = []
    try:
        for index in range(n):
            fd = LISTEN_FDS_START + index
            try:
                moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, RELOCATE_FDS_FROM)
            except OSError as exc:
                raise ActivationError(f"socket activation: fd {fd} is not open ({exc.strerror})") from None
            os.close(fd)
            try:
                sock = socket.socket(fileno=moved)
            except OSError:
                os.close(moved)
                raise ActivationError(f"socket activation: fd {fd} ({labels[index]}) is not a socket") from None
            sockets.append(ListenSocket(labels[index], sock))
            if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                raise ActivationError(f"socket activation: fd {fd} ({labels[index]}) is not a listening stream "
                                      "socket (ListenStream= with Accept=no is needed)")
            sock.setblocking(False)
    except BaseException:
        for item in sockets:
            item.sock.close()
        raise
    return sockets


def journal_stream_matches(fd: int = 2, environ: MutableMapping[str, str] | None = None) -> bool:
    """Whether ``fd`` is connected to the journal (``$JOURNAL_STREAM`` names its device:inode)."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    device, sep, inode = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


def unit_text(name: str, executable: str | None = None) -> str:
    """A shipped unit file, with ``ExecStart`` pointing at ``executable`` if given."""
    if name not in UNITS:
        raise ValueError(f"no unit {name!r}; the units are {', '.join(UNITS)}")
    text = (UNIT_DIR / name).read_text(encoding="utf-8")
    if executable:
        text = text.replace(DEFAULT_EXECUTABLE, executable)
    return text
