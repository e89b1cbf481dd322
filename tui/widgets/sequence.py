"""The sequence diagram of a run's messages, as in the seed's Figures 4 (read) and 5 (write).

Lifelines: Integration process | Launcher | each service (Store, Transport, Messaging
first). Each trace row becomes the arrows of one exchange: the compartment's READ or
WRITE to the launcher, the launcher's POST (certificate + sealed request) to the service,
the service's answer (status, sealed size, its verification), and the RESULT or ERROR
the compartment receives. New rows add arrows at the bottom; the view follows them
while it is at the end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from ..format import size
from ..records import NO_VERDICT
from .scrolling import set_virtual_size

PROCESS = "Integration process"
LAUNCHER = "Launcher"
CASE_STUDY_SERVICES = ("store", "transport", "messaging")
# Exchanges kept in the diagram (four arrows each); older ones scroll away for good.
MAX_EXCHANGES = 200
GUTTER = 5

REQUEST_STYLE = "cyan"
OK_STYLE = "green"
REFUSED_STYLE = "bold red"
UNAVAILABLE = {"unreachable", "timeout", "transport_error"}


@dataclass(frozen=True)
class Arrow:
    """One arrow: from lifeline ``source`` to ``target``, with labels from longest to shortest."""

    source: int
    target: int
    labels: tuple[str, ...]
    style: str
    mark: str = ""  # shown in the gutter: the trace row's id on an exchange's first arrow


def lifelines_for(services: Iterable[str]) -> list[str]:
    """The lifelines' service ids: the case study's three first, then any other, in order."""
    extra = [s for s in dict.fromkeys(services) if s not in CASE_STUDY_SERVICES]
    return [*CASE_STUDY_SERVICES, *extra]


def exchange(row: Mapping[str, Any], service_index: int) -> list[Arrow]:
    """The arrows of one trace row; the service's lifeline is ``service_index`` (0 and 1 are fixed)."""
    op = str(row.get("op", "?")).upper()
    service = str(row.get("service_id", "?"))
    sealed_in = size(row.get("bytes_in"))
    sealed_out = size(row.get("bytes_out"))
    status = row.get("http_status")
    outcome = str(row.get("outcome", "?"))
    verdict = row.get("verification", NO_VERDICT).status or outcome
    latency = f"{float(row.get('latency_ms') or 0):.1f} ms"
    mark = f"#{row.get('id', '')}"
    arrows = [Arrow(0, 1, (f"{op} {service} · {sealed_in} sealed", f"{op} {service} · {sealed_in}",
                           f"{op} {service}", op), REQUEST_STYLE, mark)]
    if outcome == "unknown_service":
        arrows.append(Arrow(1, 0, ("ERROR UNKNOWN_SERVICE", "UNKNOWN_SERVICE", "ERROR"), REFUSED_STYLE))
        return arrows
    arrows.append(Arrow(1, service_index, (f"POST certificate + {sealed_in} sealed", f"cert + {sealed_in} sealed",
                                           f"{sealed_in} sealed", sealed_in), REQUEST_STYLE))
    if outcome in UNAVAILABLE:
        arrows.append(Arrow(service_index, 1, (f"✗ {outcome}", "✗"), REFUSED_STYLE))
        arrows.append(Arrow(1, 0, ("ERROR SERVICE_UNAVAILABLE", "UNAVAILABLE", "ERROR"), REFUSED_STYLE))
        return arrows
    ok = outcome == "ok"
    answer_style = OK_STYLE if ok else REFUSED_STYLE
    code = "-" if status is None else str(status)
    if ok:
        answer = (f"{code} · {sealed_out} sealed · {verdict}", f"{code} · {sealed_out} · {verdict}",
                  f"{code} {verdict}", code)
        result = (f"RESULT OK · {sealed_out} sealed · {latency}", f"OK · {sealed_out} · {latency}",
                  f"OK · {latency}", f"OK {latency}", "OK")
    else:
        answer = (f"{code} · {verdict}", f"{code} {outcome}", code)
        word = "DENIED" if status == 403 else "FAILED"
        result = (f"RESULT {word} · {outcome} · {latency}", f"{word} · {outcome}", f"{word} {outcome}", word)
    arrows.append(Arrow(service_index, 1, answer, answer_style))
    arrows.append(Arrow(1, 0, result, answer_style))
    return arrows


def positions(width: int, count: int) -> list[int]:
    """The column of each lifeline: the first just right of the gutter, the last at the right edge."""
    if count == 1:
        return [GUTTER + 1]
    span = max(width - GUTTER - 3, (count - 1) * 6)
    return [GUTTER + 1 + round(index * span / (count - 1)) for index in range(count)]


