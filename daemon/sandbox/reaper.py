"""Orphaned sandboxes: the daemon is their reaper (bubblewrap#633, docs/reliability.md finding 7).

bwrap's ``--die-with-parent``: the sandbox's init (the inner bwrap, pid 1 of the new pid
namespace, a fork of the bwrap the daemon started) asks for SIGKILL when that outer bwrap
dies, but only once it has started. If the outer bwrap dies in that instant (a run stopped
in its first milliseconds), the inner one and the program run on, orphaned, with no wall
limit and no one to stop them.

At start the daemon makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``, Linux), so
such an orphan becomes the daemon's child rather than init's. Whenever a sandbox the daemon
started has exited (:class:`~.process.SandboxProcess`), and every :data:`SWEEP_S` besides,
:meth:`Reaper.collect` looks at the daemon's own children (``/proc/self/task/*/children``)
that are not its own live work:

- a ``bwrap`` is an orphaned sandbox: it is killed — which ends its pid namespace and
  everything in it — and reaped;
- anything else that has exited (a zombie) is reaped: a program of the unconfined ``none``
  backend may leave children of its own behind, in a session of their own; they run on as
  before (now as the daemon's children, see docs/threat-model.md), and when they exit
  nobody else would wait for them.

The daemon's own work is never touched: the sandboxes (:class:`~.process.SandboxProcess`
registers each in :attr:`Reaper.live` before its first await) and the short commands it
runs itself (compiler probes, the confine helper's build and check), which go through
:func:`run` so that their exit status stays theirs.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
SWEEP_S = 30.0  # how often the daemon looks for exited children nobody waits for
SANDBOX_COMMS = frozenset({b"bwrap"})  # /proc/PID/stat's comm: kept by a zombie, unlike cmdline


def _children() -> set[int]:
    """This process's children, from every thread's ``children`` list."""
    pids: set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return pids
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/children", "rb") as fh:
                pids.update(int(p) for p in fh.read().split())
        except (OSError, ValueError):
            continue
    return pids


def _comm_and_state(pid: int) -> tuple[bytes, bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # "pid (comm) state ...": comm may hold spaces or parentheses; it ends at the last ')'.
    start, end = stat.find(b"("), stat.rfind(b")")
    if start < 0 or end < start:
        return None
    return stat[start + 1:end], stat[end + 2:end + 3]


class Reaper:
    """The daemon's watch over its children: the live sandboxes, and orphans to end."""

    def __init__(self) -> None:
        self.live: set[int] = set()  # pids of the daemon's own children that someone waits for
        self.enabled = False
        # Held from a command's fork until its pid is in ``live`` (commands run in worker
        # threads), and while collect() picks what to end: no child is ever seen unregistered.
        self.lock = threading.Lock()

    def enable(self) -> bool:
        """Make this process a child subreaper; False where that is not possible."""
        if not sys.platform.startswith("linux"):
            return False
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self.enabled = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        except (OSError, AttributeError):
            self.enabled = False
        if not self.enabled:
            log.warning("cannot become a child subreaper: a sandbox stopped in its first milliseconds "
                        "may outlive its run until the daemon restarts (bubblewrap#633)")
        return self.enabled

    def collect(self, loop: asyncio.AbstractEventLoop) -> int:
        """Kill and reap every orphaned sandbox among this process's children; how many."""
        if not self.enabled:
            return 0
        ended = reaped = 0
        with self.lock:
            candidates = _children() - self.live
            for pid in candidates:
                facts = _comm_and_state(pid)
                if facts is not None and facts[0] not in SANDBOX_COMMS and facts[1] == b"Z":
                    try:
                        # Ours, exited, and nobody's: it is not in live under the lock.
                        reaped += os.waitpid(pid, os.WNOHANG)[0] == pid
                    except ChildProcessError:
                        pass
        if reaped:
            log.info("reaped %d exited process(es) an unconfined run left behind", reaped)
        for pid in candidates:
            facts = _comm_and_state(pid)
            if facts is None or facts[0] not in SANDBOX_COMMS:
                continue
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue  # gone (reaped) meanwhile
            # The descriptor names this very process: it is our child, so no one else can
            # have reaped it and let the pid be reused, but check what it is once more.
            facts = _comm_and_state(pid)
            if facts is None or facts[0] not in SANDBOX_COMMS or pid in self.live:
                os.close(pidfd)
                continue
            if facts[1] != b"Z":
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except OSError:
                    pass
            loop.add_reader(pidfd, self._reap, loop, pid, pidfd)
            ended += 1
        if ended:
            log.warning("ended %d orphaned sandbox process(es) (a sandbox stopped as it started: "
                        "bubblewrap#633)", ended)
        return ended

    @staticmethod
    def _reap(loop: asyncio.AbstractEventLoop, pid: int, pidfd: int) -> None:
        loop.remove_reader(pidfd)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        finally:
            os.close(pidfd)


REAPER = Reaper()


def run(argv: Sequence[str], *, timeout: float, env: Mapping[str, str],
        text: bool = False) -> subprocess.CompletedProcess[str] | subprocess.CompletedProcess[bytes]:
    """``subprocess.run`` for the daemon's own short commands (stdin from /dev/null, output
    captured): the child is in :attr:`Reaper.live` from its fork until it has been waited
    for, so :meth:`Reaper.collect` never takes its exit status (``subprocess`` would then
    report 0 for a command that failed). Raises as ``subprocess.run`` does (OSError,
    TimeoutExpired after killing the child)."""
    with REAPER.lock:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env), text=text,
                                errors="replace" if text else None)
        REAPER.live.add(proc.pid)
    try:
        with proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
    finally:
        REAPER.live.discard(proc.pid)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
