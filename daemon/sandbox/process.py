"""Sandboxed child processes, started without a shell and watched through a pidfd.

``os.posix_spawn`` places the control socket at exactly fd 3 (a dup2 file action), with
no ``preexec_fn`` (unsafe in a threaded daemon: aiosqlite runs a thread). Exit is
noticed through a pidfd registered with the event loop, so the pid is never confused
with a recycled one and no child watcher thread is needed. Output arrives through pipes
as chunks handed to a callback; the caller decides what to keep, so memory stays bounded
whatever the child prints.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
from dataclasses import dataclass
from typing import Callable, Sequence

from .reaper import REAPER

OutputCallback = Callable[[str, bytes], None]  # (stream name, chunk)
READ_CHUNK = 256 * 1024
_RESET_SIGNALS = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))


@dataclass(frozen=True, slots=True)
class ExitStatus:
    exit_code: int | None
    signal: int | None


class _PipeReader(asyncio.Protocol):
    def __init__(self, stream: str, on_output: OutputCallback, done: asyncio.Future[None]) -> None:
        self.stream = stream
        self.on_output = on_output
        self.done = done

    def data_received(self, data: bytes) -> None:
        self.on_output(self.stream, data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class SandboxProcess:
    """A running child: ``wait()`` for its status, ``signal()`` to stop it."""

    def __init__(self, pid: int, pidfd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self._loop = loop
        self._exit: asyncio.Future[ExitStatus] = loop.create_future()
        self._pipes_done: list[asyncio.Future[None]] = []
        self._transports: list[asyncio.BaseTransport] = []
        loop.add_reader(pidfd, self._on_exit)

    @classmethod
    async def spawn(
        cls,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        on_output: OutputCallback,
        fd3: int | None = None,
        extra_fds: Sequence[tuple[int, int]] = (),
    ) -> "SandboxProcess":
        """Start ``argv`` in a new session with stdin from /dev/null and piped output.

        ``fd3`` (if given) becomes the child's fd 3; ``extra_fds`` are further
        (parent fd, child fd) pairs. Every other descriptor of the daemon is close-on-exec.
        """
        loop = asyncio.get_running_loop()
        # The dup2 actions run in order: a source descriptor numbered 3-9 could be the
        # target of an earlier action and be clobbered before it is copied. Every source
        # is first moved to 10 or above.
        moved: list[int] = []

        def high(fd: int) -> int:
            if fd >= 10:
                return fd
            copy = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            moved.append(copy)
            return copy

        try:
            if fd3 is not None:
                fd3 = high(fd3)
            extra_fds = [(high(parent), child) for parent, child in extra_fds]
        except OSError:
            for fd in moved:
                os.close(fd)
            raise
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        actions: list[tuple[int, ...]] = [
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        if fd3 is not None:
            actions.append((os.POSIX_SPAWN_DUP2, fd3, 3))
        for parent_fd, child_fd in extra_fds:
            actions.append((os.POSIX_SPAWN_DUP2, parent_fd, child_fd))
        try:
            # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across
            # exec, so without setsigdef every sandboxed program would inherit that (a write
            # to a closed pipe, or past RLIMIT_FSIZE, would fail instead of killing it).
            pid = os.posix_spawn(argv[0], list(argv), env, file_actions=actions, setsid=True,
                                 setsigdef=_RESET_SIGNALS)
        finally:
            for fd in (out_w, err_w, devnull, *moved):
                os.close(fd)
        REAPER.live.add(pid)  # before any await: not an orphan to the reaper
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            REAPER.live.discard(pid)
            os.close(out_r)
            os.close(err_r)
            raise
        proc = cls(pid, pidfd, loop)
        for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
            done: asyncio.Future[None] = loop.create_future()
            transport, _ = await loop.connect_read_pipe(
                lambda name=name, done=done: _PipeReader(name, on_output, done), os.fdopen(fd, "rb", 0))
            proc._pipes_done.append(done)
            proc._transports.append(transport)
        return proc

    def _on_exit(self) -> None:
        self._loop.remove_reader(self._pidfd)
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:  # already reaped elsewhere: report unknown status
            status = None
        finally:
            os.close(self._pidfd)
        if status is None:
            result = ExitStatus(None, None)
        elif os.WIFSIGNALED(status):
            result = ExitStatus(None, os.WTERMSIG(status))
        else:
            result = ExitStatus(os.waitstatus_to_exitcode(status), None)
        if not self._exit.done():
            self._exit.set_result(result)
        REAPER.live.discard(self.pid)
        # If this bwrap died before its sandbox's init armed --die-with-parent, that init is
        # now our child (subreaper): end it (bubblewrap#633, reaper.py). Queued after the
        # waiter's wake-up, so the look at our children does not delay the outcome.
        self._loop.call_soon(REAPER.collect, self._loop)

    @property
    def returncode(self) -> ExitStatus | None:
        return self._exit.result() if self._exit.done() else None

    def signal(self, sig: int) -> None:
        """Signal the child; a no-op once it has been reaped (no pid-reuse risk)."""
        if self._exit.done():
            return
        try:
            signal.pidfd_send_signal(self._pidfd, sig)
        except (ProcessLookupError, OSError):
            pass

    async def wait(self, *, drain_timeout: float = 2.0) -> ExitStatus:
        """Wait for exit, then for the pipes to drain (bounded: a grandchild may hold them)."""
        status = await asyncio.shield(self._exit)
        if self._pipes_done:
            _, pending = await asyncio.wait(self._pipes_done, timeout=drain_timeout)
            if pending:
                self.close_pipes()
        return status

    def close_pipes(self) -> None:
        for transport in self._transports:
            transport.close()
