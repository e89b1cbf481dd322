"""Scratch space for builds and runs, reachable by the sandbox uid.

A sandbox running as another uid (root daemon) needs to reach its build directory by
path, so every ancestor must be traversable; the state dir cannot promise that (it may
sit under a 0700 home or temp dir). The scratch space is therefore its own directory:
``$RUNTIME_DIRECTORY`` under systemd, else a fresh ``attestables-work-*`` in the system
temp dir. Its path is remembered in the state dir so that the next start removes what a
killed daemon left behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from attestables.shared.files import write_atomic

MARKER = "work-dir"


def _traversable_by_others(path: Path) -> Path | None:
    """The first ancestor of ``path`` another uid cannot traverse, or None."""
    for part in [path, *path.parents]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return part
        if not mode & stat.S_IXOTH:
            return part
    return None


def prepare_work_dir(state_dir: Path, configured: str, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    marker = state_dir / MARKER
    try:
        previous = Path(marker.read_text().strip())
    except FileNotFoundError:
        previous = None
    if configured:
        work = Path(configured)
    elif env.get("RUNTIME_DIRECTORY"):
        work = Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / "work"
    else:
        work = None
    if previous is not None and previous.name.startswith("attestables-work-") and previous != work:
        shutil.rmtree(previous, ignore_errors=True)
    if work is None:
        work = Path(tempfile.mkdtemp(prefix="attestables-work-"))
    else:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    work.chmod(0o711)
    # Atomic: a torn marker could name another directory for the next start to remove.
    write_atomic(marker, f"{work}\n".encode(), 0o600)
    blocked = _traversable_by_others(work) if os.geteuid() == 0 else None
    if blocked is not None:
        raise RuntimeError(f"work dir {work}: {blocked} is not traversable by the sandbox uid (needs o+x)")
    for sub in ("builds", "runs"):
        (work / sub).mkdir()
        (work / sub).chmod(0o711)
    return work
