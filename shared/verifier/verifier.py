"""Verify a run certificate against trusted roots, revocation lists and a policy.

One :class:`Verifier` holds one policy. Its answer is a :class:`VerificationResult`
(``affirming | warning | contraindicated`` with reasons). Results are cached by the
certificate's SHA-256 fingerprint in a bounded LRU (PEM text also under the digest of the
text itself), so the hot path (a service seeing the same run's certificate on every
request) is one SHA-256 and a few comparisons: everything that depends on the clock (validity, age, CRL freshness) is kept
as numbers in the cache entry and compared on every call, never cached as a verdict.
Installing a CRL clears the cache.

Only results for which a certification path was found are cached: a failed path may
succeed with a different chain, and caching it would pin the failure.
"""

from __future__ import annotations

import binascii
import hashlib
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence, Union

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from ..attestation.document import AttestationDocument, DocumentError, parse_document
from ..attestation.extension import extract_document_bytes
from ..attestation.keys import jwk_thumbprint_x25519
from ..errors import InvalidParams
from . import result as R
from .chain import AnchorSet, PathResult, LinkMemo, build_path
from .policy import Policy
from .result import Reason, VerificationResult

RUN_URI_PREFIX = "urn:attestables:run:"
DEFAULT_CACHE_SIZE = 4096

CertificateInput = Union[x509.Certificate, bytes, str]
_DER = serialization.Encoding.DER
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"
# CRL extensions we understand; a CRL with another critical one (delta CRL indicator,
# issuing distribution point) is refused rather than misread.
_CRL_HANDLED_CRITICAL: frozenset[x509.ObjectIdentifier] = frozenset()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pem_blocks(data: bytes) -> list[bytes]:
    """DER of every CERTIFICATE block in a PEM text (ValueError when there is none)."""
    blocks = []
    start = data.find(_PEM_BEGIN)
    while start != -1:
        end = data.find(_PEM_END, start)
        if end == -1:
            raise ValueError("unterminated PEM block")
        try:
            blocks.append(binascii.a2b_base64(data[start + len(_PEM_BEGIN) : end]))
        except binascii.Error as exc:
            raise ValueError(f"bad PEM: {exc}") from None
        start = data.find(_PEM_BEGIN, end)
    if not blocks:
        raise ValueError("no PEM certificate")
    return blocks


def _is_pem(data: bytes) -> bool:
    return data.lstrip()[:11] == b"-----BEGIN "


def load_certificates(data: CertificateInput | Sequence[CertificateInput]) -> list[x509.Certificate]:
    """Certificates from a PEM bundle, one DER blob, a certificate, or a list of those."""
    if isinstance(data, x509.Certificate):
        return [data]
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
        if _is_pem(raw):
            return [x509.load_der_x509_certificate(b) for b in _pem_blocks(raw)]
        return [x509.load_der_x509_certificate(raw)]
    certs: list[x509.Certificate] = []
    for item in data:
        certs.extend(load_certificates(item))
    return certs


def load_crl(data: bytes | str | x509.CertificateRevocationList) -> x509.CertificateRevocationList:
    """A CRL from DER or PEM (InvalidParams when it is neither)."""
    if isinstance(data, x509.CertificateRevocationList):
        return data
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    try:
        if _is_pem(raw):
            return x509.load_pem_x509_crl(raw)
        return x509.load_der_x509_crl(raw)
    except ValueError as exc:
        raise InvalidParams(f"not a CRL: {exc}") from None


@dataclass(slots=True)
class _Entry:
    """What the clock-independent checks concluded, plus the numbers the clock is compared with."""

    result: VerificationResult  # verdict when no clock-dependent check fails
    not_before: float
    not_after: float
    iat: float | None
    crl_next_update: float | None
    eat_nonce: str | None


@dataclass(slots=True)
class _CrlSlot:
    crl: x509.CertificateRevocationList
    digest: bytes
    number: int | None
    last_update: float
    next_update: float | None


