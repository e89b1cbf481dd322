"""Key identities used by the attestation document: the ``cnf`` thumbprint and the ``ueid``.

``cnf`` binds the document to the certificate's subject key with the JWK thumbprint
(RFC 7638) of the compartment's X25519 key written as an OKP JWK (RFC 8037)::

    jkt = base64url(sha256(b'{"crv":"X25519","kty":"OKP","x":"<base64url(raw key)>"}'))

``ueid`` is a stable, non-reversible platform identifier (EAT type 0x01, "RAND")::

    ueid = base64url(0x01 || HMAC-SHA256(key=machine id, msg=UEID_LABEL))

The machine id is keyed rather than published because systemd asks applications never to
expose ``/etc/machine-id`` itself (``sd_id128_get_machine_app_specific`` does the same).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from ..errors import InvalidParams, NotFound

X25519_KEY_SIZE = 32
UEID_LABEL = b"attestables ueid v1"
UEID_TYPE_RAND = 0x01
# Linux (systemd, then dbus), then FreeBSD/CheriBSD.
MACHINE_ID_PATHS = ("/etc/machine-id", "/var/lib/dbus/machine-id", "/etc/hostid")


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of :func:`b64url`; refuses padding and non-alphabet characters."""
    if "=" in text:
        raise ValueError("base64url must not be padded")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(raw) != text:  # rejects stray characters and non-canonical trailing bits
        raise ValueError("not canonical base64url")
    return raw


def x25519_public_bytes(key: bytes | x25519.X25519PublicKey) -> bytes:
    """The 32 raw bytes of an X25519 public key (RFC 7748), from raw bytes or a key object."""
    if isinstance(key, x25519.X25519PublicKey):
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(key, (bytes, bytearray, memoryview)):
        raw = bytes(key)
        if len(raw) != X25519_KEY_SIZE:
            raise InvalidParams(f"an X25519 public key is {X25519_KEY_SIZE} bytes, got {len(raw)}")
        return raw
    raise InvalidParams(f"expected an X25519 public key, got {type(key).__name__}")


def jwk_thumbprint_x25519(key: bytes | x25519.X25519PublicKey) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an X25519 key as an OKP JWK (RFC 8037)."""
    x = b64url(x25519_public_bytes(key))
    # Required members only, lexicographic order, no whitespace (RFC 7638 §3.2).
    canonical = '{"crv":"X25519","kty":"OKP","x":"%s"}' % x
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def compute_ueid(machine_id: str | bytes) -> str:
    """The document's ``ueid`` for a machine id (the text of /etc/machine-id or /etc/hostid)."""
    if isinstance(machine_id, str):
        machine_id = machine_id.encode("utf-8")
    machine_id = machine_id.strip()
    if not machine_id:
        raise InvalidParams("empty machine id")
    digest = hmac.new(machine_id, UEID_LABEL, hashlib.sha256).digest()
    return b64url(bytes([UEID_TYPE_RAND]) + digest)


def read_machine_id(paths: Iterable[str | Path] = MACHINE_ID_PATHS) -> bytes:
    """The first non-empty machine id found; :class:`NotFound` if none is readable."""
    for path in paths:
        try:
            data = Path(path).read_bytes().strip()
        except OSError:
            continue
        if data:
            return data
    raise NotFound("no machine id found (looked in " + ", ".join(str(p) for p in paths) + ")")
