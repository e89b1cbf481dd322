"""The case study's attested read against a plain HTTPS read of the same record.

Everything is started by ``CaseStudy`` (``shared/case_study.py``, what ``attestables demo``
starts): a launcher daemon and the store, transport and messaging services, each a
process of its own on loopback, with their default settings, the services registered with
the launcher (TLS pinned) and fetching its CRL. The store is given the policy that allows
exactly the benchmark's program.

Ours (``c/read_loop.c``, built by the daemon, run in its bwrap compartment): after the
handshake, ``att_read("store", {"after_id":0,"limit":1})`` calls, each timed in the
compartment with CLOCK_MONOTONIC: seal the query to the store (C HPKE), READ frame to
the launcher, the broker's HTTPS POST to the store with the run's certificate, the
store's appraisal (verifier), open, replay-nonce claim, the SELECT, the answer sealed to
the run's key, the store's verification log row, the answer back through the broker
(its trace row), RESULT frame, open (C HPKE). The first 3 reads of each run are warm-up.

Baseline (``c/https_get.c``, on the host, one process per repeat): the same store
process answering the same sale over plain HTTPS, ``GET /admin/sales?after=0&limit=1``
with the admin token, one kept-alive TLS connection (pinned to the store's certificate),
each request timed with CLOCK_MONOTONIC; the first 3 (and the handshake) are warm-up.
That endpoint runs the same SELECT on the same database and returns the same sale as
plain JSON: no certificate, no HPKE, no nonce, no log row, no launcher in between.

``attested_throughput_vs_plain_ratio``: ``concurrency`` (8) runs of the read loop at
once against as many baseline clients at once. Every program starts its timed loop at
the same moment (a CLOCK_MONOTONIC deadline passed as an argument); the rate is the
reads completed while all of them were reading (from the last loop start to the first
program's last read) over that interval.

Breakdown of ours, from what the parts record anyway: the broker's ``latency_ms`` of
each crossing (``traces.list``: READ received → answer parsed, before its trace row is
written) and the store's own handling time (its log line for each attested request:
handler entered → answer built). ``store_connections_after_run`` counts the TCP
connections to the store left established after one run: one per request means the
broker opens a new TLS connection for every read. ``*_cpu_ms_per_read`` is the CPU each
part used per read while reading: the programs' own (``CLOCK_PROCESS_CPUTIME_ID`` over
their loops), the launcher's and the store's (``/proc/PID/stat``, sampled every 20 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attestables.shared.case_study import CaseStudy
from attestables.shared.local_service import ADMIN_TOKEN_FILE

from .measure import CpuSampler, Result, interleaved, median, ms, summary_ms
from .native import NativePrograms
from .programs import RunOutput, build_program, c_source, collect_runs, start_run

LATENCY_GOAL = 2.0
THROUGHPUT_GOAL = 0.5
WARMUP = 3
PLAIN_PATH = "/admin/sales?after=0&limit=1"
ARMS = ("ours", "plain")
# How far ahead the concurrent programs' common start is set: time to launch them all
# (and, for ours, their handshakes and warm-up reads).
LEAD_OURS_S, LEAD_PLAIN_S, LEAD_PER_PROGRAM_S = 0.5, 0.3, 0.1
_SERVICE_LOG = re.compile(r"/api/sales serial=(?P<serial>[0-9a-f]+) \S+ \[[^\]]*\] -> 200 ok \((?P<ms>[\d.]+) ms\)")


@dataclass
class Loop:
    """One program's timed loop: its start and each read's end and duration (ns)."""

    start: int
    cpu: int  # CPU time the program used in its loop
    ends: list[int]
    durations: list[int]

    @classmethod
    def parse(cls, text: str, reads: int) -> "Loop":
        start, cpu, ends, durations = None, 0, [], []
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["loop_start"]:
                start = int(words[1])
            elif words[:1] == ["loop_cpu_ns"]:
                cpu = int(words[1])
            elif words[:1] == ["read"]:
                ends.append(int(words[1]))
                durations.append(int(words[2]))
        if start is None or len(ends) != reads:
            raise RuntimeError(f"expected {reads} timed reads, got {len(ends)}: {text[-500:]!r}")
        return cls(start, cpu, ends, durations)


@dataclass
class Window:
    """An interval in which every program of a measurement was reading."""

    begin: int
    end: int
    reads: int  # completed inside it, by all programs

    @classmethod
    def common(cls, loops: list[Loop]) -> "Window":
        begin = max(loop.start for loop in loops)
        end = min(loop.ends[-1] for loop in loops)
        if end <= begin:
            # On a loaded machine a program may start after another has finished (few reads,
            # as in --quick): fall back to the whole span, a lower bound on the rate.
            begin = min(loop.start for loop in loops)
            end = max(loop.ends[-1] for loop in loops)
        return cls(begin, end, sum(1 for loop in loops for t in loop.ends if begin < t <= end))

    @property
    def seconds(self) -> float:
        return (self.end - self.begin) / 1e9

    @property
    def rate(self) -> float:
        return self.reads / self.seconds


class CpuPerRead:
    """CPU milliseconds per read, by part (the programs, the launcher, the store), over a
    series of windows; a part whose CPU could not be measured in some window is None."""

    def __init__(self, sampler: CpuSampler, program: str) -> None:
        self.sampler = sampler
        self.program = program
        self.used: dict[str, float | None] = {}
        self.reads = 0

    def add(self, window: Window, loops: list[Loop]) -> None:
        span = sum(loop.ends[-1] - loop.start for loop in loops)
        # A program's own CPU is counted over its whole loop, scaled to the window.
        parts: dict[str, float | None] = {
            self.program: sum(loop.cpu for loop in loops) / 1e9 * (window.end - window.begin) * len(loops) / span}
        for name in self.sampler.pids:
            parts[name] = self.sampler.used(name, window.begin, window.end)
        for name, used in parts.items():
            total = self.used.get(name, 0.0)
            self.used[name] = None if used is None or total is None else total + used
        self.reads += window.reads

    def per_read_ms(self) -> dict[str, float | None]:
        return {name: None if used is None else round(used / self.reads * 1000, 3)
                for name, used in self.used.items()}


def established_to(port: int) -> int:
    """TCP connections on this host in state ESTABLISHED whose remote port is ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


