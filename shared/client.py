"""The asyncio client of the daemon's API, shared by the CLI and the console.

One :class:`Client` is one websocket to ``/api/v1/ws``. A single reader task owns the
socket's receiving side: it resolves calls by their JSON-RPC id and hands ``event``
notifications to the :class:`Subscription` they name. Each subscription buffers into a
bounded local queue; a consumer that falls behind loses the oldest events and is told
so by a synthesized ``events.gap`` event instead of the queue growing without bound.
When the connection ends, every pending call raises :class:`ConnectionLost` and every
subscription ends with it, after yielding what it had already received.

:class:`Follow` (via :func:`follow_build` / :func:`follow_run`) is the race-free
"stored log, then live stream, then final record" view both faces need.

Only aiohttp's client side is used here; nothing imports Textual or the daemon.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import itertools
import logging
import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp

from . import protocol
from .errors import AttestablesError, ConnectionLost, ProtocolViolation, Unauthorized, error_from_wire
from .paths import DEFAULT_LISTEN, TOKEN_FILE, default_state_dir

if TYPE_CHECKING:
    from .ssh import SshOptions, SshTunnel

_LOGGER = logging.getLogger(__name__)

TOKEN_ENV = "ATTESTABLES_TOKEN"
URL_ENV = "ATTESTABLES_URL"

# Seconds to open the websocket and receive ``system.hello``.
DEFAULT_CONNECT_TIMEOUT = 10.0
# Events a subscription holds for a consumer that is not keeping up.
DEFAULT_QUEUE_SIZE = 4096
# Largest frame accepted from the daemon (a source's content or a stored log).
MAX_FRAME_BYTES = 64 * 1024 * 1024
# A followed build or run with no events this long is checked for having ended.
FOLLOW_IDLE_CHECK_S = 5.0
# Once it has ended, how long a quiet stream is given for events still in flight.
FOLLOW_SETTLE_S = 1.0
# aiohttp pings at this interval and drops a peer that does not answer within half of it.
HEARTBEAT_S = 30.0


class CannotConnect(AttestablesError):
    """Client side only: the daemon could not be reached or would not speak websocket."""

    code: ClassVar[str] = "cannot_connect"


class IncompatibleServer(AttestablesError):
    """Client side only: the daemon no longer speaks this client's API schema."""

    code: ClassVar[str] = "incompatible_schema"


@dataclass(frozen=True, slots=True)
class Hello:
    """What the daemon announced in ``system.hello`` when the connection opened."""

    schema_version: int
    min_supported_schema_version: int
    server_version: str


@dataclass(frozen=True, slots=True)
class Event:
    """One stream item: ``data`` is the topic's payload, ``seq`` the daemon's bus order.

    Items that :class:`Follow` replays from a stored log carry the ``seq`` that log
    was complete up to.
    """

    subscription: str
    topic: str
    seq: int
    data: Any


