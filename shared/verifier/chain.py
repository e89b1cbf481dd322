"""Certification path building and validation (RFC 5280 §6, the part this profile needs).

Why not ``cryptography.x509.verification``: it does accept our X25519 leaves, but it
reports failures as free text, while services and consoles need stable reason codes
(``chain_untrusted`` vs ``signature_invalid`` vs ``expired``), and it applies the Web PKI
profile to operator CAs, which need not follow it. This module therefore does the part we
need, deliberately small:

- path building from the leaf through the given untrusted certificates to a trust anchor,
  matching names, trying every same-named candidate, signature checked at each link;
- CA constraints on every CA in the path: basicConstraints cA (and pathLenConstraint),
  keyUsage keyCertSign, an extendedKeyUsage that does not exclude clientAuth;
- no unhandled critical extension anywhere (name and policy constraints are not
  processed, so a CA that sets them critically is refused rather than half-trusted);
- signature hashes SHA-256/384/512 (or EdDSA), RSA keys of at least 2048 bits;
- validity as a time window (the latest notBefore, the earliest notAfter) that the caller
  compares with its clock, so that a cached path needs no rebuilding.

Leaf checks (key usage, the attestation document) belong to the verifier.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from .result import (
    CHAIN_UNTRUSTED,
    CRITICAL_EXTENSION,
    KEY_USAGE,
    SIGNATURE_INVALID,
    Reason,
)

MAX_INTERMEDIATES = 4
HANDLED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
_GOOD_HASHES = frozenset({"sha256", "sha384", "sha512"})
_MIN_RSA_BITS = 2048
_DER = serialization.Encoding.DER


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, lowercase hex."""
    return hashlib.sha256(certificate.public_bytes(_DER)).hexdigest()


