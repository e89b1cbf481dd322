"""``attestables build`` starts a build; ``attestables builds`` lists them."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from ..ids import with_id
from ..output import format_duration, format_time, short_id, table
from ..registry import Context, Subparsers, add_client_command, value_may_start_with_dash
from ..streams import follow_build_log

ORDER = 40


def register(subparsers: Subparsers) -> None:
    build = add_client_command(
        subparsers,
        "build",
        start_build,
        help="compile a source in the sandbox",
        description="Compile a source in the sandbox. Prints the build id, or with --follow the compile log and "
        "the outcome (exit status 1 if the build fails).",
    )
    build.add_argument("source_id", metavar="SOURCE_ID", help="source id (or a unique prefix)")
    build.add_argument("--version", type=int, metavar="V", help="source version (default: the latest)")
    build.add_argument("--toolchain", metavar="T", help="toolchain name (see 'attestables info')")
    build.add_argument(
        "--flag", dest="flags", action="append", metavar="F", help="compiler flag, repeatable (--flag -O2 --flag -Wall)"
    )
    build.add_argument("--follow", "-f", action="store_true", help="stream the compile log until the build ends")
    value_may_start_with_dash("--flag")

    add_client_command(subparsers, "builds", list_builds, help="list builds")


async def start_build(args: argparse.Namespace, ctx: Context) -> int:
    params: dict[str, Any] = {}
    for key in ("version", "toolchain", "flags"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    result = await with_id(
        ctx.client, "source", args.source_id, lambda id_: ctx.client.call("builds.start", {"source_id": id_, **params})
    )
    build_id = result["build_id"]
    if not args.follow:
        if ctx.out.json:
            ctx.out.document(result)
        else:
            ctx.out.line(build_id)
        return 0
    final = await follow_build_log(ctx, build_id)
    return 0 if final is not None and final.get("state") == "succeeded" else 1


async def list_builds(args: argparse.Namespace, ctx: Context) -> int:
    result = await ctx.client.call("builds.list")
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.lines(builds_table(result.get("builds", ())))
    return 0


def builds_table(builds: Iterable[Mapping[str, Any]]) -> list[str]:
    return table(
        ("ID", "SOURCE", "VERSION", "STATE", "TOOLCHAIN", "EXIT", "DURATION", "CREATED"),
        (
            (
                short_id(b.get("build_id")),
                short_id(b.get("source_id")),
                b.get("version"),
                b.get("state"),
                (b.get("toolchain") or {}).get("name"),
                b.get("exit_code"),
                format_duration(b.get("duration_s")),
                format_time(b.get("created_at")),
            )
            for b in builds
        ),
    )
