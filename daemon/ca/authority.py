"""The launcher's certificate authority: create or load, issue run certificates, revoke.

Two ways to get an issuing CA:

- ``CertificateAuthority.create`` (or ``open`` on an empty directory): a self-signed root
  and an issuing CA, both ECDSA P-256;
- the operator's own CA: ``create_issuing_csr`` writes ``issuing.csr`` for the operator to
  sign, and ``import_issuing_certificate`` installs the signed certificate after checking
  it against the issuing key and the operator's chain.

The issuing key is loaded once and kept in memory; issuing a certificate never reads a
file. The root key is never loaded after creation (it could live offline).

Revocation state is the CRL itself (``crl.der``): it lists every revoked serial, is
re-signed on each revocation, and is reloaded (signature checked) at start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from ...shared.attestation.document import AttestationDocument, parse_document
from ...shared.attestation.keys import jwk_thumbprint_x25519, x25519_public_bytes
from ...shared.errors import Conflict, InvalidParams, NotFound, Tampered, Unauthorized
from ...shared.verifier.chain import AnchorSet, build_path, is_self_signed
from . import profile
from ...shared.files import fsync_directory, write_private, write_public
from .files import CAFiles, ensure_directory, read_private

log = logging.getLogger(__name__)

_DER = serialization.Encoding.DER
_PEM = serialization.Encoding.PEM
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
REVOCATION_REASONS: Mapping[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key_compromise": x509.ReasonFlags.key_compromise,
    "ca_compromise": x509.ReasonFlags.ca_compromise,
    "affiliation_changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
    "privilege_withdrawn": x509.ReasonFlags.privilege_withdrawn,
}


class PassphraseError(Unauthorized):
    """A CA key is encrypted and the passphrase is missing or wrong."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serial_hex(serial: int) -> str:
    """How serials are written everywhere in attestables: lowercase hex, no separators."""
    return f"{serial:x}"


def parse_serial(serial: str | int) -> int:
    if isinstance(serial, int) and not isinstance(serial, bool):
        value = serial
    elif isinstance(serial, str):
        text = serial.strip().lower().replace(":", "")
        if text.startswith("0x"):
            text = text[2:]
        try:
            value = int(text, 16)
        except ValueError:
            raise InvalidParams(f"serial {serial!r} is not hexadecimal") from None
    else:
        raise InvalidParams(f"serial must be hex text or an integer, got {type(serial).__name__}")
    if value <= 0 or value.bit_length() > 160:
        raise InvalidParams("serial out of range (1 .. 2**160-1)")
    return value


def _encryption(passphrase: bytes | None) -> serialization.KeySerializationEncryption:
    if passphrase:
        return serialization.BestAvailableEncryption(passphrase)
    return serialization.NoEncryption()


def _key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None) -> bytes:
    return key.private_bytes(_PEM, serialization.PrivateFormat.PKCS8, _encryption(passphrase))


