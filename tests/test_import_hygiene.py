"""Layer boundaries: shared/ is importable without the daemon, Textual or aiohttp's server."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import attestables.shared as shared

FORBIDDEN = ("attestables.daemon", "attestables.tui", "attestables.apps", "attestables.cli", "textual",
             "aiohttp.web")


def test_shared_imports_neither_daemon_nor_faces():
    modules = [m.name for m in pkgutil.walk_packages(shared.__path__, prefix="attestables.shared.")]
    assert "attestables.shared.verifier.policy" in modules and "attestables.shared.client" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if n.startswith({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"shared/ pulled in: {out}"
