"""The status line: the state of the link to the daemon, always visible, and the event counts."""

from __future__ import annotations

import time

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from ..messages import CONNECTED, CONNECTING, ConnectionChanged


# The event count is redrawn at most this often: under a flood of events every batch
# would otherwise repaint the status line, a frame of its own between the tabs' redraws.
COUNT_REDRAW_S = 0.5


class ConnectionStatus(Static):
    """``● connected ws://… · daemon 0.1.0 · 1,234 events · 0 lost`` or what the link is doing."""

    # repaint=False: setting a count must not repaint by itself (every batch sets it);
    # the watchers decide when the line is drawn.
    events: reactive[int] = reactive(0, init=False, repaint=False)
    lost: reactive[int] = reactive(0, init=False, repaint=False)

    def __init__(self, url: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self.url = url
        self.state = CONNECTING
        self.line = Text(f"○ connecting to {url}", style="yellow")
        self._drawn_at = 0.0
        self._timer: object | None = None

    def show(self, change: ConnectionChanged) -> None:
        self.url = change.url
        self.state = change.state
        if change.state == CONNECTED:
            version = f" · daemon {change.server_version}" if change.server_version else ""
            self.line = Text.assemble(("● connected ", "bold green"), (f"{change.url}{version}", ""))
        elif change.state == CONNECTING:
            attempt = f" (attempt {change.attempt})" if change.attempt > 1 else ""
            self.line = Text(f"○ connecting to {change.url}{attempt}", style="yellow")
        else:
            retry = f"; retrying in {change.retry_in:.1f} s" if change.retry_in is not None else ""
            self.line = Text.assemble(("✕ disconnected ", "bold red"),
                                      (f"{change.detail or change.url}{retry}", "red"))
        self.set_class(change.state != CONNECTED, "-offline")
        self._draw()

    def watch_events(self) -> None:
        # A count: drawn now if the last drawing is old enough, else once, a little later.
        wait = COUNT_REDRAW_S - (time.monotonic() - self._drawn_at)
        if wait <= 0:
            self._draw()
        elif self._timer is None:
            self._timer = self.set_timer(wait, self._draw)

    @property
    def pending(self) -> bool:
        """A new count waits (at most COUNT_REDRAW_S) to be drawn."""
        return self._timer is not None

    def watch_lost(self) -> None:
        self._draw()  # losses are shown at once

    def _draw(self) -> None:
        self._timer = None
        self._drawn_at = time.monotonic()
        counts = Text(f" · {self.events:,} events", style="dim")
        if self.lost:
            counts.append(f" · {self.lost:,} lost", style="bold red")
        self.update(Text.assemble(self.line, counts), layout=False)