def load_key(path: Path, passphrase: bytes | None) -> ec.EllipticCurvePrivateKey:
    """A CA private key; :class:`PassphraseError` when encrypted and the passphrase is missing or wrong."""
    data = read_private(path)
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise PassphraseError(
                f"{path} is encrypted: give the passphrase (a file or the systemd credential)"
            ) from None
        # A passphrase was given but the key is not encrypted: use it, but say so.
        log.warning("%s is not encrypted although a passphrase was given (%s)", path, exc)
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError:
        if passphrase is not None:
            raise PassphraseError(f"{path}: wrong passphrase (or the key file is damaged)") from None
        raise Tampered(f"{path} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise Tampered(f"{path} is not an EC key")
    return key


def _load_cert_bundle(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise Tampered(f"{path} is not a PEM certificate file") from None
    return certs


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(_PEM) for c in certs)


def _same_key(a: object, b: object) -> bool:
    return a.public_bytes(_DER, serialization.PublicFormat.SubjectPublicKeyInfo) == b.public_bytes(  # type: ignore[attr-defined]
        _DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """What the daemon must record for one issued run certificate."""

    run_id: str
    serial: str  # lowercase hex
    fingerprint: str  # sha256 of the DER, hex
    not_before: datetime
    not_after: datetime
    pem: bytes
    der: bytes
    document: bytes  # the canonical JSON carried in the certificate
    certificate: x509.Certificate


@dataclass(frozen=True, slots=True)
class Revocation:
    serial: str
    revoked_at: datetime
    reason: str


class CertificateAuthority:
    """An issuing CA held in memory, with its files under one directory (:class:`CAFiles`)."""

    def __init__(
        self,
        *,
        files: CAFiles,
        issuing_key: ec.EllipticCurvePrivateKey,
        chain: list[x509.Certificate],
        root: x509.Certificate,
        clock: Callable[[], datetime] = _utcnow,
        run_validity: timedelta = profile.RUN_VALIDITY,
        crl_validity: timedelta = profile.CRL_VALIDITY,
    ) -> None:
        """Use :meth:`open`, :meth:`create` or :meth:`load`."""
        self.files = files
        self._key = issuing_key
        self._chain = tuple(chain)
        self._chain_pem = _pem(*self._chain)  # sent with every certificate, every request
        self._root = root
        self._clock = clock
        self.run_validity = run_validity
        self.crl_validity = crl_validity
        issuing = chain[0]
        self._issuer_name = issuing.subject
        self._aki = profile.authority_key_identifier(issuing)
        self._issuing_not_after = issuing.not_valid_after_utc
        self._issuing_fp = _sha256_hex(issuing.public_bytes(_DER))
        self._root_fp = _sha256_hex(root.public_bytes(_DER))
        self._lock = threading.Lock()
        self._revoked: dict[int, tuple[datetime, x509.ReasonFlags | None]] = {}
        self._crl_number = 0
        self._crl: x509.CertificateRevocationList | None = None
        self._crl_der = b""

    # Construction ------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        passphrase: bytes | None = None,
        name: str | None = None,
        organization: str | None = "attestables",
        clock: Callable[[], datetime] = _utcnow,
        run_validity: timedelta = profile.RUN_VALIDITY,
        crl_validity: timedelta = profile.CRL_VALIDITY,
    ) -> CertificateAuthority:
        """Load the CA in ``directory``, creating a root and an issuing CA on first start
        (``name`` and ``organization`` only matter then)."""
        files = CAFiles.at(directory)
        if not any(p.exists() for p in (files.issuing_key, files.issuing_cert, files.root_cert)):
            return cls.create(
                directory,
                passphrase=passphrase,
                name=name,
                organization=organization,
                clock=clock,
                run_validity=run_validity,
                crl_validity=crl_validity,
            )
        return cls.load(
            directory, passphrase=passphrase, clock=clock, run_validity=run_validity, crl_validity=crl_validity
        )

    @classmethod
    def create(
        cls,
        directory: str | Path,
        *,
        passphrase: bytes | None = None,
        name: str | None = None,
        organization: str | None = "attestables",
        clock: Callable[[], datetime] = _utcnow,
        root_validity: timedelta = profile.ROOT_VALIDITY,
        issuing_validity: timedelta = profile.ISSUING_VALIDITY,
        run_validity: timedelta = profile.RUN_VALIDITY,
        crl_validity: timedelta = profile.CRL_VALIDITY,
    ) -> CertificateAuthority:
        """A new self-signed root and issuing CA. ``name`` tells this launcher's CAs apart
        from others' (default: a random tag); keys are encrypted when a passphrase is given."""
        files = CAFiles.at(directory)
        ensure_directory(files.directory)
        for path in (files.root_cert, files.root_key, files.issuing_cert, files.issuing_key):
            if path.exists():
                raise Conflict(f"{path} already exists: the CA is already set up", path=str(path))
        tag = name or secrets.token_hex(4)
        now = clock().replace(microsecond=0)
        root_key = profile.new_ca_key()
        issuing_key = profile.new_ca_key()
        root = profile.root_certificate(
            root_key, profile.ca_name(f"attestables root CA {tag}", organization), now=now, validity=root_validity
        )
        issuing = profile.issuing_certificate(
            issuing_key.public_key(),
            profile.ca_name(f"attestables issuing CA {tag}", organization),
            root_key,
            root,
            now=now,
            validity=issuing_validity,
        )
        # Keys first: a crash leaves keys without certificates (create refuses to run
        # again, loudly) rather than certificates whose keys are lost.
        write_private(files.root_key, _key_pem(root_key, passphrase))
        write_private(files.issuing_key, _key_pem(issuing_key, passphrase))
        write_public(files.root_cert, _pem(root))
        write_public(files.issuing_cert, _pem(issuing))
        ca = cls(
            files=files,
            issuing_key=issuing_key,
            chain=[issuing],
            root=root,
            clock=clock,
            run_validity=run_validity,
            crl_validity=crl_validity,
        )
        with ca._lock:
            ca._write_crl(now)
        return ca

    @classmethod
    def load(
        cls,
        directory: str | Path,
        *,
        passphrase: bytes | None = None,
        clock: Callable[[], datetime] = _utcnow,
        run_validity: timedelta = profile.RUN_VALIDITY,
        crl_validity: timedelta = profile.CRL_VALIDITY,
    ) -> CertificateAuthority:
        """Load an existing CA; checks that key, certificates and CRL belong together."""
        files = CAFiles.at(directory)
        if files.issuing_key.exists() and not files.issuing_cert.exists():
            if files.issuing_csr.exists():
                raise Conflict(
                    f"{files.issuing_cert} is missing: the issuing CSR awaits the operator's signature (ca import)"
                )
            raise Conflict(
                f"{files.directory} holds an issuing key but no certificate (interrupted set-up?); "
                "move the directory away to start again"
            )
        chain = _load_cert_bundle(files.issuing_cert)
        roots = _load_cert_bundle(files.root_cert)
        if len(roots) != 1:
            raise Tampered(f"{files.root_cert} must hold exactly one certificate")
        root = roots[0]
        key = load_key(files.issuing_key, passphrase)
        if not _same_key(key.public_key(), chain[0].public_key()):
            raise Tampered(f"{files.issuing_key} does not belong to the certificate in {files.issuing_cert}")
        path = build_path(chain[0], chain[1:], AnchorSet([root]))
        if not path.found or path.reasons:
            why = "; ".join(r.message for r in path.reasons) or "no path"
            raise Tampered(f"{files.issuing_cert} does not chain to {files.root_cert}: {why}")
        ca = cls(
            files=files,
            issuing_key=key,
            chain=chain,
            root=root,
            clock=clock,
            run_validity=run_validity,
            crl_validity=crl_validity,
        )
        ca._load_crl()
        return ca

    def _load_crl(self) -> None:
        now = self._clock().replace(microsecond=0)
        with self._lock:
            if not self.files.crl.exists():
                self._write_crl(now)
                return
            try:
                crl = x509.load_der_x509_crl(self.files.crl.read_bytes())
            except ValueError:
                raise Tampered(f"{self.files.crl} is not a DER CRL") from None
            if not crl.is_signature_valid(self._key.public_key()):
                raise Tampered(f"{self.files.crl} is not signed by the issuing CA key")
            for entry in crl:
                try:
                    reason: x509.ReasonFlags | None = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
                except x509.ExtensionNotFound:
                    reason = None
                self._revoked[entry.serial_number] = (entry.revocation_date_utc, reason)
            try:
                self._crl_number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            except x509.ExtensionNotFound:
                self._crl_number = 0
            next_update = crl.next_update_utc
            if crl.issuer != self._issuer_name or next_update is None or self._due(crl, now):
                self._write_crl(now)  # new issuing certificate (ca import) or close to expiry
            else:
                self._crl = crl
                self._crl_der = crl.public_bytes(_DER)

    # Properties --------------------------------------------------------------------

    @property
    def issuing_certificate(self) -> x509.Certificate:
        return self._chain[0]

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The issuing CA and any operator intermediates, leaf-first (root excluded)."""
        return self._chain

    @property
    def root_certificate(self) -> x509.Certificate:
        return self._root

    @property
    def issuing_fingerprint(self) -> str:
        """SHA-256 of the issuing CA certificate's DER (``launcher.issuing_ca_fingerprint``)."""
        return self._issuing_fp

    @property
    def root_fingerprint(self) -> str:
        return self._root_fp

    @property
    def operator_root(self) -> bool:
        """True when the root is the operator's (no root key here)."""
        return not self.files.root_key.exists()

    def chain_pem(self) -> bytes:
        """What travels with a run certificate: the issuing CA (and operator intermediates)."""
        return self._chain_pem

    def root_pem(self) -> bytes:
        """What a service trusts."""
        return _pem(self._root)

    # Issuing -----------------------------------------------------------------------

    def issue_run_certificate(
        self,
        *,
        public_key: bytes | x25519.X25519PublicKey,
        run_id: str,
        document: AttestationDocument | bytes,
        validity: timedelta | None = None,
        now: datetime | None = None,
    ) -> IssuedCertificate:
        """Certify a run's X25519 key (32 raw bytes) with its attestation document.

        The document must be for this run, this key (``cnf``) and this issuing CA; bytes
        must already be canonical. Nothing is read from disk.
        """
        raw = x25519_public_bytes(public_key)
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise InvalidParams(f"run id {run_id!r} must match {_RUN_ID.pattern}")
        if isinstance(document, AttestationDocument):
            doc = document
            document_json = doc.to_canonical_json()
        else:
            document_json = bytes(document)
            doc = parse_document(document_json)
        if doc.cnf.jkt != jwk_thumbprint_x25519(raw):
            raise InvalidParams("the attestation document's cnf is not the thumbprint of this public key")
        if doc.run.run_id != run_id:
            raise InvalidParams(f"the attestation document is for run {doc.run.run_id}, not {run_id}")
        if doc.launcher.issuing_ca_fingerprint != self._issuing_fp:
            raise InvalidParams("the attestation document names another issuing CA")
        lifetime = validity if validity is not None else self.run_validity
        if lifetime <= timedelta(0):
            raise InvalidParams("a certificate's validity must be positive")
        at = now or self._clock()
        if at >= self._issuing_not_after:
            raise Conflict("the issuing CA certificate has expired; renew it before issuing")
        not_before = (at - profile.BACKDATE).replace(microsecond=0)
        not_after = min(at + lifetime, self._issuing_not_after).replace(microsecond=0)
        cert = profile.run_certificate(
            issuer_key=self._key,
            issuer_name=self._issuer_name,
            issuer_aki=self._aki,
            public_key=x25519.X25519PublicKey.from_public_bytes(raw),
            run_id=run_id,
            document_json=document_json,
            not_before=not_before,
            not_after=not_after,
        )
        der = cert.public_bytes(_DER)
        return IssuedCertificate(
            run_id=run_id,
            serial=serial_hex(cert.serial_number),
            fingerprint=_sha256_hex(der),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            pem=cert.public_bytes(_PEM),
            der=der,
            document=document_json,
            certificate=cert,
        )

    # Revocation --------------------------------------------------------------------

    def revoke(self, serial: str | int, reason: str = "unspecified", *, now: datetime | None = None) -> bytes:
        """Revoke a certificate by serial and publish a new CRL; returns the CRL (DER).

        :class:`Conflict` if already revoked; :class:`InvalidParams` for an unknown reason
        (one of ``REVOCATION_REASONS``).
        """
        value = parse_serial(serial)
        flag = REVOCATION_REASONS.get(reason)
        if flag is None:
            raise InvalidParams(f"unknown revocation reason {reason!r}; one of: {', '.join(REVOCATION_REASONS)}")
        at = (now or self._clock()).replace(microsecond=0)
        with self._lock:
            if value in self._revoked:
                raise Conflict(f"certificate {serial_hex(value)} is already revoked")
            self._revoked[value] = (at, flag)
            try:
                self._write_crl(at)
            except BaseException:
                del self._revoked[value]
                raise
            return self._crl_der

    def forget(self, serials: Iterable[str | int], *, now: datetime | None = None) -> int:
        """Drop revoked certificates from the CRL and publish it again; returns how many.

        For certificates past their notAfter that a CRL issued after it already listed
        (RFC 5280 5.3.3 allows removing them then): a verifier refuses them as expired
        anyway, and without this the CRL would grow by one entry per run for ever.
        """
        values = {parse_serial(s) for s in serials}
        at = (now or self._clock()).replace(microsecond=0)
        with self._lock:
            gone = {v: self._revoked.pop(v) for v in values if v in self._revoked}
            if gone:
                try:
                    self._write_crl(at)
                except BaseException:
                    self._revoked.update(gone)
                    raise
            return len(gone)

    def is_revoked(self, serial: str | int) -> bool:
        return parse_serial(serial) in self._revoked

    def revocations(self) -> list[Revocation]:
        return [
            Revocation(serial_hex(s), when, (reason.name if reason is not None else "unspecified"))
            for s, (when, reason) in sorted(self._revoked.items())
        ]

    def refresh_crl(self, *, now: datetime | None = None, force: bool = False) -> bool:
        """Re-sign the CRL when half its validity has passed (or ``force``); returns whether it did.

        The daemon calls this from a timer (hourly is plenty) so the CRL never goes stale.
        """
        at = (now or self._clock()).replace(microsecond=0)
        with self._lock:
            if not force and self._crl is not None and not self._due(self._crl, at):
                return False
            self._write_crl(at)
            return True

    def _due(self, crl: x509.CertificateRevocationList, now: datetime) -> bool:
        next_update = crl.next_update_utc
        if next_update is None:
            return True
        half = crl.last_update_utc + (next_update - crl.last_update_utc) / 2
        return now >= half

    def _write_crl(self, now: datetime) -> None:
        # Callers hold self._lock.
        number = self._crl_number + 1
        crl = profile.crl(
            issuer_key=self._key,
            issuer_name=self._issuer_name,
            issuer_aki=self._aki,
            revoked=self._revoked,
            number=number,
            now=now.replace(microsecond=0),
            validity=self.crl_validity,
        )
        der = crl.public_bytes(_DER)
        write_public(self.files.crl, der)
        self._crl, self._crl_der, self._crl_number = crl, der, number

    @property
    def crl(self) -> x509.CertificateRevocationList:
        assert self._crl is not None
        return self._crl

    def crl_der(self) -> bytes:
        return self._crl_der

    def crl_pem(self) -> bytes:
        return self.crl.public_bytes(_PEM)

    @property
    def crl_next_update(self) -> datetime:
        next_update = self.crl.next_update_utc
        assert next_update is not None
        return next_update


# The operator's own CA ---------------------------------------------------------------


def create_issuing_csr(
    directory: str | Path,
    *,
    passphrase: bytes | None = None,
    common_name: str | None = None,
    organization: str | None = "attestables",
) -> bytes:
    """Write ``issuing.csr`` (PEM) for the operator's CA to sign, and return it.

    Creates ``issuing.key`` (0600, encrypted with the passphrase if given) unless it exists,
    in which case the CSR is for the existing key.
    """
    files = CAFiles.at(directory)
    ensure_directory(files.directory)
    if files.issuing_key.exists():
        key = load_key(files.issuing_key, passphrase)
    else:
        key = profile.new_ca_key()
        write_private(files.issuing_key, _key_pem(key, passphrase))
    name = profile.ca_name(common_name or f"attestables issuing CA {secrets.token_hex(4)}", organization)
    csr = profile.issuing_csr(key, name)
    pem = csr.public_bytes(_PEM)
    write_public(files.issuing_csr, pem)
    return pem


def _load_any_certs(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise InvalidParams(f"{what}: not a PEM or DER certificate") from None


def import_issuing_certificate(
    directory: str | Path,
    certificate: bytes,
    chain: bytes,
    *,
    passphrase: bytes | None = None,
    now: datetime | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> CertificateAuthority:
    """Install the operator-signed issuing CA certificate, then load the CA.

    ``chain`` is the operator's chain up to and including its root (PEM). Checks: the
    certificate's key is the issuing key; it is a CA with a pathLenConstraint and keyUsage
    keyCertSign + cRLSign; it chains, signatures verified, to the self-signed root in
    ``chain``; every certificate on the path is valid now. On success ``issuing.pem``
    (certificate + intermediates) and ``root.pem`` are replaced and a root key of our own,
    if any, is set aside as ``root.key.retired-<time>``. :class:`InvalidParams` otherwise.
    """
    files = CAFiles.at(directory)
    at = now or clock()
    (cert, *extra) = _load_any_certs(certificate, "certificate")
    if extra:
        raise InvalidParams("certificate: give the issuing CA certificate alone; its parents go in the chain")
    parents = _load_any_certs(chain, "chain")
    key = load_key(files.issuing_key, passphrase)
    if not _same_key(cert.public_key(), key.public_key()):
        raise InvalidParams("the certificate's public key is not this launcher's issuing key")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise InvalidParams("the certificate has no basicConstraints: it is not a CA certificate") from None
    if not bc.ca:
        raise InvalidParams("the certificate is not a CA certificate (basicConstraints cA is false)")
    if bc.path_length is None:
        raise InvalidParams("the certificate has no pathLenConstraint (expected pathlen 0)")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise InvalidParams("the certificate has no keyUsage (keyCertSign and cRLSign needed)") from None
    if not (ku.key_cert_sign and ku.crl_sign):
        raise InvalidParams("the certificate's keyUsage must include keyCertSign and cRLSign")
    roots = [c for c in parents if is_self_signed(c)]
    if not roots:
        raise InvalidParams("the chain holds no self-signed root certificate")
    intermediates = [c for c in parents if c not in roots]
    path = build_path(cert, intermediates, AnchorSet(roots))
    if not path.found or path.reasons:
        why = "; ".join(r.message for r in path.reasons) or "no path"
        raise InvalidParams(f"the certificate does not chain to the given root: {why}")
    ts = at.timestamp()
    if ts < path.not_before:
        raise InvalidParams("a certificate on the path is not valid yet")
    if ts > path.not_after:
        raise InvalidParams("a certificate on the path has expired")

    write_public(files.issuing_cert, _pem(*path.path[:-1]))
    write_public(files.root_cert, _pem(path.path[-1]))
    if files.root_key.exists():
        retired = files.root_key.with_name(f"root.key.retired-{at.strftime('%Y%m%dT%H%M%SZ')}")
        os.replace(files.root_key, retired)
        fsync_directory(files.directory)
        log.warning("the root is now the operator's; our own root key was moved to %s", retired)
    return CertificateAuthority.load(files.directory, passphrase=passphrase, clock=clock)
