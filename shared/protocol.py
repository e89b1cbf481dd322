"""The one message envelope of the client API (JSON-RPC 2.0 over a websocket).

Every frame the daemon sends is one of:

- a result:        ``{"jsonrpc": "2.0", "id": ID, "result": ...}``
- an error:        ``{"jsonrpc": "2.0", "id": ID | null, "error": {code, message, data: {code, ...}}}``
- a notification:  ``{"jsonrpc": "2.0", "method": "system.hello" | "event", "params": {...}}``

Stream items are ``event`` notifications whose params are
``{"subscription", "topic", "seq", "data"}``. See ``docs/api.md``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import AttestablesError

API_PATH = "/api/v1/ws"
HEALTH_PATH = "/healthz"
CRL_PATH = "/api/v1/crl"

# Bumped when a method, event or field changes incompatibly; ``min_supported`` is the
# oldest client schema the server still speaks.
SCHEMA_VERSION = 1
MIN_SUPPORTED_SCHEMA_VERSION = 1

HELLO = "system.hello"
EVENT = "event"

# Event topics.
BUILDS_LOG = "builds.log"
BUILDS_STATE = "builds.state"
RUNS_OUTPUT = "runs.output"
RUNS_STATE = "runs.state"
# Sent to a subscriber instead of events it could not receive (ring overrun or a slow
# client); ``data`` says how many and from which sequence number.
EVENTS_GAP = "events.gap"

CERTS_ISSUED = "certs.issued"
CERTS_REVOKED = "certs.revoked"
TRACES_MESSAGE = "traces.message"

TOPICS = frozenset({BUILDS_LOG, BUILDS_STATE, RUNS_OUTPUT, RUNS_STATE, CERTS_ISSUED, CERTS_REVOKED,
                    TRACES_MESSAGE})

BUILD_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
BUILD_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
RUN_STATES = ("pending", "starting", "running", "exited", "failed", "killed", "lost")
RUN_TERMINAL = frozenset({"exited", "failed", "killed", "lost"})

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def encode(message: Any) -> bytes:
    """Serialise one frame (compact JSON, UTF-8)."""
    return _encoder.encode(message)


def decode(frame: str | bytes) -> Any:
    """Parse one frame; raises ``msgspec.DecodeError`` on bad JSON."""
    return _decoder.decode(frame)


def request(id_: int | str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def result(id_: int | str | None, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def error(id_: int | str | None, exc: AttestablesError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": exc.to_wire()}


def notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def event(subscription: str, topic: str, seq: int, data: Any) -> dict[str, Any]:
    return notification(EVENT, {"subscription": subscription, "topic": topic, "seq": seq, "data": data})