def find_token(token_file: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The API token, from ``--token-file``, else ``$ATTESTABLES_TOKEN``, else the state dir.

    Raises :class:`Unauthorized` naming every place it looked.
    """
    env = os.environ if environ is None else environ
    if token_file is not None:
        return _read_token(Path(token_file), "the token file given with --token-file")
    from_env = env.get(TOKEN_ENV, "").strip()
    if from_env:
        return from_env
    path = default_state_dir(dict(env)) / TOKEN_FILE
    if not path.exists():
        raise Unauthorized(
            f"no API token found: --token-file was not given, ${TOKEN_ENV} is not set, "
            f"and {path} does not exist (has the daemon run as this user with this state directory?)"
        )
    return _read_token(path, "the daemon's token file")


def _read_token(path: Path, what: str) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise Unauthorized(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not token:
        raise Unauthorized(f"{what} {path} is empty")
    return token


def output_bytes(chunk: Mapping[str, Any]) -> bytes:
    """The raw bytes of one ``runs.output`` item or ``runs.logs`` chunk."""
    data = chunk.get("data", "")
    if chunk.get("encoding") == "base64":
        return base64.b64decode(data)
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    return bytes(data)


class _EventQueue:
    """A bounded FIFO that drops its oldest items and remembers what it dropped.

    The dropped run is reported as one ``events.gap`` event at the head of the queue,
    which is exactly where the missing events were.
    """

    def __init__(self, subscription: str, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("queue size must be at least 1")
        self.subscription = subscription
        self.maxsize = maxsize
        self._items: deque[Event] = deque()
        self._dropped = 0
        self._dropped_from: int | None = None
        self._dropped_to: int | None = None

    def __len__(self) -> int:
        return len(self._items) + (1 if self._dropped else 0)

    def put(self, event: Event) -> None:
        if len(self._items) >= self.maxsize:
            self._drop(self._items.popleft())
        self._items.append(event)

    def _drop(self, event: Event) -> None:
        if event.topic == protocol.EVENTS_GAP and isinstance(event.data, dict):
            # A gap that is itself dropped still owes its count to the consumer.
            count = int(event.data.get("dropped", 0) or 0)
        else:
            count = 1
        if not self._dropped:
            self._dropped_from = event.seq
        self._dropped += count
        self._dropped_to = event.seq

    def take(self) -> Event | None:
        if self._dropped:
            gap = Event(
                self.subscription,
                protocol.EVENTS_GAP,
                self._dropped_to or 0,
                {
                    "dropped": self._dropped,
                    "from_seq": self._dropped_from,
                    "to_seq": self._dropped_to,
                    "reason": "client_queue_full",
                },
            )
            self._dropped = 0
            self._dropped_from = self._dropped_to = None
            return gap
        return self._items.popleft() if self._items else None

    def move_to(self, other: _EventQueue) -> None:
        other._dropped, other._dropped_from, other._dropped_to = self._dropped, self._dropped_from, self._dropped_to
        for event in self._items:
            other.put(event)


class Subscription:
    """An async iterator of the :class:`Event` items of one ``events.subscribe``.

    Iteration ends when :meth:`close` is called, and raises :class:`ConnectionLost`
    when the connection ends (after the events already received).
    """

    def __init__(
        self,
        client: Client,
        subscription_id: str,
        topics: tuple[str, ...],
        filter: dict[str, Any] | None,
        queue_size: int,
    ) -> None:
        self.id = subscription_id
        self.topics = topics
        self.filter = filter
        # The daemon's bus sequence number when the subscription began, if it said.
        self.seq: int | None = None
        self._client = client
        self._queue = _EventQueue(subscription_id, queue_size)
        self._closed = False
        self._lost: str | None = None
        self._wakeup = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Subscription {self.id} topics={list(self.topics)} queued={len(self._queue)}>"

    @property
    def closed(self) -> bool:
        return self._closed or self._lost is not None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._closed:
                raise StopAsyncIteration
            event = self._queue.take()
            if event is not None:
                return event
            if self._lost is not None:
                raise ConnectionLost(self._lost)
            self._wakeup.clear()
            await self._wakeup.wait()

    def get_nowait(self) -> Event:
        """The next event already received; raises ``asyncio.QueueEmpty`` if there is none."""
        event = None if self._closed else self._queue.take()
        if event is None:
            raise asyncio.QueueEmpty
        return event

    async def close(self) -> None:
        """Stop delivery and unsubscribe (idempotent; quiet if the connection is gone)."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        self._client._subscriptions.pop(self.id, None)
        if self._lost is None and not self._client.closed:
            try:
                await self._client.call("events.unsubscribe", {"subscription": self.id})
            except AttestablesError as exc:
                _LOGGER.debug("unsubscribe %s: %s", self.id, exc)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def _push(self, event: Event) -> None:
        if not self._closed:
            self._queue.put(event)
            self._wakeup.set()

    def _connection_lost(self, reason: str) -> None:
        self._lost = reason
        self._wakeup.set()


class _Connecting:
    """What :meth:`Client.connect` returns: await it, or use it with ``async with``."""

    def __init__(self, connect: Callable[[], Coroutine[Any, Any, Client]]) -> None:
        self._connect = connect
        self._client: Client | None = None

    def __await__(self) -> Generator[Any, None, Client]:
        return self._connect().__await__()

    async def __aenter__(self) -> Client:
        self._client = await self._connect()
        return self._client

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.close()


class Client:
    """One authenticated websocket connection to the daemon's API."""

    def __init__(
        self,
        url: str,
        ws: aiohttp.ClientWebSocketResponse,
        session: aiohttp.ClientSession,
        owns_session: bool,
        hello: Hello,
    ) -> None:
        self.url = url
        self._ws = ws
        self._session = session
        self._owns_session = owns_session
        self._hello = hello
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        # Events may reach us before the events.subscribe result that names their
        # subscription; they wait here while a subscribe call is in flight.
        self._early: dict[str, _EventQueue] = {}
        self._subscribing = 0
        self._closing = False
        self._lost: str | None = None
        # The SSH tunnel this client's connection runs through (``connect(ssh=...)``), if any.
        self._tunnel: SshTunnel | None = None
        self._reader = asyncio.create_task(self._read(), name=f"attestables-client-reader {url}")

    @classmethod
    def connect(
        cls,
        url: str | None,
        token: str | None,
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
        ssl: Any = None,
        session: aiohttp.ClientSession | None = None,
        heartbeat: float | None = HEARTBEAT_S,
        ssh: SshOptions | None = None,
    ) -> _Connecting:
        """Open the websocket, check ``system.hello``, and return a ready client.

        ``ssl`` is passed to aiohttp (``None``: default certificate checks). A session
        given by the caller is borrowed, never closed. Raises :class:`Unauthorized` on
        HTTP 401, :class:`CannotConnect` when the daemon cannot be reached, and
        :class:`IncompatibleServer` when it no longer speaks our schema.

        With ``ssh`` (see :mod:`attestables.shared.ssh`), the connection goes through an
        SSH tunnel to that host: ``url`` then names the daemon as the remote host sees it
        (``None``: the default ``127.0.0.1:7480``), and a ``token`` of ``None`` is read from
        the remote state directory over the same SSH connection. The tunnel closes with
        the client.
        """

        async def connect() -> Client:
            if ssh is not None:
                return await _connect_over_ssh(cls, ssh, url, token, timeout=timeout, ssl=ssl, heartbeat=heartbeat)
            if url is None or token is None:
                raise ValueError("url and token are required unless ssh is given")
            return await _connect(cls, url, token, timeout=timeout, ssl=ssl, session=session, heartbeat=heartbeat)

        if ssh is not None and session is not None:
            raise ValueError("a session cannot be combined with ssh: the tunnel makes its own")
        return _Connecting(connect)

    @property
    def hello(self) -> Hello:
        return self._hello

    @property
    def closed(self) -> bool:
        return self._closing or self._lost is not None

    async def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float | None = None) -> Any:
        """Send one request and return its result, or raise the typed error from its code.

        ``timeout`` (seconds, ``None`` for none) raises ``TimeoutError``; a late answer
        is then ignored.
        """
        if self.closed:
            raise ConnectionLost(self._lost or "the client is closed")
        id_ = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[id_] = future
        try:
            try:
                await self._ws.send_str(protocol.encode(protocol.request(id_, method, params)).decode())
            except (ConnectionError, aiohttp.ClientError) as exc:
                raise ConnectionLost(f"the connection to the daemon at {self.url} was lost: {exc}") from None
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._pending.pop(id_, None)

    async def subscribe(
        self,
        topics: Iterable[str],
        *,
        filter: dict[str, Any] | None = None,
        since: int | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> Subscription:
        """Start a stream; iterate the returned :class:`Subscription` for its events."""
        topics = tuple(topics)
        params: dict[str, Any] = {"topics": list(topics)}
        if filter is not None:
            params["filter"] = filter
        if since is not None:
            params["since"] = since
        self._subscribing += 1
        try:
            result = await self.call("events.subscribe", params)
        finally:
            self._subscribing -= 1
        if not isinstance(result, dict) or not isinstance(result.get("subscription"), str):
            raise ProtocolViolation(f"events.subscribe returned no subscription id: {result!r}")
        subscription = Subscription(self, result["subscription"], topics, filter, queue_size)
        if isinstance(result.get("seq"), int):
            subscription.seq = result["seq"]
        early = self._early.pop(subscription.id, None)
        if early is not None:
            early.move_to(subscription._queue)
        if not self._subscribing:
            self._early.clear()
        if self._lost is not None:
            subscription._connection_lost(self._lost)
        else:
            self._subscriptions[subscription.id] = subscription
        return subscription

    async def close(self) -> None:
        """Close the websocket (pending calls raise :class:`ConnectionLost`). Idempotent."""
        if not self._closing:
            self._closing = True
            await self._ws.close()
        await asyncio.shield(self._reader)
        if self._owns_session and not self._session.closed:
            await self._session.close()
        if self._tunnel is not None:
            tunnel, self._tunnel = self._tunnel, None
            await tunnel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _read(self) -> None:
        ws = self._ws
        reason = f"the daemon at {self.url} closed the connection"
        try:
            async for message in ws:
                if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    try:
                        self._dispatch(protocol.decode(message.data))
                    except Exception:
                        _LOGGER.exception("dropping a frame the client could not handle")
                elif message.type is aiohttp.WSMsgType.ERROR:
                    reason = f"the connection to the daemon at {self.url} failed: {ws.exception()}"
                    break
            if ws.close_code is not None and not self._closing:
                reason += f" (close code {ws.close_code})"
        except Exception as exc:  # the transport broke under us
            reason = f"the connection to the daemon at {self.url} was lost: {exc}"
        finally:
            if self._closing:
                reason = "the client closed the connection"
            self._connection_lost(reason)

    def _dispatch(self, message: Any) -> None:
        if not isinstance(message, dict):
            _LOGGER.warning("ignoring a frame that is not an object: %.200r", message)
            return
        if "id" in message and ("result" in message or "error" in message):
            future = self._pending.get(message["id"]) if isinstance(message["id"], int) else None
            if future is None:
                if "error" in message:
                    _LOGGER.warning("error from the daemon not tied to a call: %.500r", message["error"])
                return
            if future.done():
                return
            if "error" in message:
                future.set_exception(error_from_wire(message["error"]))
            else:
                future.set_result(message["result"])
            return
        method = message.get("method")
        params = message.get("params")
        if method == protocol.EVENT and isinstance(params, dict):
            self._dispatch_event(params)
        elif method == protocol.HELLO:
            _LOGGER.debug("repeated system.hello ignored")
        else:
            _LOGGER.debug("ignoring notification %r", method)

    def _dispatch_event(self, params: dict[str, Any]) -> None:
        sub_id = params.get("subscription")
        if not isinstance(sub_id, str):
            _LOGGER.warning("ignoring an event without a subscription id")
            return
        event = Event(sub_id, str(params.get("topic", "")), int(params.get("seq") or 0), params.get("data"))
        subscription = self._subscriptions.get(sub_id)
        if subscription is not None:
            subscription._push(event)
        elif self._subscribing:
            queue = self._early.get(sub_id)
            if queue is None:
                queue = self._early[sub_id] = _EventQueue(sub_id, DEFAULT_QUEUE_SIZE)
            queue.put(event)
        # else: a subscription we already closed; its stragglers are dropped.

    def _connection_lost(self, reason: str) -> None:
        self._lost = reason
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(reason))
        subscriptions, self._subscriptions = self._subscriptions, {}
        for subscription in subscriptions.values():
            subscription._connection_lost(reason)
        self._early.clear()


