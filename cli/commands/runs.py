"""``attestables run`` starts a compartment; ``ps`` lists runs; ``stop`` ends one."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from ..ids import with_id
from ..output import format_time, short_id, table
from ..registry import Context, Subparsers, add_client_command
from ..streams import follow_run_output, run_exit_status, run_outcome, signal_name

ORDER = 50

LIMITS = (
    ("cpu_s", "--cpu-s", "CPU time limit in seconds"),
    ("memory_mb", "--memory-mb", "memory limit in MiB"),
    ("wall_s", "--wall-s", "wall-clock limit in seconds"),
    ("output_kb", "--output-kb", "output limit in KiB"),
)


def register(subparsers: Subparsers) -> None:
    run = add_client_command(
        subparsers,
        "run",
        start_run,
        help="run a build's artefact in a compartment",
        description="Run a build's artefact in a compartment. Prints the run id, or with --follow copies the "
        "program's stdout and stderr and exits with its exit status (128+N if signal N ended it, 1 if it "
        "failed to start). Arguments after '--' are passed to the program unchanged.",
        usage="%(prog)s [options] BUILD_ID [-- ARGS...]",
        passthrough="args",
    )
    run.add_argument("build_id", metavar="BUILD_ID", help="build id (or a unique prefix)")
    run.add_argument("--backend", metavar="B", help="isolation backend (see 'attestables info')")
    limits = run.add_argument_group("limits")
    for key, option, text in LIMITS:
        limits.add_argument(option, dest=key, type=number, metavar="N", help=text)
    run.add_argument("--follow", "-f", action="store_true", help="copy the program's output until it ends")

    add_client_command(subparsers, "ps", list_runs, help="list runs")

    stop = add_client_command(subparsers, "stop", stop_run, help="stop a run")
    stop.add_argument("run_id", metavar="RUN_ID", help="run id (or a unique prefix)")


def number(text: str) -> int | float:
    """A non-negative limit: an integer when it is one, so the daemon sees ``5`` not ``5.0``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be a non-negative number: {text!r}")
    return int(value) if value.is_integer() else value


def run_params(args: argparse.Namespace) -> dict[str, Any]:
    """``runs.start`` params other than the build id, holding only what the user gave."""
    params: dict[str, Any] = {}
    if args.backend is not None:
        params["backend"] = args.backend
    if args.args:
        params["args"] = list(args.args)
    limits = {key: getattr(args, key) for key, _, _ in LIMITS if getattr(args, key) is not None}
    if limits:
        params["limits"] = limits
    return params


async def start_run(args: argparse.Namespace, ctx: Context) -> int:
    params = run_params(args)
    result = await with_id(
        ctx.client, "build", args.build_id, lambda id_: ctx.client.call("runs.start", {"build_id": id_, **params})
    )
    run_id = result["run_id"]
    if not args.follow:
        if ctx.out.json:
            ctx.out.document(result)
        else:
            ctx.out.line(run_id)
        return 0
    final = await follow_run_output(ctx, run_id)
    return 1 if final is None else run_exit_status(final)


async def list_runs(args: argparse.Namespace, ctx: Context) -> int:
    result = await ctx.client.call("runs.list")
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.lines(runs_table(result.get("runs", ())))
    return 0


def runs_table(runs: Iterable[Mapping[str, Any]]) -> list[str]:
    return table(
        ("ID", "BUILD", "STATE", "PID", "EXIT", "BACKEND", "CREATED"),
        (
            (
                short_id(r.get("run_id")),
                short_id(r.get("build_id")),
                r.get("state"),
                r.get("pid"),
                signal_name(r["signal"]) if r.get("signal") else r.get("exit_code"),
                r.get("backend"),
                format_time(r.get("created_at")),
            )
            for r in runs
        ),
    )


async def stop_run(args: argparse.Namespace, ctx: Context) -> int:
    run = await with_id(ctx.client, "run", args.run_id, lambda id_: ctx.client.call("runs.stop", {"run_id": id_}))
    if ctx.out.json:
        ctx.out.document(run)
    else:
        ctx.out.line(run_outcome(run) or f"run {short_id(run.get('run_id'))} {run.get('state')}")
    return 0
