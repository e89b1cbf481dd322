"""Services: the registered digital services, their keys and health; register and remove."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static

from ..actions import bindings
from ..dialogs import Field, FormScreen
from ..format import short_digest, when
from ..records import Changes
from ..widgets.keyed_table import KeyedTable
from .base import Pane, contained, row_key

COLUMNS = [("id", "SERVICE", 12), ("url", "URL", 26), ("key", "KEY SHA-256", 14), ("endpoints", "OFFERS", 11),
           ("tls", "TLS PIN", 12), ("health", "HEALTH", 9), ("updated", "UPDATED", 19)]
HEALTH_STYLES = {"ok": "green", "idle": "dim", "refusing": "yellow", "failing": "bold red"}
_FINGERPRINT = re.compile(r"^[0-9a-fA-F:]{64,95}$")


def pin_params(pin: str) -> dict[str, str]:
    """``tls_fingerprint`` for a SHA-256, else ``tls_ca_pem`` read from the PEM file named."""
    if _FINGERPRINT.match(pin) and len(pin.replace(":", "")) == 64:
        return {"tls_fingerprint": pin}
    path = Path(pin).expanduser()
    try:
        return {"tls_ca_pem": path.read_text(encoding="ascii")}
    except (OSError, UnicodeDecodeError) as exc:
        raise OSError(2, f"the TLS pin is neither a SHA-256 fingerprint nor a readable PEM file: {exc}") from None


class ServicesPane(Pane):
    TAB = "services"
    MAIN = "#services-table"
    BINDINGS = bindings("services")

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="services-table")
        with VerticalScroll(id="service-detail-scroll"):
            yield Static(id="service-detail")

    def on_mount(self) -> None:
        self.query_one("#services-table").border_title = "Services"
        self.query_one("#service-detail-scroll").border_title = "service"
        self.refresh_view(Changes(kinds={"services"}))

    def refresh_view(self, changes: Changes) -> None:
        if not self.is_mounted or not changes.kinds & {"services", "traces"}:
            return
        table = self.query_one("#services-table", KeyedTable)
        rows = []
        for service_id in sorted(self.records.services):
            s = self.records.services[service_id]
            word, _ = self.records.service_health(service_id)
            tls = "CA PEM" if s.get("tls") == "ca_pem" else short_digest(s.get("tls_fingerprint"), 12)
            rows.append((service_id, (service_id, str(s.get("url")), short_digest(s.get("public_key_sha256")),
                                      " ".join(sorted((s.get("endpoints") or {}).keys())) or "-", tls,
                                      Text(word, style=HEALTH_STYLES.get(word, "")), when(s.get("updated_at")))))
        table.sync(rows)
        table.border_subtitle = f"{len(rows)} registered"
        self._detail(table.cursor_key)

    @on(DataTable.RowHighlighted, "#services-table")
    @contained
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(row_key(event))

    def _detail(self, service_id: str | None) -> None:
        s = self.records.services.get(service_id or "")
        if s is None:
            self.query_one("#service-detail", Static).update(Text("no service chosen", style="dim"))
            return
        word, detail = self.records.service_health(s["service_id"])
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row("service", str(s["service_id"]))
        grid.add_row("url", str(s.get("url")))
        grid.add_row("sealing key", f"{s.get('public_key')} (X25519)")
        grid.add_row("key SHA-256", str(s.get("public_key_sha256")))
        for op, path in sorted((s.get("endpoints") or {}).items()):
            grid.add_row(op, str(path))
        pin = "its CA certificate (PEM)" if s.get("tls") == "ca_pem" else f"fingerprint {s.get('tls_fingerprint')}"
        grid.add_row("TLS pinned by", pin)
        grid.add_row("health", Text.assemble((word, HEALTH_STYLES.get(word, "")), f" · {detail}"))
        grid.add_row("registered", f"{when(s.get('created_at'))} · updated {when(s.get('updated_at'))}")
        self.query_one("#service-detail", Static).update(grid)

    def refresh_list(self) -> None:
        def listed(result: dict[str, Any]) -> None:
            self.records.services = {s["service_id"]: s for s in result["services"]}
            self.refresh_view(Changes(kinds={"services"}))
            self.console.refresh_tab("overview", {"services"})

        self.call("services.list", done=listed)

    def action_register(self) -> None:
        def submitted(values: dict[str, str] | None) -> None:
            if not values:
                return

            def task() -> dict[str, Any]:
                return {"service_id": values["service_id"], "url": values["url"], **pin_params(values["pin"])}

            self.run_task(task, name="read TLS pin", thread=True,
                          done=lambda params: self.call("services.register", params,
                                                        success=f"registered {values['service_id']}",
                                                        done=lambda _: self.refresh_list()))

        self.app.push_screen(FormScreen("Register a digital service", [
            Field("service_id", "Service id", placeholder="store", required=True),
            Field("url", "URL", placeholder="https://127.0.0.1:8443", required=True),
            Field("pin", "TLS pin", placeholder="SHA-256 fingerprint, or path/to/service-ca.pem", required=True,
                  help="the daemon checks the service's TLS certificate against it"),
        ], submit="Register"), submitted)

    def action_remove(self) -> None:
        service_id = self.selected(self.query_one("#services-table"))
        if not self.need(service_id, "a service"):
            return
        self.confirm(f"Remove service {service_id}?",
                     "Runs already started keep its key, but their requests to it are answered UNKNOWN_SERVICE.",
                     lambda: self.call("services.remove", {"service_id": service_id},
                                       success=f"removed {service_id}", done=lambda _: self.refresh_list()),
                     yes="Remove")
