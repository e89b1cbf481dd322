"""The benchmark program: ``python -m tests.bench.run [--quick] [--only NAME] [--output FILE]``.

Starts one real daemon (``LocalDaemon``, default settings, a temp state dir removed
afterwards) for the build, launch, log-stream and attestation benchmarks; the HPKE
benchmark needs no daemon, and the attested-read benchmark starts the whole case study
(``CaseStudy``: a daemon and three services) of its own after the first daemon has
stopped. Each benchmark measures ours against its baseline in the same run, interleaving
the two each repeat; the program prints a table and writes the results as JSON::

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
from typing import Any, Awaitable, Callable, Sequence

from attestables.daemon.config import Settings
from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

from .attestation import bench_attestation
from .attested_read import bench_attested_read
from .build import bench_build
from .console import bench_console
from .hpke import bench_hpke
from .launch import bench_launch
from .load import bench_load
from .log_stream import bench_log_stream
from .measure import Result

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ("build", "launch", "log_stream", "attestation", "hpke", "attested_read", "console", "load")
# Too long for the smoke run (--quick) unless asked for by --only; the 10-minute soak is in
# `make reliability` (python -m tests.bench.load --soak).
NOT_QUICK = ("load",)
# The benchmarks that use the shared daemon; the others start what they need themselves.
DAEMON_BENCHMARKS = ("build", "launch", "log_stream", "attestation")
# --only also accepts the result keys each benchmark produces.
KEYS = {
    "build_overhead_ratio": "build",
    "launch_overhead_ratio": "launch",
    "log_stream_lines_per_s": "log_stream",
    "log_stream_rss_growth_mb": "log_stream",
    "cert_issue_ms_p50": "attestation",
    "cert_issue_speedup_vs_openssl_cli": "attestation",
    "verify_cached_us_p50": "attestation",
    "verify_cold_ms_p50": "attestation",
    "hpke_c_seal_open_us_p50": "hpke",
    "attested_read_ms_p50": "attested_read",
    "attested_read_vs_plain_ratio": "attested_read",
    "attested_throughput_vs_plain_ratio": "attested_read",
    "console_input_latency_ms_p99": "console",
    "console_events_dropped": "console",
    "load_cmd_ms_p99": "load",
    "load_rss_mb": "load",
    "load_errors": "load",
}
FULL = {"repeats": 30, "stream_lines": 200_000, "stream_repeats": 5, "attest_repeats": 30, "verify_repeats": 200,
        "verify_batch": 1000, "hpke_repeats": 10, "hpke_rounds": 500, "reads": 100, "read_repeats": 5,
        "concurrency": 8, "concurrent_reads": 100, "concurrent_repeats": 3}
# 20,000 lines (420 KB) overflow a 64 KiB pipe several times over, so even the quick
# stream arrives in several reads and events and its first-to-last interval is not zero.
QUICK = {"repeats": 2, "stream_lines": 20_000, "stream_repeats": 1, "attest_repeats": 2, "verify_repeats": 5,
         "verify_batch": 50, "hpke_repeats": 2, "hpke_rounds": 20, "reads": 10, "read_repeats": 1,
         "concurrency": 8, "concurrent_reads": 20, "concurrent_repeats": 1}
SIZES = tuple(FULL)
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
    parser.add_argument("--attest-repeats", type=int,
                        help=f"measured certificate issuances and openssl baselines (default {FULL['attest_repeats']})")
    parser.add_argument("--reads", type=int,
                        help=f"timed attested (and plain) reads per run (default {FULL['reads']})")
    parser.add_argument("--read-repeats", type=int,
                        help=f"runs of the attested-read loop and of its baseline (default {FULL['read_repeats']})")
    parser.add_argument("--concurrent-reads", type=int,
                        help=f"timed reads of each of the {FULL['concurrency']} concurrent programs "
                             f"(default {FULL['concurrent_reads']})")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run, not a measurement")
    parser.add_argument("--only", action="append", choices=[*BENCHMARKS, *KEYS], metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}, or a result key")
    parser.add_argument("--daemon-log", type=Path, help="keep the daemon's log in this file")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    for name in SIZES:
        if getattr(args, name, None) is None:
            setattr(args, name, sizes[name])
        elif getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    args.selected = [b for b in BENCHMARKS if (b in {KEYS.get(o, o) for o in args.only} if args.only
                                                else not (args.quick and b in NOT_QUICK))]
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
        **{name: getattr(args, name) for name in SIZES if name != "repeats"},
        "root": os.geteuid() == 0,
        # Other work on the machine skews every figure: its load before and after the run.
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "compiler": _version(["cc", "--version"]),
        "bwrap": _version(["bwrap", "--version"]),
        "benchmarks": args.selected,
    }


async def _run_one(name: str, bench: Callable[[], Awaitable[list[Result]]], results: list[Result],
                   errors: dict[str, str]) -> None:
    print(f"running {name} ...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        results += await bench()
    except Exception as exc:  # report it, run the others
        traceback.print_exc()
        errors[name] = f"{type(exc).__name__}: {exc}"
    print(f"  {name} took {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)


async def run_benchmarks(args: argparse.Namespace, log_path: Path) -> tuple[list[Result], dict[str, str]]:
    results: list[Result] = []
    errors: dict[str, str] = {}
    settings = Settings()  # the daemon runs with its defaults: the shipped configuration
    in_daemon = [name for name in args.selected if name in DAEMON_BENCHMARKS]
    base = Path(tempfile.mkdtemp(prefix="attestables-bench-"))
    try:
        if in_daemon:
            with open(log_path, "wb") as log:
                daemon = LocalDaemon(base / "state", log=log)
                await daemon.start()
                try:
                    assert daemon.proc is not None
                    pid = daemon.proc.pid
                    async with Client.connect(daemon.url, daemon.token) as client:
                        state = daemon.state_dir
                        benches: dict[str, Callable[[], Awaitable[list[Result]]]] = {
                            "build": lambda: bench_build(client, state, args.repeats, settings),
                            "launch": lambda: bench_launch(client, state, args.repeats * LAUNCH_REPEAT_FACTOR,
                                                           settings),
                            "log_stream": lambda: bench_log_stream(client, state, pid, args.stream_lines,
                                                                   args.stream_repeats, settings),
                            "attestation": lambda: bench_attestation(client, state, daemon.http_url,
                                                                     args.attest_repeats, args.verify_repeats,
                                                                     args.verify_batch, settings),
                        }
                        for name in in_daemon:
                            await _run_one(name, benches[name], results, errors)
                finally:
                    await daemon.stop()
        # Without the shared daemon: it has stopped, and takes no CPU from these.
        if "hpke" in args.selected:
            await _run_one("hpke", lambda: asyncio.to_thread(bench_hpke, args.hpke_repeats, args.hpke_rounds),
                           results, errors)
        if "attested_read" in args.selected:
            await _run_one("attested_read", lambda: bench_attested_read(
                args.reads, args.read_repeats, args.concurrency, args.concurrent_reads, args.concurrent_repeats),
                results, errors)
        if "load" in args.selected:
            await _run_one("load", bench_load, results, errors)
        if "console" in args.selected:
            await _run_one("console", lambda: bench_console(seconds=2.0 if args.quick else 10.0, rate=5000),
                           results, errors)
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
           "cumulative_growth_mb",
           "breakdown_document_ms_p50", "breakdown_issue_run_certificate_ms_p50", "breakdown_db_commit_ms_p50",
           "breakdown_unaccounted_ms_p50", "hello_at_start_ms_p50", "verify_new_certificate_ms_p50", "part_leaf_signature_ms_p50",
           "part_document_parse_ms_p50",
           "python_seal_open_us_p50", "ratio_c_over_python", "c_seal_us_p50", "c_open_us_p50",
           "python_seal_us_p50", "python_open_us_p50",
           "broker_forward_ms_p50", "store_handling_ms_p50", "https_exchange_ms", "compartment_and_launcher_ms",
           "store_connections_after_run", "ours_reads_per_s", "baseline_reads_per_s")


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
