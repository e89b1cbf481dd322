"""What this machine is, as system.info and attestation documents report it."""

from __future__ import annotations

import functools
import os
import platform
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in {"model name", "Model", "Hardware", "cpu model"}:
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def is_cheri_host() -> bool:
    """True only on a CheriBSD purecap-capable kernel (Morello): never guessed elsewhere."""
    return platform.system() == "FreeBSD" and platform.machine() in {"arm64", "aarch64", "aarch64c"} and (
        os.path.exists("/usr/libexec/ld-elf-c18n.so.1") or os.path.exists("/libexec/ld-elf-c18n.so.1")
        or "CHERI" in platform.version()
    )


@functools.cache
def platform_facts() -> dict[str, Any]:
    uname = platform.uname()
    return {
        "os": uname.system,
        "release": uname.release,
        "machine": uname.machine,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "memory_bytes": _memory_bytes(),
        "cheri": is_cheri_host(),
    }