async def _connect(
    cls: type[Client],
    url: str,
    token: str,
    *,
    timeout: float,
    ssl: Any,
    session: aiohttp.ClientSession | None,
    heartbeat: float | None,
) -> Client:
    own = session is None
    http = aiohttp.ClientSession() if session is None else session
    try:
        async with asyncio.timeout(timeout):
            ws = await _open(http, url, token, ssl, heartbeat)
            try:
                hello = await _receive_hello(ws, url)
            except BaseException:
                await ws.close()
                raise
    except TimeoutError:
        if own:
            await http.close()
        raise CannotConnect(f"cannot connect to the daemon at {url}: no answer within {timeout:g}s") from None
    except BaseException:
        if own:
            await http.close()
        raise
    return cls(url, ws, http, own, hello)


async def _connect_over_ssh(
    cls: type[Client], ssh: SshOptions, url: str | None, token: str | None, *, timeout: float, ssl: Any,
    heartbeat: float | None,
) -> Client:
    from .ssh import open_tunnel, remote_address

    host, port = remote_address(url, DEFAULT_LISTEN)
    where = f"ws://{'[' + host + ']' if ':' in host else host}:{port}/api/v1/ws"
    tunnel = await open_tunnel(ssh, host, port)
    session: aiohttp.ClientSession | None = None
    try:
        if token is None:
            token = await tunnel.read_token()
        session = tunnel.session()
        try:
            client = await _connect(cls, url or where, token, timeout=timeout, ssl=ssl, session=session,
                                    heartbeat=heartbeat)
        except CannotConnect as exc:
            raise CannotConnect(f"{exc.message} (through ssh {ssh.target}; is the daemon running there, "
                                f"listening on {host}:{port}?)") from None
    except BaseException:
        if session is not None:
            await session.close()
        await tunnel.close()
        raise
    # The tunnel's session is ours to close, as is the tunnel.
    client._owns_session = True
    client._tunnel = tunnel
    return client


