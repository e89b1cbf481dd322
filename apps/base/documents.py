"""Strict decoding of JSON documents: the attested envelope, the plaintext documents
inside the seal, and admin bodies.

Everything is a ``msgspec.Struct`` with ``forbid_unknown_fields``: a document with an
unknown, missing or mistyped field is refused before any handler runs. Errors about a
plaintext document say where it failed, never what it contained: the launcher, which
relays the error, must learn nothing of the plaintext.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from attestables.shared import eai

from .errors import BadRequest

T = TypeVar("T")

B64URL = r"^[A-Za-z0-9_-]+$"
# A b64url nonce of 16 bytes is exactly 22 characters.
NONCE_TEXT_LEN = (eai.NONCE_LEN * 4 + 2) // 3
_CONTROL = r"^[^\x00-\x1f\x7f]*$"

# Field types shared by the plaintext documents.
Id = Annotated[int, Meta(ge=1, le=2**53 - 1)]
Cents = Annotated[int, Meta(ge=0, le=10**12)]
Line = Annotated[str, Meta(min_length=1, max_length=200, pattern=_CONTROL)]
Phone = Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 ().-]*[0-9]$")]
Date = Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every document a service decodes."""


class Answer(msgspec.Struct, kw_only=True):
    """Base of every document a service encodes."""


class AttestedRequest(Strict):
    """The body of every attested POST (``attestables.shared.eai``)."""

    certificate: Annotated[str, Meta(min_length=1, max_length=eai.MAX_BODY)]
    nonce: Annotated[str, Meta(min_length=NONCE_TEXT_LEN, max_length=NONCE_TEXT_LEN, pattern=B64URL)]
    sealed: Annotated[str, Meta(min_length=1, max_length=eai.MAX_BODY, pattern=B64URL)]


_AT = re.compile(r" - at `(\$[^`]{0,200})`$")


def _where(exc: msgspec.ValidationError) -> str:
    match = _AT.search(str(exc))
    return f" (at {match.group(1)})" if match else ""


def decode_envelope(body: bytes) -> tuple[AttestedRequest, bytes, bytes]:
    """The request, its nonce and its sealed bytes; BadRequest for anything malformed.

    Validation messages of the envelope are given in full: it holds no plaintext."""
    try:
        request = msgspec.json.decode(body, type=AttestedRequest)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"the request body does not match {{certificate, nonce, sealed}}: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not JSON (UTF-8)") from None
    nonce = _canonical_b64(request.nonce, "nonce")
    if len(nonce) != eai.NONCE_LEN:
        raise BadRequest(f"nonce: {eai.NONCE_LEN} bytes, base64url")
    sealed = _canonical_b64(request.sealed, "sealed")
    return request, nonce, sealed


def _canonical_b64(text: str, name: str) -> bytes:
    try:
        data = eai.b64url_decode(text)
    except ValueError:
        raise BadRequest(f"{name}: not base64url") from None
    # One spelling per value: the replay cache must not see one nonce under two names.
    if eai.b64url(data) != text:
        raise BadRequest(f"{name}: not canonical base64url (no padding, no stray trailing bits)")
    return data


def decode_document(data: bytes, kind: type[T], name: str) -> T:
    """A plaintext document from inside a seal; the error says where, not what."""
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"the sealed {name} does not follow its schema{_where(exc)}") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise BadRequest(f"the sealed {name} is not JSON (UTF-8)") from None


def decode_admin(data: bytes, kind: type[T]) -> T:
    """An admin body (the operator's own plaintext: the full message is fine)."""
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid body: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON (UTF-8)") from None


def encode(document: Any) -> bytes:
    return msgspec.json.encode(document)


def to_builtins(document: Any) -> Any:
    return msgspec.to_builtins(document)