class Plain:
    """The baseline client, started as host processes."""

    def __init__(self, program: Path, study: CaseStudy) -> None:
        store = study.services["store"]
        self.argv = [str(program), "127.0.0.1", str(store.port), str(store.tls_cert_path),
                     str(store.state_dir / ADMIN_TOKEN_FILE), PLAIN_PATH]

    async def start(self, reads: int, start_at: int = 0) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(*self.argv, str(reads), str(WARMUP), str(start_at),
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)

    @staticmethod
    async def finish(proc: asyncio.subprocess.Process, reads: int) -> Loop:
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"the plain HTTPS client failed ({proc.returncode}): {err.decode(errors='replace')}")
        return Loop.parse(out.decode(), reads)

    async def run(self, reads: int) -> Loop:
        return await self.finish(await self.start(reads), reads)


async def bench_attested_read(reads: int, repeats: int, concurrency: int, concurrent_reads: int,
                              concurrent_repeats: int) -> list[Result]:
    base = Path(tempfile.mkdtemp(prefix="attestables-bench-case-"))
    native = NativePrograms()
    # The services' own defaults (CRL refresh, reply delay), not the demo's.
    study = CaseStudy(base, crl_refresh=None, reply_delay=None)  # type: ignore[arg-type]
    try:
        plain_program = await asyncio.to_thread(native.build, "https_get", libs=("-lssl", "-lcrypto"))
        await study.start_processes()
        assert study.client is not None and study.daemon is not None
        client = study.client
        record, _ = await build_program(client, study.daemon.state_dir, "read_loop.c", c_source("read_loop.c"))
        await study.push_policy(await study.policy_toml(record), kinds=("store",))
        plain = Plain(plain_program, study)
        build_id = record["build_id"]
        store_port = study.services["store"].port

        assert study.daemon.proc is not None and study.services["store"].proc is not None
        pids = {"launcher": study.daemon.proc.pid, "store": study.services["store"].proc.pid}
        async with contextlib.AsyncExitStack() as stack:
            sampler = stack.enter_context(CpuSampler(pids))
            events = await stack.enter_async_context(
                await client.subscribe(["runs.output", "runs.state"], queue_size=1 << 16))

            async def ours_runs(n: int, count: int, start_at: int = 0) -> list[RunOutput]:
                args = [str(n), str(WARMUP), str(start_at)]
                run_ids = [await start_run(client, build_id, args) for _ in range(count)]
                outputs = await collect_runs(events, run_ids, timeout=600)
                return [outputs[r].check() for r in run_ids]

            # Warm-up (not counted): the program's first run, the plain client's first.
            await ours_runs(WARMUP, 1)
            await plain.run(WARMUP)

            latency: dict[str, list[int]] = {arm: [] for arm in ARMS}
            per_repeat: dict[str, list[float]] = {arm: [] for arm in ARMS}
            # A plain loop alone is too short for the kernel's CPU clock: its CPU per read is
            # taken from the concurrent measurement only.
            cpu = CpuPerRead(sampler, "compartment")
            our_runs: list[str] = []
            connections: list[int] = []
            for _, arm in interleaved(repeats, ARMS):
                if arm == "ours":
                    before = established_to(store_port)
                    (output,) = await ours_runs(reads, 1)
                    connections.append(established_to(store_port) - before)
                    our_runs.append(output.run_id)
                    loop = Loop.parse(output.stdout, reads)
                    cpu.add(Window.common([loop]), [loop])
                else:
                    loop = await plain.run(reads)
                latency[arm] += loop.durations
                per_repeat[arm].append(median(loop.durations) / 1e9)

            throughput: dict[str, list[float]] = {arm: [] for arm in ARMS}
            windows: dict[str, list[float]] = {arm: [] for arm in ARMS}
            concurrent_latency: dict[str, list[int]] = {arm: [] for arm in ARMS}
            concurrent_cpu = {"ours": CpuPerRead(sampler, "compartments"), "plain": CpuPerRead(sampler, "clients")}
            for _, arm in interleaved(concurrent_repeats, ARMS):
                if arm == "ours":
                    start_at = time.monotonic_ns() + int((LEAD_OURS_S + LEAD_PER_PROGRAM_S * concurrency) * 1e9)
                    outputs = await ours_runs(concurrent_reads, concurrency, start_at)
                    loops = [Loop.parse(o.stdout, concurrent_reads) for o in outputs]
                else:
                    start_at = time.monotonic_ns() + int((LEAD_PLAIN_S + 0.02 * concurrency) * 1e9)
                    procs = [await plain.start(concurrent_reads, start_at) for _ in range(concurrency)]
                    loops = list(await asyncio.gather(*(plain.finish(p, concurrent_reads) for p in procs)))
                window = Window.common(loops)
                concurrent_cpu[arm].add(window, loops)
                throughput[arm].append(window.rate)
                windows[arm].append(window.seconds)
                for loop in loops:
                    concurrent_latency[arm] += loop.durations

        broker_ms, service_ms = await _breakdown(study, our_runs)
    finally:
        await study.stop()
        native.remove()
        shutil.rmtree(base, ignore_errors=True)

    ours = median(latency["ours"]) / 1e9
    base_s = median(latency["plain"]) / 1e9
    ours_rate, plain_rate = median(throughput["ours"]), median(throughput["plain"])
    broker, service = median(broker_ms), median(service_ms)
    return [
        Result(
            key="attested_read_ms_p50",
            value=ms(ours),
            unit="ms",
            goal=round(LATENCY_GOAL * ms(base_s), 3),
            goal_op="<=",
            extra={
                "ours_ms_p50": ms(ours),
                "baseline_ms_p50": ms(base_s),
                "ours_ms": _summary_ns(latency["ours"]),
                "goal_means": f"at most {LATENCY_GOAL}x the plain HTTPS read measured in the same run",
                "reads_per_run": reads,
                "repeats": repeats,
            },
        ),
        Result(
            key="attested_read_vs_plain_ratio",
            value=round(ours / base_s, 3),
            unit="ratio",
            goal=LATENCY_GOAL,
            goal_op="<=",
            extra={
                "ours_ms_p50": ms(ours),
                "baseline_ms_p50": ms(base_s),
                "ours_ms": _summary_ns(latency["ours"]),
                "baseline_ms": _summary_ns(latency["plain"]),
                "ours_per_run_p50_ms": [ms(s) for s in per_repeat["ours"]],
                "baseline_per_run_p50_ms": [ms(s) for s in per_repeat["plain"]],
                "broker_forward_ms_p50": round(broker, 3),
                "store_handling_ms_p50": round(service, 3),
                "compartment_and_launcher_ms": round(ms(ours) - broker, 3),
                "https_exchange_ms": round(broker - service, 3),
                "store_connections_after_run": connections,
                "ours_cpu_ms_per_read": cpu.per_read_ms(),
                "reads_per_run": reads,
                "warmup_reads": WARMUP,
                "repeats": repeats,
                "baseline": f"GET {PLAIN_PATH} on the same store process over one kept-alive HTTPS connection "
                            "from a C client (tests/bench/c/https_get.c): the same sale, plain JSON",
            },
        ),
        Result(
            key="attested_throughput_vs_plain_ratio",
            value=round(ours_rate / plain_rate, 3),
            unit="ratio",
            goal=THROUGHPUT_GOAL,
            goal_op=">=",
            extra={
                "ours_reads_per_s": round(ours_rate, 1),
                "baseline_reads_per_s": round(plain_rate, 1),
                "ours_reads_per_s_samples": [round(r, 1) for r in throughput["ours"]],
                "baseline_reads_per_s_samples": [round(r, 1) for r in throughput["plain"]],
                "ours_concurrent_ms": _summary_ns(concurrent_latency["ours"], samples=False),
                "baseline_concurrent_ms": _summary_ns(concurrent_latency["plain"], samples=False),
                "window_s": {arm: [round(w, 3) for w in windows[arm]] for arm in ARMS},
                "ours_cpu_ms_per_read": concurrent_cpu["ours"].per_read_ms(),
                "baseline_cpu_ms_per_read": concurrent_cpu["plain"].per_read_ms(),
                "concurrency": concurrency,
                "reads_per_program": concurrent_reads,
                "repeats": concurrent_repeats,
                "baseline": f"{concurrency} plain HTTPS clients at once, each its own kept-alive connection",
            },
        ),
    ]


