"""The broker's HTTPS client (daemon/broker/https.py) against real TLS servers on loopback.

Two kinds of server: an aiohttp ``web`` application for well-formed answers, and a raw
``asyncio.start_server`` that writes crafted bytes. Both count what reached them
(connections, requests, request bytes), so each test sees what was sent, how often and
over how many connections. Requests go through ``Broker._forward`` (one test, whose
request is too large for a compartment, calls the pool itself), so the trace outcome,
HTTP status and the message the compartment would receive are checked too; the daemon
behind the broker is a stand-in that only supplies the CA chain (``_forward`` asks it for
nothing else). The tests run on asyncio's loop, and the main scenarios again on uvloop's
(the daemon's), whose TLS transport is another implementation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp import web

from attestables.apps.base.tls import create_certificate, server_context
from attestables.daemon.broker import https
from attestables.daemon.broker.broker import MAX_ANSWER, Broker
from attestables.daemon.broker.registry import Service
from attestables.shared import channel as wire
from attestables.shared import eai

SEALED = bytes(range(64))
ANSWER = json.dumps({"sealed": eai.b64url(SEALED)}).encode()
NONCE = b"\x01" * wire.NONCE_LEN


def http(head: str, body: bytes = ANSWER) -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body


OK = http(f"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: {len(ANSWER)}\n")


@dataclass(frozen=True)
class Tls:
    dir: Path
    pem: str  # the servers' certificate (names: localhost, 127.0.0.1, ::1)
    other_pem: str  # a certificate no server has

    @staticmethod
    def fingerprint(pem: str) -> str:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()

    def server_context(self) -> ssl.SSLContext:
        return server_context(self.dir / "tls.pem", self.dir / "tls.key")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    base = tmp_path_factory.mktemp("tls")
    create_certificate(base / "tls.pem", base / "tls.key", common_name="service", host="127.0.0.1")
    create_certificate(base / "other.pem", base / "other.key", common_name="other", host="127.0.0.1")
    return Tls(base, (base / "tls.pem").read_text(), (base / "other.pem").read_text())


def service(url: str, pem: str, pin: str = "fingerprint") -> Service:
    """A registered service as the registry holds it; a new object is a new pin."""
    return Service("svc", url, pem if pin == "ca" else None, Tls.fingerprint(pem) if pin == "fingerprint" else None,
                   b"k" * 32, {}, "", "")


class Client:
    """A real Broker over a stand-in daemon: ``forward`` returns (trace, message)."""

    def __init__(self) -> None:
        ca = SimpleNamespace(chain_pem=lambda: b"-----CHAIN-----\n")
        daemon: Any = SimpleNamespace(db=None, bus=None, certs=SimpleNamespace(ca=ca))
        self.broker = Broker(daemon)
        self.pool = self.broker.https

    async def forward(self, svc: Service, path: str = "/ok", op: type[wire.Request] = wire.Read,
                      ) -> tuple[dict[str, Any], wire.Message]:
        trace: dict[str, Any] = {"http_status": None, "outcome": "error", "bytes_out": 0, "sha256_out": None}
        certificate: Any = SimpleNamespace(pem=b"-----CERT-----\n")  # all _forward reads of it
        message = await self.broker._forward(svc, path, op(1, svc.service_id, NONCE, SEALED), certificate, trace)
        return trace, message


@contextlib.asynccontextmanager
async def client() -> AsyncIterator[Client]:
    c = Client()
    try:
        yield c
    finally:
        c.pool.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def idle(pool: https.HttpsPool) -> int:
    """Connections in the pool's idle lists (a private view: nothing else shows them)."""
    return sum(len(endpoint.idle) for endpoint in pool._endpoints.values())


def ok(result: tuple[dict[str, Any], wire.Message]) -> bool:
    trace, message = result
    return (trace["outcome"] == "ok" and trace["http_status"] == 200 and isinstance(message, wire.Result)
            and message.status == wire.ResultStatus.OK and message.sealed == SEALED)


