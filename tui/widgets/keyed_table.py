"""A DataTable kept equal to a list of keyed rows by diff, never by rebuilding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist


class KeyText(Text):
    """A row's first cell, which also knows the row's key (so rows can be sorted into place)."""

    def __init__(self, text: str, key: str, style: str = "") -> None:
        super().__init__(text, style=style, no_wrap=True, overflow="ellipsis")
        self.key = key


def cell(value: Any) -> Any:
    """Plain strings become Text: the table would otherwise parse each one as markup."""
    return Text(value, no_wrap=True, overflow="ellipsis") if isinstance(value, str) else value


Column = tuple[str, str, int | None]  # (key, label, width)


class KeyedTable(DataTable[Any]):
    """Rows are ``(key, cells)``; :meth:`sync` adds, updates and removes by key.

    Changed cells are updated in place, so the cursor, the scroll position and the
    untouched rows stay as they are; the cursor stays on the same record when rows
    are added above or removed around it. With ``follow_tail`` a cursor on the last
    row moves on to each new last row (a live list), until the user moves it up.
    """

    def __init__(self, columns: Sequence[Column], *, follow_tail: bool = False, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._columns_spec = list(columns)
        self._shown: dict[str, tuple[Any, ...]] = {}
        self.follow_tail = follow_tail

    def on_mount(self) -> None:
        for key, label, width in self._columns_spec:
            self.add_column(label, key=key, width=width)

    @property
    def cursor_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except RowDoesNotExist:
            return None

    def select_key(self, key: str) -> bool:
        """Move the cursor to the row with this key (False if there is none)."""
        if key not in self._shown:
            return False
        self.move_cursor(row=self.get_row_index(key), animate=False)
        return True

    def sync(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Show exactly ``rows``, in this order."""
        wanted: dict[str, tuple[Any, ...]] = {}
        for key, cells in rows:
            cells = tuple(cells)
            if cells:
                first = cells[0]
                head = KeyText(first.plain, key, str(first.style)) if isinstance(first, Text) else KeyText(str(first), key)
                wanted[key] = (head, *(cell(c) for c in cells[1:]))
            else:
                wanted[key] = cells
        shown = self._shown
        cursor = self.cursor_key
        at_tail = self.follow_tail and (cursor is None or self.cursor_row >= self.row_count - 1)
        gone = [key for key in shown if key not in wanted]
        if len(gone) > max(16, len(shown) // 2):
            # Most rows change (a new filter, a flood): one clear is cheaper than many removals.
            self.clear()
            shown.clear()
        else:
            for key in gone:
                self.remove_row(key)
                del shown[key]
        column_keys = [key for key, _, _ in self._columns_spec]
        added = False
        for key, cells in wanted.items():
            old = shown.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                added = True
            elif old != cells:
                for column, before, after in zip(column_keys, old, cells):
                    if before != after:
                        self.update_cell(key, column, after)
            shown[key] = cells
        if added and list(shown) != list(wanted):
            position = {key: index for index, key in enumerate(wanted)}
            self.sort(column_keys[0], key=lambda cell: position[cell.key])
            self._shown = {key: wanted[key] for key in wanted}
        if not self.row_count:
            return
        if at_tail:
            self.move_cursor(row=self.row_count - 1, animate=False)
        elif cursor is not None and cursor in self._shown:
            index = self.get_row_index(cursor)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)
