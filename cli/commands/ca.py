"""``attestables ca``: the launcher's certificate authority.

``ca show`` asks the daemon. ``ca csr`` and ``ca import`` work on the state directory
itself, with no daemon (the operator's own CA, the seed's "Verisign" role): ``csr``
writes a certificate request for the issuing CA key, the operator's CA signs it, and
``import`` installs the signed certificate after checking it against the key and the
operator's chain. Both refuse while a daemon holds the state directory (its lock on
``STATE_DIR/daemon.pid``), and hold that lock themselves while they work, so a daemon
cannot start half-way through.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from attestables.shared.errors import AttestablesError, Conflict, InvalidParams
from attestables.shared.paths import PID_FILE, default_state_dir

from ..output import Output, format_time, key_values, write_output_file
from ..registry import Context, Subparsers, add_client_command, add_group, add_local_command
from .certs import certificate_summary, chain_lines, load_pem_certificates

ORDER = 76

CA_SUBDIR = "ca"


def register(subparsers: Subparsers) -> None:
    group = add_group(
        subparsers,
        "ca",
        help="show the launcher's CA, or have the operator's own CA sign it",
    )

    show = add_client_command(
        group,
        "show",
        show_ca,
        help="show the root and issuing CA, their fingerprints and the CRL",
        description="Show the daemon's root and issuing CA certificates (subjects, validity, SHA-256 "
        "fingerprints), whether the root is the operator's, and the CRL's next update and revoked count. "
        "--root-out writes the root certificate: the trust anchor a service's policy names.",
    )
    show.add_argument("--root-out", metavar="FILE", help="write the root CA certificate (PEM) to FILE")
    show.add_argument(
        "--issuing-out", metavar="FILE", help="write the issuing CA certificate and any intermediates (PEM) to FILE"
    )

    csr = add_local_command(
        group,
        "csr",
        make_csr,
        help="write a certificate request for the issuing CA, for the operator's CA to sign (no daemon)",
        description="Write a certificate signing request (PEM) for the launcher's issuing CA key, so that the "
        "operator's own CA can sign it (as a CA certificate with pathLenConstraint 0 and keyUsage keyCertSign, "
        "cRLSign). Uses the existing issuing key, or creates one in an empty state directory. Works on the "
        "state directory directly: stop the daemon first. Then: attestables ca import.",
    )
    _local_options(csr)
    csr.add_argument("--out", metavar="FILE", help="write the request to FILE (default: standard output); it is "
                     "also kept as STATE_DIR/ca/issuing.csr")
    csr.add_argument("--common-name", metavar="CN", help="the issuing CA's common name (default: "
                     "'attestables issuing CA <random tag>')")
    csr.add_argument("--organization", metavar="O", default="attestables", help="its organization (default: "
                     "attestables)")

    imp = add_local_command(
        group,
        "import",
        import_certificate,
        help="install the issuing CA certificate signed by the operator's CA (no daemon)",
        description="Install the issuing CA certificate that the operator's CA signed, after checking that it "
        "certifies the issuing key, is a CA with keyCertSign and cRLSign, and chains, signature by signature, "
        "to the self-signed root in --chain, all valid now. The operator's root becomes root.pem (what "
        "services trust); a root key of our own is set aside. Works on the state directory directly: stop "
        "the daemon first and start it again afterwards.",
    )
    imp.add_argument("certificate", metavar="CERT", help="the signed issuing CA certificate (PEM or DER)")
    imp.add_argument(
        "--chain", required=True, metavar="CHAIN.pem",
        help="the operator's chain up to and including its self-signed root (PEM)",
    )
    _local_options(imp)


def _local_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", metavar="DIR", help="the daemon's state directory (default: $STATE_DIRECTORY, else "
        "$XDG_STATE_HOME/attestables, as the daemon)"
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--passphrase-file", metavar="F", help="file holding the CA key passphrase "
                        "(the daemon's ca_passphrase_file)")
    secret.add_argument("--passphrase-credential", metavar="NAME", help="systemd credential holding it "
                        "($CREDENTIALS_DIRECTORY/NAME)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")


# -- ca show ----------------------------------------------------------------------------------


async def show_ca(args: argparse.Namespace, ctx: Context) -> int:
    info = await ctx.client.call("ca.info")
    if args.root_out is not None:
        write_output_file(args.root_out, str(info["root_pem"]).encode(), ctx.out)
    if args.issuing_out is not None:
        write_output_file(args.issuing_out, str(info["issuing_pem"]).encode(), ctx.out)
    if "-" in (args.root_out, args.issuing_out):
        return 0
    roots = load_pem_certificates(info["root_pem"])
    chain = load_pem_certificates(info["issuing_pem"])
    if ctx.out.json:
        ctx.out.document({
            **info,
            "root": certificate_summary(roots[0]),
            "issuing": [certificate_summary(c) for c in chain],
        })
        return 0
    ctx.out.lines(render_ca(info, roots, chain))
    return 0


def render_ca(info: dict[str, Any], roots: list[Any], chain: list[Any]) -> list[str]:
    owner = "the operator's (no root key on the launcher)" if info.get("operator_root") else "the launcher's own"
    rows: list[tuple[str, Any]] = []
    rows += chain_lines(roots, "root CA")
    rows.append(("  owner", owner))
    rows += chain_lines(chain[:1], "issuing CA")
    rows += chain_lines(chain[1:], "intermediate")
    rows += [
        ("CRL", f"next update {format_time(info.get('crl_next_update'))}, {info.get('revoked', 0)} revoked"),
        ("", "GET /api/v1/crl (no token; ?format=pem for PEM)"),
    ]
    return key_values(rows)


# -- the state directory and its lock ---------------------------------------------------------


class _LocalUnauthorized(AttestablesError):
    """A CA key passphrase problem: the code the daemon would give, but a local failure
    (exit 1), not a refused connection (exit 3)."""

    code: ClassVar[str] = "unauthorized"


def state_dir_of(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).expanduser() if args.state_dir else default_state_dir()


@contextlib.contextmanager
def state_dir_lock(state_dir: Path) -> Iterator[None]:
    """Hold the daemon's lock on ``STATE_DIR/daemon.pid``; :class:`Conflict` if a daemon holds it.

    The daemon takes ``flock(LOCK_EX | LOCK_NB)`` on that file for as long as it runs; we
    take the same lock, so neither can start while the other works on the directory.
    """
    if not state_dir.is_dir():
        state_dir.mkdir(mode=0o700, parents=True)
    path = state_dir / PID_FILE
    existed = path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise InvalidParams(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip()
            raise Conflict(
                f"a daemon (pid {pid or '?'}) is running on {state_dir}: stop it first "
                "(e.g. systemctl stop attestables), run this again, then start it",
                state_dir=str(state_dir),
            ) from None
        try:
            yield
        finally:
            if not existed:
                path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _passphrase(args: argparse.Namespace) -> bytes | None:
    from attestables.daemon.ca import read_passphrase

    if args.passphrase_file:
        return read_passphrase(file=args.passphrase_file)
    if args.passphrase_credential:
        return read_passphrase(credential=args.passphrase_credential)
    return None


@contextlib.contextmanager
def _passphrase_errors() -> Iterator[None]:
    from attestables.daemon.ca import PassphraseError

    try:
        yield
    except PassphraseError as exc:
        raise _LocalUnauthorized(f"{exc.message} (--passphrase-file or --passphrase-credential)") from None


def _read_input(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidParams(f"cannot read {what} {path}: {exc.strerror or exc}") from None


# -- ca csr -----------------------------------------------------------------------------------


def make_csr(args: argparse.Namespace) -> int:
    from attestables.daemon.ca import CAFiles, create_issuing_csr

    out = Output(json=args.json)
    state_dir = state_dir_of(args)
    passphrase = _passphrase(args)
    with state_dir_lock(state_dir), _passphrase_errors():
        pem = create_issuing_csr(
            state_dir / CA_SUBDIR,
            passphrase=passphrase,
            common_name=args.common_name,
            organization=args.organization or None,
        )
    kept = CAFiles.at(state_dir / CA_SUBDIR).issuing_csr
    if args.out is not None and args.out != "-":
        write_output_file(args.out, pem, out)
    if out.json:
        out.document({"csr_pem": pem.decode(), "path": str(kept), "out": args.out})
    elif args.out is None or args.out == "-":
        out.text(pem.decode())
    out.note(
        f"the request is also kept as {kept}. Have your CA sign it as a CA certificate "
        "(basicConstraints CA:TRUE, pathlen:0; keyUsage keyCertSign, cRLSign), then run: "
        f"attestables ca import CERT.pem --chain CHAIN.pem --state-dir {state_dir}"
    )
    return 0


# -- ca import --------------------------------------------------------------------------------


def import_certificate(args: argparse.Namespace) -> int:
    from attestables.daemon.ca import import_issuing_certificate

    out = Output(json=args.json)
    state_dir = state_dir_of(args)
    certificate = _read_input(args.certificate, "certificate")
    chain = _read_input(args.chain, "chain")
    passphrase = _passphrase(args)
    with state_dir_lock(state_dir), _passphrase_errors():
        ca = import_issuing_certificate(state_dir / CA_SUBDIR, certificate, chain, passphrase=passphrase)
    issuing = certificate_summary(ca.issuing_certificate)
    root = certificate_summary(ca.root_certificate)
    if out.json:
        out.document({
            "issuing": issuing,
            "root": root,
            "intermediates": [certificate_summary(c) for c in ca.chain[1:]],
            "root_pem_path": str(ca.files.root_cert),
            "restart_required": True,
        })
    else:
        rows: list[tuple[str, Any]] = [
            ("issuing CA", issuing["subject"]),
            ("  issued by", issuing["issuer"]),
            ("  fingerprint", issuing["fingerprint"]),
            ("root CA", root["subject"]),
            ("  fingerprint", root["fingerprint"]),
            ("  file", str(ca.files.root_cert)),
        ]
        out.lines(key_values(rows))
    out.note(
        "installed. Restart the daemon so that it issues under the new certificate "
        "(e.g. systemctl restart attestables); services must now trust the operator's root "
        f"({ca.files.root_cert})"
    )
    return 0
