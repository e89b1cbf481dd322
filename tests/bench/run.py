"""The benchmark program: ``python -m tests.bench.run [--quick] [--only NAME] [--output FILE]``.

Starts one real daemon (``LocalDaemon``, default settings, a temp state dir removed
afterwards), runs each benchmark against its baseline in the same run, interleaving
the two each repeat, prints a table and writes the results as JSON::

    {"meta": {...}, "results": {KEY: {"value", "unit", "goal", "met", "ours_ms_p50",
                                      "baseline_ms_p50", ...}}}

The exit status is 0 when every benchmark ran, whether or not it met its goal (goals
are figures to read, not assertions), and 1 when a benchmark could not run.
``docs/benchmarks.md`` describes each key.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

from attestables.daemon.config import Settings
from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

from .build import bench_build
from .launch import bench_launch
from .log_stream import bench_log_stream
from .measure import Result

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ("build", "launch", "log_stream")
# --only also accepts the result keys each benchmark produces.
KEYS = {
    "build_overhead_ratio": "build",
    "launch_overhead_ratio": "launch",
    "log_stream_lines_per_s": "log_stream",
    "log_stream_rss_growth_mb": "log_stream",
}
FULL = {"repeats": 30, "stream_lines": 200_000, "stream_repeats": 5}
# 20,000 lines (420 KB) overflow a 64 KiB pipe several times over, so even the quick
# stream arrives in several reads and events and its first-to-last interval is not zero.
QUICK = {"repeats": 2, "stream_lines": 20_000, "stream_repeats": 1}
# A launch costs ~20 ms against a build's ~90 ms: it gets more repeats for a steadier median.
LAUNCH_REPEAT_FACTOR = 4


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.run",
        description="Measure the daemon against direct baselines; print a table and write JSON.")
    parser.add_argument("--output", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--repeats", type=int,
                        help=f"measured repeats of the build benchmark, and {LAUNCH_REPEAT_FACTOR}x as many of "
                             f"the launch benchmark (default {FULL['repeats']}, --quick {QUICK['repeats']})")
    parser.add_argument("--stream-lines", type=int,
                        help=f"lines the log-stream program prints (default {FULL['stream_lines']:,})")
    parser.add_argument("--stream-repeats", type=int,
                        help=f"measured repeats of the log stream (default {FULL['stream_repeats']})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--only", action="append", choices=[*BENCHMARKS, *KEYS], metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}, or a result key")
    parser.add_argument("--daemon-log", type=Path, help="keep the daemon's log in this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name in ("repeats", "stream_lines", "stream_repeats"):
        if getattr(args, name) is None:
            setattr(args, name, sizes[name])
        elif getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.selected = [b for b in BENCHMARKS if not args.only or b in {KEYS.get(o, o) for o in args.only}]
    return args


def git_commit(root: Path = ROOT) -> str | None:
    """The checked-out commit, read from ``.git`` without running git (None if unknown)."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: PATH"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head  # detached
        ref = head.split(":", 1)[1].strip()
        common = git / (git / "commondir").read_text().strip() if (git / "commondir").is_file() else git
        for base in dict.fromkeys((git, common)):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
            if (base / "packed-refs").is_file():
                for line in (base / "packed-refs").read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except (OSError, IndexError):
        pass
    return None


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def meta(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"hostname": platform.node(), "arch": platform.machine(), "platform": platform.platform(),
                    "cpu": _cpu_model()},
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "quick": args.quick,
        "repeats": args.repeats,
        "launch_repeats": args.repeats * LAUNCH_REPEAT_FACTOR,
        "stream_lines": args.stream_lines,
        "stream_repeats": args.stream_repeats,
        "root": os.geteuid() == 0,
        # Other work on the machine skews every figure: its load before and after the run.
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "compiler": _version(["cc", "--version"]),
        "bwrap": _version(["bwrap", "--version"]),
        "benchmarks": args.selected,
    }


async def run_benchmarks(args: argparse.Namespace, log_path: Path) -> tuple[list[Result], dict[str, str]]:
    results: list[Result] = []
    errors: dict[str, str] = {}
    settings = Settings()  # the daemon runs with its defaults: the shipped configuration
    base = Path(tempfile.mkdtemp(prefix="attestables-bench-"))
    try:
        with open(log_path, "wb") as log:
            daemon = LocalDaemon(base / "state", log=log)
            await daemon.start()
            try:
                assert daemon.proc is not None
                async with Client.connect(daemon.url, daemon.token) as client:
                    for name in args.selected:
                        print(f"running {name} ...", file=sys.stderr, flush=True)
                        t0 = time.monotonic()
                        try:
                            if name == "build":
                                results += await bench_build(client, daemon.state_dir, args.repeats, settings)
                            elif name == "launch":
                                results += await bench_launch(client, daemon.state_dir,
                                                              args.repeats * LAUNCH_REPEAT_FACTOR, settings)
                            else:
                                results += await bench_log_stream(client, daemon.state_dir, daemon.proc.pid,
                                                                  args.stream_lines, args.stream_repeats, settings)
                        except Exception as exc:  # report it, run the others
                            traceback.print_exc()
                            errors[name] = f"{type(exc).__name__}: {exc}"
                        print(f"  {name} took {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
            finally:
                await daemon.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results, errors


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def table(results: list[Result]) -> str:
    header = ("key", "value", "unit", "goal", "met", "ours p50 ms", "baseline p50 ms")
    rows = [header]
    for r in results:
        rows.append((r.key, _fmt(r.value), r.unit, f"{r.goal_op} {_fmt(r.goal)}", "yes" if r.met else "NO",
                     _fmt(r.extra.get("ours_ms_p50")), _fmt(r.extra.get("baseline_ms_p50"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# Secondary figures worth a line under the table.
DETAILS = ("sandboxed_baseline_ms_p50", "ratio_vs_sandboxed", "sandbox_overhead_ms", "daemon_overhead_ms",
           "ours_to_exit_ms_p50", "baseline_to_exit_ms_p50",
           "baseline_lines_per_s", "ratio_vs_baseline", "events_per_run_p50", "growth_per_stream_mb",
           "cumulative_growth_mb")


def details(results: list[Result]) -> str:
    lines = []
    for r in results:
        shown = [f"{name}={_fmt(r.extra[name])}" for name in DETAILS if name in r.extra]
        if shown:
            lines.append(f"  {r.key}: {', '.join(shown)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = meta(args)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="attestables-bench-log-") as tmp:
        log_path = args.daemon_log or Path(tmp) / "daemon.log"
        results, errors = asyncio.run(run_benchmarks(args, log_path))
        if errors and not args.daemon_log:
            tail = log_path.read_text(errors="replace").splitlines()[-40:]
            print("the daemon's log ended with:", *tail, sep="\n  ", file=sys.stderr)
    info["elapsed_s"] = round(time.monotonic() - started, 1)
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    report: dict[str, Any] = {"meta": info, "results": {r.key: r.to_dict() for r in results}}
    if errors:
        report["errors"] = errors
    print(table(results))
    print(details(results))
    for name, error in errors.items():
        print(f"{name}: FAILED: {error}")
    if args.output:
        tmp_out = args.output.with_name(args.output.name + ".tmp")
        tmp_out.write_text(json.dumps(report, indent=2) + "\n")
        tmp_out.replace(args.output)
        print(f"wrote {args.output}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
