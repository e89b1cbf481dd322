"""Trace: the live table of EAI messages (filtered by run, service, operation, status), the
chosen message's details, the sequence diagram of its run, and a latency sparkline."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Select, Sparkline, Static

from ..actions import bindings
from ..format import STATE_STYLES, clock, millis, short_id, size, state
from ..records import NO_VERDICT, Changes, Verdict
from ..widgets.ring_table import RingTable
from ..widgets.sequence import MAX_EXCHANGES, SequenceDiagram
from .base import Pane, contained

COLUMNS = [("id", "ID", 5), ("time", "TIME", 12), ("run", "RUN", 10), ("service", "SERVICE", 9), ("op", "OP", 5),
           ("in", "IN", 7), ("out", "OUT", 7), ("ms", "MS", 6), ("http", "HTTP", 4), ("outcome", "OUTCOME", 15),
           ("verification", "VERIFICATION", 15)]
# Rows the table holds (the newest that pass the filters); the rest stay in the records' ring.
TABLE_ROWS = 500
# The table is redrawn at most this often while messages stream in (seconds), and never
# sooner than REDRAW_FACTOR times the last redraw's cost after it: however fast messages
# arrive, keeping the table current takes a bounded share of the screen's time.
REDRAW_S = 0.2
REDRAW_FACTOR = 6
SPARK_POINTS = 120
MAX_RUN_OPTIONS = 50
FILTERS = (("run_id", "run"), ("service_id", "service"), ("op", "op"), ("outcome", "status"))
OUTCOMES = ("ok", "contraindicated", "replay", "bad_request", "too_large", "failed", "unknown_service",
            "unreachable", "timeout", "transport_error", "bad_answer", "answer_too_large")


def trace_row(t: Mapping[str, Any]) -> tuple[Any, ...]:
    verification: Verdict = t.get("verification", NO_VERDICT)
    return (str(t.get("id")), clock(t.get("ts"), millis=True), short_id(t.get("run_id"), 10), str(t.get("service_id")),
            str(t.get("op")), size(t.get("bytes_in")), size(t.get("bytes_out")), millis(t.get("latency_ms")),
            str(t.get("http_status") if t.get("http_status") is not None else "-"), state(t.get("outcome")),
            state(verification.status or "-"))


def detail_view(t: Mapping[str, Any]) -> Text:
    """One message's metadata, sizes, digests and verification, in at most 14 lines of 40 columns.

    Plain Text (no table): it is redrawn on every cursor move, and must stay cheap.
    """
    verification: Verdict = t.get("verification", NO_VERDICT)
    text = Text(no_wrap=True, overflow="ellipsis")

    def row(label: str, value: Any, style: str = "") -> None:
        text.append(f"{label:<11}", style="dim")
        text.append(str(value), style=style)
        text.append("\n")

    text.append(f"#{t.get('id')} {str(t.get('op', '')).upper()} {t.get('service_id')}", style="bold")
    text.append(f" · request {t.get('request_id')}\n", style="dim")
    ts = str(t.get("ts") or "-")
    row("time", f"{ts[:10]} {ts[11:23]}")
    row("run", t.get("run_id"))
    for direction, size_key, digest_key in (("in", "bytes_in", "sha256_in"), ("out", "bytes_out", "sha256_out")):
        digest = str(t.get(digest_key) or "-")
        row(f"sealed {direction}", f"{size(t.get(size_key))} · sha256")
        text.append(f"  {digest[:32]}\n  {digest[32:]}\n" if len(digest) > 32 else f"  {digest}\n", style="cyan")
    status = t.get("http_status")
    row("latency", f"{millis(t.get('latency_ms'))} ms · HTTP {status if status is not None else 'none'}")
    row("outcome", t.get("outcome"), STATE_STYLES.get(str(t.get("outcome")), ""))
    verdict = verification.status
    row("verified", verdict or "not reported", STATE_STYLES.get(str(verdict), ""))
    for reason in verification.reasons:
        text.append(f"  {reason.code}", style="bold")
        text.append(f": {reason.message}\n")
    text.rstrip()
    return text


class TracePane(Pane):
    TAB = "trace"
    MAIN = "#trace-table"
    BINDINGS = bindings("trace")

    def __init__(self) -> None:
        super().__init__()
        self.filters: dict[str, str | None] = {key: None for key, _ in FILTERS}
        self.options: dict[str, tuple[str, ...]] = {}
        self.pending = 0
        self.following = True
        self._last_draw = 0.0
        self._draw_cost = 0.0
        self._redraw_timer: Any = None
        self.detail_for: str | None = None
        self.shown_rows: dict[str, dict[str, Any]] = {}
        self.seen_runs: dict[str, None] = {}  # ordered: the runs the filter offers
        self.seen_services: set[str] = set()
        # Rows of the diagram's run that arrived since the last redraw.
        self.diagram_pending: deque[dict[str, Any]] = deque(maxlen=MAX_EXCHANGES)

    def compose(self) -> ComposeResult:
        with Horizontal(id="trace-top", classes="frame"):
            for key, label in FILTERS:
                yield Select([], prompt=f"any {label}", id=f"trace-filter-{key}", classes="trace-filter")
            with Vertical(id="trace-latency", classes="frame"):
                yield Static(id="trace-latency-label")
                yield Sparkline([], id="trace-sparkline")
        yield RingTable(COLUMNS, follow_tail=True, formatter=trace_row, id="trace-table")
        with Horizontal(id="trace-bottom", classes="frame"):
            yield Static(Text("choose a message", style="dim"), id="trace-detail")
            yield SequenceDiagram(id="trace-sequence")

    def on_mount(self) -> None:
        self.query_one("#trace-table").border_title = "Messages"
        self.query_one("#trace-detail").border_title = "message"
        self.query_one("#trace-sequence").border_title = "sequence"
        self.refresh_view(Changes(kinds={"traces", "services"}))

    # -- data ----------------------------------------------------------------------------

    def matches(self, t: Mapping[str, Any]) -> bool:
        for key, value in self.filters.items():
            if value is not None and t.get(key) != value:
                return False
        return True

    def matching_rows(self) -> list[dict[str, Any]]:
        """The newest rows that pass the filters, oldest first."""
        rows: list[dict[str, Any]] = []
        for t in reversed(self.records.traces):
            if self.matches(t):
                rows.append(t)
                if len(rows) >= TABLE_ROWS:
                    break
        rows.reverse()
        return rows

    def refresh_view(self, changes: Changes) -> None:
        if not self.is_mounted:
            return
        if "traces" in changes.kinds and not changes.traces and not self.seen_services:
            self._note_values(self.records.traces)  # a snapshot: rows that came without events
        if changes.kinds & {"traces", "services"}:
            self._update_options()
        if "traces" not in changes.kinds:
            return
        if changes.traces:
            run_id = self.query_one(SequenceDiagram).run_id
            if run_id is not None:
                self.diagram_pending.extend(t for t in changes.traces if t.get("run_id") == run_id)
            if not self.following:
                self.pending += sum(1 for t in changes.traces if self.matches(t))
        # Everything this tab draws from the stream is drawn together, at a bounded rate.
        self._schedule_redraw(immediate=not changes.traces)

    def shown(self) -> None:
        stale = bool(self._stale)
        super().shown()
        sequence = self.query_one(SequenceDiagram)
        if stale and sequence.run_id is not None:
            self._show_sequence(sequence.run_id)  # arrows skipped while hidden

    def _schedule_redraw(self, immediate: bool = False) -> None:
        wait = max(REDRAW_S, REDRAW_FACTOR * self._draw_cost) - (time.monotonic() - self._last_draw)
        if immediate or wait <= 0:
            self.redraw()
        elif self._redraw_timer is None:
            self._redraw_timer = self.set_timer(wait, self._timed_redraw)

    def _timed_redraw(self) -> None:
        # The stream's redraw waits while a key waits for its screen update.
        if not self.console.input_first.defer(self._timed_redraw):
            self.redraw()

    def redraw(self) -> None:
        """Bring the table, the sparkline and the diagram up to date with the records."""
        self._redraw_timer = None
        started = time.monotonic()
        try:
            self._redraw()
        finally:
            self._last_draw = time.monotonic()
            self._draw_cost = self._last_draw - started

    def _redraw(self) -> None:
        sequence = self.query_one(SequenceDiagram)
        if self.diagram_pending:
            pending, self.diagram_pending = list(self.diagram_pending), deque(maxlen=MAX_EXCHANGES)
            if sequence.run_id is not None:
                sequence.add([t for t in pending if t.get("run_id") == sequence.run_id])
        self._draw_state()
        if not self.following:
            return  # the table holds still while the user reads it
        rows = self.matching_rows()
        table = self.query_one("#trace-table", RingTable)
        self.shown_rows = {str(t["id"]): t for t in rows}
        # The table makes a row's cells (trace_row) only when it draws the row; kept rows are
        # the same records (the table compares by identity first) and keep their drawing.
        table.sync(list(self.shown_rows.items()))
        latencies = [float(t.get("latency_ms") or 0) for t in rows[-SPARK_POINTS:]]
        self.query_one("#trace-sparkline", Sparkline).data = latencies
        label = Text("latency ", style="dim")
        if latencies:
            label.append(f"p50 {statistics.median(latencies):.1f} ms · max {max(latencies):.1f} ms")
            label.append(f" · last {len(latencies)}", style="dim")
        self.query_one("#trace-latency-label", Static).update(label, layout=False)
        if sequence.run_id is None and rows:
            self._show_sequence(self.filters["run_id"] or str(rows[-1].get("run_id")))
        if not rows:
            self.query_one("#trace-detail", Static).update(Text("no messages match", style="dim"), layout=False)
            self.detail_for = None

    def _draw_state(self) -> None:
        table = self.query_one("#trace-table", RingTable)
        shown = ", ".join(f"{label} {self.filters[key]}" for key, label in FILTERS if self.filters[key])
        where = f"only {shown} · " if shown else ""
        if self.following:
            table.border_subtitle = f"{where}{self.records.trace_count:,} messages · following"
        else:
            table.border_subtitle = f"{where}paused · {self.pending:,} new · f follows"

    def streamed(self, changes: Changes) -> None:
        # Noted even while hidden, so that opening the tab need not scan the whole ring.
        self._note_values(changes.traces)

    def _note_values(self, traces: Iterable[Mapping[str, Any]]) -> None:
        for t in traces:
            self.seen_runs[str(t.get("run_id"))] = None
            self.seen_services.add(str(t.get("service_id")))
        while len(self.seen_runs) > MAX_RUN_OPTIONS:
            del self.seen_runs[next(iter(self.seen_runs))]

    def _update_options(self) -> None:
        """Offer each filter's values; a Select is only touched when its values change."""
        values: dict[str, Iterable[str]] = {
            "run_id": self.seen_runs,
            "service_id": sorted({*self.records.services, *self.seen_services}),
            "op": ("read", "write"),
            "outcome": OUTCOMES,
        }
        for key, _label in FILTERS:
            options = tuple(values[key])
            if self.options.get(key) == options:
                continue
            self.options[key] = options
            select = self.query_one(f"#trace-filter-{key}", Select)
            current = self.filters[key]
            with select.prevent(Select.Changed):
                select.set_options([(short_id(o) if key == "run_id" else o, o) for o in options])
                if current is not None and current in options:
                    select.value = current

    # -- the chosen message ---------------------------------------------------------------

    @on(RingTable.Highlighted, "#trace-table")
    @contained
    def _highlighted(self, event: RingTable.Highlighted) -> None:
        table = event.table
        if table.at_tail and not self.following:
            self.action_follow()
        elif not table.at_tail and self.following:
            # The user moved up: hold the table still and count what arrives.
            self.following = False
            self.pending = 0
            self._draw_state()
        key = event.key
        if key is None or key == self.detail_for:
            return
        self.detail_for = key
        row = self.shown_rows.get(key)
        if row is None:
            return
        # Fixed size: no layout pass on every cursor move.
        self.query_one("#trace-detail", Static).update(detail_view(row), layout=False)
        run_id = str(row.get("run_id"))
        if self.query_one(SequenceDiagram).run_id != run_id:
            self._show_sequence(run_id)

    def _show_sequence(self, run_id: str) -> None:
        self.diagram_pending.clear()
        rows = [t for t in self.records.traces if t.get("run_id") == run_id]
        self.query_one(SequenceDiagram).show(run_id, rows[-200:])

    # -- filters and actions --------------------------------------------------------------

    @on(Select.Changed, ".trace-filter")
    @contained
    def _filter_changed(self, event: Select.Changed) -> None:
        key = (event.select.id or "").removeprefix("trace-filter-")
        value = None if event.value is Select.NULL else str(event.value)
        if self.filters.get(key) == value:
            return
        self.filters[key] = value
        if key == "run_id" and value is not None:
            self._show_sequence(value)
        self.action_follow()

    def set_filter(self, key: str, value: str | None) -> None:
        select = self.query_one(f"#trace-filter-{key}", Select)
        if value is not None and value not in self.options.get(key, ()):
            self.options[key] = (*self.options.get(key, ()), value)
            with select.prevent(Select.Changed):
                select.set_options([(short_id(o) if key == "run_id" else o, o) for o in self.options[key]])
        with select.prevent(Select.Changed):
            if value is None:
                select.clear()
            else:
                select.value = value
        self.filters[key] = value
        if key == "run_id" and value is not None:
            self._show_sequence(value)
        self.action_follow()

    def action_filter(self) -> None:
        self.query_one("#trace-filter-run_id", Select).focus()

    def action_clear_filters(self) -> None:
        for key, _ in FILTERS:
            self.set_filter(key, None)

    def action_filter_run(self) -> None:
        key = self.selected(self.query_one("#trace-table"))
        row = self.shown_rows.get(key) if key else None
        if self.need(row, "a message"):
            assert row is not None
            self.set_filter("run_id", str(row["run_id"]))

    def action_follow(self) -> None:
        self.following = True
        self.pending = 0
        self.redraw()
        table = self.query_one("#trace-table", RingTable)
        if table.row_count:
            table.move_cursor(table.row_count - 1)
        self._draw_state()
