"""The attested endpoints: verify, open, claim the nonce, handle, seal, log.

For every ``POST`` to an attested endpoint, in this order:

1. the body: at most ``MAX_BODY`` bytes (413), read within a deadline (408), the
   envelope ``{certificate, nonce, sealed}`` strictly decoded (400);
2. the certificate: appraised by the shared verifier against the service's policy
   (403 ``contraindicated`` with the reasons; ``no_policy`` when there is none);
   a ``warning`` passes;
3. the sealed query: opened with the service's key and
   ``info = build_info(REQUEST, service id, serial, nonce)`` (400 if it does not open),
   then decoded strictly as the endpoint's plaintext document (400); a certificate key
   nothing can be sealed to (a low-order X25519 point) is refused here too (400);
4. in one transaction (``ServiceDatabase.run``: one quick function of the connection):
   the nonce is claimed (409 ``replay`` if seen), the handler reads or writes, and the
   verification is logged;
5. the answer, sealed to the certificate's X25519 key with ``build_info(RESPONSE, …)``
   (a key nothing can be sealed to was refused at step 3), ``{"sealed", "verification"}``.

Every request that reached step 2 leaves one row in ``verifications``, whatever its
outcome. A request refused before step 4 changes nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

from aiohttp import web

from attestables.shared import eai, hpke
from attestables.shared.verifier import Reason, VerificationResult
from attestables.shared.verifier.result import CERTIFICATE_INVALID

from . import replay, verifications
from .documents import decode_document, decode_envelope, encode
from .errors import (
    BadRequest,
    Busy,
    Contraindicated,
    InternalError,
    Replay,
    RequestTimeout,
    ServiceError,
    TooLarge,
    error_response,
)
from .runtime import RUNTIME, Leaf, ServiceRuntime
from .service import AttestedEndpoint, HandlerContext
from .verifications import Verification

log = logging.getLogger("attestables.apps.attested")

BODY_TIMEOUT_S = 10.0
BUSY_LOG_S = 5.0
NO_POLICY = "no_policy"


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"the body is larger than {limit} bytes")
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"the body is larger than {limit} bytes") from None
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {BODY_TIMEOUT_S:.0f} s") from None


def handler_for(endpoint: AttestedEndpoint[Any]):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.Response:
        runtime = request.app[RUNTIME]
        if runtime.in_flight >= runtime.config.max_in_flight:
            _note_busy(runtime)
            return error_response(Busy("too many requests in flight; try again shortly"), attested=True)
        runtime.in_flight += 1
        started = time.perf_counter()
        try:
            return await _handle(runtime, endpoint, request, started)
        except ServiceError as exc:
            return error_response(exc, attested=True)
        finally:
            runtime.in_flight -= 1

    handle.__name__ = f"attested_{endpoint.operation}"
    return handle


async def _handle(runtime: ServiceRuntime, endpoint: AttestedEndpoint[Any], request: web.Request,
                  started: float) -> web.Response:
    body = await read_body(request, runtime.config.max_body)
    envelope, nonce, sealed = decode_envelope(body)
    leaf = runtime.leaves.get(envelope.certificate)
    result, entry = _appraise(runtime, endpoint, envelope.certificate, envelope.nonce, leaf)
    try:
        if result is None or not result.ok:
            codes = ", ".join(r["code"] for r in entry.reasons) or "unknown"
            raise Contraindicated(f"the certificate does not satisfy this service's policy: {codes}")
        if leaf is None or leaf.fingerprint != result.fingerprint or leaf.public_key is None:
            # The verifier appraised one certificate; the answer must be sealed to that one's key.
            raise BadRequest("the certificate bundle does not start with the appraised run certificate")
        if not leaf.sealable:  # e.g. a low-order X25519 point: nothing can be sealed to it
            raise BadRequest("the run certificate's X25519 key cannot be sealed to")
        try:
            plaintext = hpke.open(runtime.sealing_key, sealed,
                                  hpke.build_info(hpke.Direction.REQUEST, runtime.service_id, leaf.serial, nonce))
        except (hpke.OpenError, ValueError):
            raise BadRequest("the sealed payload does not open: not sealed to this service for this "
                             "certificate and nonce, or altered") from None
        query = decode_document(plaintext, endpoint.query, endpoint.document)
        now = time.time()
        expires_at = _nonce_expiry(runtime, leaf, result, now)

        def transact(conn: sqlite3.Connection) -> bytes:
            # Inside BEGIN IMMEDIATE ... COMMIT (ServiceDatabase.run): whatever raises here
            # rolls the nonce claim and the handler's writes back.
            if not replay.claim(conn, envelope.nonce, now=now, expires_at=expires_at):
                raise Replay("this nonce was already used")
            answer = encode(endpoint.handler(HandlerContext(conn, now, runtime.config, result), query))
            entry.http_status, entry.outcome = 200, "ok"
            verifications.record(conn, entry)
            return answer

        answer = await runtime.db.run(transact)
        # Sealed once committed: the key was checked when the leaf was parsed.
        sealed_answer = hpke.seal(leaf.public_key, answer,
                                  hpke.build_info(hpke.Direction.RESPONSE, runtime.service_id, leaf.serial, nonce))
    except ServiceError as exc:
        entry.http_status, entry.outcome = exc.status, exc.code
        exc.verification = entry.answer()
        await _record_alone(runtime, entry)
        _log(entry, started)
        raise
    except Exception:
        log.exception("%s: internal error", endpoint.path)
        entry.http_status, entry.outcome = 500, "internal"
        await _record_alone(runtime, entry)
        raise InternalError("internal error (see the service's log)", verification=entry.answer()) from None
    _log(entry, started)
    return web.json_response({"sealed": eai.b64url(sealed_answer), "verification": entry.answer()})


def _appraise(runtime: ServiceRuntime, endpoint: AttestedEndpoint[Any], certificate: str, nonce: str,
              leaf: Leaf | None) -> tuple[VerificationResult | None, Verification]:
    verifier = runtime.policy.verifier
    entry = Verification(endpoint=endpoint.path, status="contraindicated", nonce=nonce,
                         serial=format(leaf.serial, "x") if leaf else None,
                         fingerprint=leaf.fingerprint if leaf else None)
    if verifier is None:
        entry.reasons = [{"code": NO_POLICY, "message": "this service has no appraisal policy and releases "
                          "nothing (start it with --policy, or push one with POST /admin/policy)"}]
        return None, entry
    try:
        result = verifier.verify(certificate)
    except Exception as exc:  # the verifier promises not to raise; a request must not make it a 500
        log.warning("the verifier failed on a certificate (%s: %s); refusing it", type(exc).__name__, exc)
        result = VerificationResult.from_reasons(
            [Reason(CERTIFICATE_INVALID, "the certificate could not be appraised")],
            fingerprint=entry.fingerprint, serial=entry.serial)
    entry.status = result.status
    entry.reasons = [r.to_dict() for r in result.reasons]
    entry.serial = result.serial or entry.serial
    entry.fingerprint = result.fingerprint or entry.fingerprint
    return result, entry


def _nonce_expiry(runtime: ServiceRuntime, leaf: Leaf, result: VerificationResult, now: float) -> float:
    accepted_until = leaf.not_after
    exp = (result.claims or {}).get("exp")
    if isinstance(exp, int):
        accepted_until = min(accepted_until, float(exp))
    return max(now + runtime.config.replay_window_s, accepted_until)


async def _record_alone(runtime: ServiceRuntime, entry: Verification) -> None:
    try:
        await runtime.db.run(lambda conn: verifications.record(conn, entry))
    except Exception:  # the refusal stands even if the log cannot be written
        log.exception("cannot record a verification")


def _note_busy(runtime: ServiceRuntime) -> None:
    # One warning per BUSY_LOG_S at most: a flood must not also flood the log.
    runtime.busy_refused += 1
    now = time.monotonic()
    if now - runtime.busy_logged_at >= BUSY_LOG_S:
        log.warning("busy: %d attested request(s) refused with 503 (%d in flight)", runtime.busy_refused,
                    runtime.in_flight)
        runtime.busy_logged_at, runtime.busy_refused = now, 0


def _log(entry: Verification, started: float) -> None:
    codes = ",".join(r["code"] for r in entry.reasons) or "-"
    log.info("%s serial=%s %s [%s] -> %d %s (%.1f ms)", entry.endpoint, entry.serial or "-", entry.status, codes,
             entry.http_status, entry.outcome, (time.perf_counter() - started) * 1000)