class Verifier:
    """Chain + revocation + document + policy, with a fingerprint-keyed LRU of results.

    Thread-safe. ``clock`` returns POSIX seconds; ``verify(now=...)`` overrides it per call.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        roots: Iterable[x509.Certificate] | None = None,
        crls: Iterable[bytes | str | x509.CertificateRevocationList] = (),
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        self._anchors = AnchorSet(policy.load_roots() if roots is None else roots)
        self._clock = clock
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._cache_size = max(0, cache_size)
        self._lock = threading.Lock()
        self._memo = LinkMemo()
        self._crls: dict[bytes, _CrlSlot] = {}
        self._crl_signature_ok: dict[tuple[bytes, bytes], bool] = {}
        # Bumped whenever cached verdicts become void; an evaluation that started before a
        # CRL update must not put its (old) verdict into the fresh cache.
        self._generation = 0
        for crl in crls:
            self.update_crl(crl)

    # Revocation --------------------------------------------------------------------

    def update_crl(self, data: bytes | str | x509.CertificateRevocationList) -> bool:
        """Install a CRL (DER or PEM) unless a newer one from the same issuer is installed.

        Returns whether it was installed; installing clears the result cache. Its signature
        is checked against the issuer found in each certification path (a CRL that does not
        verify makes the results that needed it ``crl_invalid``).
        """
        crl = load_crl(data)
        for ext in crl.extensions:
            if ext.critical and ext.oid not in _CRL_HANDLED_CRITICAL:
                raise InvalidParams(
                    f"CRL has an unsupported critical extension {ext.oid.dotted_string} "
                    "(delta CRLs and distribution-point CRLs are not supported)"
                )
        try:
            number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = None
        next_update = crl.next_update_utc
        slot = _CrlSlot(
            crl=crl,
            digest=hashlib.sha256(crl.public_bytes(_DER)).digest(),
            number=number,
            last_update=crl.last_update_utc.timestamp(),
            next_update=next_update.timestamp() if next_update is not None else None,
        )
        key = crl.issuer.public_bytes()
        with self._lock:
            old = self._crls.get(key)
            if old is not None:
                if old.number is not None and number is not None:
                    newer = number >= old.number
                else:
                    newer = slot.last_update >= old.last_update
                if not newer:
                    return False
            self._crls[key] = slot
            self._cache.clear()
            self._generation += 1
        return True

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._generation += 1

    @property
    def cache_len(self) -> int:
        return len(self._cache)

    # Verification ------------------------------------------------------------------

    def verify(
        self,
        certificate: CertificateInput,
        chain: CertificateInput | Sequence[CertificateInput] = (),
        *,
        now: float | datetime | None = None,
        nonce: str | None = None,
    ) -> VerificationResult:
        """Appraise one run certificate.

        ``certificate`` is PEM (a bundle's first certificate is the leaf, the rest join
        ``chain``), DER, or a certificate object. ``chain`` holds the issuing CA (and any
        operator intermediates). ``nonce``, when given, must equal the document's
        ``eat_nonce``. Never raises for bad input: that is a ``certificate_invalid`` result.
        """
        if now is None:
            at = self._clock()
        elif isinstance(now, datetime):
            at = now.timestamp()
        else:
            at = float(now)
        # The cache is keyed by the SHA-256 of the bytes as presented: for DER that is the
        # certificate's fingerprint; PEM text is also stored under its own digest, so a hit
        # does not pay for the base64 decoding.
        leaf: x509.Certificate | None = None
        try:
            if isinstance(certificate, x509.Certificate):
                leaf, presented = certificate, certificate.public_bytes(_DER)
            elif isinstance(certificate, str):
                presented = certificate.encode("ascii")
            else:
                presented = bytes(certificate)
        except (TypeError, UnicodeEncodeError) as exc:
            return VerificationResult.from_reasons([Reason(R.CERTIFICATE_INVALID, f"cannot read certificate: {exc}")])
        key = hashlib.sha256(presented).digest()
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
            generation = self._generation
        if entry is None:
            if leaf is not None or not _is_pem(presented):
                der, extra = presented, []
            else:
                try:
                    der, *extra = _pem_blocks(presented)
                except ValueError as exc:
                    return VerificationResult.from_reasons(
                        [Reason(R.CERTIFICATE_INVALID, f"cannot read certificate: {exc}")]
                    )
            digest = key if der == presented else hashlib.sha256(der).digest()
            with self._lock:
                entry = self._cache.get(digest)
            cacheable = entry is not None
            if entry is None:
                entry, cacheable = self._evaluate(der, leaf, extra, chain, digest.hex())
            if cacheable and self._cache_size:
                with self._lock:
                    if generation != self._generation:
                        return self._at(entry, at, nonce)
                    self._cache[digest] = entry
                    if key != digest:
                        self._cache[key] = entry
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        return self._at(entry, at, nonce)

    def _at(self, entry: _Entry, now: float, nonce: str | None) -> VerificationResult:
        extra: list[Reason] | None = None
        if now < entry.not_before:
            extra = [Reason(R.NOT_YET_VALID, f"not valid before {_iso(entry.not_before)}")]
        elif now > entry.not_after:
            extra = [Reason(R.EXPIRED, f"expired at {_iso(entry.not_after)}")]
        max_age = self.policy.max_age
        if max_age is not None and entry.iat is not None and now - entry.iat > max_age:
            extra = extra or []
            extra.append(
                Reason(R.TOO_OLD, f"document issued {int(now - entry.iat)} s ago, policy max_age is {max_age} s")
            )
        if entry.crl_next_update is not None and now > entry.crl_next_update:
            extra = extra or []
            extra.append(
                Reason(R.CRL_STALE, f"CRL past its nextUpdate ({_iso(entry.crl_next_update)}): revocation status may be out of date")
            )
        if nonce is not None and nonce != entry.eat_nonce:
            extra = extra or []
            extra.append(Reason(R.NONCE_MISMATCH, "eat_nonce does not match the expected nonce"))
        if not extra:
            return entry.result
        base = entry.result
        return VerificationResult.from_reasons(base.reasons + tuple(extra), base.claims, base.fingerprint, base.serial)

    def _evaluate(
        self,
        der: bytes,
        cert: x509.Certificate | None,
        bundled: list[bytes],
        chain: CertificateInput | Sequence[CertificateInput],
        fingerprint: str,
    ) -> tuple[_Entry, bool]:
        def invalid(message: str) -> tuple[_Entry, bool]:
            result = VerificationResult.from_reasons([Reason(R.CERTIFICATE_INVALID, message)], fingerprint=fingerprint)
            return _Entry(result, -math.inf, math.inf, None, None, None), False

        try:
            if cert is None:
                cert = x509.load_der_x509_certificate(der)
            extensions = cert.extensions  # parses (and rejects duplicates) once
            serial = f"{cert.serial_number:x}"
        except ValueError as exc:
            return invalid(f"cannot parse certificate: {exc}")
        try:
            intermediates = [x509.load_der_x509_certificate(b) for b in bundled]
            if chain:
                intermediates += load_certificates(chain)  # type: ignore[arg-type]
        except (ValueError, TypeError) as exc:
            return invalid(f"cannot parse the chain: {exc}")

        reasons: list[Reason] = []
        path = build_path(cert, intermediates, self._anchors, memo=self._memo)
        reasons.extend(path.reasons)
        reasons.extend(_leaf_reasons(cert, extensions))
        crl_next_update = self._revocation(path, reasons)

        document: AttestationDocument | None = None
        claims: dict[str, Any] | None = None
        try:
            document = parse_document(extract_document_bytes(cert))
        except DocumentError as exc:
            reasons.append(Reason(exc.reason, exc.message))
        if document is not None:
            claims = document.claims()
            reasons.extend(self._document_reasons(document, cert, extensions, path))

        result = VerificationResult.from_reasons(reasons, claims, fingerprint, serial)
        if path.found:
            not_before, not_after = path.not_before, path.not_after
        else:
            not_before = cert.not_valid_before_utc.timestamp()
            not_after = cert.not_valid_after_utc.timestamp()
        if document is not None:
            not_after = min(not_after, float(document.exp))
        entry = _Entry(
            result=result,
            not_before=not_before,
            not_after=not_after,
            iat=float(document.iat) if document is not None else None,
            crl_next_update=crl_next_update,
            eat_nonce=document.eat_nonce if document is not None else None,
        )
        return entry, path.found and not path.reasons

    def _revocation(self, path: PathResult, reasons: list[Reason]) -> float | None:
        """Check every non-anchor certificate of the path against its issuer's CRL."""
        next_update: float | None = None
        certs = path.path
        for index in range(len(certs) - 1):
            child, parent = certs[index], certs[index + 1]
            slot = self._crls.get(child.issuer.public_bytes())
            if slot is None:
                continue
            parent_key = parent.public_bytes(_DER)
            memo_key = (slot.digest, parent_key)
            ok = self._crl_signature_ok.get(memo_key)
            if ok is None:
                ok = slot.crl.is_signature_valid(parent.public_key())  # type: ignore[arg-type]
                if len(self._crl_signature_ok) > 256:
                    self._crl_signature_ok.clear()
                self._crl_signature_ok[memo_key] = ok
            if not ok:
                reasons.append(Reason(R.CRL_INVALID, f"the CRL of {parent.subject.rfc4514_string()} does not verify"))
                continue
            if slot.next_update is not None:
                next_update = slot.next_update if next_update is None else min(next_update, slot.next_update)
            revoked = slot.crl.get_revoked_certificate_by_serial_number(child.serial_number)
            if revoked is not None:
                try:
                    why = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
                except x509.ExtensionNotFound:
                    why = "unspecified"
                what = "certificate" if index == 0 else f"CA {child.subject.rfc4514_string()}"
                reasons.append(
                    Reason(
                        R.REVOKED,
                        f"{what} serial {child.serial_number:x} revoked at "
                        f"{_iso(revoked.revocation_date_utc.timestamp())} ({why})",
                    )
                )
        return next_update

    def _document_reasons(
        self,
        doc: AttestationDocument,
        cert: x509.Certificate,
        extensions: x509.Extensions,
        path: PathResult,
    ) -> list[Reason]:
        reasons: list[Reason] = []
        policy = self.policy
        try:
            key = cert.public_key()
        except Exception:  # an algorithm this build of cryptography cannot load
            key = None
        if not isinstance(key, x25519.X25519PublicKey) or jwk_thumbprint_x25519(key) != doc.cnf.jkt:
            reasons.append(Reason(R.CNF_MISMATCH, "cnf.jkt is not the thumbprint of the certificate's subject key"))
        expected_uri = RUN_URI_PREFIX + doc.run.run_id
        if expected_uri not in _run_uris(extensions):
            reasons.append(Reason(R.RUN_MISMATCH, f"the certificate does not name run {doc.run.run_id}"))
        if len(path.path) > 1:
            issuer_fp = hashlib.sha256(path.path[1].public_bytes(_DER)).hexdigest()
            if issuer_fp != doc.launcher.issuing_ca_fingerprint:
                reasons.append(
                    Reason(R.ISSUER_MISMATCH, "launcher.issuing_ca_fingerprint is not the issuing CA's fingerprint")
                )

        if policy.allow:
            elf, source = doc.digests("elf-sha256"), doc.digests("source-sha256")
            if not any(entry.matches(elf, source) for entry in policy.allow):
                reasons.append(
                    Reason(R.MEASUREMENT_UNKNOWN, "no [[allow]] entry of the policy matches the measurements")
                )
        else:
            reasons.append(Reason(R.MEASUREMENT_UNCHECKED, "the policy allows any measurement (no [[allow]] entries)"))

        compartment = doc.submods.compartment
        if policy.require_backend is not None:
            if compartment.backend not in policy.require_backend:
                reasons.append(
                    Reason(
                        R.BACKEND_MISMATCH,
                        f"backend {compartment.backend!r}, policy requires {' or '.join(sorted(policy.require_backend))}",
                    )
                )
        elif compartment.backend == "none":
            reasons.append(Reason(R.UNCONFINED, "the program ran unconfined (backend none)"))
        if policy.require_isolation is not None:
            shortfalls = policy.require_isolation.shortfalls(compartment.isolation)
            if shortfalls:
                reasons.append(Reason(R.ISOLATION_INSUFFICIENT, "; ".join(shortfalls)))
        if policy.require_purecap and not (doc.elf.purecap and doc.platform.cheri):
            reasons.append(Reason(R.PURECAP_REQUIRED, "policy requires a CHERI purecap program on CHERI hardware"))
        if policy.require_debug_disabled and doc.dbgstat == "enabled":
            reasons.append(Reason(R.DEBUG_ENABLED, "dbgstat is enabled, policy requires debug disabled"))
        return reasons