class WebService:
    """An aiohttp HTTPS server: /ok, /slow (``delay`` s), /chunked, /big, /close."""

    def __init__(self, tls: Tls, *, keepalive_timeout: float = 75.0, delay: float = 0.1) -> None:
        self.tls, self.keepalive_timeout, self.delay = tls, keepalive_timeout, delay
        self.requests = 0
        self.peers: set[Any] = set()  # one (host, port) per TCP connection
        self.bodies: list[bytes] = []
        self.in_flight = self.max_in_flight = 0

    async def __aenter__(self) -> WebService:
        app = web.Application()
        app.router.add_post("/{kind}", self.handle)
        self.runner = web.AppRunner(app, keepalive_timeout=self.keepalive_timeout)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.tls.server_context())
        await site.start()
        self.url = f"https://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.peers.add(request.transport.get_extra_info("peername"))
        self.bodies.append(await request.read())
        self.requests += 1
        kind = request.match_info["kind"]
        if kind == "slow":
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            await asyncio.sleep(self.delay)
            self.in_flight -= 1
        if kind == "chunked":  # 300 kB in 30 chunks, the sealed answer at the very end
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(b'{"pad": "')
            for _ in range(30):
                await response.write(b"p" * 10_000)
            await response.write(b'", ' + ANSWER[1:])
            await response.write_eof()
            return response
        if kind == "big":
            return web.Response(body=b" " * (MAX_ANSWER + 1000), content_type="application/json")
        response = web.Response(body=ANSWER, content_type="application/json")
        if kind == "close":
            response.force_close()
        return response


class RawServer:
    """A TLS listener that reads each request and answers ``reply`` (crafted bytes), then
    ``then``: "keep" (wait for the next request), "close", "abort" (instead of answering),
    "hang" (answer, then read nothing more), "early" (answer after the head without
    reading the body, then hang). ``reply=None`` never answers."""

    def __init__(self, tls: Tls, reply: bytes | None, then: str = "keep", *, host: str = "127.0.0.1") -> None:
        self.tls, self.reply, self.then, self.host = tls, reply, then, host
        self.connections = self.requests = self.bytes_in = self.ended = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self.handle, self.host, 0, ssl=self.tls.server_context())
        self.url = f"https://{self.host}:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        for writer in self._writers:
            writer.transport.abort()
        self.server.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        self._tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.bytes_in += len(head)
                if self.then == "early":
                    writer.write(self.reply or b"")
                    await self._stop.wait()
                    return
                length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
                assert length is not None
                self.bytes_in += len(await reader.readexactly(int(length[1])))
                self.requests += 1
                if self.reply is None:
                    await reader.read()  # until the client goes
                    return
                if self.then == "abort":
                    writer.transport.abort()
                    return
                writer.write(self.reply)
                await writer.drain()
                if self.then == "close":
                    writer.close()
                    return
                if self.then == "hang":
                    await self._stop.wait()
                    return
        except asyncio.IncompleteReadError as exc:
            self.bytes_in += len(exc.partial)
        except ConnectionError:
            pass
        finally:
            self.ended += 1


# -- keep-alive ---------------------------------------------------------------------------------


@pytest.mark.parametrize("pin", ["fingerprint", "ca"])
async def test_sequential_requests_share_one_connection(tls: Tls, pin: str) -> None:
    async with WebService(tls) as server, client() as c:
        svc = service(server.url, tls.pem, pin)
        results = [await c.forward(svc) for _ in range(20)]
        assert all(ok(r) for r in results)
        assert server.requests == 20 and len(server.peers) == 1
        sent = json.loads(server.bodies[0])  # what the service received: the envelope, as before
        assert sent == {"certificate": "-----CERT-----\n-----CHAIN-----\n", "nonce": eai.b64url(NONCE),
                        "sealed": eai.b64url(SEALED)}


