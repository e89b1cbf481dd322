"""``attestables info``: what the daemon runs on and what it can build and run with."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from ..output import cell, format_size, key_values, table
from ..registry import Context, Subparsers, add_client_command

ORDER = 20


def register(subparsers: Subparsers) -> None:
    add_client_command(subparsers, "info", info, help="show the daemon's platform, toolchains and backends")


async def info(args: argparse.Namespace, ctx: Context) -> int:
    result = await ctx.client.call("system.info")
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.lines(render_info(result, url=ctx.client.url))
    return 0


def render_info(result: Mapping[str, Any], *, url: str | None = None) -> list[str]:
    platform = result.get("platform") or {}
    system = " ".join(str(platform[key]) for key in ("os", "release", "machine") if platform.get(key))
    cpu = platform.get("cpu_model") or "-"
    if platform.get("cpu_count"):
        cpu += f" ({platform['cpu_count']} CPUs)"
    pairs: list[tuple[str, Any]] = [
        ("daemon", f"{result.get('version', '?')} (API schema {result.get('schema_version', '?')})"),
    ]
    if url:
        pairs.append(("url", url))
    pairs += [
        ("platform", system or "-"),
        ("cpu", cpu),
        ("memory", format_size(platform.get("memory_bytes"))),
        ("cheri", _cheri(platform.get("cheri"))),
        ("state dir", result.get("state_dir")),
    ]
    lines = key_values(pairs)
    toolchains = result.get("toolchains") or []
    lines += ["", *table(
        ("TOOLCHAIN", "COMPILER", "VERSION", "AVAILABLE"),
        ((t.get("name"), t.get("compiler"), t.get("version"), t.get("available")) for t in toolchains),
    )]
    backends = result.get("backends") or []
    lines += ["", *table(
        ("BACKEND", "AVAILABLE", "ISOLATION"),
        ((b.get("name"), b.get("available"), _isolation(b.get("isolation"))) for b in backends),
    )]
    return lines


def _cheri(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {cell(item)}" for key, item in value.items()) or "-"
    return cell(value)


def _isolation(value: Any) -> str:
    """The gist of a backend's isolation (``--json`` has all of it)."""
    if not isinstance(value, Mapping):
        return cell(value)
    parts = [f"network {value['network']}"] if value.get("network") else []
    namespaces = [name for name in ("pid", "user") if value.get(f"{name}_namespace")]
    if namespaces:
        parts.append("+".join(namespaces) + " namespaces")
    if value.get("filesystem"):
        parts.append(f"filesystem {value['filesystem']}")
    return "; ".join(parts) or "-"
