"""A running service: its settings, keys, database, policy and CRL, in one object."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding

from attestables.shared import eai, hpke
from attestables.shared.verifier import load_certificates

from .config import ServiceConfig
from .crl import CrlState
from .database import ServiceDatabase
from .files import StateFiles
from .policy import PolicyHolder
from .service import AttestedEndpoint, ServiceDefinition


@dataclass(frozen=True, slots=True)
class Leaf:
    """What the service needs of a run certificate besides the verdict: the key to seal to."""

    fingerprint: str
    serial: int
    public_key: bytes | None  # raw X25519, None for any other key type
    not_after: float
    sealable: bool = True  # False for an X25519 key nothing can be sealed to (a low-order point)


class LeafCache:
    """Leaf facts by the SHA-256 of the certificate text, bounded (LRU)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, Leaf | None] = OrderedDict()

    def get(self, certificate: str) -> Leaf | None:
        key = hashlib.sha256(certificate.encode("utf-8", "surrogatepass")).digest()
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        leaf = _parse_leaf(certificate)
        self._entries[key] = leaf
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return leaf


def _parse_leaf(certificate: str) -> Leaf | None:
    # The first CERTIFICATE block, found exactly as the verifier finds it; the caller
    # still checks that the fingerprint is the one the verifier appraised.
    try:
        cert = load_certificates(certificate)[0]
        key = cert.public_key()
        raw = hpke.public_key_bytes(key) if isinstance(key, X25519PublicKey) else None
        return Leaf(
            fingerprint=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
            serial=cert.serial_number,
            public_key=raw,
            not_after=cert.not_valid_after_utc.timestamp(),
            sealable=raw is not None and _sealable(raw),
        )
    except (ValueError, TypeError, IndexError, UnicodeEncodeError, x509.InvalidVersion):
        return None
    except Exception:  # an algorithm this build of cryptography cannot load
        return None


def _sealable(public_key: bytes) -> bool:
    # Once per certificate (the leaf is cached): an answer is sealed after its transaction
    # committed, so a key that cannot take one must be refused before the nonce is claimed.
    try:
        hpke.seal(public_key, b"", b"attestables-sealable-probe")
    except ValueError:
        return False
    return True


class ServiceRuntime:
    def __init__(
        self,
        *,
        config: ServiceConfig,
        definition: ServiceDefinition,
        files: StateFiles,
        db: ServiceDatabase,
        sealing_key: X25519PrivateKey,
        admin_token: str,
        tls_fingerprint: str,
        policy: PolicyHolder,
        crl: CrlState,
    ) -> None:
        self.config = config
        self.definition = definition
        self.files = files
        self.db = db
        self.sealing_key = sealing_key
        self.public_key = hpke.public_key_bytes(sealing_key)
        self.admin_token = admin_token
        self.tls_fingerprint = tls_fingerprint
        self.policy = policy
        self.crl = crl
        self.leaves = LeafCache()
        self.in_flight = 0
        self.busy_refused = 0
        self.busy_logged_at = float("-inf")
        self.endpoints: dict[str, AttestedEndpoint] = {e.path: e for e in definition.endpoints}

    @property
    def service_id(self) -> str:
        return self.config.service_id

    def public_key_document(self) -> dict[str, object]:
        return {
            "service_id": self.service_id,
            "kind": self.config.kind,
            "public_key": eai.b64url(self.public_key),
            "endpoints": {e.operation: e.path for e in self.definition.endpoints},
        }


RUNTIME: web.AppKey[ServiceRuntime] = web.AppKey("runtime", ServiceRuntime)
# The client session the CRL is fetched with (one per service, closed at shutdown).
CRL_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("crl_session", aiohttp.ClientSession)
