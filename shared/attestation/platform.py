"""Facts about this machine for the document's ``platform`` and ``hwmodel`` claims.

CHERI is claimed only on positive evidence: a FreeBSD kernel (CheriBSD) reporting the
CheriABI feature. Everywhere else ``cheri`` is false. The CheriBSD branch is built from
documentation and has not been run on a Morello board yet.
"""

from __future__ import annotations

import os
import platform as _platform
import subprocess
from typing import Callable

from .document import Platform

MORELLO_HWMODEL = "Arm Morello"


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _linux_cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return ""


def _linux_memory_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def detect_platform(sysctl: Callable[[str], str | None] = _sysctl) -> Platform:
    """The ``platform`` claim for the machine this runs on."""
    uname = os.uname()
    system = uname.sysname
    cheri = False
    if system == "FreeBSD":
        cpu_model = sysctl("hw.model") or ""
        try:
            memory = int(sysctl("hw.physmem") or 0)
        except ValueError:
            memory = 0
        cheri = sysctl("kern.features.cheriabi") == "1"
    else:
        cpu_model = _linux_cpu_model() if system == "Linux" else _platform.processor()
        memory = _linux_memory_bytes() if system == "Linux" else 0
    return Platform(
        os=system,
        release=uname.release,
        machine=uname.machine,
        cpu_model=cpu_model[:1024],
        cpu_count=os.cpu_count() or 1,
        memory_bytes=memory,
        cheri=cheri,
    )


def detect_hwmodel(platform: Platform) -> str:
    """The ``hwmodel`` claim: "Arm Morello" only on a CHERI arm64 platform."""
    if platform.cheri and platform.machine in ("arm64", "aarch64"):
        return MORELLO_HWMODEL
    return f"generic {platform.machine}"
