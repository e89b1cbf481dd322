"""The daemon's end of a compartment's fd-3 channel (docs/compartment-protocol.md).

Frames are decoded defensively (``attestables.shared.channel.FrameDecoder``): a bad
length, an unknown or misdirected type, a malformed payload, a frame out of order or a
flood ends the run with state ``failed`` and reason ``protocol_violation``.

The handshake: the compartment sends HELLO with the public key it generated and its
evidence; the daemon certifies that key with an attestation document built from its own
records, and answers CERT, then SERVICE_KEYS. READ and WRITE carry only sealed bytes:
this module never holds a key that could open them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from attestables.shared import channel as wire
from attestables.shared.errors import AttestablesError, ProtocolViolation

from ..sandbox.argv import Limits

if TYPE_CHECKING:
    from ..daemon import Daemon

log = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024
MAX_EVIDENCE_KEYS = 64
# A compartment may send at most this many frames per second (sustained over a window);
# beyond it the run is ended: the daemon's loop must not be monopolised by one program.
MAX_FRAMES_PER_S = 2000
WINDOW_S = 1.0

RequestHandler = Callable[[wire.Request, Any], Awaitable[wire.Message]]


class CompartmentChannel:
    def __init__(self, daemon: "Daemon", sock: socket.socket, *, run_id: str, build: dict[str, Any],
                 limits: Limits, on_violation: Callable[[str], None],
                 requests: RequestHandler | None = None) -> None:
        self.daemon = daemon
        self.sock = sock
        self.run_id = run_id
        self.build = build
        self.limits = limits
        self.on_violation = on_violation
        self.requests = requests
        self.certificate: Any = None  # IssuedCertificate once the handshake is done
        self.issue_ms: float | None = None
        self.violation: str | None = None
        self._window_start = time.monotonic()
        self._window_frames = 0

    async def serve(self) -> None:
        """Read frames until the compartment closes its end; never raises."""
        loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        decoder = wire.FrameDecoder(accept=wire.FROM_COMPARTMENT)
        try:
            while True:
                data = await loop.sock_recv(self.sock, RECV_SIZE)
                if not data:
                    decoder.close()
                    return
                for frame in decoder.feed(data):
                    self._count_frame()
                    await self._handle(frame)
        except ProtocolViolation as exc:
            self._violate(exc.data.get("reason", "protocol_violation"), exc.message)
        except (ConnectionResetError, BrokenPipeError, OSError) as exc:
            log.debug("run %s: channel closed (%s)", self.run_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run %s: channel handler failed", self.run_id)
            self._violate("internal", "the launcher could not handle a frame")

    def _count_frame(self) -> None:
        now = time.monotonic()
        if now - self._window_start > WINDOW_S:
            self._window_start, self._window_frames = now, 0
        self._window_frames += 1
        if self._window_frames > MAX_FRAMES_PER_S:
            raise ProtocolViolation(f"more than {MAX_FRAMES_PER_S} frames in a second", reason="flood")

    def _violate(self, reason: str, message: str) -> None:
        if self.violation is None:
            self.violation = f"{reason}: {message}"
            log.warning("run %s: protocol violation (%s)", self.run_id, self.violation)
            self.on_violation(self.violation)

    async def _send(self, message: wire.Message) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, wire.encode(message))

    async def _handle(self, frame: wire.Frame) -> None:
        message = wire.decode(frame)
        if isinstance(message, wire.Hello):
            await self._hello(message)
        elif isinstance(message, wire.ErrorMessage):
            if message.request_id != 0:
                raise ProtocolViolation("a compartment's ERROR must have request id 0", reason="bad_error")
            log.info("run %s: compartment gives up: %s: %s", self.run_id, message.code.name, message.message)
        elif isinstance(message, wire.Request):
            if self.certificate is None:
                raise ProtocolViolation(f"{frame.type.name} before the handshake", reason="out_of_order")
            await self._send(await self._request(message))
        else:  # FrameDecoder(accept=FROM_COMPARTMENT) makes this unreachable
            raise ProtocolViolation(f"unexpected {frame.type.name}", reason="unexpected_type")

    async def _request(self, request: wire.Request) -> wire.Message:
        if self.requests is None:
            return wire.ErrorMessage(request.request_id, wire.ErrorCode.UNKNOWN_SERVICE,
                                     f"no service {request.service_id!r} is registered with this launcher")
        return await self.requests(request, self.certificate)

    async def _hello(self, hello: wire.Hello) -> None:
        if self.certificate is not None:
            raise ProtocolViolation("a second HELLO", reason="out_of_order")
        if hello.version != wire.PROTOCOL_VERSION:
            raise ProtocolViolation(f"protocol version {hello.version} is not {wire.PROTOCOL_VERSION}",
                                    reason="version")
        evidence = _parse_evidence(hello.evidence)
        started = time.perf_counter()
        run = await self.daemon.runs.get(self.run_id)
        try:
            issued = await self.daemon.certs.issue(run=run, build=self.build, public_key=hello.public_key,
                                                   evidence=evidence, limits=self.limits)
        except AttestablesError as exc:
            # E.g. an evidence object the document refuses: the compartment is told why.
            await self._send(wire.ErrorMessage(0, wire.ErrorCode.ABORTED, _clip(exc.message, wire.MAX_ERROR_MESSAGE)))
            raise ProtocolViolation(f"cannot certify this compartment: {exc.message}", reason="hello_refused") \
                from None
        self.certificate = issued
        await self._send(wire.Cert(certificate=issued.der, chain_pem=self.daemon.certs.ca.chain_pem().decode(),
                                   serial=issued.serial))
        self.issue_ms = (time.perf_counter() - started) * 1000
        await self._send(wire.ServiceKeys(services=tuple(self.daemon.service_keys())))


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _parse_evidence(text: str) -> dict[str, Any]:
    """The compartment's evidence: a JSON object, kept as the compartment's own claim."""
    try:
        value = json.loads(text)
    except ValueError:
        raise ProtocolViolation("HELLO evidence is not JSON", reason="bad_evidence") from None
    if not isinstance(value, dict) or len(value) > MAX_EVIDENCE_KEYS:
        raise ProtocolViolation("HELLO evidence must be a JSON object of at most 64 members",
                                reason="bad_evidence")
    return value
