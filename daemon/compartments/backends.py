"""Compartment backends: how a program is confined, and whether this host can do it.

- ``bwrap``: Linux, bubblewrap namespaces + rlimits (the default off CHERI hardware).
- ``c18n``: CheriBSD library compartmentalisation; command line built and unit-tested,
  available only on a CheriBSD host (not run on hardware yet).
- ``none``: unconfined, refused unless the configuration sets ``allow_unconfined``.
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass
from typing import Any

from attestables.shared.errors import InvalidParams, Unavailable

from ..config import RunLimits, Settings
from ..platform_info import is_cheri_host
from ..sandbox.argv import Limits, compartment_argv, isolation_facts
from ..sandbox.host import SandboxHost


@dataclass(frozen=True)
class Backend:
    name: str
    available: bool
    why_unavailable: str = ""

    def describe(self, limits: RunLimits, settings: Settings) -> dict[str, Any]:
        return {"name": self.name, "available": self.available,
                "isolation": isolation_facts(self.name, sandbox_limits(limits, settings)),
                **({"reason": self.why_unavailable} if self.why_unavailable else {})}


def sandbox_limits(limits: RunLimits, settings: Settings) -> Limits:
    return Limits(cpu_s=limits.cpu_s, memory_mb=limits.memory_mb, wall_s=limits.wall_s,
                  output_kb=limits.output_kb, nofile=settings.run_nofile, nproc=settings.run_nproc)


def detect_backends(settings: Settings, host: SandboxHost) -> dict[str, Backend]:
    missing = host.missing()
    cheribsd = is_cheri_host() and shutil.which("proccontrol") is not None
    return {
        "bwrap": Backend("bwrap", platform.system() == "Linux" and not missing,
                         f"missing {', '.join(missing)}" if missing else ""),
        "c18n": Backend("c18n", cheribsd, "" if cheribsd else "needs CheriBSD on Morello"),
        "none": Backend("none", settings.allow_unconfined,
                        "" if settings.allow_unconfined else "refused: set allow_unconfined = true to permit"),
    }


def choose_backend(backends: dict[str, Backend], name: str | None, default: str) -> Backend:
    backend = backends.get(name or default)
    if backend is None:
        raise InvalidParams(f"unknown backend {name!r}; known: {', '.join(backends)}", field="backend")
    if not backend.available:
        raise Unavailable(f"backend {backend.name} is not available: {backend.why_unavailable}",
                          backend=backend.name)
    return backend


def run_argv(backend: Backend, *, program_fd: int, program_path: str, args: list[str], limits: Limits,
             run_as: tuple[int, int] | None, info_fd: int, confine_tool: str | None = None) -> list[str]:
    """The complete argv that starts the program in ``backend``.

    bwrap copies the program from ``program_fd`` (the very bytes the daemon hashed);
    the other backends exec ``program_path``, a private copy of those bytes.
    ``confine_tool``: the built ``attestables-confine`` (Linux), else prlimit + setpriv.
    """
    if backend.name == "bwrap":
        return compartment_argv("bwrap", None, args, limits, run_as=run_as, program_fd=program_fd,
                                info_fd=info_fd, confine_tool=confine_tool)
    if backend.name == "c18n":
        return compartment_argv("c18n", program_path, args, limits, release=platform.release())
    return compartment_argv("none", program_path, args, limits, run_as=run_as, confine_tool=confine_tool)
