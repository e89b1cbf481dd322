"""The console's heap and CPython's cycle collector: pauses an operator would feel.

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

log = logging.getLogger(__name__)



def settle() -> None:
    """Collect, then freeze the surviving heap (once, after the first load)."""
    gc.collect()
    gc.freeze()
    log.debug("froze %d start-up objects out of the cycle collector's reach", gc.get_freeze_count())
