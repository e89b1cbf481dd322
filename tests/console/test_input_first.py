"""Input first: what the console puts off while a key waits for its screen update, and
that all of it comes back, in order, within the limit."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from attestables.shared.client import Event
from attestables.tui.input_first import HOLD_MAX_S, QUIET_S, InputFirst
from attestables.tui.messages import EventBatch


class Timers:
    """A fake clock and the callbacks scheduled on it."""

    def __init__(self) -> None:
        self.now = 100.0
        self.due: list[tuple[float, Callable[[], None]]] = []

    def schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self.due.append((self.now + delay, callback))

    def advance(self, seconds: float) -> None:
        self.now += seconds
        ready = sorted((d for d in self.due if d[0] <= self.now), key=lambda d: d[0])
        self.due = [d for d in self.due if d[0] > self.now]
        for _, callback in ready:
            callback()


def first(timers: Timers, **options: Any) -> InputFirst:
    return InputFirst(timers.schedule, clock=lambda: timers.now, **options)


def test_nothing_is_put_off_while_no_input_waits() -> None:
    ran: list[str] = []
    assert first(Timers()).defer(lambda: ran.append("a")) is False
    assert ran == []  # the caller runs it itself


def test_work_held_for_keys_runs_once_in_order_when_the_user_pauses() -> None:
    timers, ran = Timers(), []
    inputs = first(timers)
    a, b = (lambda: ran.append("a")), (lambda: ran.append("b"))
    inputs.arrived()
    inputs.arrived()
    assert inputs.defer(a) and inputs.defer(b) and inputs.defer(a)
    inputs.served()
    timers.advance(QUIET_S)
    assert ran == []  # one key still waits for its update
    inputs.served()
    timers.advance(QUIET_S / 2)
    assert ran == []  # another key may follow
    timers.advance(QUIET_S / 2)
    assert ran == ["a", "b"]
    assert not inputs.waiting and inputs.defer(a) is False


def test_a_key_soon_after_the_last_one_keeps_the_hold() -> None:
    timers, ran = Timers(), []
    inputs = first(timers)
    inputs.arrived()
    assert inputs.defer(lambda: ran.append("batch"))
    timers.advance(0.03)
    inputs.served()
    timers.advance(QUIET_S / 2)
    inputs.arrived()  # the next key, before the pause was long enough
    timers.advance(QUIET_S)
    assert ran == [] and inputs.waiting
    inputs.served()
    timers.advance(QUIET_S)
    assert ran == ["batch"]


def test_nothing_is_held_longer_than_the_limit_however_many_keys_come() -> None:
    timers, ran = Timers(), []
    inputs = first(timers)
    inputs.arrived()
    assert inputs.defer(lambda: ran.append("batch"))
    for _ in range(4):  # a key every 50 ms, each served at once
        timers.advance(0.05)
        inputs.served()
        inputs.arrived()
    assert ran == [] and inputs.waiting
    timers.advance(HOLD_MAX_S)
    assert ran == ["batch"] and not inputs.waiting
    inputs.served()  # a late update changes nothing
    timers.advance(QUIET_S)
    assert ran == ["batch"]


def test_a_new_hold_after_the_limit_has_a_limit_of_its_own() -> None:
    timers, ran = Timers(), []
    inputs = first(timers)
    inputs.arrived()
    timers.advance(0.02)
    inputs.served()
    timers.advance(QUIET_S)  # the user paused: the hold ends
    timers.advance(0.1)
    inputs.arrived()  # 0.22 s after the first key; the first key's limit falls at 0.25 s
    assert inputs.defer(lambda: ran.append("batch"))
    timers.advance(0.06)
    assert ran == [] and inputs.waiting
    timers.advance(HOLD_MAX_S)
    assert ran == ["batch"]


def test_arrival_schedules_nothing_the_app_handling_it_sets_the_limit() -> None:
    # A terminal posts keys from its driver's own context, where no Textual timer can be
    # made (one made there failed with LookupError when it fired, and on exit).
    timers, ran = Timers(), []
    inputs = first(timers)
    inputs.arrived()
    assert timers.due == []
    inputs.handling()
    inputs.handling()
    assert len(timers.due) == 1
    assert inputs.defer(lambda: ran.append("batch")) and len(timers.due) == 1
    timers.advance(HOLD_MAX_S)
    assert ran == ["batch"]


def test_the_collector_waits_with_the_work_only_where_asked() -> None:
    assert gc.isenabled()
    timers = Timers()
    inputs = first(timers, pause_collector=True)
    try:
        inputs.arrived()
        assert not gc.isenabled()
        inputs.served()
        assert not gc.isenabled()  # until the user pauses
        timers.advance(QUIET_S)
        assert gc.isenabled()
        inputs.arrived()
        inputs.handling()
        timers.advance(HOLD_MAX_S)  # given up: back on
        assert gc.isenabled()
        inputs.arrived()
        inputs.close()
        assert gc.isenabled()
    finally:
        gc.enable()
    shared = first(Timers())
    shared.arrived()
    assert gc.isenabled()  # an app that shares its process leaves the collector alone


async def test_a_batch_arriving_while_a_key_waits_is_applied_just_after_the_key_s_frame() -> None:
    from textual import events

    from tests.bench.console import trace

    from .scenes import running, settle

    async with running() as (app, pilot):
        frames: list[tuple[str, int]] = []
        display = app._display

        def spy(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            if renderable is not None:
                frames.append((app.active_tab, app.records.events))

        app._display = spy  # type: ignore[method-assign]
        before = app.records.events
        runs = [str(next(iter(app.records.runs)))]
        batch = EventBatch(tuple(Event("sub-1", "traces.message", n, trace(n, runs, ("store",)))
                                 for n in range(5000, 5050)))
        app.post_message(events.Key("6", "6"))
        app.post_message(batch)  # queued behind the key, as a flood's next batch would be
        await settle(app, pilot)
        for _ in range(50):
            if batch.handled:
                break
            await pilot.pause(0.02)
        assert batch.handled and app.records.events == before + 50  # nothing lost
        for _ in range(50):  # and the screen shows it
            if frames and frames[-1] == ("trace", before + 50):
                break
            await pilot.pause(0.02)
        shown = [events_then for tab, events_then in frames if tab == "trace"]
        assert shown[0] == before, "the key's frame came after the batch it should not wait for"
        assert shown[-1] == before + 50
