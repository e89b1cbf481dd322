"""The admin API: plain JSON for operators and the demo, behind a bearer token.

The token is ``admin-token`` in the state directory (0600), compared in constant time.
Admin endpoints are plaintext by design and are never called by the launcher, which only
POSTs attested endpoints. Routes every service has are here; a kind adds its own
(``ServiceDefinition.admin_routes``).
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from aiohttp import web
from msgspec import Meta

from attestables.shared.verifier import PolicyError

from . import verifications
from .attested import read_body
from .documents import Strict, decode_admin
from .errors import BadRequest, ServiceError, Unauthorized, error_response
from .files import token_matches
from .runtime import CRL_SESSION, RUNTIME, ServiceRuntime
from .service import AdminHandler

log = logging.getLogger(__name__)

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def guarded(handler: AdminHandler):  # type: ignore[no-untyped-def]
    """An aiohttp handler that checks the token, runs ``handler`` and answers its result as JSON."""

    async def handle(request: web.Request) -> web.StreamResponse:
        runtime = request.app[RUNTIME]
        try:
            if not token_matches(request.headers.get("Authorization"), runtime.admin_token):
                log.warning("admin request %s %s refused: missing or wrong token", request.method, request.path)
                raise Unauthorized("missing or wrong admin token (Authorization: Bearer TOKEN)",
                                   headers={"WWW-Authenticate": 'Bearer realm="attestables-service"'})
            result = await handler(runtime, request)
        except ServiceError as exc:
            return error_response(exc, attested=False)
        if isinstance(result, web.StreamResponse):
            return result
        return web.json_response(result)

    handle.__name__ = getattr(handler, "__name__", "admin")
    return handle


async def body_of(request: web.Request, kind: type[Any]) -> Any:
    runtime = request.app[RUNTIME]
    return decode_admin(await read_body(request, runtime.config.max_body), kind)


def page(request: web.Request) -> tuple[int, int]:
    """``?after=ID&limit=N`` (N at most 1000)."""
    try:
        after = int(request.query.get("after", "0"))
        limit = int(request.query.get("limit", str(DEFAULT_PAGE)))
    except ValueError:
        raise BadRequest("after and limit are integers") from None
    if after < 0 or not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"after >= 0 and 1 <= limit <= {MAX_PAGE}")
    return after, limit


class PolicyUpdate(Strict):
    toml: Annotated[str, Meta(min_length=1, max_length=128 * 1024)]
    # Root certificate files to write beside the policy: file name -> PEM.
    roots: dict[str, str] = {}


async def status(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    return {
        **runtime.public_key_document(),
        "tls_fingerprint": runtime.tls_fingerprint,
        "policy": runtime.policy.status(),
        "crl": runtime.crl.status(),
        "in_flight": runtime.in_flight,
        "time": time.time(),
    }


async def replace_policy(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    update: PolicyUpdate = await body_of(request, PolicyUpdate)
    try:
        runtime.policy.replace(update.toml, dict(update.roots))
    except PolicyError as exc:
        raise BadRequest(exc.message) from None
    return {"policy": runtime.policy.status()}


async def verification_log(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    after, limit = page(request)
    return {"verifications": await verifications.listing(runtime.db, after=after, limit=limit)}


async def refresh_crl(runtime: ServiceRuntime, request: web.Request) -> dict[str, Any]:
    if runtime.crl.url is None:
        raise BadRequest("this service has no --crl-url")
    session = request.app[CRL_SESSION]
    installed = await runtime.crl.fetch(session)
    return {"installed": installed, "crl": runtime.crl.status()}

ROUTES: tuple[tuple[str, str, AdminHandler], ...] = (
    ("GET", "/admin/status", status),
    ("POST", "/admin/policy", replace_policy),
    ("GET", "/admin/verifications", verification_log),
    ("POST", "/admin/crl/refresh", refresh_crl),
)
