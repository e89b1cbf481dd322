"""``attestables logs``: a build's compile log or a run's output, stored and optionally live."""

from __future__ import annotations

import argparse

from attestables.shared.client import output_bytes

from ..ids import with_id
from ..registry import Context, Subparsers, add_client_command
from ..streams import follow_build_log, follow_run_output, write_log_line

ORDER = 70


def register(subparsers: Subparsers) -> None:
    logs = add_client_command(
        subparsers,
        "logs",
        show_logs,
        help="print a build's compile log or a run's output",
        description="Print a build's compile log or a run's output (stdout and stderr to ours); with --follow, "
        "keep printing until the build or run ends.",
    )
    which = logs.add_mutually_exclusive_group(required=True)
    which.add_argument("--build", metavar="ID", help="a build id (or a unique prefix)")
    which.add_argument("--run", metavar="ID", help="a run id (or a unique prefix)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the build or run ends")


async def show_logs(args: argparse.Namespace, ctx: Context) -> int:
    if args.build is not None:
        kind, key, given = "build", "build_id", args.build
    else:
        kind, key, given = "run", "run_id", args.run
    client = ctx.client
    if args.follow:
        # The follow reads the stored log itself, after subscribing; here only the id.
        record = await with_id(client, kind, given, lambda id_: client.call(f"{kind}s.get", {key: id_}))
        follower = follow_build_log if kind == "build" else follow_run_output
        await follower(ctx, record[key])
        return 0
    logs = await with_id(client, kind, given, lambda id_: client.call(f"{kind}s.logs", {key: id_}))
    if ctx.out.json:
        ctx.out.document(logs)
    elif kind == "build":
        for line in logs.get("lines", ()):
            write_log_line(ctx.out, line)
    else:
        for chunk in logs.get("chunks", ()):
            ctx.out.raw(chunk.get("stream", "stdout"), output_bytes(chunk))
    return 0