def _run_uris(extensions: x509.Extensions) -> list[str]:
    try:
        san = extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return []
    assert isinstance(san, x509.SubjectAlternativeName)
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def _leaf_reasons(cert: x509.Certificate, extensions: x509.Extensions) -> list[Reason]:
    """The run-certificate profile: X25519 key for key agreement, clientAuth, not a CA."""
    reasons = []
    if cert.version != x509.Version.v3:
        reasons.append(Reason(R.KEY_USAGE, "not an X.509 v3 certificate"))
    try:
        key = cert.public_key()
    except Exception:  # an algorithm this build of cryptography cannot load
        key = None
    if not isinstance(key, x25519.X25519PublicKey):
        reasons.append(Reason(R.KEY_USAGE, "the subject key is not an X25519 key"))
    try:
        bc = extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
        assert isinstance(bc, x509.BasicConstraints)
        if bc.ca:
            reasons.append(Reason(R.KEY_USAGE, "a run certificate must not be a CA"))
    except x509.ExtensionNotFound:
        pass
    try:
        ku = extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
        assert isinstance(ku, x509.KeyUsage)
        if not ku.key_agreement:
            reasons.append(Reason(R.KEY_USAGE, "keyUsage lacks keyAgreement"))
    except x509.ExtensionNotFound:
        reasons.append(Reason(R.KEY_USAGE, "no keyUsage extension (keyAgreement required)"))
    try:
        eku = extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
        assert isinstance(eku, x509.ExtendedKeyUsage)
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            reasons.append(Reason(R.KEY_USAGE, "extendedKeyUsage lacks clientAuth"))
    except x509.ExtensionNotFound:
        reasons.append(Reason(R.KEY_USAGE, "no extendedKeyUsage extension (clientAuth required)"))
    return reasons
