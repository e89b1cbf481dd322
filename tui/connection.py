"""The live source: one websocket to the daemon, kept open, its events batched.

:class:`LiveSource` owns the :class:`~attestables.shared.client.Client`. Its
:meth:`~LiveSource.stream` runs in the app's one connection worker and loops forever:
connect (``Client.connect``); subscribe to every topic **before** reading the records,
so nothing that happens in between is missed; read the records (a :class:`Snapshot`);
then hand events to an :class:`EventPump` until the connection ends; wait (exponential
backoff with jitter) and start again. Every step is reported as a
:class:`ConnectionChanged` message, so the status bar always says what the link is doing.

Records that have no events (sources, services, the CA) are re-read every
``refresh_s``; after an ``events.gap`` everything is re-read, since a lost event may
have been a terminal state.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from attestables.shared import protocol
from attestables.shared.client import Client, Event
from attestables.shared.errors import AttestablesError, ConnectionLost

from .messages import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    ConnectionChanged,
    EventBatch,
    Loaded,
    Snapshot,
)
from .source import Post

# How often event batches reach the screen (seconds): fast enough to feel live, slow
# enough that a flood of events costs one screen update per interval, not one per event.
FLUSH_S = 0.05
# Events the pump holds while the screen is still applying the previous batch; beyond
# this the oldest are dropped and counted (shown to the user as a gap).
MAX_PENDING = 20_000
# Trace rows read at connect (the newest ones); older rows stay in the daemon.
TRACE_TAIL = 500
# The client's own per-subscription queue: the pump drains it continuously.
QUEUE_SIZE = 16_384
CALL_TIMEOUT_S = 30.0
REFRESH_S = 10.0


class Backoff:
    """Exponential delays with jitter: 0.5 s, 1 s, 2 s, ... up to ``maximum``."""

    def __init__(self, first: float = 0.5, maximum: float = 15.0, jitter: float = 0.2,
                 rng: Callable[[], float] = random.random) -> None:
        self.first = first
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return round(delay * (1 + self.jitter * (2 * self._rng() - 1)), 2)


class EventPump:
    """Moves events from a subscription to the screen in batches.

    A batch is posted at most every ``flush_s``, and only once the app has applied the
    previous one (:attr:`EventBatch.handled`); meanwhile events accumulate, up to
    ``max_pending`` (then the oldest are dropped and counted). The subscription's own
    queue is drained continuously, so the daemon never sees a slow client because the
    screen is busy.
    """

    def __init__(self, post: Post, *, flush_s: float = FLUSH_S, max_pending: int = MAX_PENDING,
                 on_gap: Callable[[], None] | None = None) -> None:
        self.post = post
        self.flush_s = flush_s
        self.max_pending = max_pending
        self.on_gap = on_gap
        self.posted = 0
        self.dropped = 0

    async def run(self, events: AsyncIterator[Event]) -> None:
        """Pump until the iterator ends (returns) or fails (raises, after a last batch)."""
        loop = asyncio.get_running_loop()
        pending: deque[Event] = deque()
        dropped = 0
        last: EventBatch | None = None
        due = loop.time() + self.flush_s
        get_nowait = getattr(events, "get_nowait", None)
        try:
            while True:
                if get_nowait is not None:
                    try:
                        while True:
                            pending.append(get_nowait())
                    except asyncio.QueueEmpty:
                        pass
                overflow = len(pending) - self.max_pending
                if overflow > 0:
                    for _ in range(overflow):
                        pending.popleft()
                    dropped += overflow
                now = loop.time()
                if (pending or dropped) and now >= due and (last is None or last.handled):
                    last = self._post(pending, dropped)
                    pending = deque()
                    dropped = 0
                    due = now + self.flush_s
                    continue
                if pending or dropped:
                    wait: float | None = max(due - now, 0.0) if last is None or last.handled else self.flush_s / 5
                else:
                    wait = None
                try:
                    async with asyncio.timeout(wait):
                        pending.append(await anext(events))
                except TimeoutError:
                    pass
                except StopAsyncIteration:
                    break
        finally:
            # What arrived before the end still reaches the screen.
            if pending or dropped:
                self._post(pending, dropped)

    def _post(self, pending: deque[Event], dropped: int) -> EventBatch:
        batch = EventBatch(tuple(pending), dropped)
        self.posted += len(pending)
        self.dropped += dropped
        if self.on_gap is not None and (dropped or any(e.topic == protocol.EVENTS_GAP for e in pending)):
            self.on_gap()
        self.post(batch)
        return batch


async def last_trace_id(client: Client) -> int:
    """The newest trace row's id, found in O(log n) one-row pages (0 when there is none).

    ``traces.list`` pages oldest first by id; ``since=x`` returns a row iff the newest
    id is above x, which a doubling probe and a bisection narrow down.
    """

    async def above(since: int) -> bool:
        return bool((await client.call("traces.list", {"since": since, "limit": 1}))["traces"])

    first = (await client.call("traces.list", {"limit": 1}))["traces"]
    if not first:
        return 0
    low = int(first[0]["id"])  # invariant: newest >= low
    step = 256
    high = low + step
    while await above(high):  # invariant after the loop: newest <= high
        low, step = high + 1, step * 2
        high = low + step
    while low < high:
        middle = (low + high) // 2
        if await above(middle):
            low = middle + 1
        else:
            high = middle
    return low


async def read_snapshot(client: Client, *, complete: bool, trace_tail: int = TRACE_TAIL) -> Snapshot:
    """Every record the console shows that events alone do not give."""
    if not complete:
        sources, services, ca = await asyncio.gather(
            client.call("sources.list"), client.call("services.list"), client.call("ca.info"))
        return Snapshot(sources=sources["sources"], services=services["services"], ca=ca)
    info, ca, sources, builds, runs, certs, services, newest = await asyncio.gather(
        client.call("system.info"), client.call("ca.info"), client.call("sources.list"),
        client.call("builds.list", {"limit": 500}), client.call("runs.list", {"limit": 500}),
        client.call("certs.list", {"limit": 500}), client.call("services.list"), last_trace_id(client))
    traces: list[dict[str, Any]] = []
    if newest:
        page = await client.call("traces.list", {"since": max(0, newest - trace_tail), "limit": trace_tail})
        traces = page["traces"]
    return Snapshot(info=info, ca=ca, sources=sources["sources"], builds=builds["builds"], runs=runs["runs"],
                    certs=certs["certificates"], services=services["services"], traces=traces,
                    trace_count=newest, complete=True)


class LiveSource:
    """The daemon at ``url``, reconnected with backoff for as long as the console runs."""

    def __init__(self, url: str, token: str, *, connect: Callable[..., Any] = Client.connect,
                 backoff: Backoff | None = None, flush_s: float = FLUSH_S, refresh_s: float = REFRESH_S) -> None:
        self._url = url
        self._token = token
        self._connect = connect
        self.backoff = backoff or Backoff()
        self.flush_s = flush_s
        self.refresh_s = refresh_s
        self._client: Client | None = None
        self._live = False
        self._reload = asyncio.Event()

    @property
    def url(self) -> str:
        return self._url

    def reload(self) -> None:
        self._reload.set()

    async def close(self) -> None:
        """Close the connection (the app calls this as it exits)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        client = self._client
        if client is None or client.closed:
            raise ConnectionLost(f"not connected to the daemon at {self._url}; reconnecting")
        try:
            return await client.call(method, params, timeout=CALL_TIMEOUT_S)
        except TimeoutError:
            raise ConnectionLost(f"the daemon did not answer {method} within {CALL_TIMEOUT_S:g} s") from None

    async def stream(self, post: Post) -> None:
        attempt = 0  # consecutive attempts since the last time the console was connected
        while True:
            attempt += 1
            post(ConnectionChanged(CONNECTING, self._url, attempt=attempt))
            self._live = False
            try:
                client = await self._connect(self._url, self._token)
            except AttestablesError as exc:
                detail = exc.message
            else:
                self._client = client
                try:
                    await self._session(client, post)
                    detail = "the connection ended"
                except AttestablesError as exc:
                    detail = exc.message
                finally:
                    self._client = None
                    await asyncio.shield(client.close())
            if self._live:
                attempt = 0
            delay = self.backoff.next()
            post(ConnectionChanged(DISCONNECTED, self._url, detail=detail, attempt=attempt, retry_in=delay))
            await asyncio.sleep(delay)

    async def _session(self, client: Client, post: Post) -> None:
        # Subscribe first: whatever happens while the records are read arrives as events.
        subscription = await client.subscribe(sorted(protocol.TOPICS), queue_size=QUEUE_SIZE)
        async with subscription:
            self._reload.clear()
            snapshot = await read_snapshot(client, complete=True)
            self.backoff.reset()
            self._live = True
            post(ConnectionChanged(CONNECTED, self._url, server_version=client.hello.server_version))
            post(Loaded(snapshot))
            pump = EventPump(post, flush_s=self.flush_s, on_gap=self._reload.set)
            refresher = asyncio.create_task(self._refresh(client, post), name="console-refresh")
            try:
                await pump.run(subscription)
            finally:
                refresher.cancel()
                try:
                    await refresher
                except (asyncio.CancelledError, AttestablesError):
                    pass

    async def _refresh(self, client: Client, post: Post) -> None:
        while True:
            try:
                async with asyncio.timeout(self.refresh_s):
                    await self._reload.wait()
            except TimeoutError:
                post(Loaded(await read_snapshot(client, complete=False)))
            else:
                self._reload.clear()
                post(Loaded(await read_snapshot(client, complete=True)))
