"""Cases for fuzzing the compartment channel of a real daemon, and what each must give.

A case is what one compartment program (``c/chan_relay.c``) writes to its fd 3: a mode
(``hello``: the C runtime completes the handshake first; ``raw``: the bytes start the
conversation), then segments of frames, each followed by a wait for the launcher's
replies, then one last segment, usually an attack (random bytes, a flipped byte, a cut
or stretched frame, a bad length, type or field...), after which the program shuts down
its side of the channel.

:func:`expected` predicts the outcome from the protocol (docs/compartment-protocol.md):
``ok`` (the run exits 0 and every READ/WRITE got exactly one ERROR ``unknown_service``,
as no service is registered), ``violation`` (the run ends ``failed`` /
``protocol_violation``), or ``either`` (a HELLO whose evidence the document may or may
not accept). :func:`check` compares a finished run with it; every frame the launcher
sent must decode as a well-formed launcher frame whatever happened.

One generator, two drivers: a seeded ``random.Random`` gives volume, and hypothesis's
``st.randoms()`` gives the same cases under hypothesis's control.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Any

from attestables.shared import channel as wire
from attestables.shared.errors import ProtocolViolation

EVIDENCE = '{"cheri":false,"abi":"native","capabilities":null}'
SEGMENT_BYTES = 2000  # an argument is at most 4096 bytes: 2 hex digits per byte
ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
ATTACKS = ("none", "random_bytes", "bitflip", "truncate", "stretch", "bad_length", "bad_type", "bad_field",
           "error_with_request_id", "bad_utf8", "second_hello", "two_frames_one_cut")


@dataclass
class Case:
    mode: str  # "hello" or "raw"
    segments: list[bytes]  # written one at a time, waiting for the replies each predicts
    attack: str
    frames: int = 0  # frames in the case (what the daemon decodes, at most)
    notes: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        """The relay's arguments: the mode, then ``N:HEX`` per segment (``:close`` last)."""
        waits = expected(self).waits
        args = [self.mode]
        for i, (segment, want) in enumerate(zip(self.segments, waits)):
            last = i == len(self.segments) - 1
            args.append(f"{0 if last else want}:{segment.hex()}" + (":close" if last else ""))
        return args


@dataclass
class Expectation:
    outcome: str  # "ok", "violation" or "either"
    replies: list[tuple[int, int | None]]  # (frame type, request id) the launcher sends, in order
    waits: list[int]  # replies to wait for after each segment


def _service_id(rng: random.Random) -> str:
    return "".join(rng.choice(ID_CHARS) for _ in range(rng.randint(1, 24)))


def _request(rng: random.Random, request_id: int, small: bool = False) -> bytes:
    cls = wire.Read if rng.random() < 0.5 else wire.Write
    return wire.encode(cls(request_id=request_id, service_id=_service_id(rng), nonce=rng.randbytes(16),
                           sealed=rng.randbytes(rng.randint(wire.SEALED_MIN, 56 if small else 180))))


def _give_up(rng: random.Random) -> bytes:
    text = "".join(rng.choice("abc xyz\u00e9\u4e2d") for _ in range(rng.randint(0, 40)))
    return wire.encode(wire.ErrorMessage(0, wire.ErrorCode(rng.randint(1, 6)), text))


def _hello(rng: random.Random) -> bytes:
    return wire.encode(wire.Hello(public_key=rng.randbytes(32), evidence=EVIDENCE))


def _attack(rng: random.Random, kind: str, next_id: int, handshaken: bool) -> bytes:
    valid = _request(rng, next_id)
    if kind == "none":
        return b""
    if kind == "random_bytes":
        return rng.randbytes(rng.randint(1, 40))
    if kind == "bitflip":
        data = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)
    if kind == "truncate":
        return valid[: rng.randint(1, len(valid) - 1)]
    if kind == "stretch":  # bytes after the last field, the length grown to cover them
        extra = rng.randbytes(rng.randint(1, 8))
        return struct.pack(">I", len(valid) - 4 + len(extra)) + valid[4:] + extra
    if kind == "bad_length":
        length = rng.choice([0, wire.MAX_FRAME + 1, rng.randint(wire.MAX_FRAME + 1, 0xFFFFFFFF)])
        return struct.pack(">IB", length, wire.FrameType.READ) + rng.randbytes(rng.randint(0, 16))
    if kind == "bad_type":
        frame_type = rng.choice([0, 2, 3, 6, rng.randint(8, 255)])
        payload = rng.randbytes(rng.randint(0, 32))
        return struct.pack(">IB", 1 + len(payload), frame_type) + payload
    if kind == "bad_field":
        sid = _service_id(rng).encode()
        nonce, sealed, rid = rng.randbytes(16), rng.randbytes(60), next_id
        broken = rng.choice(["sid_char", "sid_empty", "sid_long", "nonce_short", "nonce_long", "sealed_short",
                             "request_id_zero", "sid_overrun"])
        if broken == "sid_char":
            sid = sid[:-1] + rng.choice([b" ", b"/", b"\x00", b"\xff", b"+"])
        elif broken == "sid_empty":
            sid = b""
        elif broken == "sid_long":
            sid = b"s" * 65
        elif broken == "nonce_short":
            nonce = nonce[:15]
        elif broken == "nonce_long":
            nonce = nonce + b"!"
        elif broken == "sealed_short":
            sealed = sealed[: rng.randint(0, wire.SEALED_MIN - 1)]
        elif broken == "request_id_zero":
            rid = 0
        payload = struct.pack(">IH", rid, len(sid)) + sid + struct.pack(">H", len(nonce)) + nonce
        payload += struct.pack(">I", len(sealed) + (50 if broken == "sid_overrun" else 0)) + sealed
        return struct.pack(">IB", 1 + len(payload), wire.FrameType.READ) + payload
    if kind == "error_with_request_id":
        return wire.encode(wire.ErrorMessage(rng.randint(1, 2**32 - 1), wire.ErrorCode.INTERNAL, "x"))
    if kind == "bad_utf8":
        text = rng.choice([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"ok\xf4\x90\x80\x80"])
        payload = struct.pack(">IHI", 0, 5, len(text)) + text
        return struct.pack(">IB", 1 + len(payload), wire.FrameType.ERROR) + payload
    if kind == "second_hello":
        return _hello(rng)
    if kind == "two_frames_one_cut":  # a frame cut short, then a whole one: misframed
        return valid[: rng.randint(5, len(valid) - 1)] + _request(rng, next_id + 1)
    raise ValueError(kind)


