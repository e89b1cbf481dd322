"""``attestables demo``: the EAI case study end to end, on loopback, from nothing.

Starts a launcher daemon and the three digital services (store, transport, messaging) as
processes of their own, each with its state under one base dir; registers the services;
uploads and builds ``integration_process.c``; gives each service the policy that allows
exactly that build; runs it in the bwrap compartment; adds a sale of $180.00 for one
customer and one of $90.00 for another; then shows the attestation summary, the six
steps of the flow for the first customer (and that nothing happened for the second), the
trace of every message the launcher carried, and where everything is.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from attestables.shared import protocol
from attestables.shared.case_study import CaseStudy, environment_summary

from ..output import Output, format_size, key_values, table
from ..registry import Subparsers, add_local_command
from .traces import HEADERS as TRACE_HEADERS, row as trace_row

ORDER = 5
THRESHOLD = "150.00"
FIRST = ("Northwind Outlet", "Ada Lovegood", "+1-555-0142", "12 Imaginary Lane, Notaplace", 18000)
SECOND = ("Northwind Outlet", "Bram Placeholder", "+1-555-0143", "9 Nowhere Street, Testville", 9000)
FLOW_TIMEOUT_S = 45.0


def register(subparsers: Subparsers) -> None:
    parser = add_local_command(subparsers, "demo", demo,
                               help="run the EAI case study end to end on loopback (the main job)")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="keep everything under DIR (default: a fresh temp dir, removed afterwards)")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave the launcher, the services and the integration process running")


def demo(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(Demo(args.state_dir, keep_running=args.keep_running).main())
    except KeyboardInterrupt:
        return 130


class Demo:
    def __init__(self, state_dir: Path | None, *, keep_running: bool) -> None:
        self.out = Output()
        self.given_dir = state_dir
        self.base = state_dir or Path(tempfile.mkdtemp(prefix="attestables-demo-"))
        self.keep_running = keep_running
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        self.out.line(f"[{time.monotonic() - self.started:5.1f}s] {text}")
        self.out.stdout.flush()

    def heading(self, text: str) -> None:
        self.out.line("")
        self.out.line(f"== {text}")

    async def main(self) -> int:
        study = CaseStudy(self.base)
        failed: str | None = None
        try:
            await self.walk(study)
        except Exception as exc:  # the demo says what went wrong, then cleans up
            failed = str(exc) or type(exc).__name__
        if failed is not None:
            self.out.note(f"the demo failed: {failed}")
            self.out.note(f"logs of every process are in {self.base} (kept)")
            await study.stop()
            return 1
        if self.keep_running:
            self.where(study, running=True)
            self.out.line("")
            self.out.line("Everything keeps running; press Ctrl-C to stop it all.")
            self.out.stdout.flush()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass
            finally:
                await study.stop()
            return 0
        self.where(study, running=False)
        await study.stop()
        if self.given_dir is None:
            shutil.rmtree(self.base, ignore_errors=True)
        self.step("done: everything stopped")
        return 0

    async def walk(self, study: CaseStudy) -> None:
        self.heading("Setting up (every part a real process on loopback)")
        self.step(f"starting the launcher daemon and the store, transport and messaging services in {self.base}")
        await study.start_processes()
        assert study.client is not None and study.daemon is not None
        client = study.client
        info = await client.call("system.info")
        platform = info["platform"]
        self.step(f"launcher {info['version']} on {platform['os']} {platform['machine']}; services registered "
                  "with TLS pinned to their certificates")
        self.step("uploading and building integration_process.c in the compile sandbox")
        build = await study.build_integration()
        self.step(f"built {build['build_id'][:12]} in {build['duration_s']} s: "
                  f"ELF sha256 {build['artefact']['sha256'][:16]}…")
        await study.push_policy()
        self.step("each service now trusts the launcher's CA and allows exactly this build (policy export)")

        last_seeded = max((s["id"] for s in (await study.services["store"].admin("GET", "/admin/sales"))["sales"]),
                          default=0)
        async with await client.subscribe([protocol.RUNS_OUTPUT, protocol.TRACES_MESSAGE]) as sub:
            run_id = await study.start_integration("--interval", "1", "--after-id", str(last_seeded),
                                                   "--threshold", THRESHOLD)
            self.step(f"integration process started in the bwrap compartment: run {run_id[:12]}")
            first = await study.add_sale(*FIRST)
            second = await study.add_sale(*SECOND)
            self.step(f"store: sale {first} of $180.00 (first customer), sale {second} of $90.00 (second customer)")
            output = await self.follow(sub, run_id, first, second)

        await self.attestation(client, run_id)
        await self.flow(study, run_id, first, second, output)
        await self.traces(client, run_id)
        self.study_run_id = run_id
        if not self.keep_running:
            await client.call("runs.stop", {"run_id": run_id})

    async def follow(self, sub: Any, run_id: str, first: int, second: int) -> str:
        """Show the program's output and the trace as they arrive, until both sales are handled."""
        output, done_first, done_second = "", False, False
        deadline = time.monotonic() + FLOW_TIMEOUT_S
        async with asyncio.timeout(FLOW_TIMEOUT_S):
            async for event in sub:
                if event.data.get("run_id") != run_id:
                    continue
                if event.topic == protocol.TRACES_MESSAGE:
                    t = event.data
                    status = t["verification"].get("status") or "-"
                    self.step(f"  launcher carried {t['op']:5} {t['service_id']:9} sealed "
                              f"{format_size(t['bytes_in']):>7} → {format_size(t['bytes_out']):>7}, "
                              f"{t['latency_ms']:.1f} ms, service says {status}")
                    continue
                text = event.data["data"]
                output += text
                for line in text.splitlines():
                    self.step(f"  integration process: {line.removeprefix('integration process: ')}")
                done_first = done_first or bool(re.search(rf"sale {first}: reply: (accepted|declined)", output))
                done_second = done_second or f"sale {second}: at or below threshold" in output
                if done_first and done_second:
                    return output
                if time.monotonic() > deadline:
                    break
        raise RuntimeError("the flow did not complete in time")

    async def attestation(self, client: Any, run_id: str) -> None:
        cert = await client.call("certs.get", {"run_id": run_id})
        doc = cert["document"]
        iso = doc["submods"]["compartment"]["isolation"]
        self.heading("Attestation summary (what the services checked)")
        measurements = {m["type"]: m["digest"] for m in doc["measurements"]}
        self.out.lines(key_values([
            ("run certificate", f"serial {cert['serial']}, valid until {cert['not_after']}"),
            ("subject key", "the compartment's own X25519 key (its private half never left it)"),
            ("program", f"{doc['swname']} version {doc['swversion']}"),
            ("elf-sha256", measurements.get("elf-sha256")),
            ("source-sha256", measurements.get("source-sha256")),
            ("toolchain", f"{doc['toolchain']['name']}: {doc['toolchain']['version']}"),
            ("compartment", f"{doc['submods']['compartment']['backend']}, network {iso['network']}, "
                            f"filesystem {iso['filesystem']}"),
            ("platform", f"{doc['platform']['os']} {doc['platform']['machine']}, CHERI "
                         f"{'yes' if doc['platform']['cheri'] else 'no'}"),
        ]))
        if not doc["platform"]["cheri"]:
            self.out.line("note: this machine has no CHERI hardware; the program ran in a bubblewrap sandbox and "
                          "the document says so (no capability protection is claimed).")

    async def flow(self, study: CaseStudy, run_id: str, first: int, second: int, output: str) -> None:
        assert study.client is not None
        traces = (await study.client.call("traces.list", {"run_id": run_id, "limit": 1000}))["traces"]
        trips = [t for t in (await study.services["transport"].admin("GET", "/admin/trips"))["trips"]
                 if t["sale_id"] in (first, second)]
        messages = [m for m in (await study.services["messaging"].admin("GET", "/admin/messages"))["messages"]
                    if m["key"] in (f"sale-{first}", f"sale-{second}")]
        ok = [t for t in traces if t["outcome"] == "ok"]

        def crossing(service: str, op: str, last: bool = False) -> str:
            matches = [t for t in ok if t["service_id"] == service and t["op"] == op]
            match = (matches[-1] if last else matches[0]) if matches else None
            if match is None:
                return "(not seen)"
            return (f"[trace #{match['id']}: {format_size(match['bytes_in'])} sealed in, "
                    f"{format_size(match['bytes_out'])} sealed out, {match['verification']['status']}]")

        trip = next((t for t in trips if t["sale_id"] == first), None)
        message = next((m for m in messages if m["key"] == f"sale-{first}"), None)
        self.heading(f"The flow for the first customer (sale {first}, $180.00)")
        steps = [
            f"the integration process asks the store for new sales; the store verifies the run certificate "
            f"against its policy and releases the sale, sealed to the compartment {crossing('store', 'read')}",
            f"inside the compartment: $180.00 is above ${THRESHOLD}, so a taxi is booked "
            f"(the launcher only saw ciphertext)",
            f"transport verifies the certificate and books trip {trip['id'] if trip else '?'}: taxi "
            f"{trip['taxi_number'] if trip else '?'} driven by {trip['driver_name'] if trip else '?'}, "
            f"{trip['eta_minutes'] if trip else '?'} min away {crossing('transport', 'write')}",
            f"the integration process messages the customer with the taxi and driver "
            f"(message {message['id'] if message else '?'}) {crossing('messaging', 'write')}",
            f"the customer answers: {message['reply'] if message else '?'} (simulated by the messaging service)",
            f"the integration process reads the acceptance {crossing('messaging', 'read', last=True)}",
        ]
        for i, text in enumerate(steps, 1):
            self.out.line(f"  {i}. {text}")
        self.heading(f"The second customer (sale {second}, $90.00)")
        booked = [t for t in trips if t["sale_id"] == second]
        sent = [m for m in messages if m["key"] == f"sale-{second}"]
        self.out.line(f"  at or below ${THRESHOLD}: no trip booked ({len(booked)}), no message sent ({len(sent)})")
        if trip is None or message is None or message["reply"] is None or booked or sent:
            raise RuntimeError("the services do not show the expected outcome of the flow")

    async def traces(self, client: Any, run_id: str) -> None:
        traces = (await client.call("traces.list", {"run_id": run_id, "limit": 1000}))["traces"]
        self.heading(f"The trace: every message the launcher carried for run {run_id[:12]} ({len(traces)} rows)")
        shown = traces if len(traces) <= 24 else traces[:12] + traces[-12:]
        self.out.lines(table(TRACE_HEADERS, (trace_row(t) for t in shown)))
        if len(traces) > len(shown):
            self.out.line(f"({len(traces) - len(shown)} rows in the middle omitted: attestables traces --run {run_id})")
        self.out.line("Each row is metadata and the digest of ciphertext: the launcher never held a key to open it.")

    def where(self, study: CaseStudy, *, running: bool) -> None:
        env = environment_summary(study)
        launcher = env["launcher"]
        self.heading("Where everything is")
        rows = [("launcher", f"{launcher['url']}  state {launcher['state_dir']}"),
                ("api token", launcher["token_file"])]
        rows += [(kind, f"{s['url']}  state {s['state_dir']}") for kind, s in env["services"].items()]
        rows.append(("logs", f"{env['logs']}/*.log"))
        self.out.lines(key_values(rows))
        if running:
            self.out.line("")
            self.out.line("Connect a console or a script:")
            self.out.line(f"  export ATTESTABLES_URL={launcher['url']}")
            self.out.line(f"  export ATTESTABLES_TOKEN=$(cat {launcher['token_file']})")
            self.out.line("  attestables console        # the operator console")
            self.out.line("  attestables traces --follow")
            self.out.line(f"  attestables attest {getattr(self, 'study_run_id', '')}")
            self.out.line("  python -c 'from attestables.shared.client import Client'  # the client library")
        sys.stdout.flush()
