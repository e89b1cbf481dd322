"""``attestables certs``: list, show and revoke run certificates.

A run certificate is issued when a program completes the handshake (HELLO) and is
revoked when its run ends. ``certs show --out FILE`` writes the certificate followed by
its chain (the issuing CA and any operator intermediates): the bundle that
``attestables verify`` and the services take, and whose first certificate
``openssl verify`` checks.
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attestables.shared.errors import InvalidParams, NotFound

from ..ids import expand
from ..output import format_time, key_values, short_id, table, write_output_file
from ..registry import Context, Subparsers, add_client_command, add_group

if TYPE_CHECKING:
    from cryptography import x509

ORDER = 74

# ``attestables.daemon.ca.REVOCATION_REASONS``, written out so that ``--help`` does not
# import the CA (and cryptography) on every start; a test keeps the two equal.
REVOCATION_REASONS = (
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "privilege_withdrawn",
)
SHORT_SERIAL = 16
# How many certificates a serial prefix is looked up among.
PREFIX_SEARCH_LIMIT = 1000


def register(subparsers: Subparsers) -> None:
    group = add_group(subparsers, "certs", help="list, show and revoke run certificates")

    listing = add_client_command(group, "list", list_certs, help="list run certificates, newest first")
    listing.add_argument("--run", metavar="RUN_ID", help="only the certificate of this run (id or unique prefix)")
    listing.add_argument("--limit", type=int, default=200, metavar="N", help="at most N certificates (default 200)")

    show = add_client_command(
        group,
        "show",
        show_cert,
        help="show a run certificate; write it and its chain to a file",
        description="Show a run certificate (by serial or by run): subject, validity, revocation, fingerprint. "
        "--out writes the certificate followed by its chain (PEM), the bundle 'attestables verify' takes; "
        "'--out -' writes it to standard output instead of the summary.",
    )
    which = show.add_mutually_exclusive_group(required=True)
    which.add_argument("serial", nargs="?", metavar="SERIAL", help="serial (hex, or a unique prefix)")
    which.add_argument("--run", metavar="RUN_ID", help="the certificate of this run (id or unique prefix)")
    show.add_argument("--out", metavar="FILE", help="write the certificate and its chain (PEM) to FILE")
    show.add_argument(
        "--chain-out", metavar="FILE", help="write the chain alone (issuing CA and any intermediates, PEM) to FILE"
    )

    revoke = add_client_command(
        group,
        "revoke",
        revoke_cert,
        help="revoke a run certificate (the CRL is re-signed at once)",
        description="Revoke a run certificate; the daemon re-signs its CRL at once (GET /api/v1/crl). "
        "Revocation is permanent. A run's certificate is revoked anyway when the run ends.",
    )
    revoke.add_argument("serial", metavar="SERIAL", help="serial (hex, or a unique prefix)")
    revoke.add_argument(
        "--reason",
        default="unspecified",
        choices=REVOCATION_REASONS,
        metavar="R",
        help="RFC 5280 reason, one of: " + ", ".join(REVOCATION_REASONS) + " (default: unspecified)",
    )


# -- serials and runs -------------------------------------------------------------------------


def normalize_serial(text: str) -> str:
    """``1A:14:…``, ``0x1a14…`` and ``1a14…`` all as the daemon writes serials (lowercase hex)."""
    cleaned = "".join(text.split()).lower().replace(":", "")
    cleaned = cleaned.removeprefix("0x")
    if not cleaned or any(ch not in "0123456789abcdef" for ch in cleaned):
        raise InvalidParams(f"serial {text!r} is not hexadecimal")
    return cleaned


async def expand_serial(ctx: Context, given: str) -> str:
    """The full serial that ``given`` is or begins (among the newest certificates)."""
    listing = await ctx.client.call("certs.list", {"limit": PREFIX_SEARCH_LIMIT})
    serials = [str(c["serial"]) for c in listing.get("certificates", ()) if c.get("serial")]
    if given in serials:
        return given
    stripped = given.lstrip("0") or "0"
    matches = sorted({s for s in serials if s.startswith(given) or s.startswith(stripped)})
    if len(matches) > 1:
        shown = ", ".join(s[:SHORT_SERIAL] for s in matches[:5])
        raise InvalidParams(f"serial {given!r} is ambiguous: it begins {len(matches)} serials ({shown}…)")
    if not matches:
        raise NotFound(f"no certificate with serial {given}", serial=given)
    return matches[0]


async def expand_run(ctx: Context, given: str) -> str:
    full = await expand(ctx.client, "run", given)
    if full is None:
        raise NotFound(f"no run {given}", run_id=given)
    return full


async def get_certificate(ctx: Context, *, serial: str | None = None, run: str | None = None) -> dict[str, Any]:
    """``certs.get`` by serial or run, accepting unique prefixes of either."""
    if serial is not None:
        wanted = normalize_serial(serial)
        try:
            return await ctx.client.call("certs.get", {"serial": wanted})
        except (NotFound, InvalidParams):
            full = await expand_serial(ctx, wanted)
            return await ctx.client.call("certs.get", {"serial": full})
    assert run is not None
    try:
        return await ctx.client.call("certs.get", {"run_id": run})
    except (NotFound, InvalidParams):
        full = await expand_run(ctx, run)
        if full == run:
            raise
        return await ctx.client.call("certs.get", {"run_id": full})


# -- X.509 for people -------------------------------------------------------------------------


def load_pem_certificates(pem: str | bytes) -> list[x509.Certificate]:
    from cryptography import x509

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise InvalidParams(f"not a PEM certificate: {exc}") from None


def certificate_fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def certificate_summary(cert: x509.Certificate) -> dict[str, Any]:
    """What a person wants to know about a certificate, as JSON-able values."""
    from cryptography import x509

    summary: dict[str, Any] = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": f"{cert.serial_number:x}",
        "not_before": _utc(cert.not_valid_before_utc),
        "not_after": _utc(cert.not_valid_after_utc),
        "fingerprint": certificate_fingerprint(cert),
        "key": key_description(cert),
    }
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        summary["ca"] = constraints.ca
        if constraints.ca:
            summary["path_length"] = constraints.path_length
    except x509.ExtensionNotFound:
        summary["ca"] = False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        summary["uris"] = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        pass
    return summary


def key_description(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

    try:
        key = cert.public_key()
    except (ValueError, TypeError):
        return "unknown"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {key.curve.name}"
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519 (key agreement)"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    return type(key).__name__


def _utc(moment: Any) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def validity_text(summary: Mapping[str, Any]) -> str:
    return f"{format_time(summary['not_before'])} to {format_time(summary['not_after'])}"


def has_document(cert: x509.Certificate) -> bool:
    from attestables.shared.attestation.extension import ATTESTATION_DOCUMENT_OID
    from cryptography import x509

    try:
        cert.extensions.get_extension_for_oid(ATTESTATION_DOCUMENT_OID)
    except x509.ExtensionNotFound:
        return False
    return True


# -- commands ---------------------------------------------------------------------------------


async def list_certs(args: argparse.Namespace, ctx: Context) -> int:
    params: dict[str, Any] = {"limit": max(1, min(args.limit, 1000))}
    if args.run is not None:
        params["run_id"] = args.run
    result = await ctx.client.call("certs.list", params)
    if args.run is not None and not result.get("certificates"):
        full = await expand_run(ctx, args.run)
        if full != args.run:
            params["run_id"] = full
            result = await ctx.client.call("certs.list", params)
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.lines(certs_table(result.get("certificates", ())))
    return 0


def certificate_state(record: Mapping[str, Any]) -> str:
    if record.get("revoked"):
        reason = record.get("revocation_reason")
        return f"revoked ({reason})" if reason else "revoked"
    return "valid" if not _expired(record.get("not_after")) else "expired"


def _expired(not_after: Any) -> bool:
    from datetime import UTC, datetime

    if not not_after:
        return False
    try:
        moment = datetime.fromisoformat(str(not_after).replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment < datetime.now(UTC)


def certs_table(certificates: Iterable[Mapping[str, Any]]) -> list[str]:
    return table(
        ("SERIAL", "RUN", "STATE", "ISSUED", "NOT AFTER"),
        (
            (
                str(c.get("serial") or "-")[:SHORT_SERIAL],
                short_id(c.get("run_id")),
                certificate_state(c),
                format_time(c.get("created_at")),
                format_time(c.get("not_after")),
            )
            for c in certificates
        ),
    )


async def show_cert(args: argparse.Namespace, ctx: Context) -> int:
    record = await get_certificate(ctx, serial=args.serial, run=args.run)
    pem = str(record.get("pem") or "")
    chain_pem = str(record.get("chain_pem") or "")
    bundle = _join_pem(pem, chain_pem)
    if args.out is not None:
        write_output_file(args.out, bundle.encode(), ctx.out)
    if args.chain_out is not None:
        write_output_file(args.chain_out, chain_pem.encode(), ctx.out)
    if args.out == "-" or args.chain_out == "-":
        return 0
    if ctx.out.json:
        ctx.out.document(record)
        return 0
    ctx.out.lines(render_certificate(record))
    return 0


def _join_pem(*parts: str) -> str:
    return "".join(part if part.endswith("\n") else part + "\n" for part in parts if part)


def render_certificate(record: Mapping[str, Any]) -> list[str]:
    """The summary of a ``certs.get`` record: the daemon's record and the certificate itself."""
    certs = load_pem_certificates(str(record.get("pem") or ""))
    chain = load_pem_certificates(str(record["chain_pem"])) if record.get("chain_pem") else []
    leaf = certs[0]
    summary = certificate_summary(leaf)
    pairs: list[tuple[str, Any]] = [
        ("serial", record.get("serial")),
        ("run", record.get("run_id")),
        ("state", certificate_state(record)),
    ]
    if record.get("revoked"):
        pairs.append(("revoked at", format_time(record.get("revoked_at"))))
    document = record.get("document") or {}
    build_id = (document.get("run") or {}).get("build_id") if isinstance(document, Mapping) else None
    pairs += [
        ("subject", summary["subject"]),
        ("issuer", summary["issuer"]),
        ("san", ", ".join(summary.get("uris", ())) or "-"),
        ("key", summary["key"]),
        ("validity", validity_text(summary)),
        ("fingerprint", record.get("fingerprint") or summary["fingerprint"]),
        ("document", "present (attestables attest RUN_ID shows it)" if has_document(leaf) else "MISSING"),
    ]
    if build_id:
        pairs.append(("build", build_id))
    for index, ca in enumerate(chain):
        shown = f"{ca.subject.rfc4514_string()} ({certificate_fingerprint(ca)[:16]}…)"
        pairs.append(("chain" if index == 0 else "", shown))
    return key_values(pairs)


async def revoke_cert(args: argparse.Namespace, ctx: Context) -> int:
    wanted = normalize_serial(args.serial)

    async def revoke(serial: str) -> Any:
        return await ctx.client.call("certs.revoke", {"serial": serial, "reason": args.reason})

    try:
        result = await revoke(wanted)
    except NotFound:
        full = await expand_serial(ctx, wanted)
        if full == wanted:
            raise
        result = await revoke(full)
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.line(
            f"revoked certificate {result.get('serial')} of run {result.get('run_id')} "
            f"({result.get('revocation_reason') or args.reason}); the CRL is re-signed"
        )
    return 0


def chain_lines(certs: Sequence[x509.Certificate], label: str) -> list[tuple[str, Any]]:
    """``label`` rows for a list of CA certificates (used by ``ca show``)."""
    rows: list[tuple[str, Any]] = []
    for cert in certs:
        summary = certificate_summary(cert)
        rows += [
            (label, summary["subject"]),
            ("  issued by", summary["issuer"]),
            ("  fingerprint", summary["fingerprint"]),
            ("  valid", validity_text(summary)),
            ("  key", summary["key"]),
        ]
    return rows

