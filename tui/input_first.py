"""Input first: while the user is pressing keys, the console does nothing else it can put off.

Under a stream of thousands of events a second the console's loop is mostly busy: event
batches merged into the records, the message table and its companions redrawn, and the
cycle collector's pauses wherever allocation happens to trigger them. A key that arrives
meanwhile queues behind all of it, and its frame is drawn amid it. So from the moment an
input event is posted until its screen update is out and no other input has come for
:data:`QUIET_S`, the app

- holds the next event batch (the pump keeps collecting events meanwhile: nothing is
  lost, they arrive together);
- lets the tabs put off redraws made for the stream (:meth:`InputFirst.defer`);
- and, in a console that owns its process, pauses automatic cycle collection (the
  allocation counts carry on; the collection runs when the hold ends).

A hold never lasts longer than :data:`HOLD_MAX_S`, however many keys keep arriving: the
stream's updates then reach the screen at least four times a second while the user types,
and at their own rate otherwise.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from textual import events

# The events a user waits on. Mouse moves are not among them: they arrive in streams and
# expect no update of their own.
INPUT_EVENTS: tuple[type[events.Event], ...] = (
    events.Key, events.MouseDown, events.MouseScrollDown, events.MouseScrollUp, events.Paste,
)
# After the last input's update is out, how long the hold lasts in case another key follows
# (a key held down repeats every ~30 ms; separate presses come every 100-300 ms).
QUIET_S = 0.1
# The longest hold, from its first input, in seconds.
HOLD_MAX_S = 0.25


class InputFirst:
    """Tracks input waiting for its screen update; holds work until the user pauses.

    ``schedule(delay, callback)`` runs a callback later on the app's loop (the app's
    ``set_timer``): it ends a hold once the user pauses or :data:`HOLD_MAX_S` has passed.
    """

    def __init__(self, schedule: Callable[[float, Callable[[], None]], object], *, pause_collector: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.schedule = schedule
        self.pause_collector = pause_collector
        self.clock = clock
        self.unserved = 0  # input events whose screen update is not out yet
        self.started: float | None = None  # when the current hold began
        self._served_at: float | None = None  # when the last unserved input was served
        self._held: list[Callable[[], object]] = []
        self._limit_set = False
        self._collector_paused = False

    @property
    def waiting(self) -> bool:
        """A hold is on: stream work should wait."""
        return self.started is not None and self.clock() - self.started < HOLD_MAX_S

    def arrived(self) -> None:
        """An input event was posted to the app.

        Nothing is scheduled here: the terminal driver posts input from a context of its
        own, where a Textual timer cannot be made. :meth:`handling` and :meth:`defer`
        (the app's and the tabs' own contexts) set the hold's limit.
        """
        self.unserved += 1
        self._served_at = None
        if self.started is None:
            self.started = self.clock()
            self._limit_set = False
        if self.pause_collector and not self._collector_paused and gc.isenabled():
            gc.disable()
            self._collector_paused = True

    def handling(self) -> None:
        """The app is handling an input event: the hold ends at its limit at the latest."""
        if self.started is not None and not self._limit_set:
            self._limit_set = True
            self.schedule(max(0.0, HOLD_MAX_S - (self.clock() - self.started)), self._expire)

    def served(self) -> None:
        """One input event was handled and the screen updated after it."""
        self.unserved = max(0, self.unserved - 1)
        if self.unserved == 0 and self.started is not None:
            self._served_at = self.clock()
            self.schedule(QUIET_S, self._quiet)

    def defer(self, callback: Callable[[], object]) -> bool:
        """Hold ``callback`` until the hold ends; False: no hold, the caller runs it now."""
        if not self.waiting:
            return False
        self.handling()
        if callback not in self._held:
            self._held.append(callback)
        return True

    def _quiet(self) -> None:
        served_at = self._served_at
        if self.started is not None and self.unserved == 0 and served_at is not None \
                and self.clock() - served_at >= QUIET_S * 0.99:
            self._release()

    def _expire(self) -> None:
        if self.started is None:
            return
        left = HOLD_MAX_S - (self.clock() - self.started)
        if left > 0:
            self.schedule(left, self._expire)  # a later hold's own limit
            return
        self.unserved = 0  # given up waiting for these
        self._release()

    def _release(self) -> None:
        self.started = self._served_at = None
        if self._collector_paused:
            self._collector_paused = False
            gc.enable()
        held, self._held = self._held, []
        for callback in held:
            callback()

    def close(self) -> None:
        """Switch the collector back on (the app is leaving) without running what was held."""
        self._held.clear()
        self.started = self._served_at = None
        if self._collector_paused:
            self._collector_paused = False
            gc.enable()