def header_lines(names: Sequence[str], width: int) -> Text:
    """Two lines of lifeline names (a two-word name on both), centred over the lifelines."""
    xs = positions(width, len(names))
    spacing = (xs[1] - xs[0]) if len(xs) > 1 else width
    lines = [[" "] * width, [" "] * width]
    for name, x in zip(names, xs):
        first, _, rest = name.partition(" ")
        for row, word in ((0, first), (1, rest)):
            if not word:
                continue
            word = word if len(word) < spacing else word[: max(1, spacing - 2)] + "…"
            start = max(0, min(width - len(word), x - len(word) // 2))
            lines[row][start:start + len(word)] = word
    return Text("\n".join("".join(line)[:width] for line in lines), style="bold")


def render_arrow(arrow: Arrow, xs: Sequence[int], width: int) -> Text:
    """One line: the lifelines, with this arrow drawn between two of them.

    Drawn on a line as wide as the lifelines need, then cut to ``width``: in a pane too
    narrow for them (they keep 6 columns apart), the right-hand ones fall off the edge."""
    chars = [" "] * max(width, max(xs, default=0) + 1)
    for x in xs:
        chars[x] = "│"
    a, b = xs[arrow.source], xs[arrow.target]
    lo, hi = min(a, b), max(a, b)
    for x in range(lo + 1, hi):
        chars[x] = "─"
    if arrow.target > arrow.source:
        head = hi - 1
        chars[head] = "▶"
    else:
        head = lo + 1
        chars[head] = "◀"
    # Keep one dash either side of the label, and the head.
    room = hi - lo - 4
    label = next((f" {text} " for text in arrow.labels if len(text) + 2 <= room), "")
    region = lo + 2 if arrow.target > arrow.source else lo + 3
    start = region + max(0, (room - len(label)) // 2)
    if label:
        chars[start:start + len(label)] = label
    if arrow.mark:
        mark = arrow.mark[: GUTTER - 1]
        chars[0:len(mark)] = mark
    text = Text("".join(chars)[:width], style="dim")
    text.stylize(Style.parse(arrow.style), lo + 1, hi)
    if label:
        text.stylize("bold", start, start + len(label))
    if arrow.mark:
        text.stylize("not dim", 0, len(arrow.mark))
    return text


class SequenceBody(ScrollView):
    """The arrows, one per line, rendered lazily for the visible lines only."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.arrows: deque[Arrow] = deque(maxlen=MAX_EXCHANGES * 4)
        self.lifelines: list[str] = []
        self._cache: LRUCache[tuple[int, int, int], Strip] = LRUCache(1024)
        self._generation = 0

    def set_arrows(self, lifelines: list[str], arrows: Iterable[Arrow]) -> None:
        self.lifelines = lifelines
        self.arrows.clear()
        self.arrows.extend(arrows)
        self._generation += 1
        self._cache.clear()
        self._resize()
        self.scroll_end(animate=False, immediate=True, force=True, x_axis=False)

    def add_arrows(self, arrows: Sequence[Arrow]) -> None:
        follow = self.is_vertical_scroll_end
        dropped = max(0, len(self.arrows) + len(arrows) - (self.arrows.maxlen or 0))
        self.arrows.extend(arrows)
        if dropped:
            self._generation += 1
            self._cache.clear()
        self._resize()
        self.refresh()
        if follow:
            self.scroll_end(animate=False, immediate=True, force=True, x_axis=False)

    def _resize(self) -> None:
        set_virtual_size(self, Size(self.scrollable_content_region.width, len(self.arrows)))

    def on_resize(self) -> None:
        self._cache.clear()
        self._resize()

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = int(self.scroll_offset.y) + y
        if index >= len(self.arrows) or not self.lifelines:
            return Strip.blank(width, self.rich_style)
        key = (self._generation, index, width)
        strip = self._cache.get(key)
        if strip is None:
            xs = positions(width, len(self.lifelines))
            text = render_arrow(self.arrows[index], xs, width)
            segments = list(text.render(self.app.console))
            strip = Strip([s for s in segments if s.text != "\n"], width)
            strip = strip.extend_cell_length(width).apply_style(self.rich_style)
            self._cache[key] = strip
        return strip


class SequenceDiagram(Vertical):
    """The lifelines' names over the scrolling arrows of one run's exchanges."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.run_id: str | None = None
        self.services: list[str] = lifelines_for(())
        # A row's arrows by (id, time, its service's lifeline): rows are immutable, and
        # moving the cursor between runs redraws a run's whole diagram.
        self._drawn: LRUCache[tuple[Any, int], list[Arrow]] = LRUCache(MAX_EXCHANGES * 4)

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="seq-header")
        yield SequenceBody(id="seq-body")

    @property
    def names(self) -> list[str]:
        return [PROCESS, LAUNCHER, *(s.capitalize() for s in self.services)]

    def show(self, run_id: str | None, rows: Iterable[Mapping[str, Any]]) -> None:
        """Draw ``rows`` (one run's trace rows, oldest first) from scratch."""
        rows = list(rows)
        self.run_id = run_id
        self.services = lifelines_for(str(r.get("service_id")) for r in rows)
        arrows = [a for r in rows for a in self._arrows(r)]
        self.query_one(SequenceBody).set_arrows(self.names, arrows)
        self._draw_header()
        self.border_title = f"sequence · run {run_id}" if run_id else "sequence · choose a message"

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append the exchanges of new rows of the shown run."""
        if not rows:
            return
        services = lifelines_for([*self.services, *(str(r.get("service_id")) for r in rows)])
        if services != self.services:
            self.services = services
            body = self.query_one(SequenceBody)
            body.lifelines = self.names
            body._cache.clear()
            self._draw_header()
        # Only the newest exchanges can stay in the diagram: draw no more than that.
        self.query_one(SequenceBody).add_arrows([a for r in rows[-MAX_EXCHANGES:] for a in self._arrows(r)])

    def _arrows(self, row: Mapping[str, Any]) -> list[Arrow]:
        service = str(row.get("service_id"))
        index = 2 + (self.services.index(service) if service in self.services else 0)
        key = (row.get("id"), row.get("ts"), index)
        arrows = self._drawn.get(key)
        if arrows is None:
            arrows = self._drawn[key] = exchange(row, index)
        return arrows

    def _draw_header(self) -> None:
        width = self.query_one(SequenceBody).scrollable_content_region.width or self.size.width or 80
        self.query_one("#seq-header", Static).update(header_lines(self.names, width), layout=False)

    def on_resize(self) -> None:
        self._draw_header()


__all__ = ["Arrow", "SequenceDiagram", "exchange", "header_lines", "lifelines_for", "positions", "render_arrow"]
