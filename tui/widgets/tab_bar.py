"""The tab titles on one line and, beneath, a bar that underlines the open tab.

Textual's TabbedContent is some fifteen widgets (a Tabs with a Tab per title, an
Underline, their containers, a ContentSwitcher and a TabPane around every pane): on a tab
switch each of them restyles, lays out and repaints, and the containers repaint every
line of the area their children cover. Here the titles are two lines of one widget, made
once per change of the open tab, size or styles, and the panes are the screen's own
children (the app shows one at a time). A click on a title opens its tab.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

BAR = "━"
HALF_LEFT = "╺"
HALF_RIGHT = "╸"
MARGIN = 1  # cells before the first title


class TabBar(Widget):
    """Titles (``tabs``: (id, title) pairs) with the open one lit and underlined."""

    COMPONENT_CLASSES = {"tab-bar--tab", "tab-bar--hover", "tab-bar--active", "tab-bar--bar", "tab-bar--highlight"}
    DEFAULT_CSS = """
    TabBar {
        height: 2;
        pointer: pointer;
    }
    TabBar > .tab-bar--tab { color: $foreground 50%; }
    TabBar > .tab-bar--hover { color: $foreground; }
    TabBar > .tab-bar--active { color: $foreground; }
    TabBar > .tab-bar--bar { color: $foreground 10%; }
    TabBar > .tab-bar--highlight { color: $block-cursor-background; }
    TabBar:ansi > .tab-bar--tab { text-style: dim; }
    TabBar:ansi > .tab-bar--active { text-style: not dim bold; }
    TabBar:ansi > .tab-bar--bar { color: $border-blurred; }
    """

    class Clicked(Message):
        """A title was clicked: the app opens ``tab``."""

        def __init__(self, tab: str) -> None:
            super().__init__()
            self.tab = tab

    def __init__(self, tabs: Sequence[tuple[str, str]], active: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._titles = [(tab, f" {title} ") for tab, title in tabs]
        self._spans: dict[str, tuple[int, int]] = {}
        x = MARGIN
        for tab, label in self._titles:
            self._spans[tab] = (x, x + len(label))
            x += len(label)
        self._active = active
        self._hover: str | None = None  # the title under the mouse
        self._offset = 0  # cells the titles slid left (a terminal narrower than they are)
        self._drawn: tuple[tuple[int, Style, str, str | None], list[Strip]] | None = None

    @property
    def active(self) -> str:
        return self._active

    @active.setter
    def active(self, tab: str) -> None:
        if tab not in self._spans:
            raise ValueError(f"no tab {tab!r}")
        if tab != self._active:
            self._active = tab
            self.refresh()

    def span(self, tab: str) -> tuple[int, int]:
        """The cells ``tab``'s title covers (start, end)."""
        return self._spans[tab]

    def _lines(self) -> list[Strip]:
        width, base = self.size.width, self.rich_style
        key = (width, base, self._active, self._hover)
        if self._drawn is not None and self._drawn[0] == key:
            return self._drawn[1]
        style = {name: base + self.get_component_rich_style(f"tab-bar--{name}")
                 for name in ("tab", "hover", "active", "bar", "highlight")}

        def look(tab: str) -> str:
            return "active" if tab == self._active else "hover" if tab == self._hover else "tab"

        start, end = self._spans[self._active]
        # Narrower than the titles: they slide left far enough for the open one to show.
        self._offset = offset = max(0, end - width)
        full = max(width + offset, self._spans[self._titles[-1][0]][1])
        titles = Strip([Segment(" " * MARGIN, base), *(Segment(label, style[look(tab)]) for tab, label in self._titles)]
                       ).crop_extend(offset, offset + width, base)
        # As Textual's underline: half bars where the lit part meets the rest.
        bar = [Segment(BAR * max(0, start - 1), style["bar"])]
        if start > 0:
            bar.append(Segment(HALF_RIGHT, style["bar"]))
        bar.append(Segment(BAR * (end - start), style["highlight"]))
        if end < full:
            bar.append(Segment(HALF_LEFT, style["bar"]))
            bar.append(Segment(BAR * max(0, full - end - 1), style["bar"]))
        lines = [titles, Strip(bar).crop_extend(offset, offset + width, base)]
        self._drawn = (key, lines)
        return lines

    def render_line(self, y: int) -> Strip:
        lines = self._lines()
        return lines[y] if y < len(lines) else Strip.blank(self.size.width, self.rich_style)

    def tab_at(self, x: int) -> str | None:
        """The tab whose title is at column ``x`` of the bar, as drawn."""
        x += self._offset
        return next((tab for tab, (start, end) in self._spans.items() if start <= x < end), None)

    def _set_hover(self, tab: str | None) -> None:
        if tab != self._hover:
            self._hover = tab
            self.refresh()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._set_hover(self.tab_at(event.x) if event.y == 0 else None)

    def on_leave(self, event: events.Leave) -> None:
        self._set_hover(None)

    def on_click(self, event: events.Click) -> None:
        tab = self.tab_at(event.x)
        if tab is not None:
            self.post_message(self.Clicked(tab))
