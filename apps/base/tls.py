"""The service's own TLS certificate: self-signed ECDSA P-256, made on first start.

The launcher pins it (``tls.pem`` as the only trusted certificate, or its SHA-256
fingerprint), so no public CA is involved. Names: ``localhost``, ``127.0.0.1``, ``::1``
and the listen host when it is a specific one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .config import is_ip
from ...shared.files import write_private, write_public
from .files import read_private

log = logging.getLogger(__name__)

VALIDITY = dt.timedelta(days=730)
RENEW_BEFORE = dt.timedelta(days=7)
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "*")


def fingerprint(pem: bytes) -> str:
    """SHA-256 of the certificate's DER, lowercase hex (what ``aiohttp.Fingerprint`` pins)."""
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    if host not in _WILDCARD_HOSTS and host not in ("localhost", "127.0.0.1", "::1"):
        names.append(x509.IPAddress(ipaddress.ip_address(host)) if is_ip(host) else x509.DNSName(host))
    return names


def create_certificate(cert_path: Path, key_path: Path, *, common_name: str, host: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # Key first: a crash leaves a key without a certificate, which the next start replaces.
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def ensure_certificate(cert_path: Path, key_path: Path, *, common_name: str, host: str) -> str:
    """Make the certificate unless a usable one exists; returns its fingerprint.

    A certificate about to expire is replaced (with a warning: the launcher must pin the
    new one)."""
    if cert_path.exists() and key_path.exists():
        read_private(key_path)  # refuses a key that others can read
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > RENEW_BEFORE:
            return fingerprint(cert_path.read_bytes())
        log.warning("the TLS certificate %s expires at %s: making a new one (pin it again in the launcher)",
                    cert_path, cert.not_valid_after_utc.isoformat())
    create_certificate(cert_path, key_path, common_name=common_name, host=host)
    return fingerprint(cert_path.read_bytes())


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
