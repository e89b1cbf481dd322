"""Builds: every build; start one; its live compile log; its diagnostics, each a jump to its line."""

from __future__ import annotations

from typing import Any

from attestables.shared.client import Event
from attestables.shared.terminal import printable
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, OptionList
from textual.widgets.option_list import Option

from ..actions import bindings
from ..dialogs import Field, FormScreen, positive_int
from ..format import clock, duration, short_id, state
from ..messages import LogLoaded
from ..records import Changes
from ..widgets.follow_log import FollowLog
from ..widgets.keyed_table import KeyedTable
from .base import Pane, contained, row_key

COLUMNS = [("id", "BUILD", 12), ("source", "SOURCE", 19), ("version", "V", 3), ("toolchain", "TOOLCHAIN", 15),
           ("flags", "FLAGS", 12), ("state", "STATE", 10), ("time", "TIME", 8), ("diagnostics", "DIAGNOSTICS", 12),
           ("created", "CREATED", 8)]
SEVERITY = {"error": ("E", "bold red"), "warning": ("W", "yellow"), "note": ("N", "cyan")}
MAX_EARLY = 5000


def diagnostics_summary(build: dict[str, Any]) -> Text:
    found = build.get("diagnostics") or []
    errors = sum(1 for d in found if d.get("severity") == "error")
    warnings = sum(1 for d in found if d.get("severity") == "warning")
    if not found:
        return Text("-", style="dim")
    text = Text()
    if errors:
        text.append(f"{errors} err", style="bold red")
    if warnings:
        text.append(" " if errors else "")
        text.append(f"{warnings} warn", style="yellow")
    return text if text.plain else Text(f"{len(found)} notes", style="cyan")


def log_line(item: dict[str, Any]) -> str:
    line = str(item.get("line", ""))
    return f"[daemon] {line}" if item.get("stream") == "daemon" else line


