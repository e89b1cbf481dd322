"""One websocket client: a reader, one writer task and a bounded outbound queue.

Responses and events leave through the single writer. Responses are never dropped (a
client has at most ``client_max_inflight`` requests outstanding, which bounds them);
events go to a bounded queue, and when it is full the event is dropped and counted per
subscription, and the client receives one ``events.gap`` event before that
subscription's next event. Producers (the event bus) therefore never wait on a client.
A client that stops reading altogether is disconnected after ``SEND_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, web

from attestables.shared import protocol
from attestables.shared.errors import LimitExceeded, ParseError

from ..events import event_size
from .dispatch import CallContext, dispatch

if TYPE_CHECKING:
    from ..daemon import Daemon

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 30.0


class Connection:
    def __init__(self, daemon: "Daemon", ws: web.WebSocketResponse, peer: str) -> None:
        self.daemon = daemon
        self.ws = ws
        self.peer = peer
        settings = daemon.settings
        self._responses: deque[dict[str, Any]] = deque()
        self._events: deque[tuple[str, str, int, Any]] = deque()
        self._event_limit = settings.client_queue_size
        self._byte_limit = settings.client_queue_kb * 1024
        self._queued_bytes = 0
        self._gaps: dict[str, list[int]] = {}  # subscription -> [dropped, first_seq]
        self._wakeup = asyncio.Event()
        self._inflight = asyncio.Semaphore(settings.client_max_inflight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.dropped_events = 0

    # -- event sink (called synchronously by the bus) -------------------------------------

    def offer(self, subscription: str, topic: str, seq: int, data: Any) -> None:
        if self._closing:
            return
        size = event_size(data)
        if len(self._events) >= self._event_limit or self._queued_bytes + size > self._byte_limit:
            gap = self._gaps.setdefault(subscription, [0, seq])
            gap[0] += 1
            self.dropped_events += 1
            self.daemon.stats["events_dropped"] += 1
            self._wakeup.set()
            return
        gap = self._gaps.pop(subscription, None)
        if gap is not None:
            self._events.append(
                (subscription, protocol.EVENTS_GAP, gap[1],
                 {"dropped": gap[0], "from_seq": gap[1], "to_seq": seq - 1, "reason": "slow_client"})
            )
        self._events.append((subscription, topic, seq, data))
        self._queued_bytes += size
        self._wakeup.set()

    def _respond(self, response: dict[str, Any]) -> None:
        self._responses.append(response)
        self._wakeup.set()

    # -- lifecycle ------------------------------------------------------------------------

    async def serve(self) -> None:
        writer = asyncio.create_task(self._writer(), name=f"ws-writer {self.peer}")
        self._respond(protocol.notification(protocol.HELLO, self.daemon.hello()))
        try:
            await self._reader()
        finally:
            self._closing = True
            self.daemon.bus.drop_owner(self)
            for task in list(self._tasks):
                task.cancel()
            writer.cancel()
            # Python 3.11's wait_for swallows a cancellation that arrives just as the frame
            # it awaits is sent: the writer would then wait for a wakeup forever, and this
            # handler (and its slot under max_clients) with it. _closing ends its loop.
            self._wakeup.set()
            await asyncio.gather(writer, *self._tasks, return_exceptions=True)

    async def _reader(self) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT or msg.type == WSMsgType.BINARY:
                self._handle_frame(msg.data)
            elif msg.type == WSMsgType.ERROR:
                log.info("websocket error from %s: %s", self.peer, self.ws.exception())
                break

    def _handle_frame(self, frame: str | bytes) -> None:
        try:
            message = protocol.decode(frame)
        except (msgspec.DecodeError, UnicodeDecodeError):
            self._respond(protocol.error(None, ParseError("frame is not valid JSON")))
            return
        except RecursionError:  # msgspec's depth guard: arrays or objects nested ~1000 deep
            self._respond(protocol.error(None, ParseError("frame is nested too deeply")))
            return
        if self._inflight.locked():
            id_ = message.get("id") if isinstance(message, dict) else None
            self._respond(protocol.error(
                id_, LimitExceeded(f"more than {self.daemon.settings.client_max_inflight} requests in flight")))
            return
        task = asyncio.create_task(self._call(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, message: Any) -> None:
        async with self._inflight:
            response = await dispatch(CallContext(self.daemon, self), message)
        if response is not None:
            self._respond(response)

    async def _writer(self) -> None:
        ws = self.ws
        try:
            while not self._closing:
                await self._wakeup.wait()
                self._wakeup.clear()
                while (self._responses or self._events or self._gaps) and not self._closing:
                    if self._responses:
                        frame = protocol.encode(self._responses.popleft())
                    elif self._events:
                        sub, topic, seq, data = self._events.popleft()
                        self._queued_bytes -= event_size(data)
                        frame = protocol.encode(protocol.event(sub, topic, seq, data))
                    else:
                        # The queue has drained and a subscription still owes its gap: say so
                        # now, or a dropped terminal event would leave the client waiting.
                        sub, (dropped, first) = self._gaps.popitem()
                        frame = protocol.encode(protocol.event(sub, protocol.EVENTS_GAP, first, {
                            "dropped": dropped, "from_seq": first, "to_seq": self.daemon.bus.seq,
                            "reason": "slow_client"}))
                    # A text frame from bytes we already encoded: no decode/encode round trip.
                    await asyncio.wait_for(ws.send_frame(frame, WSMsgType.TEXT), SEND_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionResetError) as exc:
            log.warning("disconnecting %s: cannot deliver (%s)", self.peer, type(exc).__name__)
            await ws.close(code=1008, message=b"client too slow")
