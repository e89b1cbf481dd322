"""Every error that crosses the wire, in one place.

A server-side handler raises one of these classes; the dispatcher turns it into a
JSON-RPC error whose ``data.code`` is the stable string code; the client library
re-raises the same class from that code. Codes are part of the public API
(``docs/api.md``): never rename one, only add.
"""

from __future__ import annotations

from typing import Any, ClassVar

# JSON-RPC 2.0 reserved codes, used for envelope problems.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class AttestablesError(Exception):
    """Base of every error with a stable code that a client can act on."""

    code: ClassVar[str] = "internal"
    rpc_code: ClassVar[int] = INTERNAL_ERROR

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_wire(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` member for this exception."""
        return {
            "code": self.rpc_code,
            "message": self.message,
            "data": {"code": self.code, **self.data},
        }


class ParseError(AttestablesError):
    """The frame was not valid JSON."""

    code = "parse_error"
    rpc_code = PARSE_ERROR


class InvalidRequest(AttestablesError):
    """The frame was JSON but not a JSON-RPC 2.0 request."""

    code = "invalid_request"
    rpc_code = INVALID_REQUEST


class MethodNotFound(AttestablesError):
    """No such method."""

    code = "method_not_found"
    rpc_code = METHOD_NOT_FOUND


class InvalidParams(AttestablesError):
    """Params failed the method's schema or a semantic check."""

    code = "invalid_params"
    rpc_code = INVALID_PARAMS


class InternalError(AttestablesError):
    """A bug or an unexpected failure; details are in the daemon's log, never here."""

    code = "internal"
    rpc_code = INTERNAL_ERROR


class Unauthorized(AttestablesError):
    """Missing or wrong credentials."""

    code = "unauthorized"
    rpc_code = -32001


class NotFound(AttestablesError):
    """The named object does not exist."""

    code = "not_found"
    rpc_code = -32004


class Conflict(AttestablesError):
    """The object is in a state that forbids the request (e.g. delete while running)."""

    code = "conflict"
    rpc_code = -32009


class LimitExceeded(AttestablesError):
    """A size, count or resource limit was exceeded."""

    code = "limit_exceeded"
    rpc_code = -32029


class Tampered(AttestablesError):
    """Stored content no longer matches its recorded digest."""

    code = "tampered"
    rpc_code = -32010


class Unavailable(AttestablesError):
    """A required part (toolchain, backend, service) is not available here."""

    code = "unavailable"
    rpc_code = -32003


class Cancelled(AttestablesError):
    """The operation was cancelled before it finished."""

    code = "cancelled"
    rpc_code = -32005


class ProtocolViolation(AttestablesError):
    """A peer broke the wire protocol (compartment channel or API)."""

    code = "protocol_violation"
    rpc_code = -32011


class ConnectionLost(AttestablesError):
    """Client side only: the connection to the daemon ended."""

    code = "connection_lost"
    rpc_code = -32099


ERRORS: dict[str, type[AttestablesError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        Unauthorized,
        NotFound,
        Conflict,
        LimitExceeded,
        Tampered,
        Unavailable,
        Cancelled,
        ProtocolViolation,
        ConnectionLost,
    )
}


def error_from_wire(error: Any) -> AttestablesError:
    """Rebuild the typed exception from a JSON-RPC ``error`` member.

    Unknown codes (a newer server) become the base class with the wire code kept.
    """
    if not isinstance(error, dict):
        return InternalError(f"malformed error from server: {error!r}")
    data = error.get("data") if isinstance(error.get("data"), dict) else {}
    code = data.get("code", "internal")
    message = str(error.get("message", "error"))
    extra = {k: v for k, v in data.items() if k != "code"}
    cls = ERRORS.get(code)
    if cls is None:
        exc = AttestablesError(message, **extra)
        exc.code = code  # type: ignore[misc]  # keep the unknown code for the caller
        return exc
    return cls(message, **extra)
