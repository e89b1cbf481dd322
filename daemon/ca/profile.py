"""The certificate profiles, in one place: root CA, issuing CA, its CSR, run certificates.

Pure functions of keys, names and times; nothing here touches files. The run-certificate
path is the hot one (one per started run) and builds from constant extension objects.

Run certificate (see docs/attestation.md):
  X.509 v3, serial random positive 159 bits, signed ECDSA P-256 / SHA-256 by the issuing CA
  subject          CN = attestables run <run_id>
  subject key      the compartment's X25519 key (RFC 8410)
  basicConstraints CA:FALSE (critical)
  keyUsage         keyAgreement (critical)
  extKeyUsage      clientAuth
  subjectAltName   URI urn:attestables:run:<run_id>
  SKI / AKI
  2.25.29029789681239518142742138685501625029 (non-critical): the attestation document
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ...shared.attestation.extension import document_extension

ROOT_VALIDITY = timedelta(days=20 * 365)
ISSUING_VALIDITY = timedelta(days=5 * 365)
RUN_VALIDITY = timedelta(hours=24)
CRL_VALIDITY = timedelta(days=7)
# Run certificates start a little in the past so that a service whose clock is slightly
# behind the board's does not see a brand-new certificate as not yet valid.
BACKDATE = timedelta(seconds=60)
RUN_CN_PREFIX = "attestables run "
RUN_URI_PREFIX = "urn:attestables:run:"

_SHA256 = hashes.SHA256()
_LEAF_BASIC_CONSTRAINTS = x509.BasicConstraints(ca=False, path_length=None)
_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_LEAF_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def new_ca_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ca_name(common_name: str, organization: str | None = "attestables") -> x509.Name:
    attributes = []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_ski: x509.SubjectKeyIdentifier,
    path_length: int,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
    )


def root_certificate(
    key: ec.EllipticCurvePrivateKey, subject: x509.Name, *, now: datetime, validity: timedelta = ROOT_VALIDITY
) -> x509.Certificate:
    """A self-signed root allowing one intermediate (the issuing CA) below it."""
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return _ca_builder(subject, subject, key.public_key(), ski, 1, now, now + validity).sign(key, _SHA256)


def issuing_certificate(
    public_key: ec.EllipticCurvePublicKey,
    subject: x509.Name,
    root_key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    *,
    now: datetime,
    validity: timedelta = ISSUING_VALIDITY,
) -> x509.Certificate:
    """The issuing CA (pathlen 0: it signs run certificates only), within the root's validity."""
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    not_after = min(now + validity, root.not_valid_after_utc)
    return _ca_builder(subject, root.subject, public_key, root_ski, 0, now, not_after).sign(root_key, _SHA256)


def issuing_csr(key: ec.EllipticCurvePrivateKey, subject: x509.Name) -> x509.CertificateSigningRequest:
    """What the operator's CA is asked to sign: a CA certificate with pathlen 0."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _SHA256)
    )


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """AKI for certificates signed by ``issuer``: its own SKI when it has one (operator CAs
    may compute SKIs differently from us), else derived from its key."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]


def run_certificate(
    *,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    issuer_aki: x509.AuthorityKeyIdentifier,
    public_key: x25519.X25519PublicKey,
    run_id: str,
    document_json: bytes,
    not_before: datetime,
    not_after: datetime,
    serial: int | None = None,
) -> x509.Certificate:
    """Sign a run certificate. ``document_json`` is embedded as given (the caller checks it)."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, RUN_CN_PREFIX + run_id)]))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_LEAF_BASIC_CONSTRAINTS, critical=True)
        .add_extension(_LEAF_KEY_USAGE, critical=True)
        .add_extension(_LEAF_EKU, critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(RUN_URI_PREFIX + run_id)]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(issuer_aki, critical=False)
        .add_extension(document_extension(document_json), critical=False)
        .sign(issuer_key, _SHA256)
    )


def crl(
    *,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    issuer_aki: x509.AuthorityKeyIdentifier,
    revoked: dict[int, tuple[datetime, x509.ReasonFlags | None]],
    number: int,
    now: datetime,
    validity: timedelta = CRL_VALIDITY,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_name)
        .last_update(now)
        .next_update(now + validity)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(issuer_aki, critical=False)
    )
    for serial, (when, reason) in sorted(revoked.items()):
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if reason is not None and reason is not x509.ReasonFlags.unspecified:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer_key, _SHA256)
