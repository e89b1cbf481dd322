"""SVG snapshots of every tab at 120x40, from recorded data (see ``scenes.py``).

The app runs on a FixtureSource, which posts the same messages as the connection worker,
with a fixed clock, so the pictures do not depend on live ids or times. After an intended
change, look at the new pictures and accept them with ``pytest tests/console
--snapshot-update``; ``python -m tests.console.screenshots`` refreshes docs/console/.
"""

from __future__ import annotations

from typing import Any

import pytest

from .scenes import SCENES, SIZE, Scene


@pytest.mark.parametrize("scene", SCENES, ids=[s.name for s in SCENES])
def test_scene(scene: Scene, snap_compare: Any) -> None:
    assert snap_compare(scene.app(), terminal_size=SIZE, run_before=scene.run_before)
