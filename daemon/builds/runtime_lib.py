"""The compartment runtime (``cheri/runtime``), compiled once per toolchain.

Every build links it automatically, as a static library: only the parts a program uses
are pulled in (a program that never includes ``attestables.h`` gets none of it, and no
libcrypto dependency, thanks to ``--as-needed``), and builds do not recompile it each
time. The library is built in the same compile sandbox as user code, keyed by the
digest of the runtime's sources and the toolchain's identity, and kept in the scratch
space (rebuilt after a restart, once).

The runtime's sources are copied into the scratch space first, so that a sandbox
running as another uid can read them wherever the package is installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from attestables import cheri
from attestables.shared.errors import InternalError

from .sandboxed import run_compile
from .toolchains import Toolchain

if TYPE_CHECKING:
    from ..daemon import Daemon

log = logging.getLogger(__name__)

LIBRARY = "libattestables.a"
LINK_NAME = "attestables"
RUNTIME_CFLAGS = ("-O2",)


def _stage_sources(target: Path) -> str:
    """Copy cheri/runtime (include/, src/) to ``target`` world-readable; return its digest."""
    digest = hashlib.sha256()
    for sub in ("include", "src"):
        (target / sub).mkdir(parents=True, exist_ok=True)
        for path in sorted((cheri.RUNTIME_DIR / sub).iterdir()):
            if path.suffix in {".c", ".h"}:
                data = path.read_bytes()
                digest.update(f"{sub}/{path.name}\0{len(data)}\0".encode() + data)
                (target / sub / path.name).write_bytes(data)
                (target / sub / path.name).chmod(0o644)
        (target / sub).chmod(0o755)
    target.chmod(0o755)
    return digest.hexdigest()


class RuntimeLibrary:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.dir = daemon.work_dir / "runtime"
        self.source_digest = ""
        self._libs: dict[str, tuple[Path, str]] = {}  # toolchain name -> (lib dir, lib sha256)
        self._locks: dict[str, asyncio.Lock] = {}

    def stage(self) -> None:
        self.dir.mkdir(mode=0o755, exist_ok=True)
        self.dir.chmod(0o755)
        self.source_digest = _stage_sources(self.dir)

    def _key(self, tc: Toolchain) -> str:
        ident = json.dumps([self.source_digest, tc.compiler, tc.version, list(tc.target_flags), tc.abi,
                            RUNTIME_CFLAGS], sort_keys=True)
        return hashlib.sha256(ident.encode()).hexdigest()[:24]

    async def ensure(self, tc: Toolchain, on_line: Callable[[str, str], None]) -> tuple[Path, str]:
        """(host dir holding libattestables.a, its sha256), building it on first use."""
        async with self._locks.setdefault(tc.name, asyncio.Lock()):
            cached = self._libs.get(tc.name)
            if cached is not None:
                return cached
            out = self.daemon.work_dir / "runtime-lib" / self._key(tc)
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            for path in (out.parent, out):
                path.chmod(0o777 if path == out else 0o755)  # the sandbox uid writes objects here
            objects = []
            # One uid for every step: the archiver must read the objects the compiler wrote.
            with self.daemon.host.identity() as run_as:
                for source in sorted((self.dir / "src").glob("*.c")):
                    obj = f"/out/{source.stem}.o"
                    argv = tc.object_argv(f"/runtime/src/{source.name}", obj, include_dirs=["/runtime/include"],
                                          flags=list(RUNTIME_CFLAGS))
                    await self._step(argv, out, on_line, run_as)
                    objects.append(obj)
                await self._step(tc.archive_argv(objects, f"/out/{LIBRARY}"), out, on_line, run_as)
            data = (out / LIBRARY).read_bytes()
            shutil.rmtree(out, ignore_errors=True)
            lib_dir = self.lib_dir(tc)
            lib_dir.mkdir(parents=True, exist_ok=True)
            for path in (lib_dir.parent, lib_dir):
                path.chmod(0o755)
            (lib_dir / LIBRARY).write_bytes(data)
            (lib_dir / LIBRARY).chmod(0o644)
            digest = hashlib.sha256(data).hexdigest()
            log.info("built the compartment runtime for %s (%s)", tc.name, digest[:12])
            self._libs[tc.name] = (lib_dir, digest)
            return lib_dir, digest

    def lib_dir(self, tc: Toolchain) -> Path:
        return self.dir / "lib" / tc.name

    @staticmethod
    def lib_dir_in_sandbox(tc: Toolchain) -> str:
        return f"/runtime/lib/{tc.name}"

    async def _step(self, argv: list[str], out: Path, on_line: Callable[[str, str], None],
                    run_as: tuple[int, int] | None) -> None:
        status = await run_compile(self.daemon, argv, src=self.dir, out=out, runtime=self.dir, on_line=on_line,
                                   run_as=run_as)
        if status is None or status.exit_code != 0:
            raise InternalError(f"building the compartment runtime failed ({' '.join(argv[:1])} "
                                f"status {status})")
