"""The verifier's answer, shaped like an EAR (IETF draft "EAT Attestation Results").

``status`` is the worst of its reasons: ``contraindicated`` when any trust check failed,
``warning`` when only soft checks did, ``affirming`` when nothing did. Reason codes are
part of the public API (services return them, consoles show them): never rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AFFIRMING = "affirming"
WARNING = "warning"
CONTRAINDICATED = "contraindicated"
STATUSES = (AFFIRMING, WARNING, CONTRAINDICATED)

# Trust failures: the certificate or what it says cannot be relied on.
CERTIFICATE_INVALID = "certificate_invalid"
CHAIN_UNTRUSTED = "chain_untrusted"
SIGNATURE_INVALID = "signature_invalid"
CRITICAL_EXTENSION = "critical_extension"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
REVOKED = "revoked"
CRL_INVALID = "crl_invalid"
KEY_USAGE = "key_usage"
DOCUMENT_MISSING = "document_missing"
DOCUMENT_INVALID = "document_invalid"
DOCUMENT_NOT_CANONICAL = "document_not_canonical"
CNF_MISMATCH = "cnf_mismatch"
RUN_MISMATCH = "run_mismatch"
NONCE_MISMATCH = "nonce_mismatch"
MEASUREMENT_UNKNOWN = "measurement_unknown"
BACKEND_MISMATCH = "backend_mismatch"
ISOLATION_INSUFFICIENT = "isolation_insufficient"
PURECAP_REQUIRED = "purecap_required"
DEBUG_ENABLED = "debug_enabled"
# Soft: the certificate is sound, but something deserves a look.
TOO_OLD = "too_old"
CRL_STALE = "crl_stale"
MEASUREMENT_UNCHECKED = "measurement_unchecked"
UNCONFINED = "unconfined"
ISSUER_MISMATCH = "issuer_mismatch"

WARNING_CODES = frozenset({TOO_OLD, CRL_STALE, MEASUREMENT_UNCHECKED, UNCONFINED, ISSUER_MISMATCH})
CONTRAINDICATED_CODES = frozenset(
    {
        CERTIFICATE_INVALID,
        CHAIN_UNTRUSTED,
        SIGNATURE_INVALID,
        CRITICAL_EXTENSION,
        EXPIRED,
        NOT_YET_VALID,
        REVOKED,
        CRL_INVALID,
        KEY_USAGE,
        DOCUMENT_MISSING,
        DOCUMENT_INVALID,
        DOCUMENT_NOT_CANONICAL,
        CNF_MISMATCH,
        RUN_MISMATCH,
        NONCE_MISMATCH,
        MEASUREMENT_UNKNOWN,
        BACKEND_MISMATCH,
        ISOLATION_INSUFFICIENT,
        PURECAP_REQUIRED,
        DEBUG_ENABLED,
    }
)
REASON_CODES = WARNING_CODES | CONTRAINDICATED_CODES


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str

    @property
    def severity(self) -> str:
        return WARNING if self.code in WARNING_CODES else CONTRAINDICATED

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def status_of(reasons: tuple[Reason, ...] | list[Reason]) -> str:
    status = AFFIRMING
    for reason in reasons:
        if reason.code not in WARNING_CODES:
            return CONTRAINDICATED
        status = WARNING
    return status


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """One verification. ``claims`` (the document, when it could be read) is shared with the
    verifier's cache: treat it as read-only. Claims of a contraindicated result are what the
    certificate *says*, not facts.
    """

    status: str
    reasons: tuple[Reason, ...] = ()
    claims: dict[str, Any] | None = None
    fingerprint: str | None = None  # sha256 of the certificate's DER, hex
    serial: str | None = None  # lowercase hex

    @classmethod
    def from_reasons(
        cls,
        reasons: tuple[Reason, ...] | list[Reason],
        claims: dict[str, Any] | None = None,
        fingerprint: str | None = None,
        serial: str | None = None,
    ) -> VerificationResult:
        reasons = tuple(reasons)
        return cls(status_of(reasons), reasons, claims, fingerprint, serial)

    @property
    def ok(self) -> bool:
        """True unless contraindicated: the caller may proceed (perhaps with a warning)."""
        return self.status != CONTRAINDICATED

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": [r.to_dict() for r in self.reasons],
            "claims": self.claims,
            "fingerprint": self.fingerprint,
            "serial": self.serial,
        }

