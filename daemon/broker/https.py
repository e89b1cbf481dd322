"""HTTPS to the services: the broker's own small keep-alive HTTP/1.1 client.

Each READ or WRITE is one POST to a registered service, and that is all this client
does: ``loop.create_connection`` with the service's TLS, an ``asyncio.Protocol``, and
httptools (llhttp, in C) to parse the answers. aiohttp's client cost ~0.34 ms of CPU per
request on the benchmark VM, this ~0.14 ms (docs/benchmarks.md).

- Connections are pooled per service. The key is the service id, its URL and the pin
  object, so a service registered again (another URL or pin) never gets an old
  connection. At most ``MAX_IDLE`` idle per service (extra ones are closed) and
  ``MAX_IN_USE`` in use overall (a request waits for a slot).
- TLS is pinned as registered (``registry.tls_pin``): an SSL context trusting the
  service's CA (hostname checked), or the SHA-256 of its certificate, compared after the
  handshake before any request byte is written.
- :meth:`HttpsPool.post` makes one attempt, within ``timeout`` in all (slot, connect,
  TLS, request, answer). Only :class:`ConnectError` means nothing was sent; the caller
  may retry that and nothing else (a WRITE must not reach a service twice).
- A connection is reused only after a complete HTTP/1.1 keep-alive answer that began
  after the whole request was written and had nothing after it. One the server closes
  while idle leaves the pool as soon as the loop learns it.
- Bodies are never logged, and a connection keeps none once its answer is returned.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
from typing import cast
from urllib.parse import quote, urlsplit

import httptools
from aiohttp import Fingerprint

Pin = ssl.SSLContext | Fingerprint
Key = tuple[str, str, Pin]  # service id, base URL, pin

MAX_IDLE = 64
MAX_IN_USE = 256
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
_PIECE = 64 * 1024  # a longer request is written a piece at a time, as the transport takes them
_PATH_SAFE = "/?%:@!$&'()*+,;=~"


class HttpsError(Exception):
    """The exchange failed; ``status`` is the answer's HTTP status if its head had arrived."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


class ConnectError(HttpsError):
    """No connection could be made (refused, unreachable, TLS handshake or certificate):
    nothing was sent."""


class TransportError(HttpsError):
    """The connection failed, or the answer was not acceptable HTTP/1.1."""


class ServerFingerprintMismatch(TransportError):
    """The service's TLS certificate is not the pinned one. Named as aiohttp's was, so the
    error text a compartment receives is unchanged."""


class Timeout(HttpsError):
    """The exchange did not end within the pool's timeout."""


class _Endpoint:
    """One pool key: where to connect, how to check TLS, the idle connections."""

    def __init__(self, key: Key) -> None:
        self.key = key
        parts = urlsplit(key[1])
        self.host = cast(str, parts.hostname)
        self.port = parts.port or 443
        pin = key[2]
        if isinstance(pin, ssl.SSLContext):
            self.context, self.fingerprint = pin, None
        else:  # pinned by fingerprint: no chain or name to check, the digest is compared instead
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
            self.fingerprint = pin.fingerprint
        name = self.host.encode("idna").decode("ascii") if not self.host.isascii() else self.host
        name = f"[{name}]" if ":" in name else name
        self.authority = name if self.port == 443 else f"{name}:{self.port}"
        self.heads: dict[str, bytes] = {}  # path -> the request head up to Content-Length's value
        self.idle: list[_Connection] = []

    def head(self, path: str) -> bytes:
        head = self.heads.get(path)
        if head is None:
            head = self.heads[path] = (
                f"POST {quote(path, safe=_PATH_SAFE)} HTTP/1.1\r\nHost: {self.authority}\r\n"
                "User-Agent: attestables-broker\r\nContent-Type: application/json\r\n"
                "Accept-Encoding: identity\r\nContent-Length: ").encode("ascii")
        return head

    def take(self) -> _Connection | None:
        while self.idle:
            conn = self.idle.pop()  # the most recently used first
            if not conn.closed and not conn.transport.is_closing():
                return conn
            conn.transport.close()
        return None


