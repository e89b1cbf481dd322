"""The console's heap and CPython's cycle collector: pauses an operator would feel.

Two things keep full (generation 2) collections short and rare; both measured under
the benchmark's 5,000 trace events/s (``docs/benchmarks.md``, console):

- :func:`break_strip_cycles`: every line Textual drew was a reference cycle (below),
  freed only by a full collection;
- :func:`settle`: the start-up heap is frozen out of the collector's walks.
  (The trace rows the console keeps are not tracked at all: ``records.trace_record``.)

A full (generation 2) collection walks every object the collector tracks. In the
console most of them are made at start and live until it ends: Textual's widgets,
styles and compiled CSS, the modules, the first records (~110,000 objects at 120x40).
Under a 5,000 events/s trace flood, full collections came every ~0.7 s and took
80–100 ms each on the benchmark VM: the screen froze for that long, whatever key had
just been pressed (``docs/benchmarks.md``, console).

:func:`settle` runs once, when the first records have loaded: one collection, then
``gc.freeze()`` moves what survived out of the collector's reach. Later full collections
walk only objects made since (11–45 ms measured). What is frozen is still freed by
reference counting; only a reference cycle made entirely of those start-up objects that
became garbage later stays, for the process's lifetime. That is why only an app that
owns its process does it (``ConsoleApp(settle_heap=True)``: ``attestables console``):
the app's own widget tree is such a cycle, and a test process that starts dozens of
apps would keep every one of them.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterable, Sequence

from rich.segment import Segment
from textual.strip import Strip

log = logging.getLogger(__name__)

_divide_patched = False


def settle() -> None:
    """Collect, then freeze the surviving heap (once, after the first load)."""
    gc.collect()
    gc.freeze()
    log.debug("froze %d start-up objects out of the cycle collector's reach", gc.get_freeze_count())


def _divide_keeps_itself() -> bool:
    """Does the installed Textual's ``Strip.divide`` keep ``[self]`` in the strip's cache?"""
    strip = Strip([Segment("ab")], 2)
    strip.divide([2])
    return any(any(s is strip for s in cached) for cached in strip._divide_cache._cache.values())


def break_strip_cycles() -> bool:
    """Stop ``Strip.divide`` from making every whole-width line a reference cycle.

    Textual (8.2.8 here) caches a division's result in the strip divided; when the only
    cut is the strip's own length the result is ``[self]``: the strip refers to itself and
    only a cycle collection frees it, with its seven caches and its segments. The
    compositor divides every line of every frame so. Under the benchmark's trace flood
    each full collection found 8,000–18,000 such objects and took 30–60 ms.

    The replacement answers that one case without caching (the same strips, in a new
    list) and hands every other division to Textual's own method. Applied once per
    process, and only while the installed Textual still keeps ``[self]`` (checked on a
    strip of its own). Returns whether it is in place."""
    global _divide_patched
    if _divide_patched:
        return True
    if not _divide_keeps_itself():
        return False
    divide = Strip.divide

    def divide_without_cycle(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
        length = self.cell_length
        kept = [cut for cut in cuts if cut <= length]
        if kept == [length]:
            return [self]
        return divide(self, kept)

    divide_without_cycle.__doc__ = divide.__doc__
    Strip.divide = divide_without_cycle  # type: ignore[method-assign]
    _divide_patched = True
    return True
