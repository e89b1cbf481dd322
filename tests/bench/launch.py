"""``launch_overhead_ratio``: runs.start -> first output byte, against the bwrap command.

Ours is the wall time from sending ``runs.start`` to the client receiving the first
``runs.output`` event of a program whose first act is to write one line: verifying
the artefact, the database rows and state events, staging the memfd, spawning the
sandbox, and carrying the byte through the event bus and the websocket.

The baseline starts the daemon's exact compartment command (``compartment.py``:
prlimit, setpriv when root, bwrap with ``--ro-bind-data`` from a sealed memfd and fd 3
a socketpair) directly with ``posix_spawn`` and reads the pipe until the first byte.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from attestables.daemon.config import Settings
from attestables.shared.client import Client, Subscription

from .compartment import SandboxUids, compartment_command, daemon_confine_tool, run_direct
from .measure import Result, interleaved, median, summary_ms
from .programs import FIRST_BYTE, TERMINAL_RUN, build_program

GOAL = 1.5
ARMS = ("ours", "direct")


async def first_output(client: Client, events: Subscription, build_id: str) -> tuple[float, float]:
    """(seconds to the first runs.output event, seconds to the terminal runs.state)."""
    t0 = time.perf_counter()
    started = await client.call("runs.start", {"build_id": build_id})
    run_id = started["run_id"]
    first: float | None = None
    async with asyncio.timeout(60):
        async for event in events:
            if event.topic == "events.gap":
                raise RuntimeError(f"run events were dropped: {event.data}")
            if event.data.get("run_id") != run_id:
                continue
            if event.topic == "runs.output" and first is None:
                first = time.perf_counter() - t0
            elif event.topic == "runs.state" and event.data["state"] in TERMINAL_RUN:
                if event.data["state"] != "exited" or event.data["exit_code"] != 0 or first is None:
                    raise RuntimeError(f"the benchmark run did not exit cleanly: {event.data}")
                return first, time.perf_counter() - t0
    raise RuntimeError("the runs stream ended")


async def bench_launch(client: Client, state_dir: Path, repeats: int, settings: Settings) -> list[Result]:
    record, program = await build_program(client, state_dir, "bench_first_byte.c", FIRST_BYTE)
    uids = SandboxUids(settings)
    tool = daemon_confine_tool(state_dir)  # built by now: build_program awaited it

    def command() -> list[str]:
        return compartment_command(settings, settings.default_limits, [], uids.next(), tool)

    samples: dict[str, list[float]] = {arm: [] for arm in ARMS}
    ours_total: list[float] = []
    direct_total: list[float] = []
    async with await client.subscribe(["runs.output", "runs.state"]) as events:
        # Warm-up (not counted): the first run of a fresh daemon and the page cache.
        await first_output(client, events, record["build_id"])
        run_direct(command(), program)
        for _, arm in interleaved(repeats, ARMS):
            if arm == "ours":
                first, total = await first_output(client, events, record["build_id"])
                samples[arm].append(first)
                ours_total.append(total)
            else:
                run = run_direct(command(), program)
                samples[arm].append(run.to_first_byte)
                assert run.ended is not None
                direct_total.append(run.ended - run.started)

    ours, base = median(samples["ours"]), median(samples["direct"])
    return [Result(
        key="launch_overhead_ratio",
        value=round(ours / base, 3),
        unit="ratio",
        goal=GOAL,
        goal_op="<=",
        extra={
            "ours_ms_p50": summary_ms(samples["ours"])["p50"],
            "baseline_ms_p50": summary_ms(samples["direct"])["p50"],
            "daemon_overhead_ms": round((ours - base) * 1000, 3),
            "ours_to_exit_ms_p50": summary_ms(ours_total)["p50"],
            "baseline_to_exit_ms_p50": summary_ms(direct_total)["p50"],
            "repeats": repeats,
            "baseline": "the daemon's compartment command (confine head, bwrap) started directly, "
                        "to its first stdout byte",
            "command_argv": command(),
            "ours_ms": summary_ms(samples["ours"]),
            "baseline_ms": summary_ms(samples["direct"]),
        },
    )]