async def _open(
    session: aiohttp.ClientSession, url: str, token: str, ssl: Any, heartbeat: float | None
) -> aiohttp.ClientWebSocketResponse:
    try:
        return await session.ws_connect(
            url,
            headers={"Authorization": f"Bearer {token}"},
            ssl=True if ssl is None else ssl,
            heartbeat=heartbeat,
            max_msg_size=MAX_FRAME_BYTES,
        )
    except aiohttp.WSServerHandshakeError as exc:
        if exc.status == 401:
            raise Unauthorized(
                f"the daemon at {url} refused the API token (HTTP 401); "
                f"check --token-file or ${TOKEN_ENV}"
            ) from None
        raise CannotConnect(
            f"cannot connect to the daemon at {url}: the websocket upgrade failed "
            f"(HTTP {exc.status} {exc.message}); is this the daemon's API address?"
        ) from None
    except aiohttp.ClientConnectorError as exc:
        error = exc.os_error
        reason = os.strerror(error.errno) if error.errno and error.errno > 0 else (error.strerror or str(error))
        if error.errno == errno.ECONNREFUSED:
            reason += "; is the daemon running?"
        raise CannotConnect(f"cannot connect to the daemon at {url}: {reason}") from None
    except aiohttp.InvalidURL:
        raise CannotConnect(f"cannot connect to the daemon at {url}: not a valid ws:// or wss:// URL") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise CannotConnect(f"cannot connect to the daemon at {url}: {exc or type(exc).__name__}") from None


