"""``console_input_latency_ms_p99`` and ``console_events_dropped``: the console under a flood.

A stand-in daemon (a separate process speaking the real API envelope: ``system.hello``,
results, ``event`` notifications, over a websocket on loopback) answers the console's
calls from the recorded case study and, once the console has subscribed, sends
``traces.message`` events at ``rate`` per second for ``seconds`` (5,000/s for 10 s by
default). The real daemon cannot produce trace rows that fast (each one is an attested
HTTPS exchange with a service), and what is measured here is the console, not the daemon.

The console is the real app (``create_app(LiveSource(...))``: the client library, the
connection worker, the batching pump, the records and every tab) running headless at
120x40 with the Trace tab open, so every batch redraws a visible table, sparkline and
sequence diagram. Every ``key_interval`` a key is posted as a terminal's would be,
cycling through the tab keys (each changes what is on screen). A key's latency is from
posting it to the first frame the compositor produces after its action ran (the frame a
terminal would be sent; headless, the bytes are not written).

- ``console_input_latency_ms_p99``: the 99th percentile under the flood (goal <= 100 ms);
  the baseline is the same keys with no events arriving, in the same run.
- ``console_events_dropped``: events sent that never reached the console's records
  (goal 0), and how many of those were shown to the user as a gap.

Run on its own: ``python -m tests.bench.console [--seconds S] [--rate N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from attestables.shared import protocol

from .measure import Result, ms, percentile, summary_ms

FIXTURE = Path(__file__).resolve().parents[1] / "console" / "fixtures" / "case_study.json"
LATENCY_GOAL_MS = 100.0
# What an operator does while messages stream in: move through the message table (up
# pauses the live table, down on the last row follows it again and redraws it), and now
# and then switch tabs and come back.
KEYS = ("up", "up", "down", "down", "up", "down", "3", "6", "up", "down", "1", "6")
NAVIGATION = {"up", "down"}
SIZE = (120, 40)
SUBSCRIPTION = "sub-1"
# Trace rows sent before the measurement, so the table has rows to move through.
PREFILL = 500


# -- the stand-in daemon (its own process) --------------------------------------------------


def _answers(data: dict[str, Any]) -> dict[str, Any]:
    cert = next(iter(data["cert_details"].values()))
    return {
        "system.info": data["info"], "ca.info": data["ca"], "sources.list": {"sources": data["sources"]},
        "builds.list": {"builds": data["builds"]}, "runs.list": {"runs": data["runs"]},
        "certs.list": {"certificates": data["certs"]}, "services.list": {"services": data["services"]},
        "traces.list": {"traces": [], "next": None}, "certs.get": cert,
        "events.subscribe": {"subscription": SUBSCRIPTION, "seq": 0},
    }


def trace(n: int, runs: list[str], services: tuple[str, ...]) -> dict[str, Any]:
    return {"id": n, "ts": f"2026-11-22T14:{(n // 60000) % 60:02d}:{(n // 1000) % 60:02d}.{n % 1000:03d}Z",
            "run_id": runs[n % len(runs)], "service_id": services[n % len(services)],
            "op": "read" if n % 3 else "write", "request_id": n, "bytes_in": 64 + n % 200,
            "sha256_in": f"{n:064x}", "bytes_out": 96 + n % 900, "sha256_out": f"{n * 7:064x}",
            "latency_ms": 5.0 + (n * 37 % 400) / 10, "http_status": 200, "outcome": "ok",
            "verification": {"status": "affirming", "reasons": []}}


async def serve(port: int, rate: int, seconds: float, fixture: Path) -> None:
    from aiohttp import web

    data = json.loads(fixture.read_text(encoding="utf-8"))
    answers = _answers(data)
    runs = [r["run_id"] for r in data["runs"]]
    services = ("store", "transport", "messaging")

    async def stream(ws: web.WebSocketResponse) -> None:
        # Rows already in the table (both arms), then, once the console has settled, the flood.
        for n in range(1, PREFILL + 1):
            await ws.send_str(protocol.encode(protocol.event(SUBSCRIPTION, protocol.TRACES_MESSAGE, n,
                                                             trace(n, runs, services))).decode())
        await asyncio.sleep(1.5)
        loop = asyncio.get_running_loop()
        start = loop.time()
        total = int(rate * seconds)
        sent = 0
        while sent < total:
            due = min(total, int((loop.time() - start) * rate))
            while sent < due:
                sent += 1
                n = PREFILL + sent
                frame = protocol.event(SUBSCRIPTION, protocol.TRACES_MESSAGE, n, trace(n, runs, services))
                await ws.send_str(protocol.encode(frame).decode())
            await asyncio.sleep(0.002)

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_str(protocol.encode(protocol.notification(protocol.HELLO, {
            "schema_version": protocol.SCHEMA_VERSION, "min_supported_schema_version": 1,
            "server_version": "bench"})).decode())
        streamer: asyncio.Task[None] | None = None
        async for message in ws:
            request_frame = protocol.decode(message.data)
            method = request_frame.get("method")
            result = answers.get(method, {"lines": [], "chunks": [], "seq": 0, "truncated": False})
            await ws.send_str(protocol.encode(protocol.result(request_frame.get("id"), result)).decode())
            if method == "events.subscribe" and streamer is None:
                streamer = asyncio.create_task(stream(ws))
        if streamer is not None:
            streamer.cancel()
        return ws

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get(protocol.API_PATH, websocket)
    app.router.add_get(protocol.HEALTH_PATH, health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


# -- the console under measurement -----------------------------------------------------------


class KeyClock:
    """Times each key from posting it to the first frame after its action ran."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.posted: float | None = None
        self.acted: float | None = None
        self.key = ""
        self.samples: list[float] = []
        self.by_key: list[tuple[str, float]] = []
        self.queued: list[float] = []  # posting to the action: the wait behind other work
        display = app._display
        run_action = app.run_action

        def timed_display(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is not None and self.acted is not None and self.posted is not None:
                elapsed = time.perf_counter() - self.posted
                self.samples.append(elapsed)
                self.by_key.append((self.key, elapsed))
                self.queued.append(self.acted - self.posted)
                self.posted = self.acted = None

        async def timed_action(*args: Any, **kwargs: Any) -> Any:
            if self.posted is not None and self.acted is None:
                self.acted = time.perf_counter()
            return await run_action(*args, **kwargs)

        app._display = timed_display
        app.run_action = timed_action

    def press(self, key: str) -> None:
        from textual import events

        self.posted = time.perf_counter()
        self.acted = None
        self.key = key
        self.app.post_message(events.Key(key, key if len(key) == 1 else None))


async def measure_keys(url: str, *, seconds: float, key_interval: float, wait_for_events: int = 0) -> dict[str, Any]:
    from attestables.tui.app import create_app
    from attestables.tui.connection import LiveSource

    # As `attestables console` builds it (an app that owns its process). The arms run one
    # after the other in this process; each freezes the heap after its own first load.
    app = create_app(LiveSource(url, "bench-token"), settle_heap=True)
    async with app.run_test(size=SIZE) as pilot:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not app.records.loaded:
            if loop.time() > deadline:
                raise RuntimeError("the console never loaded the stand-in daemon's records")
            await pilot.pause(0.05)
        app.action_show_tab("trace")
        await pilot.pause()
        app.query_one("#trace-table").focus()
        await pilot.pause()
        table = app.query_one("#trace-table")
        # The first keys go to a table that shows the rows (not one still waiting for them).
        while app.records.events < PREFILL or table.row_count < PREFILL:
            if loop.time() > deadline:
                raise RuntimeError("the first trace rows never reached the console's table")
            await asyncio.sleep(0.01)
        await pilot.pause()
        clock = KeyClock(app)
        # How long each batch of the stream waited between the pump posting it and the app
        # applying it (input first holds it while keys come: the price of the latency).
        from textual._time import get_time

        waits: list[float] = []
        apply_events = app._apply_events

        def timed_apply(message: Any) -> None:
            waits.append(get_time() - message.time)
            apply_events(message)

        app._apply_events = timed_apply  # type: ignore[method-assign]
        start = loop.time()
        missed = 0
        index = 0
        while loop.time() - start < seconds:
            if clock.posted is not None:
                missed += 1  # the previous key has not shown yet: counts as a slow sample below
            clock.press(KEYS[index % len(KEYS)])
            index += 1
            await asyncio.sleep(key_interval)
        # The last key's frame.
        settle = loop.time() + 2
        while clock.posted is not None and loop.time() < settle:
            await asyncio.sleep(0.01)
        if wait_for_events:
            # Let the rest of the flood arrive.
            quiet_until = loop.time() + 3
            last = -1
            while loop.time() < quiet_until and app.records.events != last:
                last = app.records.events
                await asyncio.sleep(0.5)
        navigation = [t for k, t in clock.by_key if k in NAVIGATION]
        tabs = [t for k, t in clock.by_key if k not in NAVIGATION]
        return {"samples": clock.samples, "queued": clock.queued, "navigation": navigation, "tabs": tabs,
                "presses": index, "missed": missed, "events": app.records.events, "lost": app.records.lost,
                "batches": app.batches, "batch_waits": waits, "seconds": loop.time() - start}


async def _start_server(rate: int, seconds: float) -> tuple[subprocess.Popen[bytes], str]:
    from attestables.shared.local_daemon import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.console", "serve", "--port", str(port),
                             "--rate", str(rate), "--seconds", str(seconds)],
                            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"http://127.0.0.1:{port}{protocol.HEALTH_PATH}") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        else:
            proc.kill()
            raise RuntimeError("the stand-in daemon did not start")
    return proc, f"ws://127.0.0.1:{port}{protocol.API_PATH}"


