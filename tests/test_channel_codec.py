"""The compartment channel codec (shared/channel.py): exact layouts, round trips, and a
decoder that refuses every malformed input with ProtocolViolation and nothing else."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attestables.shared import channel
from attestables.shared.channel import (
    MAX_FRAME,
    Cert,
    ErrorCode,
    ErrorMessage,
    Frame,
    FrameDecoder,
    FrameType,
    Hello,
    Read,
    Result,
    ResultStatus,
    ServiceKey,
    ServiceKeys,
    Write,
)
from attestables.shared.errors import ProtocolViolation

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ strategies

keys = st.binary(min_size=32, max_size=32)
nonces = st.binary(min_size=16, max_size=16)
sealed = st.binary(min_size=48, max_size=300)
service_ids = st.text(alphabet="ABCXYZabcxyz0189._-", min_size=1, max_size=64)
serials = st.integers(min_value=1, max_value=(1 << 160) - 1).map(lambda n: format(n, "x"))
request_ids = st.integers(min_value=1, max_value=0xFFFFFFFF)

hellos = st.builds(Hello, public_key=keys, evidence=st.text(min_size=1, max_size=200))
certs = st.builds(
    Cert,
    certificate=st.binary(min_size=1, max_size=300),
    chain_pem=st.text(alphabet=st.characters(max_codepoint=127), max_size=200),
    serial=serials,
)
service_keys = st.lists(
    st.tuples(service_ids, keys), max_size=8, unique_by=lambda t: t[0]
).map(lambda items: ServiceKeys(tuple(ServiceKey(i, k) for i, k in items)))
reads = st.builds(Read, request_id=request_ids, service_id=service_ids, nonce=nonces, sealed=sealed)
writes = st.builds(Write, request_id=request_ids, service_id=service_ids, nonce=nonces, sealed=sealed)
results = st.one_of(
    st.builds(Result, request_id=request_ids, status=st.just(ResultStatus.OK), sealed=st.one_of(st.just(b""), sealed)),
    st.builds(Result, request_id=request_ids, status=st.sampled_from([ResultStatus.DENIED, ResultStatus.FAILED])),
)
errors = st.builds(
    ErrorMessage,
    request_id=st.integers(min_value=0, max_value=0xFFFFFFFF),
    code=st.sampled_from(list(ErrorCode)),
    message=st.text(max_size=100),
)
messages = st.one_of(hellos, certs, service_keys, reads, writes, results, errors)

KEY = bytes(range(32))
NONCE = bytes(range(16))
SEALED = bytes(48)


def example_messages() -> list[channel.Message]:
    return [
        Hello(KEY, '{"cheri":false}'),
        Cert(b"\x30\x03\x02\x01\x01", "-----BEGIN CERTIFICATE-----\n", "3a5f"),
        ServiceKeys((ServiceKey("store", KEY), ServiceKey("transport.v2", KEY))),
        Read(1, "store", NONCE, SEALED),
        Write(2, "messaging", NONCE, SEALED + b"x"),
        Result(1, ResultStatus.OK, SEALED),
        Result(2, ResultStatus.OK),
        Result(3, ResultStatus.DENIED),
        ErrorMessage(0, ErrorCode.PROTOCOL_VIOLATION, "bad frame"),
        ErrorMessage(7, ErrorCode.UNKNOWN_SERVICE, "no such service: ünïcode"),
    ]


def decode_all(data: bytes, accept=None) -> list[channel.Message]:
    decoder = FrameDecoder(accept)
    frames = decoder.feed(data)
    decoder.close()
    return [channel.decode(f) for f in frames]


def violation_reason(exc_info: pytest.ExceptionInfo[ProtocolViolation]) -> str:
    return exc_info.value.data["reason"]


# ------------------------------------------------------------ exact layouts


def test_hello_layout_byte_by_byte() -> None:
    wire = channel.encode(Hello(KEY, "{}"))
    expected = (
        struct.pack(">I", 1 + 2 + 2 + 32 + 4 + 2)
        + b"\x01"  # HELLO
        + b"\x00\x01"  # protocol version 1
        + b"\x00\x20"
        + KEY
        + b"\x00\x00\x00\x02"
        + b"{}"
    )
    assert wire == expected


def test_every_layout_is_pinned() -> None:
    assert channel.encode(Cert(b"\x30\x00", "P", "a1"))[4:] == (
        b"\x02" + b"\x00\x00\x00\x02\x30\x00" + b"\x00\x00\x00\x01P" + b"\x00\x02a1"
    )
    assert channel.encode(ServiceKeys((ServiceKey("s", KEY),)))[4:] == b"\x03\x00\x01\x00\x01s\x00\x20" + KEY
    assert channel.encode(Read(0x01020304, "s", NONCE, SEALED))[4:] == (
        b"\x04\x01\x02\x03\x04\x00\x01s\x00\x10" + NONCE + b"\x00\x00\x00\x30" + SEALED
    )
    assert channel.encode(Write(1, "s", NONCE, SEALED))[4] == FrameType.WRITE
    assert channel.encode(Result(9, ResultStatus.DENIED))[4:] == b"\x06\x00\x00\x00\x09\x00\x01\x00\x00\x00\x00"
    assert channel.encode(ErrorMessage(0, ErrorCode.ABORTED, "x"))[4:] == (
        b"\x07\x00\x00\x00\x00\x00\x06\x00\x00\x00\x01x"
    )
    assert [int(t) for t in FrameType] == [1, 2, 3, 4, 5, 6, 7]
    assert MAX_FRAME == 1048576


# ---------------------------------------------------------------- round trips


def test_examples_round_trip_in_one_stream() -> None:
    msgs = example_messages()
    assert decode_all(b"".join(channel.encode(m) for m in msgs)) == msgs


def test_examples_round_trip_byte_by_byte() -> None:
    msgs = example_messages()
    wire = b"".join(channel.encode(m) for m in msgs)
    decoder = FrameDecoder()
    frames = []
    for i in range(len(wire)):
        frames += decoder.feed(wire[i : i + 1])
        assert decoder.buffered <= 4 + MAX_FRAME
    decoder.close()
    assert [channel.decode(f) for f in frames] == msgs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, max_size=6), st.data())
def test_round_trip_with_arbitrary_chunking(msgs, data) -> None:
    wire = b"".join(channel.encode(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder = FrameDecoder()
    frames: list[Frame] = []
    prev = 0
    for cut in [*cuts, len(wire)]:
        frames += decoder.feed(wire[prev:cut])
        prev = cut
    decoder.close()
    assert [channel.decode(f) for f in frames] == msgs


def test_direction_filter() -> None:
    up = FrameDecoder(channel.FROM_COMPARTMENT)
    assert up.feed(channel.encode(Hello(KEY, "{}")))
    with pytest.raises(ProtocolViolation) as exc:
        FrameDecoder(channel.FROM_COMPARTMENT).feed(channel.encode(Result(1, ResultStatus.OK)))
    assert violation_reason(exc) == "unexpected_type"
    with pytest.raises(ProtocolViolation):
        FrameDecoder(channel.FROM_LAUNCHER).feed(channel.encode(Read(1, "s", NONCE, SEALED)))


# -------------------------------------------------------- defensive framing


def test_zero_length_is_refused_from_the_length_alone() -> None:
    with pytest.raises(ProtocolViolation) as exc:
        FrameDecoder().feed(b"\x00\x00\x00\x00")
    assert violation_reason(exc) == "empty_frame"


@FAST
@given(st.integers(min_value=MAX_FRAME + 1, max_value=0xFFFFFFFF))
def test_oversized_length_is_refused_before_any_payload(length: int) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolViolation) as exc:
        decoder.feed(struct.pack(">I", length))
    assert violation_reason(exc) == "frame_too_large"


def test_largest_frame_is_accepted_and_one_more_byte_is_not() -> None:
    payload = bytes(MAX_FRAME - 1)
    wire = channel.encode_frame(FrameType.READ, payload)
    decoder = FrameDecoder()
    assert decoder.feed(wire[:-1]) == []
    assert decoder.buffered == len(wire) - 1  # one frame, never more
    [frame] = decoder.feed(wire[-1:])
    assert frame.type is FrameType.READ and len(frame.payload) == MAX_FRAME - 1
    with pytest.raises(ValueError):
        channel.encode_frame(FrameType.READ, bytes(MAX_FRAME))
    with pytest.raises(ProtocolViolation):
        FrameDecoder().feed(struct.pack(">IB", MAX_FRAME + 1, FrameType.READ))


@FAST
@given(st.integers(min_value=0, max_value=255).filter(lambda t: t not in range(1, 8)), st.binary(max_size=20))
def test_unknown_types_are_refused(frame_type: int, payload: bytes) -> None:
    with pytest.raises(ProtocolViolation) as exc:
        FrameDecoder().feed(struct.pack(">IB", 1 + len(payload), frame_type) + payload)
    assert violation_reason(exc) == "unknown_type"


def test_a_broken_decoder_stays_broken() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolViolation):
        decoder.feed(b"\x00\x00\x00\x00")
    with pytest.raises(ProtocolViolation):
        decoder.feed(channel.encode(Hello(KEY, "{}")))


def test_truncation_at_every_byte() -> None:
    msgs = example_messages()
    wire = b"".join(channel.encode(m) for m in msgs)
    ends = []
    pos = 0
    for m in msgs:
        pos += len(channel.encode(m))
        ends.append(pos)
    for cut in range(len(wire) + 1):
        decoder = FrameDecoder()
        frames = decoder.feed(wire[:cut])
        assert len(frames) == sum(1 for e in ends if e <= cut)
        if cut in ends or cut == 0:
            decoder.close()
        else:
            with pytest.raises(ProtocolViolation) as exc:
                decoder.close()
            assert violation_reason(exc) == "truncated"


def test_flood_of_valid_frames() -> None:
    one = channel.encode(Result(1, ResultStatus.FAILED))
    flood = one * 20000
    decoder = FrameDecoder()
    frames = decoder.feed(flood)
    assert len(frames) == 20000 and decoder.buffered == 0
    assert {channel.decode(f) for f in frames[:3]} == {Result(1, ResultStatus.FAILED)}


@settings(max_examples=1200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=6))
def test_arbitrary_bytes_give_frames_or_a_violation(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    try:
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                try:
                    channel.decode(frame)
                except ProtocolViolation:
                    pass
            assert decoder.buffered <= 4 + MAX_FRAME
        decoder.close()
    except ProtocolViolation:
        pass


def decodes_exactly_or_refuses(frame_type: FrameType, payload: bytes) -> None:
    try:
        message = channel.decode(Frame(frame_type, payload))
    except ProtocolViolation:
        return
    assert message.TYPE is frame_type
    assert message.encode_payload() == payload  # one encoding per message: nothing ignored


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(list(FrameType)), st.binary(max_size=120))
def test_arbitrary_payloads_decode_or_raise_protocol_violation(frame_type: FrameType, payload: bytes) -> None:
    decodes_exactly_or_refuses(frame_type, payload)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages, st.data())
def test_mutated_payloads_decode_or_raise_protocol_violation(message, data) -> None:
    # Random bytes rarely get past the first length; mutating a valid payload reaches
    # every later check.
    payload = bytearray(message.encode_payload())
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["set", "cut", "insert"]))
        at = data.draw(st.integers(0, len(payload)))
        if op == "set" and at < len(payload):
            payload[at] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del payload[at : at + data.draw(st.integers(1, 4))]
        else:
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    decodes_exactly_or_refuses(message.TYPE, bytes(payload))


# --------------------------------------------------------- defensive payloads


@pytest.mark.parametrize("message", example_messages(), ids=lambda m: type(m).__name__)
def test_payload_truncated_or_extended_is_refused(message) -> None:
    payload = message.encode_payload()
    for cut in range(len(payload)):
        with pytest.raises(ProtocolViolation):
            type(message).decode_payload(payload[:cut])
    with pytest.raises(ProtocolViolation, match="trailing"):
        type(message).decode_payload(payload + b"\x00")


def raw_cert(cert: bytes = b"\x30\x00", chain: bytes = b"", serial: bytes = b"1") -> bytes:
    return struct.pack(">I", len(cert)) + cert + struct.pack(">I", len(chain)) + chain + struct.pack(">H", len(serial)) + serial


def raw_service(sid: bytes, key: bytes = KEY) -> bytes:
    return struct.pack(">H", len(sid)) + sid + struct.pack(">H", len(key)) + key


@pytest.mark.parametrize(
    ("frame_type", "payload"),
    [
        (FrameType.HELLO, b"\x00\x02\x00\x20" + KEY + b"\x00\x00\x00\x02{}"),  # version 2
        (FrameType.HELLO, b"\x00\x01\x00\x1f" + KEY[:31] + b"\x00\x00\x00\x02{}"),  # 31-byte key
        (FrameType.HELLO, b"\x00\x01\x00\x20" + KEY + b"\x00\x00\x00\x00"),  # no evidence
        (FrameType.HELLO, b"\x00\x01\x00\x20" + KEY + b"\x00\x00\x00\x01\xff"),  # not UTF-8
        (FrameType.HELLO, b"\x00\x01\x00\x20" + KEY + b"\xff\xff\xff\xff"),  # evidence length lies
        (FrameType.CERT, raw_cert(cert=b"")),
        (FrameType.CERT, raw_cert(serial=b"")),
        (FrameType.CERT, raw_cert(serial=b"0a")),  # leading zero
        (FrameType.CERT, raw_cert(serial=b"0")),
        (FrameType.CERT, raw_cert(serial=b"3A5F")),  # uppercase
        (FrameType.CERT, raw_cert(serial=b"1" * 41)),
        (FrameType.CERT, raw_cert(chain=b"\xc3\xa9")),  # PEM is ASCII
        (FrameType.SERVICE_KEYS, b"\x00\x02" + raw_service(b"a") + raw_service(b"a")),  # twice
        (FrameType.SERVICE_KEYS, b"\x00\x02" + raw_service(b"a")),  # count lies
        (FrameType.SERVICE_KEYS, b"\x00\x01" + raw_service(b"a/b")),
        (FrameType.SERVICE_KEYS, b"\x00\x01" + raw_service(b"")),
        (FrameType.SERVICE_KEYS, b"\x00\x01" + raw_service(b"a" * 65)),
        (FrameType.SERVICE_KEYS, b"\x00\x01" + raw_service(b"a", KEY[:31])),
        (FrameType.SERVICE_KEYS, b"\x00\x41" + b"".join(raw_service(b"s%d" % i) for i in range(65))),
        (FrameType.READ, b"\x00\x00\x00\x00\x00\x01s\x00\x10" + NONCE + b"\x00\x00\x00\x30" + SEALED),  # id 0
        (FrameType.READ, b"\x00\x00\x00\x01\x00\x01s\x00\x0f" + NONCE[:15] + b"\x00\x00\x00\x30" + SEALED),
        (FrameType.WRITE, b"\x00\x00\x00\x01\x00\x01s\x00\x10" + NONCE + b"\x00\x00\x00\x2f" + SEALED[:47]),
        (FrameType.WRITE, b"\x00\x00\x00\x01\x00\x01s\x00\x10" + NONCE + b"\x00\x00\x00\x00"),
        (FrameType.RESULT, b"\x00\x00\x00\x01\x00\x03\x00\x00\x00\x00"),  # unknown status
        (FrameType.RESULT, b"\x00\x00\x00\x01\x00\x01\x00\x00\x00\x30" + SEALED),  # denied with an answer
        (FrameType.RESULT, b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x05abcde"),  # shorter than enc + tag
        (FrameType.RESULT, b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),  # request 0
        (FrameType.ERROR, b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),  # code 0
        (FrameType.ERROR, b"\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00"),  # unknown code
        (FrameType.ERROR, b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff"),  # not UTF-8
        (FrameType.ERROR, b"\x00\x00\x00\x00\x00\x01\x00\x00\x00\x03\xed\xa0\x80"),  # a surrogate
        (FrameType.ERROR, b"\x00\x00\x00\x00\x00\x01\x00\x00\x10\x01" + b"x" * 4097),
    ],
)
def test_malformed_payloads_are_refused(frame_type: FrameType, payload: bytes) -> None:
    with pytest.raises(ProtocolViolation) as exc:
        channel.decode(Frame(frame_type, payload))
    assert violation_reason(exc) in {"malformed_payload", "unsupported_version"}


@pytest.mark.parametrize(
    "build",
    [
        lambda: Hello(KEY[:31], "{}"),
        lambda: Hello(KEY, ""),
        lambda: Hello(KEY, "{}", version=2),
        lambda: Cert(b"", "", "1"),
        lambda: Cert(b"x", "", "01"),
        lambda: Cert(b"x", "é", "1"),
        lambda: ServiceKeys((ServiceKey("a", KEY), ServiceKey("a", KEY))),
        lambda: ServiceKey("a b", KEY),
        lambda: Read(0, "s", NONCE, SEALED),
        lambda: Read(1, "s", NONCE, SEALED[:47]),
        lambda: Write(1, "s", NONCE[:8], SEALED),
        lambda: Result(1, ResultStatus.DENIED, SEALED),
        lambda: Result(1, 9),
        lambda: ErrorMessage(1 << 32, ErrorCode.INTERNAL),
        lambda: ErrorMessage(0, 0),
        lambda: ErrorMessage(0, ErrorCode.INTERNAL, "x" * 4097),
    ],
)
def test_constructors_refuse_what_the_wire_refuses(build) -> None:
    with pytest.raises(ValueError):
        build()
