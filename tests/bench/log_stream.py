"""``log_stream_lines_per_s`` and ``log_stream_rss_growth_mb``: a run printing many lines.

A compartment prints ``lines`` numbered lines (200,000 by default, 21 bytes each) as
fast as stdio allows. A websocket client subscribed to ``runs.output`` (filter: the
run's id; ``since`` the bus position before ``runs.start``, so that nothing printed
before the subscription is missed)
counts the lines it receives until the terminal ``runs.state``; lines/s is the count
over the time from the first output event to the last, as the client sees them. Every
line must arrive: a gap (``events.gap``) or a short count is an error, not a figure.

The baseline is the same compartment command started directly (``compartment.py``),
its stdout pipe read to the end by this process: lines over first byte to last byte.

While each stream runs, the daemon's RSS (``/proc/PID/status`` VmRSS) is sampled every
50 ms; a stream's growth is its peak (or the RSS after it, if higher) less the RSS just
before it, and the figure is the largest growth of any repeat. What the daemon keeps
afterwards on purpose (the event ring's ``since`` replay buffer, capped by
``event_ring_kb``) shows in ``cumulative_growth_mb``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from attestables.daemon.config import RunLimits, Settings
from attestables.shared.client import Client

from .compartment import SandboxUids, compartment_command, daemon_confine_tool, run_direct
from .measure import MIB, Result, RssSampler, interleaved, median, rss_bytes, summary_ms
from .programs import LINE_BYTES, LINES, TERMINAL_RUN, build_program

LINES_GOAL = 100_000.0
RSS_GOAL_MB = 50.0
ARMS = ("ours", "direct")


class StreamCount:
    """What one subscriber saw of one run's output."""

    def __init__(self) -> None:
        self.lines = 0
        self.events = 0
        self.replayed = 0
        self.first: float | None = None
        self.last: float | None = None
        self.final: dict[str, Any] | None = None

    @property
    def streaming(self) -> float:
        assert self.first is not None and self.last is not None
        if self.last <= self.first:
            raise RuntimeError(f"all {self.lines} lines came in one event: too few to time (raise --stream-lines)")
        return self.last - self.first


async def stream_once(client: Client, build_id: str, lines: int, output_kb: int) -> tuple[StreamCount, float]:
    """Run the line printer and count what reaches the subscriber; (count, start->end s)."""
    # The bus position just before the run, so that the run's subscription replays
    # exactly what it may have missed. (``since=0`` would also get an ``events.gap`` for
    # older events the ring has evicted, even though none of them was this run's.)
    async with await client.subscribe(["runs.state"], filter={"run_id": "r_none"}) as probe:
        since = probe.seq
    if since is None:
        raise RuntimeError("events.subscribe did not say the bus position")
    t0 = time.perf_counter()
    started = await client.call("runs.start", {"build_id": build_id, "args": [str(lines)],
                                               "limits": {"output_kb": output_kb}})
    run_id = started["run_id"]
    count = StreamCount()
    # A large local queue: the figure is what the daemon delivers, not what this
    # client's default queue would keep.
    async with await client.subscribe(["runs.output", "runs.state"], filter={"run_id": run_id}, since=since,
                                      queue_size=1 << 20) as sub:
        async with asyncio.timeout(300):
            async for event in sub:
                if event.topic == "events.gap":
                    raise RuntimeError(f"the subscriber lost events: {event.data}")
                if event.topic == "runs.output":
                    now = time.perf_counter()
                    if count.first is None:
                        count.first = now
                    count.last = now
                    count.events += 1
                    if sub.seq is not None and event.seq <= sub.seq:
                        count.replayed += 1
                    if event.data["stream"] == "stdout":
                        count.lines += event.data["data"].count("\n")
                elif event.topic == "runs.state" and event.data["state"] in TERMINAL_RUN:
                    count.final = event.data
                    break
    elapsed = time.perf_counter() - t0
    if count.final is None or count.final["state"] != "exited" or count.final["exit_code"] != 0:
        raise RuntimeError(f"the line printer did not exit cleanly: {count.final}")
    if count.lines != lines:
        raise RuntimeError(f"the subscriber received {count.lines} of {lines} lines")
    return count, elapsed