async def _receive_hello(ws: aiohttp.ClientWebSocketResponse, url: str) -> Hello:
    message = await ws.receive()
    if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
        raise CannotConnect(f"cannot connect to the daemon at {url}: the connection closed before system.hello")
    try:
        frame = protocol.decode(message.data)
    except Exception:
        raise ProtocolViolation(f"the daemon at {url} sent a first frame that is not JSON") from None
    params = frame.get("params") if isinstance(frame, dict) else None
    if not isinstance(frame, dict) or frame.get("method") != protocol.HELLO or not isinstance(params, dict):
        raise ProtocolViolation(f"the daemon at {url} did not start with system.hello: {frame!r:.200}")
    try:
        hello = Hello(
            schema_version=int(params["schema_version"]),
            min_supported_schema_version=int(params["min_supported_schema_version"]),
            server_version=str(params.get("server_version", "unknown")),
        )
    except (KeyError, TypeError, ValueError):
        raise ProtocolViolation(f"malformed system.hello from the daemon at {url}: {params!r:.200}") from None
    if hello.min_supported_schema_version > protocol.SCHEMA_VERSION:
        raise IncompatibleServer(
            f"the daemon at {url} (version {hello.server_version}) speaks API schema "
            f"{hello.min_supported_schema_version}..{hello.schema_version}, but this client speaks "
            f"schema {protocol.SCHEMA_VERSION}: upgrade this client",
            server_schema_version=hello.schema_version,
            min_supported_schema_version=hello.min_supported_schema_version,
            client_schema_version=protocol.SCHEMA_VERSION,
        )
    return hello


@dataclass(frozen=True, slots=True)
class _Stream:
    """The names that differ between following a build and following a run."""

    id_key: str
    log_topic: str
    state_topic: str
    get_method: str
    logs_method: str
    items_key: str
    terminal: frozenset[str]


_BUILD = _Stream(
    id_key="build_id",
    log_topic=protocol.BUILDS_LOG,
    state_topic=protocol.BUILDS_STATE,
    get_method="builds.get",
    logs_method="builds.logs",
    items_key="lines",
    terminal=protocol.BUILD_TERMINAL,
)
_RUN = _Stream(
    id_key="run_id",
    log_topic=protocol.RUNS_OUTPUT,
    state_topic=protocol.RUNS_STATE,
    get_method="runs.get",
    logs_method="runs.logs",
    items_key="chunks",
    terminal=protocol.RUN_TERMINAL,
)


