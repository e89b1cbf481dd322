"""Method registry and dispatcher.

Each handler declares its params as a ``msgspec.Struct``; the dispatcher validates the
request against it before the handler runs, so handlers never see malformed input, and
turns every exception into the one error envelope. No traceback reaches a client.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import msgspec

from attestables.shared import protocol
from attestables.shared.errors import (
    AttestablesError,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
)

if TYPE_CHECKING:
    from ..daemon import Daemon
    from .connection import Connection

log = logging.getLogger(__name__)


class Params(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Base of every method's params: unknown fields are refused."""


class NoParams(Params):
    pass


@dataclass(slots=True)
class CallContext:
    daemon: "Daemon"
    connection: "Connection | None"


Handler = Callable[[CallContext, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    params: type[Params]
    handler: Handler
    summary: str


METHODS: dict[str, MethodSpec] = {}


def method(name: str, params: type[Params] = NoParams) -> Callable[[Handler], Handler]:
    """Register ``handler`` as API method ``name`` taking ``params``."""

    def register(handler: Handler) -> Handler:
        if name in METHODS:
            raise RuntimeError(f"method {name} registered twice")
        summary = (handler.__doc__ or "").strip().splitlines()[0] if handler.__doc__ else ""
        METHODS[name] = MethodSpec(name, params, handler, summary)
        return handler

    return register


def _describe_validation_error(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `int`, got `str` - at `$.limits.cpu_s`"; the `$` root is
    # the params object, which is what a client sent.
    return str(exc).replace("`$.", "`params.").replace("at `$`", "at `params`")


def validate_params(spec: MethodSpec, raw: Any) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParams("params must be an object", method=spec.name)
    try:
        return msgspec.convert(raw, spec.params)
    except msgspec.ValidationError as exc:
        raise InvalidParams(_describe_validation_error(exc), method=spec.name) from None


async def dispatch(ctx: CallContext, message: Any) -> dict[str, Any] | None:
    """Handle one decoded request; returns the response (None for a notification)."""
    if not isinstance(message, dict):
        return protocol.error(None, InvalidRequest("a request must be a JSON object"))
    id_ = message.get("id")
    is_notification = "id" not in message
    if isinstance(id_, bool) or not (id_ is None or isinstance(id_, (int, str))):
        return protocol.error(None, InvalidRequest("id must be a string, a number or null"))
    if message.get("jsonrpc") != "2.0":
        return protocol.error(id_, InvalidRequest('"jsonrpc" must be "2.0"'))
    name = message.get("method")
    if not isinstance(name, str):
        return protocol.error(id_, InvalidRequest('"method" must be a string'))
    try:
        spec = METHODS.get(name)
        if spec is None:
            raise MethodNotFound(f"no method {name!r}", method=name)
        params = validate_params(spec, message.get("params"))
        value = await spec.handler(ctx, params)
    except AttestablesError as exc:
        if is_notification:
            return None
        return protocol.error(id_, exc)
    except Exception:
        log.exception("method %s failed", name)
        if is_notification:
            return None
        return protocol.error(id_, InternalError("internal error; see the daemon's log"))
    if is_notification:
        return None
    return protocol.result(id_, value)
