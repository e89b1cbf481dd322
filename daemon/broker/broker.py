"""The broker: READ and WRITE frames from a compartment become attested HTTPS requests.

What crosses here is ciphertext and metadata only. A request carries the sealed bytes
the compartment produced, the run's certificate and the compartment's nonce; the answer
carries bytes sealed to the compartment's key. This module holds no key that opens
either, and nothing in it decodes a sealed payload: it base64-encodes, posts, decodes,
hashes and forwards. Every crossing is a trace row (metadata, sizes, digests of the
ciphertexts, latency, HTTP status, the service's verification result), stored and
streamed on ``traces.message`` by the trace log (``traces.py``), after the compartment
has its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from attestables.shared import eai
from attestables.shared import channel as wire
from attestables.shared.errors import NotFound
from attestables.shared.terminal import printable

from ..timeutil import now_iso
from . import https
from .registry import Service, ServiceRegistry
from .traces import TraceLog

if TYPE_CHECKING:
    from ..ca import IssuedCertificate
    from ..daemon import Daemon

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 15.0
MAX_ANSWER = 1024 * 1024
# A retry only when the connection itself failed: the request may not be sent twice once
# the service could have received it (a WRITE is not assumed idempotent here).
CONNECT_RETRIES = 1
_ENCODE = msgspec.json.Encoder().encode


def trace_record(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "ts": row["ts"], "run_id": row["run_id"], "service_id": row["service_id"],
            "op": row["op"], "request_id": row["request_id"], "bytes_in": row["bytes_in"],
            "bytes_out": row["bytes_out"], "sha256_in": row["sha256_in"], "sha256_out": row["sha256_out"],
            "latency_ms": row["latency_ms"], "http_status": row["http_status"], "outcome": row["outcome"],
            "verification": json.loads(row["verification"])}


class Broker:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.registry = ServiceRegistry(daemon)
        self.log = TraceLog(daemon.db, daemon.bus)
        self.https = https.HttpsPool(REQUEST_TIMEOUT_S, MAX_ANSWER)  # the READ/WRITE crossings

    async def close(self) -> None:
        await self.log.close()
        self.https.close()

    # -- a compartment's request ------------------------------------------------------------

    async def handle(self, run_id: str, request: wire.Request, certificate: "IssuedCertificate") -> wire.Message:
        op = "read" if isinstance(request, wire.Read) else "write"
        service = self.registry.get(request.service_id)
        started = time.perf_counter()
        trace: dict[str, Any] = {
            "ts": now_iso(), "run_id": run_id, "service_id": request.service_id, "op": op,
            "request_id": request.request_id, "bytes_in": len(request.sealed),
            "sha256_in": hashlib.sha256(request.sealed).hexdigest(), "bytes_out": 0, "sha256_out": None,
            "http_status": None, "outcome": "error", "verification": {"status": None, "reasons": []},
        }
        try:
            if service is None:
                trace["outcome"] = "unknown_service"
                return wire.ErrorMessage(request.request_id, wire.ErrorCode.UNKNOWN_SERVICE,
                                         f"no service {request.service_id!r} is registered")
            path = service.endpoints.get(op)
            if path is None:
                trace["outcome"] = "unknown_service"
                return wire.ErrorMessage(request.request_id, wire.ErrorCode.UNKNOWN_SERVICE,
                                         f"service {request.service_id!r} has no {op} endpoint")
            message = await self._forward(service, path, request, certificate, trace)
            return message
        finally:
            trace["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
            await self.log.add(trace)

    async def _forward(self, service: Service, path: str, request: wire.Request,
                       certificate: "IssuedCertificate", trace: dict[str, Any]) -> wire.Message:
        body = _ENCODE({"certificate": certificate.pem.decode() + self.daemon.certs.ca.chain_pem().decode(),
                        "nonce": eai.b64url(request.nonce), "sealed": eai.b64url(request.sealed)})
        for attempt in range(CONNECT_RETRIES + 1):
            try:
                status, raw = await self.https.post(service.service_id, service.url, service.ssl, path, body)
            except https.ConnectError as exc:
                if attempt < CONNECT_RETRIES:
                    await asyncio.sleep(0.2)
                    continue
                trace["outcome"] = "unreachable"
                return wire.ErrorMessage(request.request_id, wire.ErrorCode.SERVICE_UNAVAILABLE,
                                         f"service {service.service_id} is unreachable: {type(exc).__name__}")
            except https.HttpsError as exc:
                trace["http_status"] = exc.status
                trace["outcome"] = "timeout" if isinstance(exc, https.Timeout) else "transport_error"
                return wire.ErrorMessage(request.request_id, wire.ErrorCode.SERVICE_UNAVAILABLE,
                                         f"service {service.service_id}: {type(exc).__name__}")
            trace["http_status"] = status
            return self._answer(request, status, raw, trace)
        raise AssertionError("unreachable")

    def _answer(self, request: wire.Request, status: int, raw: bytes, trace: dict[str, Any]) -> wire.Message:
        if len(raw) > MAX_ANSWER:
            trace["outcome"] = "answer_too_large"
            return wire.Result(request.request_id, wire.ResultStatus.FAILED)
        try:
            answer = json.loads(raw)
            if not isinstance(answer, dict):
                raise ValueError
        except ValueError:
            trace["outcome"] = "bad_answer"
            return wire.Result(request.request_id, wire.ResultStatus.FAILED)
        verification = answer.get("verification")
        if isinstance(verification, dict):
            # The service's words go to every client that shows traces: bounded, and with
            # their control characters as text (shared/terminal.py).
            reasons = verification.get("reasons")
            status_text = verification.get("status")
            trace["verification"] = {
                "status": printable(status_text)[:64] if isinstance(status_text, str) else None,
                "reasons": [{"code": printable(str(r.get("code")))[:64], "message": printable(str(r.get("message")))[:512]}
                            for r in reasons[:32] if isinstance(r, dict)] if isinstance(reasons, list) else [],
            }
        if status == 200:
            try:
                sealed = eai.b64url_decode(answer.get("sealed"), max_len=MAX_ANSWER)
                if len(sealed) < wire.SEALED_MIN:
                    raise ValueError
            except ValueError:
                trace["outcome"] = "bad_answer"
                return wire.Result(request.request_id, wire.ResultStatus.FAILED)
            trace.update(outcome="ok", bytes_out=len(sealed), sha256_out=hashlib.sha256(sealed).hexdigest())
            return wire.Result(request.request_id, wire.ResultStatus.OK, sealed)
        trace["outcome"] = eai.STATUS_CODES.get(status, "failed")
        result = wire.ResultStatus.DENIED if status == 403 else wire.ResultStatus.FAILED
        return wire.Result(request.request_id, result)

    # -- queries ----------------------------------------------------------------------------

    async def traces(self, *, run_id: str | None, service_id: str | None, since: int | None,
                     limit: int) -> list[dict[str, Any]]:
        await self.log.flush()  # every crossing answered so far is listed
        where, params = [], []
        if run_id:
            where.append("run_id = ?")
            params.append(run_id)
        if service_id:
            where.append("service_id = ?")
            params.append(service_id)
        if since is not None:
            where.append("id > ?")
            params.append(since)
        sql = "SELECT * FROM traces" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id LIMIT ?"
        rows = await self.daemon.db.fetchall(sql, (*params, limit))
        return [trace_record(r) for r in rows]

    def require_service(self, service_id: str) -> Service:
        service = self.registry.get(service_id)
        if service is None:
            raise NotFound(f"no service {service_id!r} is registered", service_id=service_id)
        return service
