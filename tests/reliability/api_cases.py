"""Frames for fuzzing the websocket API, the replies each must get, and the checks.

A frame is a request envelope with a real method and params drawn from the method's own
field names (values plausible or random JSON), a request with a broken envelope (bad
``jsonrpc``, ``method``, ``id``, params that are not an object), any JSON value, text
that is almost JSON, or random bytes in a binary frame. Requests get unique ids so that
each reply can be matched.

:func:`expected_reply` applies the envelope rules of docs/api.md ("The envelope") to say
whether a frame is answered and with which id: ``MISSING`` when it is a notification
(never answered), else the id the answer must carry (``None`` when the frame was not
JSON, not an object, or its id was unusable). :func:`check_reply` requires every answer
to be a well-formed result or error: an error has an integer ``code``, a ``message`` and
``data.code`` among the documented codes, and is never ``internal``.

Seeded ``random.Random`` draws give volume; hypothesis strategies (``frames()``) give
shrinkable cases.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from typing import Any

import msgspec
from hypothesis import strategies as st

from attestables.shared import errors, protocol

MISSING = object()  # a notification: no answer at all
RUN_STATES = list(protocol.RUN_STATES)
TOPICS = sorted(protocol.TOPICS)

# method -> its params' field names (the daemon's schemas, docs/api.md).
FIELDS: dict[str, tuple[str, ...]] = {
    "system.info": (), "sources.upload": ("name", "content"), "sources.list": (),
    "sources.get": ("source_id", "version"), "sources.delete": ("source_id",),
    "builds.start": ("source_id", "version", "toolchain", "flags"), "builds.list": ("limit",),
    "builds.get": ("build_id",), "builds.logs": ("build_id",), "builds.cancel": ("build_id",),
    "runs.start": ("build_id", "backend", "args", "limits"), "runs.list": ("limit", "state"),
    "runs.get": ("run_id",), "runs.logs": ("run_id",), "runs.stop": ("run_id",),
    "events.subscribe": ("topics", "filter", "since"), "events.unsubscribe": ("subscription",),
    "ca.info": (), "ca.crl": (), "certs.list": ("limit", "run_id"), "certs.get": ("serial", "run_id"),
    "certs.revoke": ("serial", "reason"), "attestation.get": ("run_id",),
    "services.register": ("service_id", "url", "tls_ca_pem", "tls_fingerprint"), "services.list": (),
    "services.remove": ("service_id",), "traces.list": ("run_id", "service_id", "since", "limit"),
}
METHOD_NAMES = [*FIELDS, "system.nope", "", "SYSTEM.INFO", "sources.upload.x", "rpc.discover"]
# Registering a service makes the daemon connect to the URL given: the fuzzer keeps this
# method's params invalid (an unknown field) so that it never reaches the network.
NEVER_VALID = {"services.register"}


@dataclass
class Frame:
    kind: str  # "text" or "binary"
    data: str | bytes
    expect: Any  # MISSING, or the id the reply must carry (None: null)
    is_request: bool  # a well-formed envelope: its answer may be a result


# ------------------------------------------------------------------------ the oracle


def expected_reply(data: str | bytes) -> tuple[Any, bool]:
    """(the id the answer carries or MISSING, whether it may be a result), by the rules
    of docs/api.md, decoding with the same JSON library as the daemon."""
    try:
        message = msgspec.json.decode(data.encode() if isinstance(data, str) else data)
    except (msgspec.DecodeError, RecursionError):
        return None, False
    if not isinstance(message, dict):
        return None, False
    id_ = message.get("id")
    if isinstance(id_, bool) or not (id_ is None or isinstance(id_, (int, str))):
        return None, False
    if message.get("jsonrpc") != "2.0" or not isinstance(message.get("method"), str):
        return id_, False
    if "id" not in message:
        return MISSING, True
    return id_, True


def frame_of(kind: str, data: str | bytes) -> Frame:
    expect, is_request = expected_reply(data)
    return Frame(kind, data, expect, is_request)


def check_reply(reply: dict[str, Any], frame: Frame | None) -> None:
    """A well-formed answer: a result (only to a request) or an error with its codes."""
    assert reply.get("jsonrpc") == "2.0", reply
    assert set(reply) in ({"jsonrpc", "id", "result"}, {"jsonrpc", "id", "error"}), reply
    if "result" in reply:
        assert frame is None or frame.is_request, (reply, frame)
        return
    error = reply["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "data"}, reply
    assert isinstance(error["code"], int) and not isinstance(error["code"], bool), reply
    assert isinstance(error["message"], str) and error["message"], reply
    code = error["data"].get("code") if isinstance(error["data"], dict) else None
    assert code in errors.ERRORS, reply
    assert code != "internal", f"the daemon failed on {frame!r}: {reply}"
    assert "Traceback" not in error["message"], reply


# ---------------------------------------------------------------- seeded generation


def _rand_str(rng: random.Random, n: int = 12) -> str:
    alphabet = string.printable + "\u00e9\u4e2d\U0001f600\u0000\u202e"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, n)))


def rand_json(rng: random.Random, depth: int = 3) -> Any:
    roll = rng.random()
    if depth <= 0 or roll < 0.55:
        return rng.choice([
            None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, 2**200, 0.5, -1e300, 1e-300,
            "", "x", rng.randint(-(2**70), 2**70), rng.random() * 1e6, _rand_str(rng), "a" * rng.randint(0, 5000),
        ])
    if roll < 0.8:
        return [rand_json(rng, depth - 1) for _ in range(rng.randint(0, 5))]
    return {_rand_str(rng, 8): rand_json(rng, depth - 1) for _ in range(rng.randint(0, 5))}


def plausible(rng: random.Random, field: str) -> Any:
    """A value of the right shape (often valid, sometimes at or past a limit)."""
    if field in {"source_id", "build_id", "run_id", "subscription"}:
        return rng.choice(["s_" + rng.randbytes(8).hex(), "b_" + rng.randbytes(8).hex(), "r_00", "sub-1", "",
                           "x" * 64, "x" * 65, "../etc", "a b", _rand_str(rng)])
    if field in {"version", "limit", "since"}:
        return rng.choice([0, 1, 2, -1, 1000, 1001, 2**53, 2**64, rng.randint(-5, 5000)])
    if field == "name":
        return rng.choice(["fz.c", "fz.h", "", "a" * 128 + ".c", "a" * 129, "../x.c", "x/y.c", ".c", "fz",
                           "nul\u0000.c", _rand_str(rng) + ".c"])
    if field == "content":
        return rng.choice(["", "int main(void){return 0;}\n", _rand_str(rng, 200), "\u0000" * 10])
    if field in {"toolchain", "backend", "state", "reason"}:
        return rng.choice(["native", "bwrap", "none", "c18n", "morello-purecap", "running", "exited",
                           "key_compromise", "unspecified", "", _rand_str(rng)] + RUN_STATES)
    if field in {"flags", "args"}:
        return [rng.choice(["-O2", "-o", "/etc/passwd", "-DX=1", "-D", "@f", "-fplugin=x", _rand_str(rng), ""])
                for _ in range(rng.randint(0, 40))]
    if field == "limits":
        return {rng.choice(["cpu_s", "memory_mb", "wall_s", "output_kb", "x"]): rng.choice([0, 1, -1, 10**9, True])
                for _ in range(rng.randint(0, 4))}
    if field == "topics":
        return [rng.choice(TOPICS + ["nope", "", "events.gap"]) for _ in range(rng.randint(0, 17))]
    if field == "filter":
        return {rng.choice(["build_id", "run_id", "service_id", "x"]): rng.choice(["r_1", "", 5, None])
                for _ in range(rng.randint(0, 3))}
    if field == "serial":
        return rng.choice(["abc", "0", "f" * 40, "f" * 41, "xyz", "", rng.randbytes(6).hex()])
    if field in {"service_id", "url", "tls_ca_pem", "tls_fingerprint"}:
        return rng.choice(["store", "https://127.0.0.1:1", "", "x" * 70, _rand_str(rng)])
    return rand_json(rng)


def request_frame(rng: random.Random, id_: int | str) -> Frame:
    """A request envelope, usually well-formed, with fuzzed params."""
    method = rng.choice(METHOD_NAMES)
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    roll = rng.random()
    if roll < 0.7:
        params = {f: plausible(rng, f) if rng.random() < 0.7 else rand_json(rng)
                  for f in FIELDS.get(method, ()) if rng.random() < 0.8}
        if rng.random() < 0.1 or method in NEVER_VALID:
            params[_rand_str(rng, 6) + "_extra"] = rand_json(rng)
        message["params"] = params
    elif roll < 0.85:
        message["params"] = rand_json(rng)  # not necessarily an object
    elif roll < 0.9:
        message["params"] = None
    # A broken envelope now and then.
    envelope = rng.random()
    if envelope < 0.04:
        message["jsonrpc"] = rng.choice(["1.0", 2.0, None, "", "2.0 "])
    elif envelope < 0.08:
        message["method"] = rand_json(rng, 1)
    elif envelope < 0.14:
        message["id"] = rng.choice([True, False, 1.5, [], {}, None, [1], {"a": 1}, -0.0])
    elif envelope < 0.18:
        del message["id"]  # a notification: executed, never answered
        if method in NEVER_VALID:
            message["method"] = "system.info"
    elif envelope < 0.2:
        del message["jsonrpc"]
    return frame_of("text", json.dumps(message))


def garbage_frame(rng: random.Random, id_: int) -> Frame:
    roll = rng.random()
    if roll < 0.3:
        return frame_of("text", json.dumps(rand_json(rng)))
    if roll < 0.6:  # almost JSON: a request with characters cut, added or swapped
        text = json.dumps({"jsonrpc": "2.0", "id": id_, "method": rng.choice(METHOD_NAMES),
                           "params": {"x": rand_json(rng, 2)}})
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                del chars[i]
            elif op < 0.8:
                chars.insert(i, rng.choice('{}[]",:\\ 0e-.tfn\u0000\u00ff'))
            else:
                chars[i] = rng.choice(string.printable)
        return frame_of("text", "".join(chars))
    if roll < 0.9:
        return frame_of("binary", rng.randbytes(rng.randint(0, 300)))
    return frame_of("text", rng.choice(["", " ", "null", "[]", "{}", "[{}]", '{"id":1}', "1" * 5000, '"\\ud800"',
                                        '{"jsonrpc":"2.0","id":1,"method":"system.info","params":[]}',
                                        "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000]))


def seeded_frames(rng: random.Random, count: int, first_id: int) -> list[Frame]:
    return [request_frame(rng, first_id + i) if rng.random() < 0.7 else garbage_frame(rng, first_id + i)
            for i in range(count)]


# ---------------------------------------------------------------- hypothesis strategies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def frames(draw: st.DrawFn, id_: int) -> Frame:
    """One frame under hypothesis's control (the same shapes as the seeded generator)."""
    kind = draw(st.sampled_from(["request", "request", "request", "json", "text", "bytes"]))
    if kind == "json":
        return frame_of("text", json.dumps(draw(json_values)))
    if kind == "text":
        return frame_of("text", draw(st.text(max_size=200)))
    if kind == "bytes":
        return frame_of("binary", draw(st.binary(max_size=200)))
    method = draw(st.sampled_from(METHOD_NAMES))
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    fields = FIELDS.get(method, ())
    shape = draw(st.sampled_from(["fields", "fields", "any", "none", "absent"]))
    if shape == "fields":
        params = draw(st.dictionaries(st.sampled_from(fields), json_values, max_size=len(fields))) if fields else {}
        if method in NEVER_VALID or draw(st.booleans()) and draw(st.booleans()):
            params[draw(st.text(min_size=1, max_size=6)) + "_extra"] = draw(json_values)
        message["params"] = params
    elif shape == "any":
        message["params"] = draw(json_values)
    elif shape == "none":
        message["params"] = None
    envelope = draw(st.sampled_from(["ok"] * 6 + ["jsonrpc", "method", "id", "notification"]))
    if envelope == "jsonrpc":
        message["jsonrpc"] = draw(json_values)
    elif envelope == "method":
        message["method"] = draw(json_values)
    elif envelope == "id":
        message["id"] = draw(json_values)
    elif envelope == "notification" and method not in NEVER_VALID:
        del message["id"]
    return frame_of("text", json.dumps(message))
