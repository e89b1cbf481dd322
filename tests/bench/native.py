"""Host-side C programs of the benchmarks, compiled with gcc into a temp dir.

Built with the daemon's own optimisation and hardening flags (``-O2 -D_FORTIFY_SOURCE=2``,
the flags ``toolchain.argv`` records), so that a host-side figure compares with what a
compartment program built by the launcher would do.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from attestables import cheri

from .programs import C_DIR

FLAGS = ["-std=c11", "-Wall", "-Wextra", "-O2", "-D_FORTIFY_SOURCE=2"]


class NativePrograms:
    """Compiles on demand; ``remove()`` deletes what it built."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="attestables-bench-native-"))

    def build(self, name: str, *, runtime: bool = False, libs: tuple[str, ...] = ("-lcrypto",)) -> Path:
        """``c/NAME.c`` compiled (with every runtime source when ``runtime``) to an executable."""
        out = self.dir / name
        if out.exists():
            return out
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            raise RuntimeError("no C compiler (gcc or cc) on PATH")
        argv = [cc, *FLAGS, "-I", str(C_DIR)]
        if runtime:
            argv += ["-I", str(cheri.RUNTIME_INCLUDE_DIR), "-I", str(cheri.RUNTIME_DIR / "src")]
        argv += [str(C_DIR / f"{name}.c")]
        if runtime:
            argv += [str(s) for s in cheri.RUNTIME_SOURCES]
        argv += ["-o", str(out), *libs]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling {name}.c failed:\n{proc.stderr[-3000:]}")
        return out

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
