"""The footer: the keys of the focused tab and the app, with their labels, in one line.

Textual's Footer mounts a widget per key and rebuilds them whenever the focus moves,
which costs a layout pass on every tab switch. This bar draws the same information as
one line and only repaints: clicking a key presses it, and hovering over a key shows
that binding's tooltip. The line is made once per change of the bindings, size or
styles, as segments in the bar's own component styles (a `Content` with theme variables
cost ~1 ms to render on each repaint here).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget


@dataclass(frozen=True)
class _Key:
    start: int
    end: int
    key: str
    tooltip: str
    enabled: bool


class KeyBar(Widget):
    COMPONENT_CLASSES = {"key-bar--key", "key-bar--disabled"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    KeyBar > .key-bar--key { text-style: bold; color: $footer-key-foreground; }
    KeyBar > .key-bar--disabled { text-style: dim; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._keys: list[_Key] = []
        self._parts: list[tuple[str, str]] = []  # (text, "key" | "disabled" | "")
        self._drawn: tuple[tuple[int, Style], Strip] | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.call_after_refresh(self._bindings_changed, self.screen)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if not self.is_attached or screen is not self.screen:
            return
        parts: list[tuple[str, str]] = []
        width = 0
        keys: list[_Key] = []
        seen: set[str] = set()
        palette: Binding | None = None

        def add(text: str, style: str) -> None:
            nonlocal width
            parts.append((text, style))
            width += len(text)

        for _node, binding, enabled, tooltip in screen.active_bindings.values():
            if binding.key == self.app.COMMAND_PALETTE_BINDING:
                palette = binding
                continue
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            start = width
            add(f" {self.app.get_key_display(binding)} ", "key" if enabled else "disabled")
            add(f"{binding.description} ", "" if enabled else "disabled")
            keys.append(_Key(start, width, binding.key, tooltip or binding.tooltip or binding.description,
                             enabled))
        if palette is not None:
            label = f" {self.app.get_key_display(palette)} palette "
            add(" " * max(1, self.size.width - width - len(label)), "")
            start = width
            add(label, "key")
            keys.append(_Key(start, width, palette.key, "Search every action", True))
        if parts != self._parts:
            self._parts, self._drawn = parts, None
            self.refresh()
        self._keys = keys

    def on_resize(self) -> None:
        self._bindings_changed(self.screen)

    def render_line(self, y: int) -> Strip:
        width, base = self.size.width, self.rich_style
        if self._drawn is None or self._drawn[0] != (width, base):
            styles = {"": base, "key": base + self.get_component_rich_style("key-bar--key"),
                      "disabled": base + self.get_component_rich_style("key-bar--disabled")}
            strip = Strip([Segment(text, styles[kind]) for text, kind in self._parts])
            self._drawn = ((width, base), strip.crop_extend(0, width, base))
        return self._drawn[1]

    def _key_at(self, x: int) -> _Key | None:
        return next((k for k in self._keys if k.start <= x < k.end), None)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        key = self._key_at(event.x)
        self.tooltip = key.tooltip if key is not None else None

    def on_click(self, event: events.Click) -> None:
        key = self._key_at(event.x)
        if key is not None and key.enabled:
            self.app.simulate_key(key.key)
