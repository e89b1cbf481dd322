"""``attestables-confine``: the one-exec head of every Linux sandbox, built from ``confine.c``.

``prlimit`` then ``setpriv`` cost two dynamically linked execs (~3 ms here) before bwrap
even starts, on every build and every run. ``confine.c`` does the same steps (see its
header) in one small, statically linked exec (~0.6 ms). The daemon compiles it at start
with the native toolchain's compiler (``builds/toolchains.py``), in a background thread, into its scratch space (mode 0500:
only the daemon's uid runs it), checks that it runs, and uses it from then on; where no
compiler is found or the check fails, the sandbox keeps ``prlimit`` + ``setpriv``. The
source ships with the package and is trusted as the daemon's own code; it is compiled
outside any sandbox, never from user input.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from . import reaper
from .argv import Limits, confine_tool_argv

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("confine.c")
NAME = "attestables-confine"
CFLAGS = ("-O2", "-Wall")  # the tests also build it with -Wextra -Werror
COMPILE_TIMEOUT_S = 60
CHECK_TIMEOUT_S = 10
# Small enough for any host, large enough for /bin/true.
CHECK_LIMITS = Limits(cpu_s=5, memory_mb=256, wall_s=5, output_kb=16, nofile=64, nproc=64, tmp_mb=16)
CHECK_PROGRAM = "/bin/true"


class ConfineToolError(Exception):
    """The helper could not be built or does not work here; the message says why."""


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    return reaper.run(argv, timeout=timeout, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})  # type: ignore[return-value]


def build(directory: Path, *, compiler: str | None, check_as: tuple[int, int] | None = None) -> Path:
    """Compile ``confine.c`` with ``compiler`` (the native toolchain's; None: there is
    none) into ``directory/attestables-confine`` and check that it runs (``check_as``:
    also its drop to that uid). Raises :class:`ConfineToolError`."""
    if not sys.platform.startswith("linux"):
        raise ConfineToolError("attestables-confine is for Linux")
    if compiler is None:
        raise ConfineToolError("no native C compiler on this host (see the native toolchain in system.info)")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / NAME
    temp = directory / f".{NAME}.tmp"
    last_error = ""
    # Static first (no dynamic loader at each exec); dynamic where no static libc exists.
    for link in (["-static"], []):
        temp.unlink(missing_ok=True)
        try:
            proc = _run([compiler, *CFLAGS, *link, "-o", str(temp), str(SOURCE)], COMPILE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfineToolError(f"{compiler} could not be run: {exc}") from exc
        if proc.returncode == 0:
            break
        last_error = (proc.stderr.decode(errors="replace").strip().splitlines() or ["(no message)"])[-1]
    else:
        temp.unlink(missing_ok=True)
        raise ConfineToolError(f"{compiler} could not build {SOURCE.name}: {last_error}")
    # No fsync: the work dir is scratch, rebuilt at every start; the rename only keeps a
    # failed or partial output from ever carrying the tool's name.
    os.chmod(temp, 0o500)
    os.replace(temp, target)
    check(target, check_as)
    return target


def check(tool: Path, run_as: tuple[int, int] | None) -> None:
    """Run ``CHECK_PROGRAM`` through ``tool`` as the daemon will; raise if that fails."""
    argv = [*confine_tool_argv(str(tool), CHECK_LIMITS, run_as), CHECK_PROGRAM]
    try:
        proc = _run(argv, CHECK_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfineToolError(f"{NAME} could not be run: {exc}") from exc
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise ConfineToolError(f"{NAME} does not work here: {message}")