async def test_concurrent_requests_open_several_connections_then_reuse_them(tls: Tls) -> None:
    async with WebService(tls) as server, client() as c:
        svc = service(server.url, tls.pem)
        assert all(ok(r) for r in await asyncio.gather(*(c.forward(svc, "/slow") for _ in range(10))))
        assert server.max_in_flight == 10 and len(server.peers) == 10
        assert all(ok(r) for r in await asyncio.gather(*(c.forward(svc, "/slow") for _ in range(10))))
        assert server.requests == 20 and len(server.peers) == 10


async def test_a_chunked_answer_is_read_whole(tls: Tls) -> None:
    async with WebService(tls) as server, client() as c:
        trace, message = await c.forward(service(server.url, tls.pem), "/chunked")
        assert ok((trace, message)) and trace["sha256_out"] == hashlib.sha256(SEALED).hexdigest()
        assert ok(await c.forward(service(server.url, tls.pem), "/ok"))


async def test_an_answer_over_the_limit_is_refused_and_its_connection_closed(tls: Tls) -> None:
    async with WebService(tls) as server, client() as c:
        svc = service(server.url, tls.pem)
        trace, message = await c.forward(svc, "/big")
        assert trace["outcome"] == "answer_too_large" and trace["http_status"] == 200
        assert message == wire.Result(1, wire.ResultStatus.FAILED)
        assert ok(await c.forward(svc))
        assert len(server.peers) == 2


async def test_connection_close_answers_are_not_reused(tls: Tls) -> None:
    async with WebService(tls) as server, client() as c:
        svc = service(server.url, tls.pem)
        assert all([ok(await c.forward(svc, "/close")) for _ in range(3)])
        assert server.requests == 3 and len(server.peers) == 3
        await until(lambda: not c.pool.open)


async def test_an_idle_connection_the_server_closed_is_dropped_and_nothing_is_sent_twice(tls: Tls) -> None:
    async with WebService(tls, keepalive_timeout=0.2) as server, client() as c:
        svc = service(server.url, tls.pem)
        assert ok(await c.forward(svc, op=wire.Write))
        assert len(c.pool.open) == 1 and idle(c.pool) == 1
        await until(lambda: not c.pool.open)  # the pool learns of the close by itself...
        assert idle(c.pool) == 0  # ...and drops the connection
        assert ok(await c.forward(svc, op=wire.Write))
        assert server.requests == 2 and len(server.peers) == 2


async def test_another_pin_gets_another_connection_and_forget_closes_idle_ones(tls: Tls) -> None:
    async with WebService(tls) as server, client() as c:
        assert ok(await c.forward(service(server.url, tls.pem)))
        assert ok(await c.forward(service(server.url, tls.pem)))  # registered again: a new pin object
        assert len(server.peers) == 2 and len(c.pool.open) == 2
        c.pool.forget("svc")
        await until(lambda: not c.pool.open)


async def test_pool_bounds(tls: Tls, monkeypatch: pytest.MonkeyPatch) -> None:
    async with WebService(tls) as server, client() as c:
        svc = service(server.url, tls.pem)
        n = https.MAX_IDLE + 6
        assert all(ok(r) for r in await asyncio.gather(*(c.forward(svc, "/slow") for _ in range(n))))
        assert len(server.peers) == n
        await until(lambda: len(c.pool.open) == https.MAX_IDLE)  # the extra ones are closed
    monkeypatch.setattr(https, "MAX_IN_USE", 4)
    async with WebService(tls) as server, client() as c:
        svc = service(server.url, tls.pem)
        assert all(ok(r) for r in await asyncio.gather(*(c.forward(svc, "/slow") for _ in range(12))))
        assert server.requests == 12 and server.max_in_flight == 4 and len(server.peers) == 4


# -- crafted answers ----------------------------------------------------------------------------


