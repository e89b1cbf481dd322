"""The benchmark program runs end to end at tiny sizes; no timing is asserted here.

Figures are read from ``make bench`` (docs/benchmarks.md), never judged by a test: a
timing assertion on a shared 2-core machine would fail for reasons unrelated to the code.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from .bench.build import host_argv
from .bench.run import parse_args

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"build_overhead_ratio", "launch_overhead_ratio", "log_stream_lines_per_s", "log_stream_rss_growth_mb"}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_quick_run_writes_every_key_with_a_number(tmp_path: Path) -> None:
    out = tmp_path / "bench-results.json"
    proc = subprocess.run([sys.executable, "-m", "tests.bench.run", "--quick", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert set(report["results"]) == KEYS
    for key, result in report["results"].items():
        assert _number(result["value"]), (key, result)
        assert _number(result["goal"]) and isinstance(result["met"], bool), (key, result)
        assert key in proc.stdout  # the table names it
    for key in ("build_overhead_ratio", "launch_overhead_ratio", "log_stream_lines_per_s"):
        result = report["results"][key]
        assert _number(result["ours_ms_p50"]) and _number(result["baseline_ms_p50"]), (key, result)
    assert report["meta"]["quick"] is True and report["meta"]["cpu_count"] >= 1
    assert "errors" not in report


def test_only_accepts_benchmark_names_and_result_keys() -> None:
    assert parse_args(["--only", "log_stream_rss_growth_mb"]).selected == ["log_stream"]
    assert parse_args(["--only", "launch", "--only", "build"]).selected == ["build", "launch"]
    assert parse_args([]).selected == ["build", "launch", "log_stream"]


def test_build_baseline_maps_every_sandbox_path_to_the_host() -> None:
    mapping = {"/src": "/h/src", "/runtime": "/h/rt", "/out": "/h/out"}
    argv = ["cc", "-I", "/src", "-I/runtime/include", "/src/a.c", "-o", "/out/program",
            "-L/runtime/lib/native", "-Wl,-rpath,/runtime/lib", "/srcfoo/x.c", "/output"]
    assert host_argv(argv, mapping) == [
        "cc", "-I", "/h/src", "-I/h/rt/include", "/h/src/a.c", "-o", "/h/out/program",
        "-L/h/rt/lib/native", "-Wl,-rpath,/h/rt/lib", "/srcfoo/x.c", "/output"]
