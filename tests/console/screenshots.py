"""Write the console's screenshots for docs/console.md: ``python -m tests.console.screenshots``.

The same scenes as the snapshot tests (``scenes.py``: the real app on recorded data, a
fixed clock, 120x40), exported as SVG to ``docs/console/<scene>.svg``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from textual._doc import take_svg_screenshot

from .scenes import SCENES, SIZE

DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"


def main() -> int:
    DOCS.mkdir(parents=True, exist_ok=True)
    for scene in SCENES:
        svg = take_svg_screenshot(app=scene.app(), terminal_size=SIZE, run_before=scene.run_before)
        (DOCS / f"{scene.name}.svg").write_text(svg, encoding="utf-8")
        print(f"wrote docs/console/{scene.name}.svg ({scene.title})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
