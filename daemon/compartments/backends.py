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
from ..sandbox.argv import Limits, bwrap_run_argv, c18n_run_argv, isolation_facts, none_run_argv
from ..sandbox.chain import Chain

PROGRAM_IN_SANDBOX = "/run/compartment/program"


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


def detect_backends(settings: Settings, chain: Chain) -> dict[str, Backend]:
    missing = chain.missing()
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


def run_argv(backend: Backend, chain: Chain, program: str, args: list[str], limits: Limits,
             info_fd: int | None) -> list[str]:
    """The complete argv that starts ``program`` (a host path) in ``backend``."""
    if backend.name == "bwrap":
        inner = bwrap_run_argv(program, args, bwrap=chain.bwrap or "bwrap", info_fd=info_fd)
        return chain.wrap(inner, limits)
    if backend.name == "c18n":
        return c18n_run_argv(program, args, release=platform.release())
    return chain.wrap(none_run_argv(program, args), limits)