async def _breakdown(study: CaseStudy, run_ids: list[str]) -> tuple[list[float], list[float]]:
    """The broker's latency_ms and the store's handling ms of the timed reads of ``run_ids``."""
    assert study.client is not None
    broker: list[float] = []
    serials: set[str] = set()
    for run_id in run_ids:
        traces = (await study.client.call("traces.list", {"run_id": run_id, "limit": 1000}))["traces"]
        traces.sort(key=lambda t: t["id"])
        broker += [t["latency_ms"] for t in traces[WARMUP:] if t["outcome"] == "ok"]
        serials.add((await study.client.call("certs.get", {"run_id": run_id}))["serial"])
    log = (study.base / "store.log").read_text(errors="replace")
    handled: dict[str, list[float]] = {}
    for match in _SERVICE_LOG.finditer(log):
        handled.setdefault(match["serial"], []).append(float(match["ms"]))
    service = [v for serial in serials for v in handled.get(serial, [])[WARMUP:]]
    if not broker or not service:
        raise RuntimeError("no trace rows or store log lines for the benchmark's reads")
    return broker, service


def _summary_ns(samples_ns: list[int], samples: bool = True) -> dict[str, Any]:
    summary = summary_ms([s / 1e9 for s in samples_ns])
    if not samples:
        summary.pop("samples")
    return summary
