"""A table for a stream of rows: only the visible rows are drawn, each once per width.

The live message trace can take thousands of rows a second. A DataTable measures every
cell of every row it is given, which at that rate is most of the screen's time; this
table keeps the rows it shows as an ordered list of ``(key, value)`` and draws a row
when it scrolls into view, caching it by its key. A value is the row's cells, or, with a
``formatter``, the record they are made from: then cells are made only for the rows
drawn (a few dozen), not for every row the table holds (hundreds, replaced several
times a second under a flood). :meth:`RingTable.sync` is a keyed diff: rows whose key
stays keep their drawing, new keys are drawn when seen, gone keys are dropped. Columns have fixed widths. The cursor stays on its row as rows come and go;
with ``follow_tail`` a cursor on the last row follows each new last row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from .scrolling import set_virtual_size

Column = tuple[str, str, int]  # (key, label, width)


class RingTable(ScrollView, can_focus=True):
    """Rows ``(key, cells)``; cells are str or Text; a header line stays on top."""

    COMPONENT_CLASSES = {"ring-table--header", "ring-table--cursor"}
    DEFAULT_CSS = """
    RingTable > .ring-table--header { text-style: bold; background: $panel; }
    RingTable > .ring-table--cursor { background: $accent 40%; }
    RingTable:focus > .ring-table--cursor { background: $accent; color: $text; }
    """
    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
    ]

    cursor: reactive[int] = reactive(-1, init=False)

    class Highlighted(Message):
        """The cursor is on another row."""

        def __init__(self, table: RingTable, key: str | None, index: int) -> None:
            super().__init__()
            self.table = table
            self.key = key
            self.index = index

        @property
        def control(self) -> RingTable:
            return self.table

    def __init__(self, columns: Sequence[Column], *, follow_tail: bool = True,
                 formatter: Callable[[Any], Sequence[Any]] | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns = list(columns)
        self.follow_tail = follow_tail
        self.formatter = formatter
        self._keys: list[str] = []
        self._cells: dict[str, Any] = {}  # key -> cells, or the record the formatter makes them from
        self._index: dict[str, int] = {}
        self._strips: dict[str, Strip] = {}
        self._strip_width = -1
        self._strip_base: Style | None = None  # the widget's style the rows were drawn in
        self._header: tuple[tuple[int, Style], Strip] | None = None
        self._highlighted: str | None = None

    # -- rows -----------------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def cursor_key(self) -> str | None:
        return self._keys[self.cursor] if 0 <= self.cursor < len(self._keys) else None

    @property
    def at_tail(self) -> bool:
        return not self._keys or self.cursor >= len(self._keys) - 1

    def row(self, key: str) -> tuple[Any, ...] | None:
        """The cells of the row ``key`` (made by the formatter if there is one)."""
        value = self._cells.get(key)
        if value is None or self.formatter is None:
            return value
        return tuple(self.formatter(value))

    def sync(self, rows: Sequence[tuple[str, Any]]) -> None:
        """Show exactly ``rows`` (``(key, cells)``, or ``(key, record)`` with a formatter), in this order."""
        was_key = self.cursor_key
        follow = self.follow_tail and self.at_tail
        if self.formatter is None:
            cells = {key: values if isinstance(values, tuple) else tuple(values) for key, values in rows}
        else:
            cells = dict(rows)
        old = self._cells
        changed = [key for key, values in cells.items()
                   if (before := old.get(key, values)) is not values and before != values]
        for key in changed:
            self._strips.pop(key, None)
        for key in [key for key in self._strips if key not in cells]:
            del self._strips[key]
        self._keys = list(cells)
        self._cells = cells
        self._index = {key: index for index, key in enumerate(self._keys)}
        set_virtual_size(self, Size(self._width(), len(self._keys) + 1))
        if not self._keys:
            self._set_cursor(-1)
        elif follow:
            self._set_cursor(len(self._keys) - 1)
        elif was_key is not None and was_key in self._index:
            self._set_cursor(self._index[was_key], scroll=False)
        else:
            self._set_cursor(min(max(self.cursor, 0), len(self._keys) - 1))
        self.refresh()

    def select_key(self, key: str) -> bool:
        index = self._index.get(key)
        if index is None:
            return False
        self._set_cursor(index)
        return True

    def move_cursor(self, row: int) -> None:
        if self._keys:
            self._set_cursor(max(0, min(row, len(self._keys) - 1)))

    # -- cursor and scrolling ---------------------------------------------------------------

    def _set_cursor(self, index: int, scroll: bool = True) -> None:
        self.cursor = index
        if scroll and index >= 0:
            self._scroll_to_cursor()
        key = self.cursor_key
        if key != self._highlighted:
            self._highlighted = key
            self.post_message(self.Highlighted(self, key, index))

    def watch_cursor(self) -> None:
        self.refresh()

    def _body_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        top = int(self.scroll_y)
        height = self._body_height()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True, force=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True, force=True)

    def action_move(self, step: int) -> None:
        if self._keys:
            self._set_cursor(max(0, min(self.cursor + step, len(self._keys) - 1)))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * self._body_height())

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._keys) - 1)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y == 0:
            return
        index = int(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self._keys):
            self._set_cursor(index)

    # -- drawing ------------------------------------------------------------------------

    def _width(self) -> int:
        # A space either side of each cell, none after the last: at 120 columns the trace
        # table then fits without a horizontal scrollbar.
        return sum(width + 2 for _, _, width in self.columns) - 1

    def on_resize(self) -> None:
        # The rows drawn stay drawn (render_line redraws them if the width or the style
        # changed): a tab switch hides and shows the table, which resizes it twice.
        self.virtual_size = Size(self._width(), len(self._keys) + 1)

    def _line(self, cells: Sequence[Any]) -> Text:
        line = Text(no_wrap=True, end="")
        for (_, _, width), value in zip(self.columns, cells):
            text = value.copy() if isinstance(value, Text) else Text(str(value))
            text.truncate(width, overflow="ellipsis", pad=True)
            line.append(" ")
            line.append_text(text)
            line.append(" ")
        line.right_crop(1)
        return line

    def _strip(self, text: Text, width: int, style: Style) -> Strip:
        segments = [s for s in text.render(self.app.console) if s.text != "\n"]
        return Strip(segments).crop_extend(0, width, style).apply_style(style).simplify()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        scroll_x, scroll_y = int(self.scroll_x), int(self.scroll_y)
        if y == 0:
            style = base + self.get_component_rich_style("ring-table--header")
            if self._header is None or self._header[0] != (scroll_x + width, style):
                header = self._line([label for _, label, _ in self.columns])
                self._header = ((scroll_x + width, style), self._strip(header, scroll_x + width, style))
            return self._header[1].crop(scroll_x, scroll_x + width)
        index = scroll_y + y - 1
        if index >= len(self._keys):
            return Strip.blank(width, base)
        key = self._keys[index]
        if width != self._strip_width or base != self._strip_base:
            self._strips.clear()
            self._strip_width, self._strip_base = width, base
        strip = self._strips.get(key)
        if strip is None:
            value = self._cells[key]
            cells = self.formatter(value) if self.formatter is not None else value
            strip = self._strip(self._line(cells), max(width, self._width()), base)
            if len(self._strips) > 4 * max(64, self.size.height):
                self._strips.clear()  # bounded: only rows recently on screen are kept
            self._strips[key] = strip
        if index == self.cursor:
            cursor = self.get_component_rich_style("ring-table--cursor")
            strip = Strip([Segment(s.text, (s.style or Style()) + cursor if s.style else cursor, s.control)
                           for s in strip])
        return strip.crop(scroll_x, scroll_x + width)
