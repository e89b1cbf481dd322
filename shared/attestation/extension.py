"""Carrying the attestation document in an X.509 extension.

The extension is non-critical, under a UUID-derived OID (ITU-T X.667, arc 2.25), and its
``extnValue`` holds the DER encoding of an OCTET STRING wrapping the canonical JSON bytes::

    Extension { extnID 2.25.29029789681239518142742138685501625029,
                critical FALSE,
                extnValue OCTET STRING (DER of: OCTET STRING <canonical JSON>) }
"""

from __future__ import annotations

from cryptography import x509

from .document import AttestationDocument, DocumentInvalid, DocumentMissing, parse_document

# 2.25.<decimal of UUID 15d6ef22-a93d-4441-8e97-9d02db9e52c5>, picked once; never change it.
ATTESTATION_DOCUMENT_UUID = "15d6ef22-a93d-4441-8e97-9d02db9e52c5"
ATTESTATION_DOCUMENT_OID = x509.ObjectIdentifier("2.25.29029789681239518142742138685501625029")

_OCTET_STRING = 0x04


def encode_octet_string(data: bytes) -> bytes:
    """DER encoding of an OCTET STRING (definite, minimal length)."""
    n = len(data)
    if n < 0x80:
        header = bytes((_OCTET_STRING, n))
    else:
        length = n.to_bytes((n.bit_length() + 7) // 8, "big")
        header = bytes((_OCTET_STRING, 0x80 | len(length))) + length
    return header + data


def decode_octet_string(der: bytes) -> bytes:
    """Content of a DER OCTET STRING; refuses BER forms and trailing bytes (ValueError)."""
    if len(der) < 2 or der[0] != _OCTET_STRING:
        raise ValueError("not an OCTET STRING")
    first = der[1]
    if first < 0x80:
        length, offset = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 4:
            raise ValueError("indefinite or oversized length")
        if len(der) < 2 + count:
            raise ValueError("truncated length")
        length = int.from_bytes(der[2 : 2 + count], "big")
        offset = 2 + count
        if der[2] == 0 or length < 0x80:
            raise ValueError("length not minimally encoded (not DER)")
    if len(der) != offset + length:
        raise ValueError("length does not match the content")
    return der[offset:]


def document_extension(document_json: bytes) -> x509.UnrecognizedExtension:
    """The extension value for already-canonical document bytes."""
    return x509.UnrecognizedExtension(ATTESTATION_DOCUMENT_OID, encode_octet_string(document_json))


def extract_document_bytes(certificate: x509.Certificate) -> bytes:
    """The document's JSON bytes as carried, unchecked.

    Raises :class:`DocumentMissing` without the extension, :class:`DocumentInvalid` when its
    value is not a DER OCTET STRING.
    """
    try:
        ext = certificate.extensions.get_extension_for_oid(ATTESTATION_DOCUMENT_OID)
    except x509.ExtensionNotFound:
        raise DocumentMissing("the certificate carries no attestation document") from None
    value = ext.value
    assert isinstance(value, x509.UnrecognizedExtension)
    try:
        return decode_octet_string(value.value)
    except ValueError as exc:
        raise DocumentInvalid(f"attestation document extension is not a DER OCTET STRING: {exc}") from None


def extract_document(certificate: x509.Certificate) -> AttestationDocument:
    """The parsed, canonical-checked document of a certificate (no chain or key checks)."""
    return parse_document(extract_document_bytes(certificate))
