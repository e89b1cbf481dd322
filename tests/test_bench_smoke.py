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
KEYS = {"build_overhead_ratio", "launch_overhead_ratio", "log_stream_lines_per_s", "log_stream_rss_growth_mb",
        "cert_issue_ms_p50", "cert_issue_speedup_vs_openssl_cli", "verify_cached_us_p50", "verify_cold_ms_p50",
        "hpke_c_seal_open_us_p50", "attested_read_ms_p50", "attested_read_vs_plain_ratio",
        "attested_throughput_vs_plain_ratio", "console_input_latency_ms_p99", "console_events_dropped"}
# Keys that compare ours with a baseline measured in the same run: both figures are reported.
COMPARED = ("build_overhead_ratio", "launch_overhead_ratio", "log_stream_lines_per_s",
            "cert_issue_speedup_vs_openssl_cli", "hpke_c_seal_open_us_p50", "attested_read_vs_plain_ratio",
            "console_input_latency_ms_p99")


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
    for key in COMPARED:
        result = report["results"][key]
        assert _number(result["ours_ms_p50"]) and _number(result["baseline_ms_p50"]), (key, result)
    throughput = report["results"]["attested_throughput_vs_plain_ratio"]
    assert _number(throughput["ours_reads_per_s"]) and _number(throughput["baseline_reads_per_s"]), throughput
    assert report["meta"]["quick"] is True and report["meta"]["cpu_count"] >= 1
    assert "errors" not in report


def test_only_accepts_benchmark_names_and_result_keys() -> None:
    assert parse_args(["--only", "log_stream_rss_growth_mb"]).selected == ["log_stream"]
    assert parse_args(["--only", "launch", "--only", "build"]).selected == ["build", "launch"]
    assert parse_args(["--only", "verify_cold_ms_p50"]).selected == ["attestation"]
    assert parse_args(["--only", "attested_throughput_vs_plain_ratio", "--only", "hpke"]).selected == [
        "hpke", "attested_read"]
    assert parse_args([]).selected == ["build", "launch", "log_stream", "attestation", "hpke", "attested_read",
                                      "console", "load"]
    assert "load" not in parse_args(["--quick"]).selected  # too long for the smoke run
    assert parse_args(["--quick", "--only", "load_cmd_ms_p99"]).selected == ["load"]


def test_build_baseline_maps_every_sandbox_path_to_the_host() -> None:
    mapping = {"/src": "/h/src", "/runtime": "/h/rt", "/out": "/h/out"}
    argv = ["cc", "-I", "/src", "-I/runtime/include", "/src/a.c", "-o", "/out/program",
            "-L/runtime/lib/native", "-Wl,-rpath,/runtime/lib", "/srcfoo/x.c", "/output"]
    assert host_argv(argv, mapping) == [
        "cc", "-I", "/h/src", "-I/h/rt/include", "/h/src/a.c", "-o", "/h/out/program",
        "-L/h/rt/lib/native", "-Wl,-rpath,/h/rt/lib", "/srcfoo/x.c", "/output"]
