"""A log that follows its tail until the user scrolls away, then counts what is pending."""

from __future__ import annotations

from collections.abc import Iterable

from attestables.shared.terminal import printable
from textual.reactive import reactive
from textual.widgets import Log

# Lines a log keeps; older lines are dropped (memory stays bounded however long a run lives).
MAX_LINES = 5000


class FollowLog(Log):
    """A :class:`~textual.widgets.Log` with a "following" state shown in its border.

    What it shows comes from programs (a compiler, a compartment): control characters are
    shown, not sent to the terminal (:func:`attestables.shared.terminal.printable`).

    New lines scroll the view while it is at the end. Once the user scrolls up the view
    stays put and the border counts the lines that arrived since; scrolling back to the
    end (End, or the tab's Follow action) follows again. ``max_lines`` bounds memory.
    """

    pending: reactive[int] = reactive(0)
    following: reactive[bool] = reactive(True)

    def __init__(self, *, max_lines: int = MAX_LINES, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(max_lines=max_lines, auto_scroll=True, id=id, classes=classes)
        self.can_focus = True

    def write_lines(self, lines: Iterable[str], scroll_end: bool | None = None) -> FollowLog:
        lines = [printable(line) for line in lines]  # what programs print reaches no terminal as is
        if not lines:
            return self
        follow = self.following
        before = self.line_count
        scroll_y = self.scroll_y
        super().write_lines(lines, scroll_end=False)
        if follow:
            self._to_end()
        else:
            # Lines dropped from the top move what the user is reading up: keep it in view.
            pruned = before + sum(len(line.splitlines()) or 1 for line in lines) - self.line_count
            if pruned > 0:
                self.scroll_to(y=max(0.0, scroll_y - pruned), animate=False, immediate=True)
            self.pending += len(lines)
        return self

    def write_text(self, data: str) -> FollowLog:
        """Append raw output (chunks need not end at a line break)."""
        if not data:
            return self
        follow = self.following
        before = self.line_count
        self.write(printable(data), scroll_end=False)
        if follow:
            self._to_end()
        else:
            self.pending += max(1, self.line_count - before) if "\n" in data else 0
        return self

    def clear(self) -> FollowLog:
        super().clear()
        self.pending = 0
        self.following = True
        return self

    def follow(self) -> None:
        """Jump to the end and follow new lines again."""
        self.following = True
        self.pending = 0
        self._to_end()

    def _to_end(self) -> None:
        # Forced: right after the first lines the scrollbar is not there yet, and an
        # unforced scroll would be refused.
        self.scroll_end(animate=False, immediate=True, force=True, x_axis=False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        at_end = new_value >= self.max_scroll_y
        if at_end and not self.following:
            self.following = True
            self.pending = 0
        elif not at_end and new_value < old_value:
            # The user scrolled up: stop following until they come back to the end.
            self.following = False

    def watch_pending(self) -> None:
        self._show_state()

    def watch_following(self) -> None:
        self._show_state()

    def _show_state(self) -> None:
        if self.following:
            self.border_subtitle = "following"
        elif self.pending:
            self.border_subtitle = f"paused · {self.pending:,} new line{'s' if self.pending != 1 else ''} · f follows"
        else:
            self.border_subtitle = "paused · f follows"
