"""What this machine is, as system.info and attestation documents report it.

One source of truth: :func:`attestables.shared.attestation.platform.detect_platform`,
which claims CHERI only on positive evidence from a CheriBSD kernel. Detected once.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from attestables.shared.attestation.document import Platform
from attestables.shared.attestation.platform import detect_platform


@functools.cache
def platform_claims() -> Platform:
    return detect_platform()


def platform_facts() -> dict[str, Any]:
    return msgspec.to_builtins(platform_claims())


def is_cheri_host() -> bool:
    """True only on a CheriBSD kernel with CheriABI: never guessed elsewhere."""
    return platform_claims().cheri
