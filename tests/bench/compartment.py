"""The daemon's compartment command, started directly: the baseline of runs.

Builds the very argv the daemon builds (``compartments.backends.run_argv``: the daemon's
own ``attestables-confine``, else prlimit and setpriv when root; bwrap with
``--ro-bind-data`` from a sealed memfd, ``--info-fd``) and
starts it as ``SandboxProcess.spawn`` does: ``posix_spawn`` in a new session, stdin from
/dev/null, stdout/stderr piped, a socketpair end at fd 3, the info pipe at fd 4 and the
program memfd at fd 5. Only the daemon is missing: no database, no event bus, no
websocket; the output is read straight from the pipe.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from attestables.daemon.compartments.backends import Backend, run_argv, sandbox_limits
from attestables.daemon.compartments.runs import INFO_FD, PROGRAM_FD
from attestables.daemon.config import RunLimits, Settings
from attestables.daemon.sandbox.confine_tool import NAME as CONFINE_TOOL
from attestables.daemon.workdir import MARKER as WORK_DIR_MARKER

READ_CHUNK = 256 * 1024  # what the daemon's pipe transport reads at most per call
RUN_ENV = {"ATTESTABLES_FD": "3", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


class SandboxUids:
    """A uid for each baseline sandbox, handed out round-robin as the daemon does.

    RLIMIT_NPROC counts processes per uid, and a torn-down sandbox's processes are
    released a little after bwrap exits: reusing one uid back to back makes bwrap fail
    ("Can't fork for pid 1: Resource temporarily unavailable"). The uids come from the
    top of the daemon's range, which the daemon hands out from the bottom. ``None`` when
    not root: then, like the daemon, the sandbox keeps this process's uid.
    """

    SPAN = 4096

    def __init__(self, settings: Settings) -> None:
        self._first = settings.sandbox_uid_base + settings.sandbox_uid_count - self.SPAN
        self._gid = settings.sandbox_gid
        self._next = 0

    def next(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        uid = self._first + self._next
        self._next = (self._next + 1) % self.SPAN
        return uid, self._gid


def daemon_work_dir(state_dir: Path) -> Path | None:
    """The daemon's scratch space, named by the marker in its state dir."""
    try:
        return Path((state_dir / WORK_DIR_MARKER).read_text().strip())
    except OSError:
        return None


def daemon_confine_tool(state_dir: Path) -> str | None:
    """The ``attestables-confine`` the daemon built and uses (after its first sandbox),
    else None: the daemon, like the baseline, starts sandboxes with prlimit/setpriv."""
    work = daemon_work_dir(state_dir)
    tool = work / "bin" / CONFINE_TOOL if work is not None else None
    return str(tool) if tool is not None and os.access(tool, os.X_OK) else None


def compartment_command(settings: Settings, limits: RunLimits, args: list[str],
                        run_as: tuple[int, int] | None, confine_tool: str | None) -> list[str]:
    """The daemon's bwrap command for a run (``Runs._run``)."""
    return run_argv(Backend("bwrap", True), program_fd=PROGRAM_FD, program_path="", args=args,
                    limits=sandbox_limits(limits, settings), run_as=run_as, info_fd=INFO_FD,
                    confine_tool=confine_tool)


def _high(fd: int) -> int:
    """``fd`` moved to 10 or above (close-on-exec).

    The dup2 actions run in order: a source descriptor numbered 3, 4 or 5 would be
    overwritten by an earlier action before it is copied (a fresh process's first
    descriptors are exactly those), and bwrap would read the program from the wrong one.
    """
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def _sealed_memfd(program: bytes) -> int:
    fd = os.memfd_create("attestables-bench", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.write(fd, program)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                | fcntl.F_SEAL_SEAL)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@dataclass
class DirectRun:
    """One run of the compartment command; times are ``perf_counter`` seconds."""

    started: float
    first_byte: float | None = None
    last_byte: float | None = None
    ended: float | None = None
    stdout_bytes: int = 0
    lines: int = 0
    exit_status: int | None = None

    @property
    def to_first_byte(self) -> float:
        assert self.first_byte is not None
        return self.first_byte - self.started

    @property
    def streaming(self) -> float:
        assert self.first_byte is not None and self.last_byte is not None
        if self.last_byte <= self.first_byte:
            raise RuntimeError(f"all {self.lines} lines came in one read: too few to time (raise --stream-lines)")
        return self.last_byte - self.first_byte


def run_direct(argv: list[str], program: bytes) -> DirectRun:
    """Start the command, read its stdout to the end, reap it.

    The clock starts before the descriptors the command needs are made (memfd,
    socketpair, pipes), as the daemon must make them too.
    """
    t0 = time.perf_counter()
    program_fd = _high(_sealed_memfd(program))
    parent_sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child_sock = _high(child.detach())
    info_r, info_w = (_high(fd) for fd in os.pipe())
    out_r, out_w = (_high(fd) for fd in os.pipe())
    err_r, err_w = (_high(fd) for fd in os.pipe())
    devnull = _high(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2),
        (os.POSIX_SPAWN_DUP2, child_sock, 3),
        (os.POSIX_SPAWN_DUP2, info_w, INFO_FD),
        (os.POSIX_SPAWN_DUP2, program_fd, PROGRAM_FD),
    ]
    try:
        pid = os.posix_spawn(argv[0], argv, RUN_ENV, file_actions=actions, setsid=True)
    finally:
        for fd in (out_w, err_w, devnull, info_w, program_fd, child_sock):
            os.close(fd)
    run = DirectRun(started=t0)
    stderr = b""
    try:
        while chunk := os.read(out_r, READ_CHUNK):
            now = time.perf_counter()
            if run.first_byte is None:
                run.first_byte = now
            run.last_byte = now
            run.stdout_bytes += len(chunk)
            run.lines += chunk.count(b"\n")
        while chunk := os.read(err_r, READ_CHUNK):
            stderr = (stderr + chunk)[-4096:]
        _, status = os.waitpid(pid, 0)
        run.ended = time.perf_counter()
        run.exit_status = os.waitstatus_to_exitcode(status)
    finally:
        for fd in (out_r, err_r, info_r):
            os.close(fd)
        parent_sock.close()
    if run.exit_status != 0 or run.first_byte is None:
        raise RuntimeError(f"the direct compartment run failed (status {run.exit_status}): "
                           f"{stderr.decode(errors='replace').strip()!r}; command: {argv}")
    return run