async def run_arm(rate: int, seconds: float, key_interval: float) -> dict[str, Any]:
    proc, url = await _start_server(rate, seconds)
    try:
        return await measure_keys(url, seconds=seconds, key_interval=key_interval, wait_for_events=rate)

    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def bench_console(*, seconds: float = 10.0, rate: int = 5000, key_interval: float = 0.1,
                        baseline_seconds: float | None = None) -> list[Result]:
    """Both keys of this benchmark (the lead registers this in ``tests/bench/run.py``)."""
    baseline = await run_arm(0, baseline_seconds or min(seconds, 5.0), key_interval)
    loaded = await run_arm(rate, seconds, key_interval)
    samples = loaded["samples"]
    # A key whose frame never came counts as slower than every measured one.
    worst = [*samples, *([max(samples, default=seconds)] * loaded["missed"])]
    p99 = ms(percentile(worst, 99))
    sent = PREFILL + int(rate * seconds)
    dropped = max(0, sent - loaded["events"])
    base = baseline["samples"]
    return [
        Result(key="console_input_latency_ms_p99", value=p99, unit="ms", goal=LATENCY_GOAL_MS, goal_op="<=",
               extra={"ours_ms_p50": summary_ms(samples)["p50"], "baseline_ms_p50": summary_ms(base)["p50"],
                      "baseline_ms_p99": ms(percentile(base, 99)), "ms_max": ms(max(samples, default=0)),
                      "ratio_vs_baseline_p99": round(p99 / max(ms(percentile(base, 99)), 0.001), 2),
                      "navigation_ms_p99": ms(percentile(loaded["navigation"], 99)),
                      "queued_ms_p50": summary_ms(loaded["queued"])["p50"],
                      "queued_ms_p99": ms(percentile(loaded["queued"], 99)),
                      "tab_switch_ms_p99": ms(percentile(loaded["tabs"], 99)),
                      "keys": loaded["presses"], "keys_without_frame": loaded["missed"],
                      "events_per_s": rate, "seconds": seconds}),
        Result(key="console_events_dropped", value=dropped, unit="events", goal=0, goal_op="<=",
               extra={"sent": sent, "received": loaded["events"], "shown_as_gap": loaded["lost"],
                      "batches": loaded["batches"],
                      "events_per_batch": round(loaded["events"] / max(1, loaded["batches"]), 1),
                      "batches_applied_per_s": round(len(loaded["batch_waits"]) / max(loaded["seconds"], 0.001), 1),
                      "batch_wait_ms_p50": summary_ms(loaded["batch_waits"])["p50"],
                      "batch_wait_ms_p99": ms(percentile(loaded["batch_waits"], 99))}),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.console")
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve", help="run the stand-in daemon (used by the benchmark)")
    serve_cmd.add_argument("--port", type=int, required=True)
    for p in (parser, serve_cmd):
        p.add_argument("--rate", type=int, default=5000)
        p.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        asyncio.run(serve(args.port, args.rate, args.seconds, FIXTURE))
        return 0
    results = asyncio.run(bench_console(seconds=args.seconds, rate=args.rate))
    print(json.dumps({r.key: r.to_dict() for r in results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
