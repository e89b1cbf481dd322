"""``attestables verify CERT.pem --policy POLICY.toml``: appraise a run certificate offline.

What a service does with a certificate, without the daemon: the path to the policy's
trusted roots, validity, revocation (with ``--crl``), the certificate profile, the
attestation document and the policy (``attestables.shared.verifier``). Prints the status
and every reason as ``code: message``.

Exit status: 0 affirming; 0 warning (the certificate may be relied on; the reasons say
what deserves a look), 4 with ``--strict``; 1 contraindicated, and 1 for an error such as
an unreadable policy or CRL (then nothing is printed on stdout).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from attestables.shared.errors import InvalidParams

from ..output import Output, key_values
from ..registry import Subparsers, add_local_command

ORDER = 79

EXIT_AFFIRMING = 0
EXIT_CONTRAINDICATED = 1
EXIT_STRICT_WARNING = 4


def register(subparsers: Subparsers) -> None:
    verify = add_local_command(
        subparsers,
        "verify",
        verify_certificate,
        help="appraise a run certificate against a policy, offline",
        description="Appraise a run certificate as a service would, offline: the chain to the policy's "
        "trusted roots, validity, revocation (--crl), the certificate profile, the attestation document and "
        "the policy. Prints the status (affirming, warning, contraindicated) and every reason as "
        "'code: message'.",
        epilog="Exit status: 0 affirming or warning (4 for warning with --strict); 1 contraindicated or an "
        "error (unreadable policy, CRL or chain). Without --crl revocation is not checked: fetch the CRL "
        "from the daemon (GET http://HOST:PORT/api/v1/crl) to check it.",
    )
    verify.add_argument(
        "certificate", metavar="CERT.pem",
        help="the run certificate (PEM or DER); a PEM file may hold the chain after it",
    )
    verify.add_argument("--policy", required=True, metavar="POLICY.toml", help="the appraisal policy (TOML)")
    verify.add_argument(
        "--chain", action="append", default=[], metavar="CHAIN.pem",
        help="intermediate certificates (the issuing CA), repeatable; not needed if CERT.pem holds them",
    )
    verify.add_argument(
        "--crl", action="append", default=[], metavar="FILE",
        help="a CRL (DER or PEM), repeatable; revocation is checked only against the CRLs given",
    )
    verify.add_argument("--nonce", metavar="N", help="require the document's eat_nonce to be N")
    verify.add_argument("--strict", action="store_true", help="exit 4 when the result is a warning")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidParams(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def verify_certificate(args: argparse.Namespace) -> int:
    from attestables.shared.verifier import CONTRAINDICATED, WARNING, Verifier, load_policy

    out = Output(json=args.json)
    policy = load_policy(args.policy)
    certificate = _read(args.certificate, "certificate")
    chain = [_read(path, "chain") for path in args.chain]
    crls = [_read(path, "CRL") for path in args.crl]
    try:
        verifier = Verifier(policy, crls=crls, cache_size=0)
    except InvalidParams as exc:
        raise InvalidParams(f"CRL: {exc.message}") from None
    result = verifier.verify(certificate, chain, nonce=args.nonce)
    if out.json:
        out.document({**result.to_dict(), "policy": args.policy, "crls": list(args.crl)})
    else:
        out.lines(render_result(result, policy_name=policy.name or args.policy, crl_count=len(crls)))
    if result.status == CONTRAINDICATED:
        return EXIT_CONTRAINDICATED
    if result.status == WARNING and args.strict:
        return EXIT_STRICT_WARNING
    return EXIT_AFFIRMING


def render_result(result: Any, *, policy_name: str, crl_count: int) -> list[str]:
    lines = [result.status]
    lines += [f"  {reason.code}: {reason.message}" for reason in result.reasons]
    claims: Mapping[str, Any] = result.claims or {}
    run = claims.get("run") or {}
    compartment = (claims.get("submods") or {}).get("compartment") or {}
    measurements = {m.get("type"): m.get("digest") for m in claims.get("measurements") or []}
    pairs: list[tuple[str, Any]] = [
        ("policy", policy_name),
        ("revocation", f"checked against {crl_count} CRL(s)" if crl_count else "not checked (no --crl)"),
    ]
    if result.serial:
        pairs.append(("serial", result.serial))
    if result.fingerprint:
        pairs.append(("fingerprint", result.fingerprint))
    if claims:
        says = " (what the certificate says)" if result.status == "contraindicated" else ""
        pairs += [
            ("run", f"{run.get('run_id')} (build {run.get('build_id')}){says}"),
            ("elf-sha256", measurements.get("elf-sha256")),
            ("source-sha256", measurements.get("source-sha256")),
            ("backend", compartment.get("backend")),
            ("cheri", (claims.get("platform") or {}).get("cheri")),
        ]
    return [*lines, "", *key_values(pairs)]
