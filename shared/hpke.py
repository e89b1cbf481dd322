"""HPKE (RFC 9180) as the project uses it, over ``cryptography.hazmat.primitives.hpke``.

One suite everywhere: base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 /
ChaCha20-Poly1305, single shot. A sealed message is ``enc || ciphertext || tag``
(32 + len(plaintext) + 16 bytes), the form ``Suite.encrypt`` returns and the C runtime
(``cheri/runtime/src/hpke.c``) writes.

What a message belongs to is bound through ``info`` (:func:`build_info`), which enters
the key schedule: a message replayed to another service, under another certificate, for
another request or in the other direction does not open. The protocol's ``aad`` is empty.
"""

from __future__ import annotations

from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.bindings._rust import openssl as _rust_openssl
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .channel import NONCE_LEN, is_serial, is_service_id

KEM_ID = 0x0020  # DHKEM(X25519, HKDF-SHA256)
KDF_ID = 0x0001  # HKDF-SHA256
AEAD_ID = 0x0003  # ChaCha20-Poly1305
SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)

PUBLIC_KEY_LEN = 32
PRIVATE_KEY_LEN = 32
ENC_LEN = 32
TAG_LEN = 16
OVERHEAD = ENC_LEN + TAG_LEN

INFO_LABEL = b"attestables-info-v1"


class Direction(IntEnum):
    REQUEST = 1  # compartment -> service
    RESPONSE = 2  # service -> compartment


class OpenError(ValueError):
    """A sealed message did not open: wrong key, wrong info or aad, or altered."""


def canonical_serial(serial: int | str) -> str:
    """The one spelling of a certificate serial the info uses: lowercase hex, no leading
    zeros. Accepts the integer (``certificate.serial_number``) or its canonical text."""
    if isinstance(serial, int) and not isinstance(serial, bool):
        if not 0 < serial < 1 << 160:
            raise ValueError(f"certificate serial out of range: {serial}")
        return format(serial, "x")
    if not is_serial(serial):
        raise ValueError(f"not a canonical certificate serial: {serial!r}")
    return serial  # type: ignore[return-value]


def build_info(direction: Direction | str, service_id: str, serial: int | str, nonce: bytes) -> bytes:
    """``label || u8 direction || u16 len || service_id || u16 len || serial || u16 len || nonce``.

    Big-endian lengths, ASCII text; ``att_info_build`` in the C runtime builds the same
    bytes (docs/compartment-protocol.md, "HPKE info")."""
    if isinstance(direction, str):
        try:
            direction = Direction[direction.upper()]
        except KeyError:
            raise ValueError(f"direction must be 'request' or 'response', not {direction!r}") from None
    direction = Direction(direction)
    if not is_service_id(service_id):
        raise ValueError(f"invalid service id {service_id!r}")
    serial_text = canonical_serial(serial).encode("ascii")
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_LEN:
        raise ValueError(f"nonce must be {NONCE_LEN} bytes")
    sid = service_id.encode("ascii")
    return b"".join(
        (
            INFO_LABEL,
            bytes((direction,)),
            len(sid).to_bytes(2, "big"),
            sid,
            len(serial_text).to_bytes(2, "big"),
            serial_text,
            NONCE_LEN.to_bytes(2, "big"),
            nonce,
        )
    )


def public_key_bytes(key: X25519PrivateKey | X25519PublicKey) -> bytes:
    """The 32 raw bytes of an X25519 public key, as the channel carries them."""
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def seal(public_key: bytes | X25519PublicKey, plaintext: bytes, info: bytes, aad: bytes = b"") -> bytes:
    """Seals ``plaintext`` to ``public_key``: ``enc || ciphertext || tag``.

    ValueError for a malformed or low-order public key."""
    if isinstance(public_key, bytes):
        if len(public_key) != PUBLIC_KEY_LEN:
            raise ValueError(f"X25519 public key must be {PUBLIC_KEY_LEN} bytes")
        public_key = X25519PublicKey.from_public_bytes(public_key)
    if aad:
        return _aad_hook("_encrypt_with_aad")(SUITE, plaintext, public_key, info=info, aad=aad)
    return SUITE.encrypt(plaintext, public_key, info=info)


def open(private_key: X25519PrivateKey | bytes, sealed: bytes, info: bytes, aad: bytes = b"") -> bytes:  # noqa: A001
    """Opens what :func:`seal` (or the C runtime) sealed; OpenError if it does not open."""
    if isinstance(private_key, bytes):
        if len(private_key) != PRIVATE_KEY_LEN:
            raise ValueError(f"X25519 private key must be {PRIVATE_KEY_LEN} bytes")
        private_key = X25519PrivateKey.from_private_bytes(private_key)
    if len(sealed) < OVERHEAD:
        raise OpenError(f"sealed message of {len(sealed)} bytes is shorter than enc + tag")
    try:
        if aad:
            return _aad_hook("_decrypt_with_aad")(SUITE, sealed, private_key, info=info, aad=aad)
        return SUITE.decrypt(sealed, private_key, info=info)
    except (InvalidTag, ValueError) as exc:
        raise OpenError("sealed message did not open") from exc


def _aad_hook(name: str):  # type: ignore[no-untyped-def]
    # cryptography's public Suite API has no aad; these private functions (the same Rust
    # code, used for its own test vectors) do. The protocol keeps aad empty, so only
    # tests and interop checks come here; fail loudly if a release removes them.
    hook = getattr(_rust_openssl.hpke, name, None)
    if hook is None:
        raise NotImplementedError("this cryptography release offers no HPKE aad; use info")
    return hook
