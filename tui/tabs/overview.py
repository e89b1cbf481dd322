"""Overview: what the daemon is and runs on, what it holds, and whether all is well."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Static

from ..actions import bindings
from ..format import size, when
from ..messages import CONNECTED
from ..records import Changes
from .base import Pane

OK, WARN, BAD = "●", "▲", "✕"
MARK_STYLES = {OK: "green", WARN: "yellow", BAD: "bold red"}


def _grid() -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    return table


class OverviewPane(Pane):
    TAB = "overview"
    MAIN = "#overview-health"
    BINDINGS = bindings("overview")

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, Any] = {}  # per panel: what it shows (for the panels redrawn often)

    def compose(self) -> ComposeResult:
        with Grid(id="overview-grid", classes="frame"):
            yield Static(id="overview-daemon", classes="panel")
            yield Static(id="overview-counts", classes="panel")
            yield Static(id="overview-health", classes="panel")
            yield Static(id="overview-toolchains", classes="panel wide")
            yield Static(id="overview-backends", classes="panel")
            yield Static(id="overview-ca", classes="panel full")

    def on_mount(self) -> None:
        titles = {"daemon": "Daemon", "counts": "Counts", "health": "Health", "toolchains": "Toolchains",
                  "backends": "Compartment backends", "ca": "Certificate authority"}
        for key, title in titles.items():
            self.query_one(f"#overview-{key}", Static).border_title = title
        self.query_one("#overview-health", Static).can_focus = True
        self.refresh_view(Changes(kinds={"info", "ca"}))

    def refresh_view(self, changes: Changes) -> None:
        if not self.is_mounted:
            return
        kinds = changes.kinds
        if kinds & {"info"}:
            self._daemon()
            self._toolchains()
            self._backends()
        if kinds & {"ca"}:
            self._ca()
        self._counts()
        self._health()

    def connection_changed(self) -> None:
        if self.is_mounted:
            self._health()

    def _daemon(self) -> None:
        info = self.records.info
        grid = _grid()
        if info is None:
            grid.add_row("", "waiting for the daemon")
        else:
            platform = info.get("platform") or {}
            grid.add_row("version", str(info.get("version")))
            grid.add_row("API schema", f"{info.get('schema_version')} (database {info.get('db_schema_version')})")
            grid.add_row("platform", f"{platform.get('os')} {platform.get('release')} {platform.get('machine')}")
            grid.add_row("cpu", f"{platform.get('cpu_model')} × {platform.get('cpu_count')}")
            grid.add_row("memory", size(platform.get("memory_bytes")))
            grid.add_row("CHERI", "yes" if platform.get("cheri") else "no (no capability protection is claimed)")
            grid.add_row("state dir", str(info.get("state_dir")))
        self._show("#overview-daemon", grid)

    def _toolchains(self) -> None:
        table = Table(box=None, padding=(0, 1), expand=True, header_style="bold")
        for column in ("toolchain", "abi", "available", "compiler"):
            table.add_column(column, no_wrap=column != "compiler", overflow="ellipsis")
        for t in self.records.toolchains():
            available = Text("yes", style="green") if t.get("available") else Text("no", style="dim")
            compiler = t.get("version") or t.get("compiler") or "-"
            table.add_row(str(t.get("name")), str(t.get("abi")), available, str(compiler))
        self._show("#overview-toolchains", table)

    def _backends(self) -> None:
        info = self.records.info or {}
        table = Table(box=None, padding=(0, 1), expand=True, header_style="bold")
        for column in ("backend", "available", "isolation"):
            table.add_column(column, no_wrap=column != "isolation", overflow="ellipsis")
        for b in self.records.backends():
            iso = b.get("isolation") or {}
            name = str(b.get("name")) + (" (default)" if b.get("name") == info.get("default_backend") else "")
            if b.get("available"):
                detail = f"network {iso.get('network')}, files {str(iso.get('filesystem')).split(',')[0]}"
                available = Text("yes", style="green")
            else:
                detail = str(b.get("reason") or "unavailable")
                available = Text("no", style="dim")
            table.add_row(name, available, detail)
        self._show("#overview-backends", table)

    def _ca(self) -> None:
        ca = self.records.ca
        grid = _grid()
        if ca is None:
            grid.add_row("", "waiting for the daemon")
        else:
            prints = ca.get("fingerprints") or {}
            grid.add_row("root SHA-256", str(prints.get("root")))
            grid.add_row("issuing SHA-256", str(prints.get("issuing")))
            grid.add_row("root held by", "the operator's own CA" if ca.get("operator_root") else "this launcher")
            grid.add_row("CRL", f"{ca.get('revoked', 0)} revoked · next update {when(ca.get('crl_next_update'))}")
        self._show("#overview-ca", grid)

    def _counts(self) -> None:
        r = self.records
        active = sum(1 for run in r.runs.values() if run.get("state") in ("pending", "starting", "running"))
        revoked = sum(1 for c in r.certs.values() if c.get("revoked"))

        def more(n: int, bounded: Any) -> str:
            return f"{n:,}+" if getattr(bounded, "forgotten", 0) else f"{n:,}"

        rows = (("sources", f"{len(r.sources):,}"), ("builds", more(len(r.builds), r.builds)),
                ("runs", f"{more(len(r.runs), r.runs)} · {active} active"),
                ("certificates", f"{more(len(r.certs), r.certs)} · {revoked} revoked"),
                ("services", f"{len(r.services):,}"), ("traces", f"{r.trace_count:,}"))
        if rows == self._shown.get("#overview-counts"):
            return
        grid = _grid()
        for row in rows:
            grid.add_row(*row)
        self._show("#overview-counts", grid, key=rows)

    def checks(self) -> list[tuple[str, str]]:
        """The health checks: (mark, text), worst first."""
        r = self.records
        app = self.console
        checks: list[tuple[str, str]] = []
        if app.connection_state == CONNECTED:
            checks.append((OK, "connected to the daemon"))
        else:
            checks.append((BAD, f"not connected: {app.connection_detail or app.connection_state}"))
        if r.info is not None:
            available = [t["name"] for t in r.toolchains() if t.get("available")]
            checks.append((OK, f"toolchains: {', '.join(available)}") if available
                          else (BAD, "no toolchain is available: nothing can be built"))
            default = r.info.get("default_backend")
            backend = next((b for b in r.backends() if b.get("name") == default), None)
            if backend is not None and backend.get("available"):
                checks.append((OK, f"default backend {default} is available"))
            else:
                checks.append((BAD, f"default backend {default} is unavailable"))
        if r.ca is not None and r.ca.get("crl_next_update"):
            next_update = _parse_time(r.ca["crl_next_update"])
            now = app.clock()
            if next_update is not None and next_update < now:
                checks.append((BAD, "the CRL has expired: services may refuse every run"))
            elif next_update is not None and next_update - now < 86400:
                checks.append((WARN, "the CRL expires within a day"))
            else:
                checks.append((OK, "the CRL is current"))
        if r.loaded:
            if not r.services:
                checks.append((WARN, "no service is registered"))
            for service_id in sorted(r.services):
                word, detail = r.service_health(service_id)
                if word in ("failing", "refusing"):
                    checks.append((WARN, f"service {service_id} is {word}: {detail}"))
            if r.services and not any(r.service_health(s)[0] in ("failing", "refusing") for s in r.services):
                checks.append((OK, f"{len(r.services)} services, none failing"))
        if r.lost:
            checks.append((WARN, f"{r.lost:,} events were lost on the way (views were re-read)"))
        order = {BAD: 0, WARN: 1, OK: 2}
        return sorted(checks, key=lambda c: order[c[0]])

    def _health(self) -> None:
        checks = self.checks()
        if checks == self._shown.get("#overview-health"):
            return
        text = Text()
        for index, (mark, line) in enumerate(checks):
            if index:
                text.append("\n")
            text.append(f"{mark} ", style=MARK_STYLES[mark])
            text.append(line)
        self._show("#overview-health", text, key=checks)

    def _show(self, selector: str, renderable: Any, key: Any = None) -> None:
        # Every panel has a fixed place and size in the grid (console.tcss): a new content
        # needs a repaint of that panel, never a layout of the screen. The counts and the
        # health change with every batch of events: they are redrawn only when different.
        self._shown[selector] = key
        self.query_one(selector, Static).update(renderable, layout=False)


def _parse_time(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return None