class _Connection(asyncio.Protocol):
    """One TLS connection to a service, one exchange at a time (httptools calls the on_*)."""

    transport: asyncio.Transport

    def __init__(self, pool: HttpsPool, endpoint: _Endpoint) -> None:
        self.pool, self.endpoint = pool, endpoint
        self.closed = False
        self._paused = False  # the transport's buffers are over their high-water mark
        self._request, self._sent = memoryview(b""), 0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self._reset()

    def _reset(self) -> None:
        self.reusable = self._complete = self._keep_alive = self._spoiled = self._delimited = False
        self.status: int | None = None
        self._headers = self._head = self._received = self._size = 0

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self._reset()
        self._waiter = asyncio.get_running_loop().create_future()
        self._request, self._sent = memoryview(request), 0
        self._write()
        return await self._waiter

    def _write(self) -> None:
        while self._sent < len(self._request) and not self._paused and not self.closed:
            self.transport.write(self._request[self._sent:self._sent + _PIECE])
            self._sent += _PIECE

    # asyncio ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.pool.open.add(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._write()

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():  # bytes nobody asked for
            self.closed = True
            self.transport.close()
            return
        if self._sent < len(self._request) or self._paused:
            self._spoiled = True  # the answer began before the request was all written
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            if not self._complete:
                return self._fail(TransportError("the answer is not valid HTTP/1.1", self.status))
            self._spoiled = True  # something after the answer
        if self.status is None:
            self._received += len(data)
        if self._headers > MAX_HEADERS or max(self._head, self._received) > MAX_HEAD:
            self._fail(TransportError("the answer's head is too large"))  # no status: the head is refused
        elif self._complete or self._size > self.pool.max_body:
            self._finish()

    def eof_received(self) -> None:
        self._end_of_stream()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.open.discard(self)
        self._end_of_stream()

    # httptools -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: stop parsing (caught as a parser error)
            raise TransportError("more than one answer")
        self._delimited = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._head += len(name) + len(value) + 4
        self._delimited |= name.lower() in (b"content-length", b"transfer-encoding")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status >= 200:  # 1xx is interim: the answer follows
            self.status = status

    def on_body(self, body: bytes) -> None:
        if self._size <= self.pool.max_body:
            self._body.append(body)
        self._size += len(body)

    def on_message_complete(self) -> None:
        if self.status is not None:
            self._complete = True
            self._keep_alive = self._parser.should_keep_alive() and self._parser.get_http_version() == "1.1"

    # ends ------------------------------------------------------------------------------

    def _end_of_stream(self) -> None:
        self.closed = True
        if self in self.endpoint.idle:
            self.endpoint.idle.remove(self)
        if self._waiter is None or self._waiter.done():
            return
        if self.status is not None and not self._delimited:  # a body delimited by the close
            self._complete = True
            self._finish()
        else:
            self._fail(TransportError("the connection closed before the answer was complete", self.status))

    def _finish(self) -> None:
        assert self._waiter is not None and self.status is not None
        limit = self.pool.max_body
        self.reusable = self._complete and self._keep_alive and not self._spoiled and self._size <= limit
        body = b"".join(self._body)
        self._body, self._request = [], memoryview(b"")
        self._waiter.set_result((self.status, body if len(body) <= limit else body[:limit + 1]))

    def _fail(self, error: HttpsError) -> None:
        assert self._waiter is not None
        self._body, self._request = [], memoryview(b"")
        if not self._waiter.done():
            self._waiter.set_exception(error)
        self.closed = True
        self.transport.close()


class HttpsPool:
    """Keep-alive HTTPS connections to the services, for POSTs of at most ``timeout``
    seconds with answers of at most ``max_body`` bytes (a longer one is cut at
    ``max_body + 1`` bytes, its connection closed)."""

    def __init__(self, timeout: float, max_body: int) -> None:
        self.timeout = timeout
        self.max_body = max_body
        self.open: set[_Connection] = set()
        self._endpoints: dict[Key, _Endpoint] = {}
        self._slots = asyncio.Semaphore(MAX_IN_USE)

    async def post(self, service_id: str, url: str, pin: Pin, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``url + path``; returns (HTTP status, answer body)."""
        key = (service_id, url, pin)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = _Endpoint(key)
        request = endpoint.head(path) + b"%d\r\n\r\n" % len(body) + body
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                conn = endpoint.take() or await self._connect(endpoint)
                return await conn.exchange(request)
        except TimeoutError:
            raise Timeout(f"no answer within {self.timeout} s", conn.status if conn else None) from None
        finally:
            if conn is not None:
                self._release(conn)

    def forget(self, service_id: str) -> None:
        """Close the service's idle connections; ones in use close when their answer is in."""
        for key in [key for key in self._endpoints if key[0] == service_id]:
            for conn in self._endpoints.pop(key).idle:
                conn.transport.close()

    def close(self) -> None:
        self._endpoints.clear()
        for conn in list(self.open):
            conn.transport.abort()

    async def _connect(self, endpoint: _Endpoint) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            transport, conn = await loop.create_connection(lambda: _Connection(self, endpoint), endpoint.host,
                                                           endpoint.port, ssl=endpoint.context)
        except OSError as exc:  # ssl.SSLError and the certificate errors are OSErrors too
            raise ConnectError(f"cannot connect: {type(exc).__name__}") from exc
        if endpoint.fingerprint is not None:
            der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
            if not hmac.compare_digest(hashlib.sha256(der).digest(), endpoint.fingerprint):
                transport.close()
                raise ServerFingerprintMismatch("the TLS certificate is not the pinned one")
        return conn

    def _release(self, conn: _Connection) -> None:
        endpoint = conn.endpoint
        if (conn.reusable and not conn.closed and not conn.transport.is_closing() and len(endpoint.idle) < MAX_IDLE
                and self._endpoints.get(endpoint.key) is endpoint):
            endpoint.idle.append(conn)
        else:
            conn.transport.close()
