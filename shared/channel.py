"""The compartment channel codec: frames and payloads, byte for byte as the C runtime
(``cheri/runtime``) writes and reads them. The specification is
``docs/compartment-protocol.md``; this module and ``cheri/runtime/src`` follow it.

No I/O here: the daemon feeds received bytes to a :class:`FrameDecoder` and writes what
:func:`encode` returns. Everything a compartment sends is untrusted; every length is
checked before it is used, and any deviation raises :class:`ProtocolViolation` (whose
``data["reason"]`` says which rule broke), after which the decoder refuses further input.

Frame: ``u32 L`` (big-endian, bytes after the length field, 1..MAX_FRAME) ``u8 type``
``payload`` (L - 1 bytes).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from .errors import ProtocolViolation

PROTOCOL_VERSION = 1
MAX_FRAME = 1 << 20  # the largest L: one type byte plus the payload
LENGTH_LEN = 4

KEY_LEN = 32  # X25519 public key
NONCE_LEN = 16
SEALED_MIN = 48  # HPKE enc (32) + AEAD tag (16): the shortest sealed message
SERVICE_ID_MAX = 64
SERIAL_MAX = 40
MAX_SERVICES = 64
MAX_CERT = 65536
MAX_CHAIN = 65536
MAX_EVIDENCE = 65536
MAX_ERROR_MESSAGE = 4096
MAX_REQUEST_ID = 0xFFFFFFFF


class FrameType(IntEnum):
    HELLO = 1
    CERT = 2
    SERVICE_KEYS = 3
    READ = 4
    WRITE = 5
    RESULT = 6
    ERROR = 7


class ResultStatus(IntEnum):
    OK = 0
    DENIED = 1  # the service's verifier refused the certificate or the policy
    FAILED = 2  # the service could not carry out the request


class ErrorCode(IntEnum):
    PROTOCOL_VIOLATION = 1
    UNKNOWN_SERVICE = 2
    SERVICE_UNAVAILABLE = 3
    LIMIT_EXCEEDED = 4
    INTERNAL = 5
    ABORTED = 6


FROM_COMPARTMENT = frozenset({FrameType.HELLO, FrameType.READ, FrameType.WRITE, FrameType.ERROR})
FROM_LAUNCHER = frozenset({FrameType.CERT, FrameType.SERVICE_KEYS, FrameType.RESULT, FrameType.ERROR})

_SERVICE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# One spelling per certificate serial number: lowercase hex, positive, no leading zeros,
# at most 20 octets (RFC 5280). ``format(n, "x")`` of the certificate's serial.
_SERIAL = re.compile(r"[1-9a-f][0-9a-f]{0,39}")


def is_service_id(value: object) -> bool:
    return isinstance(value, str) and _SERVICE_ID.fullmatch(value) is not None


def is_serial(value: object) -> bool:
    return isinstance(value, str) and _SERIAL.fullmatch(value) is not None


def _violation(reason: str, message: str) -> ProtocolViolation:
    return ProtocolViolation(message, reason=reason)


# ---------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    payload: bytes


def encode_frame(frame_type: FrameType | int, payload: bytes) -> bytes:
    """One frame on the wire. Raises ValueError for an unknown type or an oversized frame."""
    frame_type = FrameType(frame_type)
    length = 1 + len(payload)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes exceeds the {MAX_FRAME}-byte limit")
    return struct.pack(">IB", length, frame_type) + payload


class FrameDecoder:
    """Splits a byte stream into frames, incrementally and defensively.

    A length, a type and a direction are judged as soon as their bytes arrive, before
    any payload is buffered, so at most one frame of at most MAX_FRAME bytes is ever
    held. ``accept`` limits the types this peer may send (e.g. FROM_COMPARTMENT).
    """

    __slots__ = ("_accept", "_head", "_type", "_need", "_body", "_failed")

    def __init__(self, accept: Iterable[int] | None = None) -> None:
        self._accept = frozenset(FrameType) if accept is None else frozenset(FrameType(t) for t in accept)
        self._head = bytearray()  # length and type bytes of the frame being read
        self._type: FrameType | None = None
        self._need = 0  # payload bytes still to come for the current frame
        self._body = bytearray()
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held for the frame in progress."""
        return len(self._head) + len(self._body)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Every frame that ``data`` completes, in order."""
        if self._failed:
            raise _violation("decoder_failed", "the channel already broke the protocol")
        view = memoryview(data).cast("B")
        frames: list[Frame] = []
        pos, end = 0, len(view)
        try:
            while pos < end:
                if self._type is None:
                    had = len(self._head)
                    take = min(LENGTH_LEN + 1 - had, end - pos)
                    self._head += view[pos : pos + take]
                    pos += take
                    if had < LENGTH_LEN <= len(self._head):
                        self._check_length()  # refuse a bad length before its type arrives
                    if len(self._head) < LENGTH_LEN + 1:
                        continue
                    self._start_frame()
                else:
                    take = min(self._need, end - pos)
                    self._body += view[pos : pos + take]
                    self._need -= take
                    pos += take
                if self._type is not None and self._need == 0:
                    frames.append(Frame(self._type, bytes(self._body)))
                    self._head.clear()
                    self._body = bytearray()
                    self._type = None
        except ProtocolViolation:
            self._failed = True
            raise
        return frames

    def close(self) -> None:
        """End of stream: raises if it cut a frame short."""
        if self.buffered and not self._failed:
            self._failed = True
            raise _violation("truncated", f"stream ended inside a frame ({self.buffered} bytes buffered)")

    def _check_length(self) -> None:
        (length,) = struct.unpack_from(">I", self._head)
        if length == 0:
            raise _violation("empty_frame", "frame length 0 (a frame has at least its type byte)")
        if length > MAX_FRAME:
            raise _violation("frame_too_large", f"frame length {length} exceeds {MAX_FRAME}")

    def _start_frame(self) -> None:
        length, raw_type = struct.unpack_from(">IB", self._head)
        try:
            frame_type = FrameType(raw_type)
        except ValueError:
            raise _violation("unknown_type", f"unknown frame type {raw_type}") from None
        if frame_type not in self._accept:
            raise _violation("unexpected_type", f"{frame_type.name} may not be sent by this peer")
        self._type = frame_type
        self._need = length - 1


# --------------------------------------------------------------------------- payloads


class _Reader:
    """Consumes a payload; short reads and leftovers are protocol violations."""

    __slots__ = ("_buf", "_pos", "_what")

    def __init__(self, payload: bytes, what: str) -> None:
        self._buf = payload
        self._pos = 0
        self._what = what

    def _take(self, n: int) -> bytes:
        if n > len(self._buf) - self._pos:
            raise _violation("malformed_payload", f"{self._what}: truncated")
        chunk = self._buf[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self._take(4), "big")

    def bytes16(self, limit: int) -> bytes:
        n = self.u16()
        if n > limit:
            raise _violation("malformed_payload", f"{self._what}: field of {n} bytes exceeds {limit}")
        return self._take(n)

    def bytes32(self, limit: int) -> bytes:
        n = self.u32()
        if n > limit:
            raise _violation("malformed_payload", f"{self._what}: field of {n} bytes exceeds {limit}")
        return self._take(n)

    def end(self) -> None:
        if self._pos != len(self._buf):
            raise _violation("malformed_payload", f"{self._what}: {len(self._buf) - self._pos} trailing bytes")


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_bytes(value: object, name: str, lo: int, hi: int) -> None:
    _check(isinstance(value, bytes), f"{name} must be bytes")
    assert isinstance(value, bytes)
    _check(lo <= len(value) <= hi, f"{name}: {len(value)} bytes, allowed {lo}..{hi}")


def _check_request_id(value: object, lo: int) -> None:
    _check(isinstance(value, int) and lo <= value <= MAX_REQUEST_ID, f"request_id out of range: {value!r}")


def _check_sealed(sealed: object, allow_empty: bool) -> None:
    _check(isinstance(sealed, bytes), "sealed must be bytes")
    assert isinstance(sealed, bytes)
    _check(
        len(sealed) >= SEALED_MIN or (allow_empty and not sealed),
        f"sealed: {len(sealed)} bytes is shorter than enc + tag",
    )


class _Message:
    """Shared behaviour: each subclass defines TYPE, encode_payload and _parse."""

    __slots__ = ()
    TYPE: ClassVar[FrameType]

    def encode_payload(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def _parse(cls, r: _Reader) -> Self:
        raise NotImplementedError

    @classmethod
    def decode_payload(cls, payload: bytes) -> Self:
        """Parses and validates a payload of this type; ProtocolViolation if it is not exact."""
        r = _Reader(payload, cls.TYPE.name)
        try:
            message = cls._parse(r)
        except ValueError as exc:  # field validation, including bad UTF-8/ASCII
            raise _violation("malformed_payload", f"{cls.TYPE.name}: {exc}") from None
        r.end()
        return message


@dataclass(frozen=True, slots=True)
class Hello(_Message):
    """Compartment -> launcher, first frame: its public key and evidence JSON."""

    TYPE: ClassVar[FrameType] = FrameType.HELLO
    public_key: bytes
    evidence: str
    version: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        _check(self.version == PROTOCOL_VERSION, f"unsupported protocol version {self.version!r}")
        _check_bytes(self.public_key, "public_key", KEY_LEN, KEY_LEN)
        _check(isinstance(self.evidence, str), "evidence must be str")
        _check(1 <= len(self.evidence.encode()) <= MAX_EVIDENCE, "evidence length out of range")

    def encode_payload(self) -> bytes:
        evidence = self.evidence.encode()
        return _u16(self.version) + _u16(KEY_LEN) + self.public_key + _u32(len(evidence)) + evidence

    @classmethod
    def _parse(cls, r: _Reader) -> Self:
        version = r.u16()
        if version != PROTOCOL_VERSION:  # later fields may differ: stop here
            raise _violation("unsupported_version", f"HELLO: unsupported protocol version {version}")
        public_key = r.bytes16(KEY_LEN)
        evidence = r.bytes32(MAX_EVIDENCE).decode("utf-8")
        return cls(public_key=public_key, evidence=evidence, version=version)


@dataclass(frozen=True, slots=True)
class Cert(_Message):
    """Launcher -> compartment: the run certificate (DER), its issuing chain (PEM) and
    its serial number as used in the HPKE info."""

    TYPE: ClassVar[FrameType] = FrameType.CERT
    certificate: bytes
    chain_pem: str
    serial: str

    def __post_init__(self) -> None:
        _check_bytes(self.certificate, "certificate", 1, MAX_CERT)
        _check(isinstance(self.chain_pem, str) and self.chain_pem.isascii(), "chain_pem must be ASCII str")
        _check(len(self.chain_pem) <= MAX_CHAIN, "chain_pem too long")
        _check(is_serial(self.serial), f"serial is not canonical lowercase hex: {self.serial!r}")

    def encode_payload(self) -> bytes:
        chain = self.chain_pem.encode("ascii")
        serial = self.serial.encode("ascii")
        return (
            _u32(len(self.certificate)) + self.certificate + _u32(len(chain)) + chain + _u16(len(serial)) + serial
        )

    @classmethod
    def _parse(cls, r: _Reader) -> Self:
        certificate = r.bytes32(MAX_CERT)
        chain_pem = r.bytes32(MAX_CHAIN).decode("ascii")
        serial = r.bytes16(SERIAL_MAX).decode("ascii")
        return cls(certificate=certificate, chain_pem=chain_pem, serial=serial)


@dataclass(frozen=True, slots=True)
class ServiceKey:
    service_id: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check(is_service_id(self.service_id), f"invalid service id {self.service_id!r}")
        _check_bytes(self.public_key, "public_key", KEY_LEN, KEY_LEN)


@dataclass(frozen=True, slots=True)
class ServiceKeys(_Message):
    """Launcher -> compartment: the public key of every service the run may address."""

    TYPE: ClassVar[FrameType] = FrameType.SERVICE_KEYS
    services: tuple[ServiceKey, ...]

    def __post_init__(self) -> None:
        services = tuple(self.services)
        object.__setattr__(self, "services", services)
        _check(len(services) <= MAX_SERVICES, f"{len(services)} services exceed {MAX_SERVICES}")
        _check(all(isinstance(s, ServiceKey) for s in services), "services must be ServiceKey")
        ids = [s.service_id for s in services]
        _check(len(set(ids)) == len(ids), "a service id appears twice")

    def as_dict(self) -> dict[str, bytes]:
        return {s.service_id: s.public_key for s in self.services}

    def encode_payload(self) -> bytes:
        parts = [_u16(len(self.services))]
        for s in self.services:
            sid = s.service_id.encode("ascii")
            parts += [_u16(len(sid)), sid, _u16(KEY_LEN), s.public_key]
        return b"".join(parts)

    @classmethod
    def _parse(cls, r: _Reader) -> Self:
        count = r.u16()
        if count > MAX_SERVICES:
            raise _violation("malformed_payload", f"SERVICE_KEYS: {count} services exceed {MAX_SERVICES}")
        services = []
        for _ in range(count):
            service_id = r.bytes16(SERVICE_ID_MAX).decode("ascii")
            services.append(ServiceKey(service_id, r.bytes16(KEY_LEN)))
        return cls(services=tuple(services))


@dataclass(frozen=True, slots=True)
class Request(_Message):
    """Compartment -> launcher: a sealed message for a service (READ or WRITE).

    ``nonce`` is the compartment's fresh random value; it is in the HPKE info of both
    the request and the answer, and the launcher passes it on to the service."""

    TYPE: ClassVar[FrameType]
    request_id: int
    service_id: str
    nonce: bytes
    sealed: bytes

    def __post_init__(self) -> None:
        _check(hasattr(type(self), "TYPE"), "a request is a Read or a Write")
        _check_request_id(self.request_id, 1)
        _check(is_service_id(self.service_id), f"invalid service id {self.service_id!r}")
        _check_bytes(self.nonce, "nonce", NONCE_LEN, NONCE_LEN)
        _check_sealed(self.sealed, allow_empty=False)

    def encode_payload(self) -> bytes:
        sid = self.service_id.encode("ascii")
        return (
            _u32(self.request_id)
            + _u16(len(sid))
            + sid
            + _u16(NONCE_LEN)
            + self.nonce
            + _u32(len(self.sealed))
            + self.sealed
        )

    @classmethod
    def _parse(cls, r: _Reader) -> Self:
        request_id = r.u32()
        service_id = r.bytes16(SERVICE_ID_MAX).decode("ascii")
        nonce = r.bytes16(NONCE_LEN)
        sealed = r.bytes32(MAX_FRAME)
        return cls(request_id=request_id, service_id=service_id, nonce=nonce, sealed=sealed)


@dataclass(frozen=True, slots=True)
class Read(Request):
    TYPE: ClassVar[FrameType] = FrameType.READ


@dataclass(frozen=True, slots=True)
class Write(Request):
    TYPE: ClassVar[FrameType] = FrameType.WRITE


@dataclass(frozen=True, slots=True)
class Result(_Message):
    """Launcher -> compartment: the service's outcome for one request. Only OK may carry
    a sealed answer, and it may be empty (nothing to say)."""

    TYPE: ClassVar[FrameType] = FrameType.RESULT
    request_id: int
    status: ResultStatus
    sealed: bytes = b""

    def __post_init__(self) -> None:
        _check_request_id(self.request_id, 1)
        object.__setattr__(self, "status", ResultStatus(self.status))
        _check_sealed(self.sealed, allow_empty=True)
        _check(self.status is ResultStatus.OK or not self.sealed, "only an OK result carries an answer")

    def encode_payload(self) -> bytes:
        return _u32(self.request_id) + _u16(self.status) + _u32(len(self.sealed)) + self.sealed

    @classmethod
    def _parse(cls, r: _Reader) -> Self:
        request_id = r.u32()
        status = r.u16()
        sealed = r.bytes32(MAX_FRAME)
        return cls(request_id=request_id, status=ResultStatus(status), sealed=sealed)


@dataclass(frozen=True, slots=True)
class ErrorMessage(_Message):
    """Either direction: request_id 0 is fatal (the sender is ending the run); otherwise
    the launcher refuses that one request."""

    TYPE: ClassVar[FrameType] = FrameType.ERROR
    request_id: int
    code: ErrorCode
    message: str = ""

    def __post_init__(self) -> None:
        _check_request_id(self.request_id, 0)
        object.__setattr__(self, "code", ErrorCode(self.code))
        _check(isinstance(self.message, str), "message must be str")
        _check(len(self.message.encode()) <= MAX_ERROR_MESSAGE, "message too long")

    @property
    def fatal(self) -> bool:
        return self.request_id == 0

    def encode_payload(self) -> bytes:
        text = self.message.encode()
        return _u32(self.request_id) + _u16(self.code) + _u32(len(text)) + text

    @classmethod
    def _parse(cls, r: _Reader) -> Self:
        request_id = r.u32()
        code = r.u16()
        message = r.bytes32(MAX_ERROR_MESSAGE).decode("utf-8")
        return cls(request_id=request_id, code=ErrorCode(code), message=message)


Message = Hello | Cert | ServiceKeys | Read | Write | Result | ErrorMessage

MESSAGE_TYPES: dict[FrameType, type[_Message]] = {
    cls.TYPE: cls for cls in (Hello, Cert, ServiceKeys, Read, Write, Result, ErrorMessage)
}


def encode(message: Message) -> bytes:
    """The complete frame for a message."""
    return encode_frame(message.TYPE, message.encode_payload())


def decode(frame: Frame) -> Message:
    """The message a frame carries; ProtocolViolation if its payload is not exact."""
    return MESSAGE_TYPES[frame.type].decode_payload(frame.payload)  # type: ignore[return-value]
