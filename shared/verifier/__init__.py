"""Appraise run certificates: chain, revocation, attestation document and policy.

Used by the services, the CLI and the console; imports neither the daemon, the aiohttp
server nor Textual.

    policy = load_policy("policy.toml")
    verifier = Verifier(policy, crls=[crl_der])
    result = verifier.verify(cert_pem, chain_pem)
    if result.status == "contraindicated": refuse(result.to_dict())
"""

from .chain import AnchorSet, PathResult, build_path, fingerprint, is_self_signed
from .policy import (
    AllowEntry,
    IsolationRequirement,
    Policy,
    PolicyError,
    load_policy,
    parse_duration,
    parse_policy,
    policy_for_build,
)
from .result import (
    AFFIRMING,
    CONTRAINDICATED,
    CONTRAINDICATED_CODES,
    REASON_CODES,
    STATUSES,
    WARNING,
    WARNING_CODES,
    Reason,
    VerificationResult,
    status_of,
)
from .verifier import RUN_URI_PREFIX, Verifier, load_certificates, load_crl

__all__ = [
    "AFFIRMING",
    "CONTRAINDICATED",
    "CONTRAINDICATED_CODES",
    "REASON_CODES",
    "RUN_URI_PREFIX",
    "STATUSES",
    "WARNING",
    "WARNING_CODES",
    "AllowEntry",
    "AnchorSet",
    "IsolationRequirement",
    "PathResult",
    "Policy",
    "PolicyError",
    "Reason",
    "VerificationResult",
    "Verifier",
    "build_path",
    "fingerprint",
    "is_self_signed",
    "load_certificates",
    "load_crl",
    "load_policy",
    "parse_duration",
    "parse_policy",
    "policy_for_build",
    "status_of",
]
