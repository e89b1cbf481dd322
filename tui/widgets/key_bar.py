"""The footer: the keys of the focused tab and the app, with their labels, in one line.

Textual's Footer mounts a widget per key and rebuilds them whenever the focus moves,
which costs a layout pass on every tab switch. This bar draws the same information as
one line of text and only repaints: clicking a key presses it, and hovering over a key
shows that binding's tooltip.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget


@dataclass(frozen=True)
class _Key:
    start: int
    end: int
    key: str
    tooltip: str
    enabled: bool


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._keys: list[_Key] = []
        self._line = Content("")

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
            add(f" {self.app.get_key_display(binding)} ", "bold $footer-key-foreground" if enabled else "dim")
            add(f"{binding.description} ", "" if enabled else "dim")
            keys.append(_Key(start, width, binding.key, tooltip or binding.tooltip or binding.description,
                             enabled))
        if palette is not None:
            label = f" {self.app.get_key_display(palette)} palette "
            add(" " * max(1, self.size.width - width - len(label)), "")
            start = width
            add(label, "bold $footer-key-foreground")
            keys.append(_Key(start, width, palette.key, "Search every action", True))
        self._line = Content.assemble(*parts)
        self._keys = keys
        self.refresh()

    def on_resize(self) -> None:
        self._bindings_changed(self.screen)

    def render(self) -> Content:
        return self._line

    def _key_at(self, x: int) -> _Key | None:
        return next((k for k in self._keys if k.start <= x < k.end), None)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        key = self._key_at(event.x)
        self.tooltip = key.tooltip if key is not None else None

    def on_click(self, event: events.Click) -> None:
        key = self._key_at(event.x)
        if key is not None and key.enabled:
            self.app.simulate_key(key.key)
