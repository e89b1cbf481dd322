"""A C source, syntax-highlighted with line numbers, scrolled to a line when asked."""

from __future__ import annotations

from typing import Any

from attestables.shared.terminal import printable
from textual.containers import VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.widgets import Static

# Larger sources are shown without highlighting (rendering them would stall the screen).
HIGHLIGHT_LIMIT = 256 * 1024


def numbered(content: str, line: int | None = None) -> Content:
    """The source highlighted as C (by the app's theme), with line numbers; ``line`` marked."""
    code = highlight(content, language="c") if len(content) <= HIGHLIGHT_LIMIT else Content(content)
    lines = code.split("\n")
    if lines and not lines[-1].plain:
        lines.pop()
    width = len(str(len(lines)))
    out = []
    for number, text in enumerate(lines, 1):
        if number == line:
            row = Content.assemble((f"{number:>{width}} ▶ ", "bold $warning"), text)
            row = row.stylize_before("on $warning 25%")
        else:
            row = Content.assemble((f"{number:>{width}}   ", "$text-muted"), text)
        out.append(row)
    return Content("\n").join(out)


class SourceView(VerticalScroll):
    """Shows one source version; :meth:`show` replaces it."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.record: dict[str, Any] | None = None
        self.line: int | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static("choose a source", id="source-text")

    def show(self, record: dict[str, Any], line: int | None = None) -> None:
        self.record = record
        self.line = line
        content = printable(str(record.get("content", "")))  # an uploaded file: shown, not obeyed
        self.query_one("#source-text", Static).update(numbered(content, line))
        self.border_title = f"{record.get('name')} v{record.get('version')}"
        self.border_subtitle = f"line {line}" if line else f"{max(1, content.count(chr(10)))} lines"
        if line:
            self.call_after_refresh(self.scroll_to, y=max(0, line - 4), animate=False)
        else:
            self.call_after_refresh(self.scroll_home, animate=False)

    def clear(self) -> None:
        self.record = None
        self.query_one("#source-text", Static).update("choose a source")
        self.border_title = None
        self.border_subtitle = None
