"""Runs: compartment processes and their live state; start one; its live output; stop it."""

from __future__ import annotations

import shlex
from typing import Any

from attestables.shared.client import Event
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable

from ..actions import bindings
from ..dialogs import Field, FormScreen, positive_int
from ..format import clock, run_exit, short_id, state
from ..messages import LogLoaded
from ..records import Changes
from ..widgets.follow_log import FollowLog
from ..widgets.keyed_table import KeyedTable
from .base import Pane, contained, row_key

COLUMNS = [("id", "RUN", 12), ("build", "BUILD", 12), ("program", "PROGRAM", 18), ("backend", "BACKEND", 7),
           ("state", "STATE", 8), ("pid", "PID", 7), ("exit", "EXIT", 5), ("reason", "REASON", 13),
           ("cert", "CERT", 8), ("started", "STARTED", 8)]
ACTIVE = ("pending", "starting", "running")
LIMITS = (("cpu_s", "CPU seconds"), ("memory_mb", "Memory (MiB)"), ("wall_s", "Wall clock (s)"),
          ("output_kb", "Output (KiB)"))
MAX_EARLY = 5000


def chunk_text(item: dict[str, Any]) -> str:
    data = str(item.get("data", ""))
    return f"[daemon] {data}" if item.get("stream") == "daemon" else data