async def bench_log_stream(client: Client, state_dir: Path, daemon_pid: int, lines: int, repeats: int,
                           settings: Settings) -> list[Result]:
    record, program = await build_program(client, state_dir, "bench_lines.c", LINES)
    # Room for every line and the daemon's own notice, within what a client may ask.
    output_kb = min(settings.max_run_output_kb, lines * LINE_BYTES // 1024 + 64)
    limits = RunLimits(settings.run_cpu_s, settings.run_memory_mb, settings.run_wall_s, output_kb)
    uids = SandboxUids(settings)
    tool = daemon_confine_tool(state_dir)  # built by now: build_program awaited it

    def command() -> list[str]:
        return compartment_command(settings, limits, [str(lines)], uids.next(), tool)

    run_direct(command(), program)  # warm-up: page cache

    rates: dict[str, list[float]] = {arm: [] for arm in ARMS}
    streaming: dict[str, list[float]] = {arm: [] for arm in ARMS}
    ours_total: list[float] = []
    events: list[int] = []
    replayed: list[int] = []
    growth: list[int] = []  # per stream: peak during it less the RSS just before it
    rss_first = rss_bytes(daemon_pid)
    rss_peak = rss_first
    for _, arm in interleaved(repeats, ARMS):
        if arm == "ours":
            before = rss_bytes(daemon_pid)
            with RssSampler(daemon_pid) as sampler:
                count, total = await stream_once(client, record["build_id"], lines, output_kb)
                after = rss_bytes(daemon_pid)
            peak = max(sampler.peak, after)
            growth.append(peak - before)
            rss_peak = max(rss_peak, peak)
            rates[arm].append(count.lines / count.streaming)
            streaming[arm].append(count.streaming)
            ours_total.append(total)
            events.append(count.events)
            replayed.append(count.replayed)
        else:
            run = run_direct(command(), program)
            if run.lines != lines:
                raise RuntimeError(f"the direct run printed {run.lines} of {lines} lines")
            rates[arm].append(run.lines / run.streaming)
            streaming[arm].append(run.streaming)
    rss_last = rss_bytes(daemon_pid)

    ours, base = median(rates["ours"]), median(rates["direct"])
    common = {"lines": lines, "repeats": repeats, "output_kb": output_kb}
    return [
        Result(
            key="log_stream_lines_per_s",
            value=round(ours),
            unit="lines/s",
            goal=LINES_GOAL,
            goal_op=">=",
            extra={
                "ours_ms_p50": summary_ms(streaming["ours"])["p50"],
                "baseline_ms_p50": summary_ms(streaming["direct"])["p50"],
                "baseline_lines_per_s": round(base),
                "ratio_vs_baseline": round(ours / base, 3),
                "ours_start_to_end_ms_p50": summary_ms(ours_total)["p50"],
                "events_per_run_p50": median(events),
                "replayed_events_max": max(replayed, default=0),
                **common,
                "baseline": "the same compartment command started directly, its stdout pipe read to the end",
                "ours_lines_per_s": [round(r) for r in rates["ours"]],
                "baseline_lines_per_s_samples": [round(r) for r in rates["direct"]],
            },
        ),
        Result(
            key="log_stream_rss_growth_mb",
            value=round(max(growth) / MIB, 2),
            unit="MiB",
            goal=RSS_GOAL_MB,
            goal_op="<=",
            extra={
                "growth_per_stream_mb": [round(g / MIB, 2) for g in growth],
                "rss_before_first_mb": round(rss_first / MIB, 2),
                "rss_peak_mb": round(rss_peak / MIB, 2),
                "rss_after_last_mb": round(rss_last / MIB, 2),
                "cumulative_growth_mb": round((rss_peak - rss_first) / MIB, 2),
                "event_ring_kb": getattr(settings, "event_ring_kb", None),
                **common,
                "baseline": "none: an absolute bound on the daemon's RSS growth during one stream",
            },
        ),
    ]
