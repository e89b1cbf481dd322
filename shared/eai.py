"""The contract between the launcher's broker and the digital services (the EAI case study).

One place for what both sides must agree on; ``docs/services.md`` explains it.

**Attested request** (broker -> service): ``POST <endpoint>`` over HTTPS with the JSON body
``{"certificate": PEM (run certificate, then its chain), "nonce": b64url(16 bytes),
"sealed": b64url(enc || ciphertext || tag)}``. The sealed bytes are HPKE-sealed by the
compartment to the service's public key with ``info = build_info(REQUEST, service_id,
certificate serial, nonce)`` (``attestables.shared.hpke``).

**Attested answer** (service -> broker): HTTP 200 ``{"sealed": b64url(...)}``, sealed to
the certificate's X25519 key with ``info = build_info(RESPONSE, …same…)``, plus
``{"verification": {"status", "reasons"}}``. A refusal is a non-200 status with
``{"error": {"code", "message"}, "verification": {...}}``:

- 403 ``contraindicated``: the certificate or its attestation document fails the
  service's policy (reasons say why);
- 409 ``replay``: the nonce was seen within the replay window;
- 400 ``bad_request``: malformed JSON, fields, sizes or a sealed payload that does not open;
- 413 ``too_large``: the body exceeds the limit;
- 408 ``timeout``, 503 ``busy``, 500 ``internal``: the service could not take the request.

Neither the broker nor the launcher ever sees the plaintexts below: they are the JSON
documents inside the sealed payloads, read and written only by the integration process
(in its compartment) and by the service.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

SERVICE_IDS = ("store", "transport", "messaging")

# (service, operation) -> endpoint. Each service has at most one endpoint per operation,
# so the compartment's READ/WRITE frame (service id + operation) names the endpoint.
ENDPOINTS: dict[str, dict[str, str]] = {
    "store": {"read": "/api/sales"},
    "transport": {"write": "/api/trips"},
    "messaging": {"read": "/api/replies", "write": "/send-message"},
}

PUBLIC_KEY_PATH = "/api/public-key"  # GET: {"service_id", "public_key": b64url(32), "endpoints": {...}}
HEALTH_PATH = "/healthz"

MAX_BODY = 256 * 1024
NONCE_LEN = 16
REPLAY_WINDOW_S = 600

# Plaintext documents (inside the seal). Amounts are integer cents: no floating point
# on either side, and a small integer parser in C.
#
# store READ /api/sales        query  {"after_id": int >= 0, "limit": 1..100}
#                              answer {"sales": [{"id", "seller", "customer", "phone", "address",
#                                                 "total_cents", "date"}], "last_id": int}
# transport WRITE /api/trips   data   {"sale_id", "customer", "pickup", "destination", "phone", "fare_cents"}
#                              answer {"trip_id", "taxi_number", "driver_name", "eta_minutes", "existing": bool}
#                              (idempotent by sale_id: a sale is never booked twice)
# messaging WRITE /send-message data  {"phone", "text", "key"}   (key: idempotency key, e.g. "sale-42")
#                              answer {"message_id", "existing": bool}
# messaging READ /api/replies  query  {"message_id"}
#                              answer {"message_id", "reply": null | "accepted" | "declined", "replied_at"}

# Status of an attested answer, as the broker reports it to the compartment and the trace.
STATUS_CODES = {200: "ok", 400: "bad_request", 403: "contraindicated", 408: "timeout", 409: "replay",
                413: "too_large", 500: "internal", 503: "busy"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: Any, *, max_len: int | None = None) -> bytes:
    """Decode unpadded base64url; ValueError on anything else (or above ``max_len`` bytes)."""
    if not isinstance(text, str) or not text.isascii():
        raise ValueError("expected a base64url string")
    if max_len is not None and len(text) > (max_len * 4 + 2) // 3 + 4:
        raise ValueError("value too long")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64url") from None


def endpoint(service_id: str, operation: str) -> str | None:
    return ENDPOINTS.get(service_id, {}).get(operation)
