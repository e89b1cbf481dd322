"""A scrollable widget's virtual size, changed without a layout of the whole screen.

``Widget.virtual_size`` is a reactive with ``layout=True``: every change lays the whole
screen out again, which costs tens of milliseconds at 120x40 and, for a widget whose
content grows with a stream (the trace table, the sequence diagram), happens with every
batch of messages. The screen's layout does not depend on a widget's virtual size, only
its scrollbars do: this sets the size as Textual's own resize path does
(``Widget._size_updated(layout=False)``) and lets the scrollbars update themselves, which
lays out again only when a scrollbar appears or goes.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.widget import Widget


def set_virtual_size(widget: Widget, size: Size) -> None:
    if widget.virtual_size == size:
        return
    scroll_update = getattr(widget, "_scroll_update", None)
    if scroll_update is None or not widget.is_mounted:  # another Textual, or not on screen yet
        widget.virtual_size = size
        return
    widget.set_reactive(Widget.virtual_size, size)
    scroll_update(size)
    widget.refresh()