def make_case(rng: random.Random, small: bool = False) -> Case:
    """One case; ``small`` keeps it within what hypothesis draws comfortably."""
    mode = "raw" if rng.random() < 0.15 else "hello"
    segments: list[bytes] = []
    frames = 0
    handshaken = mode == "hello"
    next_id = rng.randint(1, 1000)
    if mode == "raw" and rng.random() < 0.7:
        segments.append(_hello(rng))
        frames += 1
        handshaken = True
    for _ in range(rng.randint(1, 2 if small else 4) if handshaken else 0):
        segment = b""
        for _ in range(rng.randint(1, 3 if small else 8)):
            frame = _give_up(rng) if rng.random() < 0.1 else _request(rng, next_id, small)
            if len(segment) + len(frame) > SEGMENT_BYTES:
                break
            next_id += 1
            segment += frame
            frames += 1
        segments.append(segment)
    kinds = [k for k in ATTACKS if k != "second_hello" or handshaken]
    attack = rng.choice(kinds)
    tail = _attack(rng, attack, next_id, handshaken)
    segments.append(tail)
    frames += 1 if tail else 0
    return Case(mode, segments, attack, frames)


def expected(case: Case) -> Expectation:
    """What the launcher must do with this case (the protocol's rules, applied here with
    the reference codec, ``shared/channel.py``)."""
    decoder = wire.FrameDecoder(accept=wire.FROM_COMPARTMENT)
    handshaken = case.mode == "hello"
    replies: list[tuple[int, int | None]] = []
    waits: list[int] = []
    outcome = "ok"
    try:
        for segment in case.segments:
            before = len(replies)
            for frame in decoder.feed(segment):
                message = wire.decode(frame)
                if isinstance(message, wire.Hello):
                    if handshaken:
                        raise ProtocolViolation("a second HELLO")
                    handshaken = True
                    if message.evidence != EVIDENCE:
                        outcome = "either"
                    replies += [(wire.FrameType.CERT, None), (wire.FrameType.SERVICE_KEYS, None)]
                elif isinstance(message, wire.ErrorMessage):
                    if message.request_id != 0:
                        raise ProtocolViolation("ERROR with a request id")
                elif isinstance(message, wire.Request):
                    if not handshaken:
                        raise ProtocolViolation("a request before HELLO")
                    replies.append((wire.FrameType.ERROR, message.request_id))
            waits.append(len(replies) - before)
        decoder.close()  # the last segment ends with the program's shutdown(SHUT_WR)
    except ProtocolViolation:
        outcome = "violation"
        waits += [0] * (len(case.segments) - len(waits))
    return Expectation(outcome, replies, waits)


def parse_replies(output: str) -> list[wire.Message]:
    """The launcher's frames the relay printed, decoded strictly as launcher frames."""
    decoder = wire.FrameDecoder(accept=wire.FROM_LAUNCHER)
    messages = []
    for line in output.splitlines():
        if line.startswith("badreply"):
            raise AssertionError(f"the launcher sent a frame with a bad length: {line}")
        if not line.startswith("reply "):
            continue
        _, frame_type, payload_hex = (line.split(" ", 2) + [""])[:3]
        payload = bytes.fromhex(payload_hex)
        for frame in decoder.feed(struct.pack(">IB", 1 + len(payload), int(frame_type)) + payload):
            messages.append(wire.decode(frame))
    return messages


def check(case: Case, run: dict[str, Any], output: str) -> None:
    """Assert that the finished run is what the protocol requires."""
    expect = expected(case)
    where = f"{case.attack} ({case.mode}) {run['run_id']}: {run['state']}/{run['reason']}: {run['error']}"
    replies = parse_replies(output)
    got = [(int(type(m).TYPE), getattr(m, "request_id", None) if isinstance(m, wire.ErrorMessage) else None)
           for m in replies]
    for message in replies:
        if isinstance(message, wire.ErrorMessage) and message.request_id:
            assert message.code == wire.ErrorCode.UNKNOWN_SERVICE, (where, message)
    assert run["state"] in {"exited", "failed"}, where
    if run["state"] == "failed":
        assert run["reason"] == "protocol_violation" and run["error"], where
        assert not run["error"].startswith("internal"), where
    if expect.outcome == "ok":
        assert run["state"] == "exited" and run["exit_code"] == 0, (where, output[-400:])
        assert got == [(int(t), r) for t, r in expect.replies], (where, got, expect.replies)
    elif expect.outcome == "violation":
        assert run["state"] == "failed", (where, output[-400:])
        assert got == [(int(t), r) for t, r in expect.replies[: len(got)]], (where, got, expect.replies)
    else:
        assert got == [(int(t), r) for t, r in expect.replies[: len(got)]], (where, got, expect.replies)
