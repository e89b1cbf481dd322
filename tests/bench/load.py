"""Sustained load and a soak: many API clients at once while compartments run the EAI flow.

Both start the whole case study of their own (``CaseStudy``: the daemon and the store,
transport and messaging services on loopback, ``integration_process.c`` built and allowed
by the services' policies) and keep ``compartments`` integration processes running the
EAI flow (polling the store every 0.2 s, booking taxis and messaging customers for the
sales a generator adds every 0.1 s) while the clients work.

``bench_load``: ``clients`` websocket clients (50) each issue ``commands`` commands (200),
one after another, from a mix of what scripts and consoles do (``system.info``, lists
and gets of sources, builds, runs, certificates and traces, ``ca.info``, subscribe and
unsubscribe, small uploads), every command valid. Keys:

- ``load_cmd_ms_p99``: the 99th percentile of the command latency seen by the clients
  (also p50, p90, max, throughput);
- ``load_errors``: errors the clients did not cause (every command is valid, so every
  error counts), plus failed EAI crossings (trace outcomes other than ``ok``) and
  integration processes that did not survive the load;
- ``load_rss_mb``: the daemon's peak RSS during the load (``/proc/PID/status`` VmRSS,
  sampled every 50 ms).

``bench_soak``: the same kind of traffic at a steady rate for ``duration_s`` (600), with
client reconnects, subscriptions opened and closed, a program run and certified every
second, uploads and builds: ``soak_rss_growth_mb`` is the daemon's RSS over the last
minute less its RSS over the first minute (medians), after a warm-up that fills the
event ring (``event_ring_size`` events of a typical size), which is bounded by design
and would otherwise read as growth.

The registry (``tests/bench/run.py``) calls them with ``quick=True`` for a smoke run.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from attestables import cheri
from attestables.shared.case_study import CaseStudy, wait_state
from attestables.shared.client import Client
from attestables.shared.errors import AttestablesError

from .measure import MIB, Result, RssSampler, percentile, rss_bytes

LOAD_P99_GOAL_MS = 250.0
LOAD_RSS_GOAL_MB = 250.0
SOAK_GROWTH_GOAL_MB = 20.0
EAI_ARGS = ["--interval", "0.2", "--backoff-min", "0.2", "--backoff-max", "1", "--reply-checks", "3"]
# Prints N lines of ~600 bytes, each written on its own, so each is one runs.output event
# of about the size a trace or state event has: N of them fill the event ring.
RING_FILLER = """\
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    char line[601];
    memset(line, 'r', 599);
    line[599] = '\\n';
    line[600] = 0;
    for (long i = 0; i < n; i++) {
        if (write(1, line, 600) != 600)
            return 1;
        usleep(200);
    }
    return 0;
}
"""


class Mix:
    """Valid commands of the kinds scripts and consoles send, drawn at random."""

    def __init__(self, ids: dict[str, list[str]], rng: random.Random, name: str) -> None:
        self.ids = ids
        self.rng = rng
        self.name = name
        self.uploads = itertools.count()

    def draw(self) -> tuple[str, dict[str, Any] | None]:
        rng, ids = self.rng, self.ids
        roll = rng.random()
        if roll < 0.10:
            return "system.info", None
        if roll < 0.20:
            return "sources.list", None
        if roll < 0.30:
            return "builds.list", {"limit": 20}
        if roll < 0.45:
            return "runs.list", {"limit": 20}
        if roll < 0.60:
            return "runs.get", {"run_id": rng.choice(ids["runs"])}
        if roll < 0.70:
            return "builds.get", {"build_id": rng.choice(ids["builds"])}
        if roll < 0.75:
            return "certs.list", {"limit": 20}
        if roll < 0.85:
            return "traces.list", {"limit": 50}
        if roll < 0.90:
            return "ca.info", None
        if roll < 0.95:
            return "subscribe", None
        return "sources.upload", {"name": f"{self.name}.c",
                                  "content": f"int main(void) {{ return {next(self.uploads) % 100}; }}\n"}


async def _command(client: Client, mix: Mix, latencies: list[float], errors: dict[str, int],
                   by_method: dict[str, list[float]] | None = None) -> None:
    method, params = mix.draw()
    started = time.perf_counter()
    try:
        if method == "subscribe":  # a console opening and closing a view
            sub = await client.subscribe(["runs.state", "traces.message"])
            await sub.close()
        else:
            await client.call(method, params)
    except AttestablesError as exc:
        errors[f"{method}: {exc.code}"] = errors.get(f"{method}: {exc.code}", 0) + 1
    latencies.append(time.perf_counter() - started)
    if by_method is not None:
        by_method.setdefault(method, []).append(latencies[-1])


class Study:
    """The case study with its compartments and a sales generator running."""

    def __init__(self, base: Path, compartments: int) -> None:
        self.study = CaseStudy(base, logs=True)
        self.compartments = compartments
        self.integration_runs: list[str] = []
        self.ids: dict[str, list[str]] = {}
        self.hello_build = ""
        self._sales: asyncio.Task[None] | None = None
        self.sales = 0

    @property
    def client(self) -> Client:
        assert self.study.client is not None
        return self.study.client

    @property
    def pid(self) -> int:
        assert self.study.daemon is not None and self.study.daemon.proc is not None
        return self.study.daemon.proc.pid

    async def start(self) -> None:
        await self.study.start()
        client = self.client
        hello = await _build(client, "attest_hello.c", (cheri.EXAMPLES_DIR / "attest_hello.c").read_text())
        self.hello_build = hello["build_id"]
        runs = []
        for _ in range(10):  # records for the clients to read
            started = await client.call("runs.start", {"build_id": hello["build_id"]})
            runs.append(started["run_id"])
        for run_id in runs:
            await wait_state(client, "runs.state", "run_id", run_id, {"exited", "failed", "killed", "lost"})
        assert self.study.build is not None
        self.ids = {"runs": runs, "builds": [hello["build_id"], self.study.build["build_id"]]}
        sales = (await self.study.services["store"].admin("GET", "/admin/sales"))["sales"]
        after = max((s["id"] for s in sales), default=0)
        for _ in range(self.compartments):
            self.integration_runs.append(await self.study.start_integration(*EAI_ARGS, "--after-id", str(after),
                                                                            limits={"wall_s": 7200}))
        self._sales = asyncio.create_task(self._add_sales())

    async def _add_sales(self) -> None:
        rng = random.Random(1)
        while True:
            await self.study.add_sale("Load Outfitters", "Lee Example", "+1-555-0188", "2 Bench Road",
                                      rng.choice([9000, 18000, 30000]))
            self.sales += 1
            await asyncio.sleep(0.1)

    async def trace_cursor(self) -> int:
        page = await self.client.call("traces.list", {"limit": 1000})
        cursor = 0
        while page["traces"]:
            cursor = page["traces"][-1]["id"]
            page = await self.client.call("traces.list", {"since": cursor, "limit": 1000})
        return cursor

    async def traces_since(self, cursor: int) -> dict[str, int]:
        outcomes: dict[str, int] = {}
        while True:
            page = await self.client.call("traces.list", {"since": cursor, "limit": 1000})
            if not page["traces"]:
                return outcomes
            for trace in page["traces"]:
                outcomes[trace["outcome"]] = outcomes.get(trace["outcome"], 0) + 1
            cursor = page["traces"][-1]["id"]

    async def integration_states(self) -> dict[str, int]:
        states: dict[str, int] = {}
        for run_id in self.integration_runs:
            state = (await self.client.call("runs.get", {"run_id": run_id}))["state"]
            states[state] = states.get(state, 0) + 1
        return states

    async def stop(self) -> None:
        if self._sales is not None:
            self._sales.cancel()
            await asyncio.gather(self._sales, return_exceptions=True)
        await self.study.stop()


async def _build(client: Client, name: str, source: str) -> dict[str, Any]:
    uploaded = await client.call("sources.upload", {"name": name, "content": source})
    started = await client.call("builds.start", {"source_id": uploaded["source_id"]})
    record = await wait_state(client, "builds.state", "build_id", started["build_id"],
                              {"succeeded", "failed", "cancelled"})
    if record["state"] != "succeeded":
        raise RuntimeError(f"{name} did not build: {record['error']}")
    return record


def _eai_failures(outcomes: dict[str, int]) -> int:
    return sum(n for outcome, n in outcomes.items() if outcome != "ok")


async def bench_load(clients: int = 50, commands: int = 200, compartments: int = 8,
                     quick: bool = False) -> list[Result]:
    """``clients`` clients x ``commands`` commands while ``compartments`` run the EAI flow."""
    if quick:
        clients, commands, compartments = min(clients, 10), min(commands, 20), min(compartments, 2)
    base = Path(tempfile.mkdtemp(prefix="attestables-load-"))
    study = Study(base, compartments)
    try:
        await study.start()
        await asyncio.sleep(2 if quick else 5)  # the compartments' handshakes and first passes
        cursor = await study.trace_cursor()
        rss_before = rss_bytes(study.pid)
        latencies: list[float] = []
        by_method: dict[str, list[float]] = {}
        errors: dict[str, int] = {}
        daemon = study.study.daemon
        assert daemon is not None

        async def one_client(n: int) -> None:
            mix = Mix(study.ids, random.Random(n), f"load{n}")
            async with Client.connect(daemon.url, daemon.token) as client:
                for _ in range(commands):
                    await _command(client, mix, latencies, errors, by_method)

        with RssSampler(study.pid) as rss:
            started = time.perf_counter()
            await asyncio.gather(*(one_client(n) for n in range(clients)))
            elapsed = time.perf_counter() - started
        outcomes = await study.traces_since(cursor)
        states = await study.integration_states()
        rss_after = rss_bytes(study.pid)
    finally:
        await study.stop()
        shutil.rmtree(base, ignore_errors=True)
    eai_failed = _eai_failures(outcomes)
    integration_down = sum(n for state, n in states.items() if state != "running")
    ms = [s * 1000 for s in latencies]
    common = {"clients": clients, "commands_per_client": commands, "compartments": compartments,
              "commands": len(ms), "elapsed_s": round(elapsed, 2),
              "commands_per_s": round(len(ms) / elapsed, 1) if elapsed else None}
    return [
        Result("load_cmd_ms_p99", round(percentile(ms, 99), 2), "ms", LOAD_P99_GOAL_MS, "<=", {
            **common, "p50_ms": round(percentile(ms, 50), 2), "p90_ms": round(percentile(ms, 90), 2),
            "max_ms": round(max(ms), 2),
            "by_method": {m: {"n": len(v), "p50_ms": round(percentile(v, 50) * 1000, 2),
                              "p99_ms": round(percentile(v, 99) * 1000, 2)} for m, v in sorted(by_method.items())}}),
        Result("load_errors", sum(errors.values()) + eai_failed + integration_down, "errors", 0, "<=", {
            **common, "command_errors": errors, "eai_crossings": sum(outcomes.values()),
            "eai_outcomes": outcomes, "integration_runs": states}),
        Result("load_rss_mb", round(rss.peak / MIB, 1), "MiB", LOAD_RSS_GOAL_MB, "<=", {
            **common, "rss_before_mb": round(rss_before / MIB, 1), "rss_after_mb": round(rss_after / MIB, 1)}),
    ]


async def bench_soak(duration_s: float = 600.0, clients: int = 10, rate_per_client: float = 10.0,
                     compartments: int = 8, quick: bool = False) -> list[Result]:
    """Steady traffic for ``duration_s``; the daemon's RSS growth after warm-up."""
    if quick:
        duration_s, clients, compartments = min(duration_s, 20.0), min(clients, 3), min(compartments, 2)
    ring_events = 2_000 if quick else 21_000  # > event_ring_size (20,000)
    window_s = min(60.0, duration_s / 4)
    base = Path(tempfile.mkdtemp(prefix="attestables-soak-"))
    study = Study(base, compartments)
    samples: list[tuple[float, int]] = []
    errors: dict[str, int] = {}
    counts: dict[str, int] = {"commands": 0, "reconnects": 0, "runs": 0, "builds": 0}
    try:
        await study.start()
        client = study.client
        filler = await _build(client, "ring_filler.c", RING_FILLER)
        started = await client.call("runs.start", {"build_id": filler["build_id"], "args": [str(ring_events)],
                                                   "limits": {"output_kb": 65536, "wall_s": 600}})
        await wait_state(client, "runs.state", "run_id", started["run_id"], {"exited", "failed", "killed", "lost"},
                         timeout=600)
        cursor = await study.trace_cursor()
        daemon = study.study.daemon
        assert daemon is not None
        stop = asyncio.Event()

        async def commands(n: int) -> None:
            mix = Mix(study.ids, random.Random(100 + n), f"soak{n}")
            while not stop.is_set():
                async with Client.connect(daemon.url, daemon.token) as c:  # a reconnect every 100
                    counts["reconnects"] += 1
                    for _ in range(100):
                        if stop.is_set():
                            return
                        latencies: list[float] = []
                        await _command(c, mix, latencies, errors)
                        counts["commands"] += 1
                        await asyncio.sleep(max(0.0, 1 / rate_per_client - latencies[0]))

        async def runs() -> None:
            while not stop.is_set():
                started = await client.call("runs.start", {"build_id": study.hello_build})
                record = await wait_state(client, "runs.state", "run_id", started["run_id"],
                                          {"exited", "failed", "killed", "lost"})
                counts["runs"] += 1
                if record["state"] != "exited" or record["exit_code"] != 0:
                    errors[f"run {record['state']}"] = errors.get(f"run {record['state']}", 0) + 1
                await asyncio.sleep(1)

        async def builds() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                await _build(client, "soak_build.c", f"int main(void) {{ return {n % 50}; }}\n")
                counts["builds"] += 1
                await asyncio.sleep(10)

        async def sample() -> None:
            t0 = time.monotonic()
            while not stop.is_set():
                samples.append((time.monotonic() - t0, rss_bytes(study.pid)))
                await asyncio.sleep(1)

        tasks = [asyncio.create_task(coro) for coro in
                 [*(commands(n) for n in range(clients)), runs(), builds(), sample()]]
        await asyncio.sleep(duration_s)
        stop.set()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in done:
            if isinstance(outcome, BaseException):
                errors[type(outcome).__name__] = errors.get(type(outcome).__name__, 0) + 1
        outcomes = await study.traces_since(cursor)
        states = await study.integration_states()
    finally:
        await study.stop()
        shutil.rmtree(base, ignore_errors=True)
    first = [rss for t, rss in samples if t <= window_s]
    last = [rss for t, rss in samples if t >= samples[-1][0] - window_s]
    growth = (statistics.median(last) - statistics.median(first)) / MIB
    slope = _slope_mb_per_min(samples)
    return [Result("soak_rss_growth_mb", round(growth, 2), "MiB", SOAK_GROWTH_GOAL_MB, "<=", {
        "duration_s": duration_s, "window_s": window_s, "clients": clients, "compartments": compartments,
        "rss_start_mb": round(statistics.median(first) / MIB, 1), "rss_end_mb": round(statistics.median(last) / MIB, 1),
        "rss_max_mb": round(max(rss for _, rss in samples) / MIB, 1), "slope_mb_per_min": round(slope, 3),
        "ring_filler_events": ring_events, **counts, "errors": errors, "eai_outcomes": outcomes,
        "eai_failures": _eai_failures(outcomes), "integration_runs": states,
        "rss_mb_per_minute": [round(rss / MIB, 1) for t, rss in samples if int(t) % 60 == 0]})]


def _slope_mb_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS over time, MiB per minute."""
    if len(samples) < 2:
        return 0.0
    ts = [t for t, _ in samples]
    ys = [rss / MIB for _, rss in samples]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var if var else 0.0


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.bench.load [--quick] [--soak [--duration S]] [--output FILE]``.

    Prints the results as JSON (and writes them to ``--output``). Exit status 1 when a
    requirement of docs/reliability.md failed: an error under load, or a soak whose RSS
    grew beyond its goal; latency figures are to be read, not judged here.
    """
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m tests.bench.load")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--soak", action="store_true", help="the soak instead of the load")
    parser.add_argument("--duration", type=float, default=600.0, help="soak duration in seconds (600)")
    parser.add_argument("--output", type=Path, help="write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.soak:
        results = asyncio.run(bench_soak(duration_s=args.duration, quick=args.quick))
    else:
        results = asyncio.run(bench_load(quick=args.quick))
    report = {r.key: r.to_dict() for r in results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    failed = [r.key for r in results if r.key in {"load_errors", "soak_rss_growth_mb"} and not r.met]
    if args.soak and (results[0].extra["errors"] or results[0].extra["eai_failures"]):
        failed.append("soak errors")
    for key in failed:
        print(f"NOT HELD: {key}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
