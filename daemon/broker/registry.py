"""Registered digital services: where they are, how their TLS is pinned, their sealing keys.

A service is registered with its HTTPS URL and either the PEM of the certificate (or CA)
its TLS must chain to, or the SHA-256 fingerprint of its TLS certificate. Its sealing
key and endpoints are fetched over that pinned connection at registration, so the key a
compartment receives in SERVICE_KEYS is the key of the service the operator named.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from attestables.shared import eai
from attestables.shared.channel import KEY_LEN, ServiceKey, is_service_id
from attestables.shared.errors import InvalidParams, LimitExceeded, NotFound, Unavailable

from ..timeutil import now_iso

if TYPE_CHECKING:
    from ..daemon import Daemon

FINGERPRINT_RE = re.compile(r"^[0-9a-f]{64}$")
FETCH_TIMEOUT_S = 10.0
# The key document is a key and two paths, a few hundred bytes; more is refused unread.
KEY_ANSWER_MAX = 64 * 1024


@dataclass(frozen=True)
class Service:
    service_id: str
    url: str
    tls_ca_pem: str | None
    tls_fingerprint: str | None
    public_key: bytes
    endpoints: dict[str, str]
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"service_id": self.service_id, "url": self.url, "public_key": eai.b64url(self.public_key),
                "public_key_sha256": hashlib.sha256(self.public_key).hexdigest(),
                "endpoints": self.endpoints, "tls": "ca_pem" if self.tls_ca_pem else "fingerprint",
                "tls_fingerprint": self.tls_fingerprint, "created_at": self.created_at,
                "updated_at": self.updated_at}

    @functools.cached_property
    def ssl(self) -> ssl.SSLContext | aiohttp.Fingerprint:
        """The pin, built once: the broker's pool (``https.py``) reuses a connection only for
        the same pin object, so a fresh one per request would cost a TLS handshake each time."""
        return tls_pin(self.tls_ca_pem, self.tls_fingerprint)


def tls_pin(ca_pem: str | None, fingerprint: str | None) -> ssl.SSLContext | aiohttp.Fingerprint:
    """An SSL context trusting only ``ca_pem``, or a pin on the certificate's fingerprint."""
    if ca_pem:
        try:
            context = ssl.create_default_context(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise InvalidParams(f"tls_ca_pem is not a usable PEM certificate: {exc}", field="tls_ca_pem") from None
        return context
    assert fingerprint is not None
    return aiohttp.Fingerprint(bytes.fromhex(fingerprint))


def validate_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidParams(f"service url must be https://HOST[:PORT], got {url!r}", field="url")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidParams("service url must have no path, query, fragment or credentials", field="url")
    return f"https://{parts.netloc}"


def _row_to_service(row: Any) -> Service:
    return Service(row["service_id"], row["url"], row["tls_ca_pem"], row["tls_fingerprint"],
                   eai.b64url_decode(row["public_key"]), json.loads(row["endpoints"]), row["created_at"],
                   row["updated_at"])


class ServiceRegistry:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self._services: dict[str, Service] = {}

    async def load(self) -> None:
        rows = await self.daemon.db.fetchall("SELECT * FROM services ORDER BY service_id")
        for service_id in self._services:  # re-read: the pins are new objects, their connections go
            self.daemon.broker.https.forget(service_id)
        self._services = {row["service_id"]: _row_to_service(row) for row in rows}

    def get(self, service_id: str) -> Service | None:
        return self._services.get(service_id)

    def require(self, service_id: str) -> Service:
        service = self._services.get(service_id)
        if service is None:
            raise NotFound(f"no service {service_id!r} is registered", service_id=service_id)
        return service

    def all(self) -> list[Service]:
        return list(self._services.values())

    def keys(self) -> list[ServiceKey]:
        return [ServiceKey(s.service_id, s.public_key) for s in self._services.values()]

    async def register(self, service_id: str, url: str, tls_ca_pem: str | None,
                       tls_fingerprint: str | None) -> dict[str, Any]:
        if not is_service_id(service_id):
            raise InvalidParams("service_id must be 1-64 of A-Z a-z 0-9 . _ -", field="service_id")
        if (tls_ca_pem is None) == (tls_fingerprint is None):
            raise InvalidParams("give exactly one of tls_ca_pem and tls_fingerprint", field="tls_ca_pem")
        if tls_fingerprint is not None:
            tls_fingerprint = tls_fingerprint.replace(":", "").lower()
            if not FINGERPRINT_RE.match(tls_fingerprint):
                raise InvalidParams("tls_fingerprint must be the SHA-256 of the TLS certificate (64 hex digits)",
                                    field="tls_fingerprint")
        base = validate_url(url)
        if len(self._services) >= 64 and service_id not in self._services:
            raise LimitExceeded("64 services are registered; remove one first")
        public_key, endpoints = await self._fetch_key(base, tls_pin(tls_ca_pem, tls_fingerprint), service_id)
        now = now_iso()
        existing = self._services.get(service_id)
        created = existing.created_at if existing else now
        await self.daemon.db.execute(
            """INSERT INTO services (service_id, url, tls_ca_pem, tls_fingerprint, public_key, endpoints,
                                     created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(service_id) DO UPDATE SET url = excluded.url, tls_ca_pem = excluded.tls_ca_pem,
                   tls_fingerprint = excluded.tls_fingerprint, public_key = excluded.public_key,
                   endpoints = excluded.endpoints, updated_at = excluded.updated_at""",
            (service_id, base, tls_ca_pem, tls_fingerprint, eai.b64url(public_key), json.dumps(endpoints),
             created, now))
        service = Service(service_id, base, tls_ca_pem, tls_fingerprint, public_key, endpoints, created, now)
        self._services[service_id] = service
        self.daemon.broker.https.forget(service_id)  # connections made under the old URL or pin
        return service.to_dict()

    async def remove(self, service_id: str) -> None:
        self.require(service_id)
        await self.daemon.db.execute("DELETE FROM services WHERE service_id = ?", (service_id,))
        self._services.pop(service_id, None)
        self.daemon.broker.https.forget(service_id)

    async def _fetch_key(self, base: str, pin: ssl.SSLContext | aiohttp.Fingerprint,
                         service_id: str) -> tuple[bytes, dict[str, str]]:
        try:
            # One session per registration (an operator's act, rare). No cookie jar: a
            # service must not be able to keep state in the launcher.
            async with aiohttp.ClientSession(headers={"User-Agent": "attestables-broker"},
                                             cookie_jar=aiohttp.DummyCookieJar()) as session, \
                    session.get(base + eai.PUBLIC_KEY_PATH, ssl=pin,
                                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as resp:
                if resp.status != 200:
                    raise Unavailable(f"{base}{eai.PUBLIC_KEY_PATH} answered HTTP {resp.status}")
                body = json.loads(await _read_at_most(resp, KEY_ANSWER_MAX, base + eai.PUBLIC_KEY_PATH))
        except aiohttp.ServerFingerprintMismatch:
            raise InvalidParams("the service's TLS certificate does not match tls_fingerprint",
                                field="tls_fingerprint") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            raise InvalidParams(f"the service's TLS certificate is not trusted by tls_ca_pem: {exc.certificate_error}",
                                field="tls_ca_pem") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"cannot reach {base}: {type(exc).__name__}", service_id=service_id) from None
        except ValueError:
            raise Unavailable(f"{base}{eai.PUBLIC_KEY_PATH} did not answer JSON") from None
        try:
            key = eai.b64url_decode(body["public_key"], max_len=KEY_LEN)
            endpoints = body.get("endpoints") or {}
            if len(key) != KEY_LEN or not isinstance(endpoints, dict) or not all(
                    op in {"read", "write"} and isinstance(path, str) and path.startswith("/")
                    for op, path in endpoints.items()):
                raise ValueError
        except (KeyError, TypeError, ValueError, AttributeError):
            raise Unavailable(f"{base}{eai.PUBLIC_KEY_PATH} did not give a 32-byte X25519 key and endpoints") \
                from None
        return key, dict(endpoints)


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int, where: str) -> bytes:
    """The answer's body, refused (Unavailable) past ``limit`` bytes without reading on."""
    if resp.content_length is not None and resp.content_length > limit:
        raise Unavailable(f"{where} answered {resp.content_length} bytes (at most {limit})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise Unavailable(f"{where} answered more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
