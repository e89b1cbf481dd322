"""The case-study digital services: store, transport and messaging.

Each is ``attestables app KIND``; :func:`definition` gives a kind's
:class:`~attestables.apps.base.ServiceDefinition`. ``docs/services.md`` has the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import ServiceDefinition

KINDS = ("store", "transport", "messaging")


def definition(kind: str) -> "ServiceDefinition":
    if kind not in KINDS:
        raise ValueError(f"unknown service kind {kind!r}")
    return importlib.import_module(f"{__name__}.{kind}").SERVICE  # type: ignore[no-any-return]
