"""The scratch directory: remembered in the state dir (atomically), removed at the next start."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from attestables.daemon.workdir import MARKER, prepare_work_dir
from attestables.shared.files import is_temp_name


def test_the_previous_scratch_dir_is_removed_and_the_new_one_remembered(tmp_path: Path):
    state = tmp_path / "state"
    state.mkdir()
    first = prepare_work_dir(state, "", environ={})
    (first / "builds" / "leftover").write_text("a killed daemon's file")
    marker = state / MARKER
    assert marker.read_text() == f"{first}\n"
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    second = prepare_work_dir(state, "", environ={})
    try:
        assert second != first and not first.exists()
        assert marker.read_text() == f"{second}\n"
        assert not [p for p in state.iterdir() if is_temp_name(p.name)]  # written via a renamed temp file
        # A configured scratch dir (here under the system temp dir, which the sandbox uid
        # can traverse) replaces the temp one, which goes.
        configured = Path(tempfile.gettempdir()) / f"attestables-test-workdir-{os.getpid()}"
        assert prepare_work_dir(state, str(configured), environ={}) == configured
        assert not second.exists() and marker.read_text() == f"{configured}\n"
    finally:
        shutil.rmtree(second, ignore_errors=True)
        shutil.rmtree(Path(tempfile.gettempdir()) / f"attestables-test-workdir-{os.getpid()}", ignore_errors=True)