async def test_an_interim_1xx_answer_is_skipped_and_the_connection_kept(tls: Tls) -> None:
    async with RawServer(tls, b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as server, client() as c:
        svc = service(server.url, tls.pem)
        assert ok(await c.forward(svc)) and ok(await c.forward(svc))
        assert server.requests == 2 and server.connections == 1


@pytest.mark.parametrize("reply", [
    http(f"HTTP/1.0 200 OK\nContent-Length: {len(ANSWER)}\n"),
    http(f"HTTP/1.0 200 OK\nConnection: keep-alive\nContent-Length: {len(ANSWER)}\n"),
    OK + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",  # bytes after the answer
    OK + b"x",
], ids=["http-1.0", "http-1.0-keep-alive", "second-answer", "trailing-byte"])
async def test_answers_whose_connection_cannot_be_trusted_again_are_not_reused(tls: Tls, reply: bytes) -> None:
    async with RawServer(tls, reply) as server, client() as c:
        svc = service(server.url, tls.pem)
        assert ok(await c.forward(svc)) and ok(await c.forward(svc))
        assert server.requests == 2 and server.connections == 2


async def test_an_answer_before_the_whole_request_was_written_is_not_reused(tls: Tls) -> None:
    async with RawServer(tls, OK, "early") as server, client() as c:
        svc = service(server.url, tls.pem)
        c.pool.timeout = 5
        status, body = await c.pool.post("svc", svc.url, svc.ssl, "/big", b"x" * (64 << 20))
        assert (status, body) == (200, ANSWER)
        assert (await c.pool.post("svc", svc.url, svc.ssl, "/small", b"{}")) == (200, ANSWER)
        assert server.connections == 2


async def test_a_body_delimited_by_the_close_is_read(tls: Tls) -> None:
    async with RawServer(tls, http("HTTP/1.1 200 OK\n"), "close") as server, client() as c:
        assert ok(await c.forward(service(server.url, tls.pem)))
        assert server.requests == 1


@pytest.mark.parametrize(("reply", "status"), [
    (b"HTTX/1.1 2OO OK\r\n\r\n", None),
    (http("HTTP/1.1 200 OK\n" + "".join(f"X-{i}: y\n" for i in range(100)) + f"Content-Length: {len(ANSWER)}\n"),
     None),
    (http("HTTP/1.1 200 OK\nX: " + "y" * (64 * 1024) + f"\nContent-Length: {len(ANSWER)}\n"), None),
    (http("HTTP/1.1 200 OK\nContent-Length: 100\n", b"{}"), 200),
    (http("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n", b"zz\r\n{}\r\n0\r\n\r\n"), 200),
    (http("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n", b""), None),
], ids=["bad-status-line", "101-headers", "64k-header", "short-body", "bad-chunk", "upgrade"])
async def test_a_malformed_answer_is_a_transport_error(tls: Tls, reply: bytes, status: int | None) -> None:
    async with RawServer(tls, reply, "close") as server, client() as c:
        trace, message = await c.forward(service(server.url, tls.pem))
        assert (trace["outcome"], trace["http_status"]) == ("transport_error", status)
        assert message == wire.ErrorMessage(1, wire.ErrorCode.SERVICE_UNAVAILABLE, "service svc: TransportError")
        assert server.requests == 1


async def test_a_head_at_the_limits_is_accepted(tls: Tls) -> None:
    headers = "".join(f"X-{i}: y\n" for i in range(https.MAX_HEADERS - 1)) + f"Content-Length: {len(ANSWER)}\n"
    async with RawServer(tls, http("HTTP/1.1 200 OK\n" + headers)) as server, client() as c:
        assert ok(await c.forward(service(server.url, tls.pem)))
        assert server.requests == 1


# -- failures: what is retried, what is not -----------------------------------------------------


async def test_a_server_that_dies_after_reading_the_request_gets_it_once(tls: Tls) -> None:
    async with RawServer(tls, OK, "abort") as server, client() as c:
        trace, message = await c.forward(service(server.url, tls.pem), op=wire.Write)
        assert (trace["outcome"], trace["http_status"]) == ("transport_error", None)
        assert message == wire.ErrorMessage(1, wire.ErrorCode.SERVICE_UNAVAILABLE, "service svc: TransportError")
        await asyncio.sleep(0.4)  # longer than the connect retry's pause
        assert server.requests == 1 and server.connections == 1


async def test_a_refused_connection_is_retried_once_then_unreachable(tls: Tls) -> None:
    async with RawServer(tls, OK) as server:
        url = server.url
    async with client() as c:
        started = time.perf_counter()
        trace, message = await c.forward(service(url, tls.pem))
        assert 0.2 <= time.perf_counter() - started < 2
        assert (trace["outcome"], trace["http_status"]) == ("unreachable", None)
        assert message == wire.ErrorMessage(1, wire.ErrorCode.SERVICE_UNAVAILABLE,
                                            "service svc is unreachable: ConnectError")


async def test_a_failed_tls_handshake_is_tried_twice_in_all(tls: Tls) -> None:
    accepted = 0

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()  # not TLS: the handshake fails

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    try:
        async with client() as c:
            port = server.sockets[0].getsockname()[1]
            trace, _ = await c.forward(service(f"https://127.0.0.1:{port}", tls.pem))
        assert trace["outcome"] == "unreachable" and accepted == 2
    finally:
        server.close()


async def test_a_certificate_from_another_ca_is_refused_before_any_request_byte(tls: Tls) -> None:
    async with RawServer(tls, OK) as server, client() as c:
        started = time.perf_counter()
        trace, message = await c.forward(service(server.url, tls.other_pem, "ca"))
        assert trace["outcome"] == "unreachable" and time.perf_counter() - started >= 0.2  # retried once
        assert isinstance(message, wire.ErrorMessage) and message.code == wire.ErrorCode.SERVICE_UNAVAILABLE
        assert server.bytes_in == 0 and server.requests == 0


async def test_a_ca_pin_checks_the_host_name_and_a_fingerprint_pin_does_not(tls: Tls) -> None:
    async with RawServer(tls, OK, host="127.0.0.2") as server, client() as c:  # not a name in the certificate
        trace, _ = await c.forward(service(server.url, tls.pem, "ca"))
        assert trace["outcome"] == "unreachable" and server.requests == 0
        assert ok(await c.forward(service(server.url, tls.pem, "fingerprint")))


async def test_another_fingerprint_is_refused_before_any_request_byte(tls: Tls) -> None:
    async with RawServer(tls, OK) as server, client() as c:
        trace, message = await c.forward(service(server.url, tls.other_pem, "fingerprint"))
        # As with aiohttp before: a transport error, not retried, the same text.
        assert (trace["outcome"], trace["http_status"]) == ("transport_error", None)
        assert message == wire.ErrorMessage(1, wire.ErrorCode.SERVICE_UNAVAILABLE,
                                            "service svc: ServerFingerprintMismatch")
        await until(lambda: server.ended == 1)  # the server saw the connection end...
        assert server.bytes_in == 0 and server.connections == 1  # ...with nothing on it, once


async def test_a_server_that_never_answers_times_out_and_the_connection_is_closed(tls: Tls) -> None:
    async with RawServer(tls, None) as server, client() as c:
        c.pool.timeout = 0.3
        started = time.perf_counter()
        trace, message = await c.forward(service(server.url, tls.pem))
        assert 0.3 <= time.perf_counter() - started < 2
        assert (trace["outcome"], trace["http_status"]) == ("timeout", None)
        assert message == wire.ErrorMessage(1, wire.ErrorCode.SERVICE_UNAVAILABLE, "service svc: Timeout")
        await until(lambda: server.ended == 1)
        assert server.requests == 1 and not c.pool.open


# -- the same on uvloop, the daemon's loop ------------------------------------------------------

ON_UVLOOP = [test_sequential_requests_share_one_connection,
             test_concurrent_requests_open_several_connections_then_reuse_them,
             test_a_chunked_answer_is_read_whole, test_an_answer_over_the_limit_is_refused_and_its_connection_closed,
             test_connection_close_answers_are_not_reused,
             test_an_idle_connection_the_server_closed_is_dropped_and_nothing_is_sent_twice,
             test_an_interim_1xx_answer_is_skipped_and_the_connection_kept,
             test_an_answer_before_the_whole_request_was_written_is_not_reused,
             test_a_body_delimited_by_the_close_is_read, test_a_server_that_dies_after_reading_the_request_gets_it_once,
             test_a_certificate_from_another_ca_is_refused_before_any_request_byte,
             test_another_fingerprint_is_refused_before_any_request_byte,
             test_a_server_that_never_answers_times_out_and_the_connection_is_closed]


@pytest.mark.parametrize("scenario", ON_UVLOOP, ids=[f.__name__[5:] for f in ON_UVLOOP])
def test_on_uvloop(tls: Tls, scenario: Callable[..., Any]) -> None:
    uvloop = pytest.importorskip("uvloop")
    kwargs = {"pin": "fingerprint"} if "pin" in scenario.__code__.co_varnames else {}
    uvloop.run(scenario(tls, **kwargs))


# -- registration's key fetch (registry._fetch_key: aiohttp's client, one session per call) --


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_registration_refuses_a_key_document_past_its_bound_unread(tls: Tls, framing: str) -> None:
    from attestables.daemon.broker.registry import KEY_ANSWER_MAX, ServiceRegistry, tls_pin
    from attestables.shared.errors import Unavailable

    key = eai.b64url(b"\x07" * 32)
    document = json.dumps({"public_key": key, "endpoints": {"read": "/api/sales"}}).encode()
    huge = json.dumps({"public_key": key, "pad": "x" * (2 * 1024 * 1024)}).encode()

    async def public_key(request: web.Request) -> web.StreamResponse:
        body = huge if serve["huge"] else document
        if framing == "content-length":
            return web.Response(body=body, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, len(body), 65536):
            await resp.write(body[start:start + 65536])
        await resp.write_eof()
        return resp

    serve = {"huge": False}
    app = web.Application()
    app.router.add_get(eai.PUBLIC_KEY_PATH, public_key)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context())
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"https://127.0.0.1:{port}"
    registry = ServiceRegistry(SimpleNamespace())  # type: ignore[arg-type]  # the fetch asks the daemon for nothing
    pin = tls_pin(None, Tls.fingerprint(tls.pem))
    try:
        fetched, endpoints = await registry._fetch_key(base, pin, "svc")
        assert fetched == b"\x07" * 32 and endpoints == {"read": "/api/sales"}
        serve["huge"] = True
        with pytest.raises(Unavailable) as refused:
            await registry._fetch_key(base, pin, "svc")
        assert f"at most {KEY_ANSWER_MAX}" in refused.value.message or f"more than {KEY_ANSWER_MAX}" in refused.value.message
    finally:
        await runner.cleanup()


async def test_a_service_s_verification_words_reach_the_trace_bounded_and_as_text(tls: Tls) -> None:
    # A hostile service's reasons are shown by every client that lists traces (CLI,
    # console): their control characters must not act on the operator's terminal.
    body = json.dumps({"sealed": eai.b64url(SEALED), "verification": {
        "status": "affirming\x1b[2J" + "s" * 100,
        "reasons": [{"code": "\x1b]0;PWNED\x07", "message": "m\x9b31m" * 200}, "junk"] + [{"code": "c"}] * 40}}).encode()
    reply = http(f"HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: {len(body)}\n", body)
    async with RawServer(tls, reply) as server, client() as c:
        trace, message = await c.forward(service(server.url, tls.pem))
    verification = trace["verification"]
    assert verification["status"].startswith("affirming^[[2J") and len(verification["status"]) == 64
    reasons = verification["reasons"]
    assert len(reasons) == 31 and reasons[0]["code"] == "^[]0;PWNED^G"
    assert reasons[0]["message"].startswith("m^[[31m") and len(reasons[0]["message"]) == 512
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for r in reasons for ch in r["code"] + r["message"])