class Follow:
    """The stored log of one build or run, then its live stream, ending with its final record.

    Use as ``async with follow_build(client, id) as follow: async for event in follow``.
    Events are ``builds.log``/``runs.output`` items, ``events.gap`` markers, and state
    events; the last one is always a state event whose data is the terminal record
    (also kept in :attr:`final`). Nothing is printed twice or lost between the stored
    log and the live stream: the subscription opens first, and live log items already
    covered by the stored log (``seq`` not above the log's ``seq``) are skipped.
    :attr:`truncated` says the daemon kept only part of the stored log.

    The stream still ends if its terminal event never arrives (dropped for a slow
    client): after a gap, or ``idle_check_s`` without events, the record is fetched,
    and a terminal record ends the stream once the events still in flight are in.
    """

    def __init__(
        self,
        client: Client,
        object_id: str,
        stream: _Stream,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        idle_check_s: float = FOLLOW_IDLE_CHECK_S,
        settle_s: float = FOLLOW_SETTLE_S,
    ) -> None:
        self.client = client
        self.object_id = object_id
        self.queue_size = queue_size
        self.idle_check_s = idle_check_s
        self.settle_s = settle_s
        self.truncated = False
        self.final: dict[str, Any] | None = None
        self._stream = stream
        self._events: AsyncGenerator[Event, None] | None = None

    async def __aenter__(self) -> Follow:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._events is not None:
            await self._events.aclose()

    def __aiter__(self) -> AsyncIterator[Event]:
        if self._events is None:
            self._events = self._generate()
        return self._events

    async def _generate(self) -> AsyncGenerator[Event, None]:
        s = self._stream
        ident = {s.id_key: self.object_id}
        async with await self.client.subscribe(
            [s.log_topic, s.state_topic], filter=ident, queue_size=self.queue_size
        ) as subscription:
            # The record before the log: a record that is not yet terminal here
            # guarantees its terminal state event is still to come on the subscription.
            record = await self.client.call(s.get_method, ident)
            logs = await self.client.call(s.logs_method, ident)
            self.truncated = bool(logs.get("truncated"))
            covered = int(logs.get("seq") or 0)
            for item in logs.get(s.items_key, ()):
                yield Event(subscription.id, s.log_topic, covered, {**ident, **item})
            if _terminal(record, s):
                self.final = record
                yield Event(subscription.id, s.state_topic, covered, record)
                return
            last_seq = covered
            while True:
                event = await _next_within(subscription, self.idle_check_s)
                if event is None or event.topic == protocol.EVENTS_GAP:
                    if event is not None:
                        yield event
                    # Did it end while its terminal event was lost?
                    record = await self.client.call(s.get_method, ident)
                    if _terminal(record, s):
                        break
                    continue
                if event.topic == s.log_topic and event.seq <= covered:
                    continue
                yield event
                last_seq = event.seq
                if event.topic == s.state_topic and _terminal(event.data, s):
                    self.final = event.data
                    return
            # It has ended: take the events still in flight, until its terminal event
            # or a quiet spell, then end with the record.
            while (event := await _next_within(subscription, self.settle_s)) is not None:
                if event.topic == s.state_topic:
                    if _terminal(event.data, s):
                        record, last_seq = event.data, event.seq
                        break
                    continue
                if event.topic == s.log_topic and event.seq <= covered:
                    continue
                yield event
                last_seq = event.seq
            self.final = record
            yield Event(subscription.id, s.state_topic, last_seq, record)


async def _next_within(subscription: Subscription, seconds: float) -> Event | None:
    """The next event, or ``None`` after ``seconds`` without one or once it is closed."""
    try:
        async with asyncio.timeout(seconds):
            return await anext(subscription)
    except (TimeoutError, StopAsyncIteration):
        return None


def _terminal(data: Any, stream: _Stream) -> bool:
    return isinstance(data, dict) and data.get("state") in stream.terminal


def follow_build(client: Client, build_id: str, **options: Any) -> Follow:
    """Compile log lines of one build, then its terminal ``builds.state`` event."""
    return Follow(client, build_id, _BUILD, **options)


def follow_run(client: Client, run_id: str, **options: Any) -> Follow:
    """Output chunks of one run, then its terminal ``runs.state`` event."""
    return Follow(client, run_id, _RUN, **options)