class RunsPane(Pane):
    TAB = "runs"
    MAIN = "#runs-table"
    BINDINGS = bindings("runs")

    def __init__(self) -> None:
        super().__init__()
        self.output_for: str | None = None
        self.output_seq: int | None = None
        self.early: list[Event] = []
        self.select_when_seen: str | None = None

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="runs-table")
        yield FollowLog(id="run-output")

    def on_mount(self) -> None:
        self.query_one("#runs-table").border_title = "Runs"
        self.query_one("#run-output").border_title = "output"
        self.refresh_view(Changes(kinds={"runs"}))

    def refresh_view(self, changes: Changes) -> None:
        if not self.is_mounted:
            return
        if changes.kinds & {"runs", "certs", "builds"}:
            table = self.query_one("#runs-table", KeyedTable)
            runs = self.records.runs.newest_first()
            table.sync([(r["run_id"], self._row(r)) for r in runs])
            active = sum(1 for r in runs if r.get("state") in ACTIVE)
            table.border_subtitle = f"{len(runs)} runs · {active} active"
            if self.select_when_seen and table.select_key(self.select_when_seen):
                self.select_when_seen = None

    def streamed(self, changes: Changes) -> None:
        if changes.run_output and self.output_for is not None:
            mine = [e for e in changes.run_output if e.data.get("run_id") == self.output_for]
            if mine:
                self._append(mine)

    def _row(self, r: dict[str, Any]) -> tuple[Any, ...]:
        build_id = r.get("build_id")
        build = (self.records.builds.get(build_id) if isinstance(build_id, str) else None) or {}
        cert = self.records.certs.get(r["run_id"])
        cert_word = "-" if cert is None else ("revoked" if cert.get("revoked") else "issued")
        return (short_id(r["run_id"]), short_id(r.get("build_id")), str(build.get("source_name") or "-"),
                str(r.get("backend")), state(r.get("state")), str(r.get("pid") or "-"), run_exit(r),
                str(r.get("reason") or "-"), state(cert_word), clock(r.get("started_at") or r.get("created_at")))

    @on(DataTable.RowHighlighted, "#runs-table")
    @contained
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = row_key(event)
        if key is not None and key != self.output_for:
            self.show_run(key)

    def show_run(self, run_id: str) -> None:
        self.output_for = run_id
        self.output_seq = None
        self.early = []
        log = self.query_one("#run-output", FollowLog)
        log.clear()
        log.border_title = f"output · {run_id}"
        self.call("runs.logs", {"run_id": run_id},
                  done=lambda r: self.post_message(LogLoaded("run", run_id, r.get("chunks", []),
                                                             int(r.get("seq") or 0), bool(r.get("truncated")))))

    @on(LogLoaded)
    @contained
    def _output_loaded(self, message: LogLoaded) -> None:
        if message.kind != "run" or message.object_id != self.output_for:
            return
        log = self.query_one("#run-output", FollowLog)
        log.write_text("".join(chunk_text(c) for c in message.items))
        if message.truncated:
            log.write_text("\n[console] the run was killed at its output limit\n")
        self.output_seq = message.seq
        early, self.early = self.early, []
        self._append(early)

    def _append(self, events: list[Event]) -> None:
        if self.output_seq is None:
            self.early.extend(events)
            del self.early[:-MAX_EARLY]
            return
        fresh = [e for e in events if e.seq > self.output_seq]
        if fresh:
            self.output_seq = max(e.seq for e in fresh)
            self.query_one("#run-output", FollowLog).write_text("".join(chunk_text(e.data) for e in fresh))

    # -- actions --------------------------------------------------------------------------

    def action_follow(self) -> None:
        self.query_one("#run-output", FollowLog).follow()

    def action_start_run(self, build_id: str | None = None) -> None:
        builds = [b for b in self.records.builds.newest_first() if b.get("state") == "succeeded"]
        if not builds:
            self.notify("no build has succeeded yet (Builds tab)", severity="warning")
            return
        info = self.records.info or {}
        backends = [b for b in self.records.backends() if b.get("available")]
        defaults = (info.get("limits") or {}).get("default") or {}
        fields = [
            Field("build", "Build", value=build_id or builds[0]["build_id"], required=True,
                  options=[(f"{b.get('source_name')} v{b.get('version')} · {short_id(b['build_id'])}", b["build_id"])
                           for b in builds]),
            Field("backend", "Backend", value=str(info.get("default_backend") or ""), required=True,
                  options=[(str(b["name"]), str(b["name"])) for b in backends]),
            *(Field(key, label, placeholder=f"{defaults.get(key, '')} (default)", check=positive_int)
              for key, label in LIMITS),
            Field("args", "Arguments", placeholder="--interval 1", help="split like a shell would"),
        ]

        def submitted(values: dict[str, str] | None) -> None:
            if not values:
                return
            try:
                args = shlex.split(values["args"])
            except ValueError as exc:
                self.notify(f"arguments: {exc}", severity="error")
                return
            params: dict[str, Any] = {"build_id": values["build"], "backend": values["backend"], "args": args}
            limits = {key: int(values[key]) for key, _ in LIMITS if values[key]}
            if limits:
                params["limits"] = limits
            self.call("runs.start", params, done=self._started)

        self.app.push_screen(FormScreen("Start a run", fields, submit="Run"), submitted)

    def _started(self, result: dict[str, Any]) -> None:
        run_id = result["run_id"]
        self.notify(f"run {run_id} started", title="runs.start", timeout=4)
        self.select_when_seen = run_id
        if not self.query_one("#runs-table", KeyedTable).select_key(run_id):
            self.show_run(run_id)

    def _selected_run(self) -> dict[str, Any] | None:
        run_id = self.selected(self.query_one("#runs-table"))
        return self.records.runs.get(run_id) if run_id else None

    def action_stop(self) -> None:
        run = self._selected_run()
        if not self.need(run, "a run"):
            return
        assert run is not None
        if run.get("state") not in ACTIVE:
            self.notify(f"run {run['run_id']} has already ended ({run.get('state')})", severity="warning")
            return
        self.confirm(f"Stop run {run['run_id']}?", "SIGTERM, then SIGKILL after the grace period.",
                     lambda: self.call("runs.stop", {"run_id": run["run_id"]}, done=self._stopped), yes="Stop")

    def _stopped(self, record: dict[str, Any]) -> None:
        self.records.update("runs", record)
        self.refresh_view(Changes(kinds={"runs"}))
        self.notify(f"run {record['run_id']} is {record['state']} ({record.get('reason')})", title="runs.stop",
                    timeout=4)

    def action_attestation(self) -> None:
        run = self._selected_run()
        if self.need(run, "a run"):
            assert run is not None
            self.console.show_attestation(run["run_id"])

    def action_trace(self) -> None:
        run = self._selected_run()
        if self.need(run, "a run"):
            assert run is not None
            self.console.show_trace(run["run_id"])
