"""The event bus: every stream the API offers flows through here.

``publish`` is synchronous and never blocks: it stamps the event with the next sequence
number, keeps it in a bounded ring for ``since`` replays and hands it to each matching
subscriber's sink, which must itself be non-blocking (a connection's bounded queue).
Subscribing and replaying happen with no ``await`` in between, so no event falls into a
gap between the snapshot and the live stream.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from attestables.shared.protocol import EVENTS_GAP


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    topic: str
    keys: Mapping[str, str]  # build_id / run_id: what a subscription filter matches
    data: Any
    size: int  # approximate bytes held, for the ring's byte budget


MAX_TRACKED_KEYS = 65_536
EVENT_OVERHEAD = 256  # bytes an event costs beyond its payload text, roughly


def event_size(data: Any) -> int:
    """Bytes an event's payload holds: its text (output chunk, log line) plus overhead."""
    if isinstance(data, dict):
        text = data.get("data") or data.get("line")
        if isinstance(text, str):
            return EVENT_OVERHEAD + len(text)
    return EVENT_OVERHEAD


class Sink(Protocol):
    def offer(self, subscription: str, topic: str, seq: int, data: Any) -> None:
        """Queue one event for delivery; must not block or raise."""


@dataclass(slots=True)
class Subscription:
    id: str
    topics: frozenset[str]
    filter: Mapping[str, str]
    sink: Sink
    owner: object = field(default=None)

    def matches(self, event: Event) -> bool:
        if event.topic not in self.topics:
            return False
        return all(event.keys.get(k) == v for k, v in self.filter.items())


class EventBus:
    def __init__(self, ring_size: int, ring_bytes: int = 32 * 1024 * 1024) -> None:
        # Bounded by count and by bytes: a flood of large output chunks cannot make the
        # ring hold more than ``ring_bytes`` of payload.
        self._ring: deque[Event] = deque()
        self._ring_size = ring_size
        self._ring_bytes = ring_bytes
        self._held = 0
        # What the ring has forgotten, per key value (run/build/service id): the newest
        # evicted seq. A filtered ``since`` replay reports a gap only if events of *its*
        # run or build were evicted, not anybody's. Bounded: when an entry is dropped,
        # ``_untracked`` remembers up to where replays must assume the worst.
        self._evicted_any = 0
        self._evicted: OrderedDict[str, int] = OrderedDict()
        self._untracked = 0
        self._seq = 0
        self._subs: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self.published = 0
        self.listeners: list[Callable[[Event], None]] = []  # in-process observers (tests, metrics)

    @property
    def seq(self) -> int:
        """The sequence number of the newest event (0 before any)."""
        return self._seq

    def publish(self, topic: str, data: Any, **keys: str) -> int:
        self._seq += 1
        event = Event(self._seq, topic, keys, data, event_size(data))
        ring = self._ring
        ring.append(event)
        self._held += event.size
        while len(ring) > self._ring_size or (self._held > self._ring_bytes and len(ring) > 1):
            self._evict(ring.popleft())
        self.published += 1
        for sub in self._subs.values():
            if sub.matches(event):
                sub.sink.offer(sub.id, topic, event.seq, data)
        for listener in self.listeners:
            listener(event)
        return event.seq

    def _evict(self, event: Event) -> None:
        self._held -= event.size
        self._evicted_any = event.seq
        for value in event.keys.values():
            self._evicted[value] = event.seq
            self._evicted.move_to_end(value)
        while len(self._evicted) > MAX_TRACKED_KEYS:
            _, seq = self._evicted.popitem(last=False)
            self._untracked = max(self._untracked, seq)

    def _lost_after(self, since: int, filter: Mapping[str, str]) -> bool:
        """Whether the ring evicted an event after ``since`` that ``filter`` could match."""
        if since >= self._evicted_any:
            return False
        if not filter:
            return True
        return self._untracked > since or any(self._evicted.get(v, 0) > since for v in filter.values())

    def subscribe(
        self,
        sink: Sink,
        topics: frozenset[str],
        filter: Mapping[str, str] | None = None,
        since: int | None = None,
        owner: object = None,
    ) -> str:
        """Register a subscription and replay ring events after ``since`` into it.

        If the ring no longer holds every event after ``since``, the replay starts with
        an ``events.gap`` event saying how many were lost.
        """
        sub = Subscription(f"sub-{next(self._ids)}", topics, dict(filter or {}), sink, owner)
        if since is not None and since < self._seq:
            oldest = self._ring[0].seq if self._ring else self._seq + 1
            if self._lost_after(since, sub.filter):
                # ``dropped`` counts every event the ring lost in that span: an upper bound
                # for a filtered subscription.
                missed = oldest - since - 1
                sink.offer(sub.id, EVENTS_GAP, since + 1, {"dropped": missed, "from_seq": since + 1,
                                                           "to_seq": oldest - 1, "reason": "ring"})
            for event in self._ring:
                if event.seq > since and sub.matches(event):
                    sink.offer(sub.id, event.topic, event.seq, event.data)
        self._subs[sub.id] = sub
        return sub.id

    def unsubscribe(self, sub_id: str, owner: object = None) -> bool:
        sub = self._subs.get(sub_id)
        if sub is None or (owner is not None and sub.owner is not owner):
            return False
        del self._subs[sub_id]
        return True

    def drop_owner(self, owner: object) -> None:
        for sub_id in [s.id for s in self._subs.values() if s.owner is owner]:
            del self._subs[sub_id]

    def subscriber_count(self) -> int:
        return len(self._subs)
