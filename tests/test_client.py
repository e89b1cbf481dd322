"""The client library against a real aiohttp websocket server speaking the envelope.

The server here is scripted per test (``server.methods``) so that each test can put
frames on the wire in exactly the order that matters: events before the result that
names their subscription, more events than the local queue holds, a socket that dies
with a call outstanding.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from attestables.shared import protocol
from attestables.shared.client import (
    CannotConnect,
    Client,
    Event,
    IncompatibleServer,
    find_token,
    follow_build,
    follow_run,
    output_bytes,
)
from attestables.shared.errors import (
    AttestablesError,
    ConnectionLost,
    MethodNotFound,
    NotFound,
    ProtocolViolation,
    Unauthorized,
)

TOKEN = "test-token-0123456789"


class NoAnswer(Exception):
    """Raised by a scripted method that must never be answered."""


class Peer:
    def __init__(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.request = request
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(protocol.encode(message).decode())

    async def event(self, subscription: str, topic: str, seq: int, data: Any) -> None:
        await self.send(protocol.event(subscription, topic, seq, data))

    def abort(self) -> None:
        """Drop the TCP connection without a websocket close (a crashed daemon)."""
        assert self.request.transport is not None
        self.request.transport.close()


Method = Callable[[Peer, dict[str, Any]], Awaitable[Any]]


class FakeDaemon:
    """Just the daemon's envelope: bearer check, hello, id-matched answers, typed errors."""

    def __init__(self) -> None:
        self.hello: dict[str, Any] | None = {
            "schema_version": protocol.SCHEMA_VERSION,
            "min_supported_schema_version": protocol.MIN_SUPPORTED_SCHEMA_VERSION,
            "server_version": "9.9.9-test",
        }
        self.methods: dict[str, Method] = {}
        self.calls: list[tuple[str, Any]] = []
        self.peers: list[Peer] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(protocol.API_PATH, self._websocket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"ws://{host}:{port}{protocol.API_PATH}"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        peer = Peer(request, ws)
        self.peers.append(peer)
        if self.hello is not None:
            await peer.send(protocol.notification(protocol.HELLO, self.hello))
        else:
            await peer.send(protocol.result(0, "not a hello"))
        tasks = set()
        async for message in ws:
            request_ = protocol.decode(message.data)
            task = asyncio.create_task(self._answer(peer, request_))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in tasks:
            task.cancel()
        return ws

    async def _answer(self, peer: Peer, request: dict[str, Any]) -> None:
        method, params, id_ = request["method"], request.get("params") or {}, request["id"]
        self.calls.append((method, params))
        handler = self.methods.get(method)
        try:
            if handler is None:
                raise MethodNotFound(f"no method {method}")
            value = await handler(peer, params)
        except NoAnswer:
            return
        except AttestablesError as exc:
            await peer.send(protocol.error(id_, exc))
        else:
            await peer.send(protocol.result(id_, value))


@pytest.fixture
async def server() -> AsyncIterator[FakeDaemon]:
    fake = FakeDaemon()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(server: FakeDaemon) -> AsyncIterator[Client]:
    async with Client.connect(server.url, TOKEN, timeout=5) as connected:
        yield connected


async def never(peer: Peer, params: dict[str, Any]) -> Any:
    raise NoAnswer


# -- calls ----------------------------------------------------------------------------------


async def test_calls_are_answered_by_id_even_out_of_order(server: FakeDaemon, client: Client) -> None:
    async def echo(peer: Peer, params: dict[str, Any]) -> Any:
        await asyncio.sleep(params["delay"])
        return {"value": params["value"]}

    server.methods["echo"] = echo
    slow = asyncio.create_task(client.call("echo", {"delay": 0.1, "value": "slow"}))
    fast = await client.call("echo", {"delay": 0, "value": "fast"})
    assert fast == {"value": "fast"}
    assert not slow.done()
    assert await slow == {"value": "slow"}
    assert client.hello.server_version == "9.9.9-test"
    assert client.hello.schema_version == protocol.SCHEMA_VERSION


async def test_errors_are_reraised_as_the_class_of_their_code(server: FakeDaemon, client: Client) -> None:
    class FromTheFuture(AttestablesError):
        code = "from_the_future"

    async def missing(peer: Peer, params: dict[str, Any]) -> Any:
        raise NotFound("no source s_1", source_id="s_1")

    async def newer(peer: Peer, params: dict[str, Any]) -> Any:
        raise FromTheFuture("a code this client does not know")

    server.methods.update(missing=missing, newer=newer)
    with pytest.raises(NotFound) as caught:
        await client.call("missing")
    assert caught.value.message == "no source s_1"
    assert caught.value.data == {"source_id": "s_1"}
    with pytest.raises(MethodNotFound):
        await client.call("no.such.method")
    with pytest.raises(AttestablesError) as unknown:
        await client.call("newer")
    assert unknown.value.code == "from_the_future"
    assert type(unknown.value) is AttestablesError


async def test_a_call_that_times_out_leaves_the_client_usable(server: FakeDaemon, client: Client) -> None:
    async def ping(peer: Peer, params: dict[str, Any]) -> Any:
        return "pong"

    server.methods.update(hang=never, ping=ping)
    with pytest.raises(TimeoutError):
        await client.call("hang", timeout=0.05)
    assert await client.call("ping") == "pong"
    assert not client.closed


# -- subscriptions --------------------------------------------------------------------------


def script_subscriptions(server: FakeDaemon, *, early: int = 0) -> None:
    """``events.subscribe`` answers ``sub-1`` (after ``early`` events already sent for it);
    ``publish {seqs}`` sends those events before its own answer."""

    async def subscribe(peer: Peer, params: dict[str, Any]) -> Any:
        for seq in range(1, early + 1):
            await peer.event("sub-1", protocol.RUNS_OUTPUT, seq, {"n": seq})
        return {"subscription": "sub-1", "seq": 0}

    async def publish(peer: Peer, params: dict[str, Any]) -> Any:
        for seq in params["seqs"]:
            await peer.event("sub-1", protocol.RUNS_OUTPUT, seq, {"n": seq})
        return len(params["seqs"])

    async def unsubscribe(peer: Peer, params: dict[str, Any]) -> Any:
        return {"subscription": params["subscription"], "unsubscribed": True}

    server.methods.update({"events.subscribe": subscribe, "publish": publish, "events.unsubscribe": unsubscribe})


async def test_subscription_yields_events_in_order_even_those_before_its_id(
    server: FakeDaemon, client: Client
) -> None:
    script_subscriptions(server, early=2)
    subscription = await client.subscribe([protocol.RUNS_OUTPUT], filter={"run_id": "r_1"})
    assert server.calls[0] == ("events.subscribe", {"topics": [protocol.RUNS_OUTPUT], "filter": {"run_id": "r_1"}})
    await client.call("publish", {"seqs": [3, 4, 5]})
    received = [await asyncio.wait_for(anext(subscription), 5) for _ in range(5)]
    assert [event.seq for event in received] == [1, 2, 3, 4, 5]
    assert received[0] == Event("sub-1", protocol.RUNS_OUTPUT, 1, {"n": 1})
    await subscription.close()
    assert ("events.unsubscribe", {"subscription": "sub-1"}) in server.calls
    assert [event async for event in subscription] == []


async def test_a_consumer_that_falls_behind_gets_a_gap_not_an_unbounded_queue(
    server: FakeDaemon, client: Client
) -> None:
    script_subscriptions(server)
    subscription = await client.subscribe([protocol.RUNS_OUTPUT], queue_size=4)
    await client.call("publish", {"seqs": list(range(1, 11))})  # all ten are in before this answer
    gap = await anext(subscription)
    assert gap.topic == protocol.EVENTS_GAP
    assert gap.data["dropped"] == 6
    assert (gap.data["from_seq"], gap.data["to_seq"]) == (1, 6)
    assert [(await anext(subscription)).seq for _ in range(4)] == [7, 8, 9, 10]
    with pytest.raises(asyncio.QueueEmpty):
        subscription.get_nowait()


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_losing_the_connection_fails_pending_calls_and_ends_subscriptions(
    server: FakeDaemon, client: Client, how: str
) -> None:
    script_subscriptions(server)

    async def die(peer: Peer, params: dict[str, Any]) -> Any:
        if how == "close":
            await peer.ws.close()
        else:
            peer.abort()
        raise NoAnswer

    server.methods.update(hang=never, die=die)
    subscription = await client.subscribe([protocol.RUNS_OUTPUT])
    await client.call("publish", {"seqs": [1]})
    pending = asyncio.create_task(client.call("hang"))
    await asyncio.sleep(0)
    with pytest.raises(ConnectionLost):
        await client.call("die")
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(pending, 5)
    # What arrived before the loss is still delivered; then the loss ends the stream.
    assert (await anext(subscription)).seq == 1
    with pytest.raises(ConnectionLost):
        await asyncio.wait_for(anext(subscription), 5)
    assert client.closed
    with pytest.raises(ConnectionLost):
        await client.call("hang")


async def test_closing_the_client_fails_its_pending_calls(server: FakeDaemon, client: Client) -> None:
    server.methods["hang"] = never
    pending = asyncio.create_task(client.call("hang"))
    await asyncio.sleep(0.01)
    await client.close()
    with pytest.raises(ConnectionLost, match="client closed"):
        await pending
    await client.close()  # idempotent


# -- connecting -----------------------------------------------------------------------------


async def test_a_wrong_token_is_refused_with_unauthorized(server: FakeDaemon) -> None:
    with pytest.raises(Unauthorized, match="refused the API token"):
        await Client.connect(server.url, "wrong-token", timeout=5)


async def test_a_daemon_that_requires_a_newer_schema_is_refused(server: FakeDaemon) -> None:
    assert server.hello is not None
    server.hello.update(
        schema_version=protocol.SCHEMA_VERSION + 2, min_supported_schema_version=protocol.SCHEMA_VERSION + 1
    )
    with pytest.raises(IncompatibleServer) as caught:
        await Client.connect(server.url, TOKEN, timeout=5)
    message = caught.value.message
    assert f"speaks API schema {protocol.SCHEMA_VERSION + 1}..{protocol.SCHEMA_VERSION + 2}" in message
    assert f"this client speaks schema {protocol.SCHEMA_VERSION}" in message
    assert "upgrade" in message


async def test_a_server_that_does_not_say_hello_is_refused(server: FakeDaemon) -> None:
    server.hello = None
    with pytest.raises(ProtocolViolation, match="system.hello"):
        await Client.connect(server.url, TOKEN, timeout=5)


async def test_an_unreachable_daemon_raises_cannot_connect() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/api/v1/ws"
    with pytest.raises(CannotConnect) as caught:
        await Client.connect(url, TOKEN, timeout=5)
    assert caught.value.message.startswith(f"cannot connect to the daemon at {url}: Connection refused")


# -- token discovery ------------------------------------------------------------------------


def test_token_comes_from_the_file_then_the_environment_then_the_state_dir(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.write_text("from-file\n")
    state = tmp_path / "state"
    (state / "attestables").mkdir(parents=True)
    (state / "attestables" / "api-token").write_text("from-state-dir\n")
    env = {"ATTESTABLES_TOKEN": "from-env", "XDG_STATE_HOME": str(state)}
    assert find_token(given, env) == "from-file"
    assert find_token(None, env) == "from-env"
    assert find_token(None, {"XDG_STATE_HOME": str(state)}) == "from-state-dir"


def test_a_missing_token_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(Unauthorized) as caught:
        find_token(None, {"XDG_STATE_HOME": str(tmp_path)})
    message = caught.value.message
    assert "--token-file" in message and "ATTESTABLES_TOKEN" in message
    assert str(tmp_path / "attestables" / "api-token") in message
    with pytest.raises(Unauthorized, match="cannot read"):
        find_token(tmp_path / "absent", {"ATTESTABLES_TOKEN": "ignored when a file is named"})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(Unauthorized, match="is empty"):
        find_token(tmp_path / "empty", {})


# -- following a build or a run -------------------------------------------------------------


def script_build(
    server: FakeDaemon,
    *,
    states: list[str],
    stored: list[str],
    stored_seq: int,
    live: list[tuple[int, str, Any]],
) -> None:
    """A build whose ``builds.get`` walks through ``states`` (last one repeats), whose
    stored log is ``stored`` up to ``stored_seq``, and whose ``live`` events (seq, topic,
    data) go out just after the stored log is answered."""
    gets = iter(states)
    last = [states[-1]]

    async def subscribe(peer: Peer, params: dict[str, Any]) -> Any:
        return {"subscription": "sub-b", "seq": 0}

    async def unsubscribe(peer: Peer, params: dict[str, Any]) -> Any:
        return {"unsubscribed": True}

    async def get(peer: Peer, params: dict[str, Any]) -> Any:
        state = next(gets, last[0])
        return {"build_id": params["build_id"], "state": state}

    async def logs(peer: Peer, params: dict[str, Any]) -> Any:
        async def later() -> None:
            await asyncio.sleep(0.01)
            for seq, topic, data in live:
                await peer.event("sub-b", topic, seq, data)

        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(later()))
        lines = [{"stream": "stderr", "line": line, "ts": 1.0} for line in stored]
        return {"lines": lines, "truncated": False, "seq": stored_seq}

    server.methods.update(
        {"events.subscribe": subscribe, "events.unsubscribe": unsubscribe, "builds.get": get, "builds.logs": logs}
    )


def log(line: str) -> dict[str, Any]:
    return {"build_id": "b_1", "stream": "stderr", "line": line, "ts": 2.0}


async def test_follow_gives_the_stored_log_then_only_newer_live_events(server: FakeDaemon, client: Client) -> None:
    finished = {"build_id": "b_1", "state": "failed", "exit_code": 1}
    script_build(
        server,
        states=["running"],
        stored=["one", "two"],
        stored_seq=5,
        live=[
            (4, protocol.BUILDS_LOG, log("two")),  # already in the stored log
            (5, protocol.BUILDS_STATE, {"build_id": "b_1", "state": "running"}),
            (6, protocol.BUILDS_LOG, log("three")),
            (7, protocol.BUILDS_STATE, finished),
        ],
    )
    async with follow_build(client, "b_1") as follow:
        events = [event async for event in follow]
    lines = [event.data["line"] for event in events if event.topic == protocol.BUILDS_LOG]
    assert lines == ["one", "two", "three"]
    assert events[-1] == Event("sub-b", protocol.BUILDS_STATE, 7, finished)
    assert follow.final == finished
    assert server.calls[0][0] == "events.subscribe"  # before the stored log is read
    assert ("events.unsubscribe", {"subscription": "sub-b"}) in server.calls


async def test_follow_of_a_finished_build_ends_with_its_record(server: FakeDaemon, client: Client) -> None:
    script_build(server, states=["succeeded"], stored=["done"], stored_seq=9, live=[])
    async with follow_build(client, "b_1") as follow:
        events = [event async for event in follow]
    assert [event.topic for event in events] == [protocol.BUILDS_LOG, protocol.BUILDS_STATE]
    assert events[-1].data["state"] == "succeeded"


@pytest.mark.parametrize("signal", ["gap", "silence"])
async def test_follow_ends_even_when_the_terminal_event_is_lost(
    server: FakeDaemon, client: Client, signal: str
) -> None:
    live = [(6, protocol.BUILDS_LOG, log("late"))]
    if signal == "gap":
        # The daemon's gap stands for the terminal event; the record says it ended.
        live.append((7, protocol.EVENTS_GAP, {"dropped": 1, "from_seq": 7, "to_seq": 7}))
        states, idle = ["running", "succeeded"], 30.0
    else:
        # Nothing more arrives; an idle check finds the build ended.
        states, idle = ["running", "running", "succeeded"], 0.05
    script_build(server, states=states, stored=[], stored_seq=5, live=live)
    async with follow_build(client, "b_1", idle_check_s=idle, settle_s=0.05) as follow:
        events = await asyncio.wait_for(_collect(follow), 5)
    assert events[0].data["line"] == "late"
    assert (signal == "gap") == any(event.topic == protocol.EVENTS_GAP for event in events)
    assert events[-1].topic == protocol.BUILDS_STATE
    assert follow.final is not None and follow.final["state"] == "succeeded"


async def _collect(follow: Any) -> list[Event]:
    return [event async for event in follow]


async def test_follow_run_gives_output_chunks_byte_exact(server: FakeDaemon, client: Client) -> None:
    async def subscribe(peer: Peer, params: dict[str, Any]) -> Any:
        return {"subscription": "sub-r"}

    async def unsubscribe(peer: Peer, params: dict[str, Any]) -> Any:
        return {"unsubscribed": True}

    async def get(peer: Peer, params: dict[str, Any]) -> Any:
        return {"run_id": "r_1", "state": "exited", "exit_code": 3}

    async def logs(peer: Peer, params: dict[str, Any]) -> Any:
        return {"chunks": [{"stream": "stdout", "data": "héllo\n", "ts": 1.0}], "truncated": True, "seq": 2}

    server.methods.update({"events.subscribe": subscribe, "events.unsubscribe": unsubscribe,
                           "runs.get": get, "runs.logs": logs})
    async with follow_run(client, "r_1") as follow:
        events = [event async for event in follow]
    assert output_bytes(events[0].data) == "héllo\n".encode()
    assert events[0].data["run_id"] == "r_1"
    assert follow.truncated
    assert follow.final == {"run_id": "r_1", "state": "exited", "exit_code": 3}
