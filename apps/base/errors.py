"""Every error a service answers with: an HTTP status, a stable code and a message.

The attested endpoints follow the contract in ``attestables.shared.eai``: a refusal is
``{"error": {"code", "message"}, "verification": {...} | null}``; admin endpoints answer
``{"error": {"code", "message"}}``. Messages never carry plaintext from a sealed
document, a key or a token, and never a traceback.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aiohttp import web

class ServiceError(Exception):
    """Base of every refusal; ``verification`` is the verifier's result when there was one."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, *, verification: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.verification = verification
        self.headers = headers


class BadRequest(ServiceError):
    """Malformed JSON, fields, sizes, or a sealed payload that does not open."""

    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """An admin request without the right bearer token."""

    status = 401
    code = "unauthorized"


class Contraindicated(ServiceError):
    """The certificate or its attestation document fails the policy (or there is none)."""

    status = 403
    code = "contraindicated"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ServiceError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(ServiceError):
    """The body did not arrive in time (a slow client holds no slot for long)."""

    status = 408
    code = "timeout"


class Replay(ServiceError):
    """The nonce was already used."""

    status = 409
    code = "replay"


class TooLarge(ServiceError):
    status = 413
    code = "too_large"


class Busy(ServiceError):
    """Too many requests in flight: refused at once rather than queued."""

    status = 503
    code = "busy"


class InternalError(ServiceError):
    status = 500
    code = "internal"


def error_response(exc: ServiceError, *, attested: bool) -> web.Response:
    body: dict[str, Any] = {"error": {"code": exc.code, "message": exc.message}}
    if attested:
        body["verification"] = exc.verification
    return web.json_response(body, status=exc.status, headers=exc.headers)
