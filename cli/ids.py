"""Let people type the short ids that listings show.

An id the daemon does not know is retried as a prefix of the ids it lists; a prefix
that matches one object stands for it, one that matches several is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from attestables.shared.client import Client
from attestables.shared.errors import InvalidParams, NotFound

from .output import short_id

T = TypeVar("T")

# kind -> (list method, list key, id field)
_LISTINGS = {
    "source": ("sources.list", "sources", "source_id"),
    "build": ("builds.list", "builds", "build_id"),
    "run": ("runs.list", "runs", "run_id"),
}


async def expand(client: Client, kind: str, given: str) -> str | None:
    """The one full id that ``given`` is or begins, ``None`` if there is none."""
    method, key, id_field = _LISTINGS[kind]
    listing = await client.call(method)
    ids = [str(item[id_field]) for item in listing.get(key, ()) if item.get(id_field) is not None]
    if given in ids:
        return given
    matches = sorted({full for full in ids if full.startswith(given)})
    if len(matches) > 1:
        shown = ", ".join(short_id(full) for full in matches[:5])
        raise InvalidParams(f"{kind} id {given!r} is ambiguous: it begins {len(matches)} ids ({shown}…)")
    return matches[0] if matches else None


async def with_id(client: Client, kind: str, given: str, action: Callable[[str], Awaitable[T]]) -> T:
    """``action(id)``, retried with the full id if ``given`` was a unique prefix."""
    try:
        return await action(given)
    except NotFound:
        full = await expand(client, kind, given)
        if full is None or full == given:
            raise
        return await action(full)