class BuildsPane(Pane):
    TAB = "builds"
    MAIN = "#builds-table"
    BINDINGS = bindings("builds")

    def __init__(self) -> None:
        super().__init__()
        self.log_for: str | None = None
        self.log_seq: int | None = None
        self.early: list[Event] = []
        self.select_when_seen: str | None = None
        self.diagnostics_for: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="builds-table")
        with Horizontal(id="builds-bottom", classes="frame"):
            yield FollowLog(id="build-log")
            yield OptionList(id="build-diagnostics")

    def on_mount(self) -> None:
        self.query_one("#builds-table").border_title = "Builds"
        self.query_one("#build-log").border_title = "compile log"
        self.query_one("#build-diagnostics").border_title = "diagnostics"
        self.refresh_view(Changes(kinds={"builds"}))

    # -- the table -------------------------------------------------------------------------

    def refresh_view(self, changes: Changes) -> None:
        if not self.is_mounted:
            return
        if "builds" in changes.kinds:
            table = self.query_one("#builds-table", KeyedTable)
            builds = self.records.builds.newest_first()
            table.sync([(b["build_id"], self._row(b)) for b in builds])
            table.border_subtitle = f"{len(builds)} builds"
            if self.select_when_seen and table.select_key(self.select_when_seen):
                self.select_when_seen = None
            if self.log_for in self.records.builds:
                self._show_diagnostics(self.records.builds[self.log_for])

    def streamed(self, changes: Changes) -> None:
        if changes.build_log and self.log_for is not None:
            mine = [e for e in changes.build_log if e.data.get("build_id") == self.log_for]
            if mine:
                self._append(mine)

    @staticmethod
    def _row(b: dict[str, Any]) -> tuple[Any, ...]:
        toolchain = b.get("toolchain")
        name = str(toolchain.get("name") or "-") if isinstance(toolchain, dict) else "-"
        flags = b.get("flags")
        shown = " ".join(str(flag) for flag in flags) if isinstance(flags, list) else ""
        return (short_id(b["build_id"]), str(b.get("source_name")), str(b.get("version")), name,
                shown or "-", state(b.get("state")), duration(b.get("duration_s")),
                diagnostics_summary(b), clock(b.get("created_at")))

    @on(DataTable.RowHighlighted, "#builds-table")
    @contained
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = row_key(event)
        if key is not None and key != self.log_for:
            self.show_build(key)

    # -- the log: the follow recipe over the app's one subscription -----------------------

    def show_build(self, build_id: str) -> None:
        self.log_for = build_id
        self.log_seq = None  # loading: live lines wait in self.early
        self.early = []
        log = self.query_one("#build-log", FollowLog)
        log.clear()
        log.border_title = f"compile log · {build_id}"
        if build_id in self.records.builds:
            self._show_diagnostics(self.records.builds[build_id])
        self.call("builds.logs", {"build_id": build_id},
                  done=lambda r: self.post_message(LogLoaded("build", build_id, r.get("lines", []),
                                                             int(r.get("seq") or 0), bool(r.get("truncated")))))

    @on(LogLoaded)
    @contained
    def _log_loaded(self, message: LogLoaded) -> None:
        if message.kind != "build" or message.object_id != self.log_for:
            return
        log = self.query_one("#build-log", FollowLog)
        lines = [log_line(item) for item in message.items]
        if message.truncated:
            lines.append("[console] the daemon kept only the start of this log")
        if not lines and self.records.builds.get(message.object_id, {}).get("state") in ("queued",):
            lines = ["[console] queued: waiting for a compile slot"]
        log.write_lines(lines)
        self.log_seq = message.seq
        early, self.early = self.early, []
        self._append(early)

    def _append(self, events: list[Event]) -> None:
        if self.log_seq is None:
            self.early.extend(events)
            del self.early[:-MAX_EARLY]
            return
        fresh = [log_line(e.data) for e in events if e.seq > self.log_seq]
        if fresh:
            self.log_seq = max(e.seq for e in events)
            self.query_one("#build-log", FollowLog).write_lines(fresh)

    # -- diagnostics ----------------------------------------------------------------------

    def _show_diagnostics(self, build: dict[str, Any]) -> None:
        found = build.get("diagnostics") or []
        marker = (build["build_id"], len(found), build.get("state"))
        if self.diagnostics_for == marker:
            return
        self.diagnostics_for = marker
        options = self.query_one("#build-diagnostics", OptionList)
        options.clear_options()
        for index, d in enumerate(found):
            letter, style = SEVERITY.get(str(d.get("severity")), ("?", ""))
            where = printable(f"{d.get('file') or '?'}:{d.get('line') or '?'}:{d.get('column') or '?'}")
            text = Text.assemble((letter, style), " ", (where, "bold"), " ", printable(str(d.get("message", ""))))
            if d.get("option"):
                text.append(printable(f" [{d['option']}]"), style="dim")
            options.add_option(Option(text, id=str(index)))
        if not found:
            text = "no diagnostics" if build.get("state") in ("succeeded", "failed", "cancelled") else "compiling…"
            options.add_option(Option(Text(text, style="dim"), disabled=True))
        options.border_subtitle = f"{len(found)}" if found else ""

    @on(OptionList.OptionSelected, "#build-diagnostics")
    @contained
    def _diagnostic_chosen(self, event: OptionList.OptionSelected) -> None:
        self._goto(event.option.id)

    def action_goto_diagnostic(self) -> None:
        options = self.query_one("#build-diagnostics", OptionList)
        if options.highlighted is None:
            options.highlighted = 0 if options.option_count else None
        option = options.get_option_at_index(options.highlighted) if options.highlighted is not None else None
        self._goto(option.id if option is not None else None)

    def _goto(self, option_id: str | None) -> None:
        build = self.records.builds.get(self.log_for or "")
        if not self.need(build and option_id is not None, "a diagnostic"):
            return
        assert build is not None and option_id is not None
        diagnostic = (build.get("diagnostics") or [])[int(option_id)]
        if diagnostic.get("file") not in (None, build.get("source_name")):
            self.notify(f"{diagnostic.get('file')} is not this build's source", severity="warning")
            return
        self.console.goto_source(build["source_id"], build.get("version"), diagnostic.get("line"))

    # -- actions --------------------------------------------------------------------------

    def action_follow(self) -> None:
        self.query_one("#build-log", FollowLog).follow()

    def action_start_build(self, source_id: str | None = None) -> None:
        sources = [s for s in self.records.sources.values() if str(s.get("name", "")).endswith(".c")]
        if not sources:
            self.notify("upload a .c source first (Sources tab)", severity="warning")
            return
        toolchains = [t for t in self.records.toolchains() if t.get("available")] or self.records.toolchains()
        chosen = source_id or next(iter(reversed(list(self.records.sources))), "")
        fields = [
            Field("source", "Source", value=chosen,
                  options=[(f"{s['name']} ({short_id(s['source_id'], 10)}, v{s['latest_version']})", s["source_id"])
                           for s in sorted(sources, key=lambda s: str(s["name"]))], required=True),
            Field("version", "Version", placeholder="latest", check=positive_int),
            Field("toolchain", "Toolchain", value="native",
                  options=[(f"{t['name']} ({t.get('abi')})", str(t["name"])) for t in toolchains], required=True),
            Field("flags", "Flags", placeholder="-O2 -g -DNAME=VALUE",
                  help="an optimisation level, -g, -DNAME[=VALUE]; the daemon refuses anything else"),
        ]

        def submitted(values: dict[str, str] | None) -> None:
            if not values:
                return
            params: dict[str, Any] = {"source_id": values["source"], "toolchain": values["toolchain"]}
            if values["version"]:
                params["version"] = int(values["version"])
            if values["flags"]:
                params["flags"] = values["flags"].split()
            self.call("builds.start", params, done=self._started)

        self.app.push_screen(FormScreen("Start a build", fields, submit="Build"), submitted)

    def _started(self, result: dict[str, Any]) -> None:
        build_id = result["build_id"]
        self.notify(f"build {build_id} queued", title="builds.start", timeout=4)
        self.select_when_seen = build_id
        if not self.query_one("#builds-table", KeyedTable).select_key(build_id):
            self.show_build(build_id)

    def action_run(self) -> None:
        build_id = self.selected(self.query_one("#builds-table"))
        if self.need(build_id, "a build"):
            self.console.start_run(build_id)

    def action_cancel(self) -> None:
        build_id = self.selected(self.query_one("#builds-table"))
        if not self.need(build_id, "a build"):
            return
        build = self.records.builds[build_id]
        if build.get("state") not in ("queued", "running"):
            self.notify(f"build {build_id} has already ended ({build.get('state')})", severity="warning")
            return
        self.confirm(f"Cancel build {build_id} of {build.get('source_name')}?", "The compiler is killed.",
                     lambda: self.call("builds.cancel", {"build_id": build_id},
                                       done=lambda r: self._cancelled(r)), yes="Cancel build")

    def _cancelled(self, record: dict[str, Any]) -> None:
        self.records.update("builds", record)
        self.refresh_view(Changes(kinds={"builds"}))
        self.notify(f"build {record['build_id']} is {record['state']}", title="builds.cancel", timeout=4)