def describe(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or f"serial {certificate.serial_number:x}"


class AnchorSet:
    """Trust anchors (roots), indexed by subject name."""

    def __init__(self, roots: Iterable[x509.Certificate]) -> None:
        self.roots: tuple[x509.Certificate, ...] = tuple(roots)
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        for root in self.roots:
            self._by_subject.setdefault(root.subject.public_bytes(), []).append(root)

    def __len__(self) -> int:
        return len(self.roots)

    def named(self, name: x509.Name) -> list[x509.Certificate]:
        return self._by_subject.get(name.public_bytes(), [])


@dataclass
class PathResult:
    """A path leaf-first, anchor last (``path`` is empty when none was found)."""

    path: list[x509.Certificate] = field(default_factory=list)
    reasons: list[Reason] = field(default_factory=list)
    not_before: float = 0.0  # latest notBefore along the path (POSIX seconds)
    not_after: float = 0.0  # earliest notAfter along the path

    @property
    def found(self) -> bool:
        return bool(self.path)


class LinkMemo:
    """Remembers CA-to-CA links already verified, so a second leaf under the same issuing
    CA costs one signature check, not two. Keyed by DER, bounded."""

    def __init__(self, limit: int = 256) -> None:
        self._seen: set[tuple[bytes, bytes]] = set()
        self._limit = limit

    def __contains__(self, link: tuple[bytes, bytes]) -> bool:
        return link in self._seen

    def add(self, link: tuple[bytes, bytes]) -> None:
        if len(self._seen) >= self._limit:
            self._seen.clear()
        self._seen.add(link)


def _link_problem(child: x509.Certificate, parent: x509.Certificate) -> str | None:
    """None when ``parent``'s key made ``child``'s signature with an acceptable algorithm."""
    try:
        algorithm = child.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return f"unsupported signature algorithm {child.signature_algorithm_oid.dotted_string}"
    if algorithm is not None and algorithm.name not in _GOOD_HASHES:
        return f"weak signature hash {algorithm.name}"
    key = parent.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        return f"issuer RSA key too short ({key.key_size} bits)"
    try:
        child.verify_directly_issued_by(parent)
    except InvalidSignature:
        return "signature does not verify"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return str(exc) or type(exc).__name__
    return None


def build_path(
    leaf: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    anchors: AnchorSet,
    *,
    memo: LinkMemo | None = None,
    max_intermediates: int = MAX_INTERMEDIATES,
) -> PathResult:
    """Find a path from ``leaf`` to an anchor and check the CAs on it."""
    by_subject: dict[bytes, list[x509.Certificate]] = {}
    for cert in untrusted:
        if cert != leaf:
            by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)

    bad_signatures: list[str] = []
    dead_ends: list[str] = []

    def link_ok(child: x509.Certificate, parent: x509.Certificate, is_leaf: bool) -> bool:
        key = None
        if memo is not None and not is_leaf:
            key = (child.public_bytes(_DER), parent.public_bytes(_DER))
            if key in memo:
                return True
        problem = _link_problem(child, parent)
        if problem is not None:
            bad_signatures.append(f"{describe(child)} not signed by {describe(parent)}: {problem}")
            return False
        if key is not None and memo is not None:
            memo.add(key)
        return True

    def extend(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        current = path[-1]
        is_leaf = len(path) == 1
        for anchor in anchors.named(current.issuer):
            if link_ok(current, anchor, is_leaf):
                return path + [anchor]
        candidates = [c for c in by_subject.get(current.issuer.public_bytes(), []) if c not in path]
        if not candidates:
            dead_ends.append(
                f"issuer {current.issuer.rfc4514_string()!s} of {describe(current)} "
                "is neither a trusted root nor in the chain"
            )
            return None
        if len(path) > max_intermediates:
            dead_ends.append(f"more than {max_intermediates} intermediate certificates")
            return None
        for candidate in candidates:
            if link_ok(current, candidate, is_leaf):
                found = extend(path + [candidate])
                if found is not None:
                    return found
        return None

    result = PathResult()
    path = extend([leaf])
    if path is None:
        if bad_signatures:
            result.reasons.append(Reason(SIGNATURE_INVALID, bad_signatures[0]))
        else:
            reason = dead_ends[0] if dead_ends else "no path to a trusted root"
            if not len(anchors):
                reason = "no trusted roots configured"
            result.reasons.append(Reason(CHAIN_UNTRUSTED, reason))
        return result
    result.path = path
    result.reasons.extend(check_cas(path))
    result.reasons.extend(check_critical(path))
    result.not_before = max(c.not_valid_before_utc.timestamp() for c in path)
    result.not_after = min(c.not_valid_after_utc.timestamp() for c in path)
    return result


def check_cas(path: Sequence[x509.Certificate]) -> list[Reason]:
    """CA constraints for every certificate above the leaf (``path[1:]``, anchor last)."""
    reasons: list[Reason] = []
    last = len(path) - 1
    for index in range(1, len(path)):
        ca = path[index]
        is_anchor = index == last
        # Non-leaf certificates below this one in the path (RFC 5280 §4.2.1.9).
        below = index - 1
        try:
            bc = ca.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None:
            if not is_anchor or ca.version != x509.Version.v1:
                reasons.append(Reason(CHAIN_UNTRUSTED, f"{describe(ca)} has no basicConstraints: not a CA"))
        else:
            assert isinstance(bc, x509.BasicConstraints)
            if not bc.ca:
                reasons.append(Reason(CHAIN_UNTRUSTED, f"{describe(ca)} is not a CA (basicConstraints cA false)"))
            elif bc.path_length is not None and below > bc.path_length:
                reasons.append(
                    Reason(
                        CHAIN_UNTRUSTED,
                        f"{describe(ca)} allows {bc.path_length} intermediate(s) below it, the path has {below}",
                    )
                )
        try:
            ku = ca.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
        except x509.ExtensionNotFound:
            ku = None
        if ku is None:
            if not is_anchor:
                reasons.append(Reason(KEY_USAGE, f"{describe(ca)} has no keyUsage (keyCertSign required)"))
        else:
            assert isinstance(ku, x509.KeyUsage)
            if not ku.key_cert_sign:
                reasons.append(Reason(KEY_USAGE, f"{describe(ca)} keyUsage lacks keyCertSign"))
        try:
            eku = ca.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is not None:
            assert isinstance(eku, x509.ExtendedKeyUsage)
            usages = set(eku)
            if not usages & {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}:
                reasons.append(Reason(KEY_USAGE, f"{describe(ca)} extendedKeyUsage excludes clientAuth"))
    return reasons


def check_critical(path: Sequence[x509.Certificate]) -> list[Reason]:
    reasons = []
    for cert in path:
        for ext in cert.extensions:
            if ext.critical and ext.oid not in HANDLED_CRITICAL:
                name = getattr(ext.oid, "_name", None) or ext.oid.dotted_string
                reasons.append(
                    Reason(CRITICAL_EXTENSION, f"{describe(cert)} has an unhandled critical extension {name}")
                )
    return reasons


def is_self_signed(certificate: x509.Certificate) -> bool:
    if certificate.issuer != certificate.subject:
        return False
    return _link_problem(certificate, certificate) is None
