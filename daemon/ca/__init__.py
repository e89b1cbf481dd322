"""The launcher's certificate authority: root and issuing CA, run certificates, CRL.

    ca = CertificateAuthority.open(state_dir / "ca", passphrase=read_passphrase(credential="ca-passphrase"))
    issued = ca.issue_run_certificate(public_key=raw_x25519, run_id=run_id, document=document)
    ca.revoke(issued.serial, "key_compromise"); crl = ca.crl_der()

See docs/attestation.md for the certificate profile and the file layout.
"""

from .authority import (
    REVOCATION_REASONS,
    CertificateAuthority,
    IssuedCertificate,
    PassphraseError,
    Revocation,
    create_issuing_csr,
    import_issuing_certificate,
    load_key,
    parse_serial,
    serial_hex,
)
from ...shared.files import write_atomic
from .files import CAFiles, read_passphrase
from .profile import BACKDATE, CRL_VALIDITY, ISSUING_VALIDITY, ROOT_VALIDITY, RUN_VALIDITY

__all__ = [
    "BACKDATE",
    "CRL_VALIDITY",
    "ISSUING_VALIDITY",
    "REVOCATION_REASONS",
    "ROOT_VALIDITY",
    "RUN_VALIDITY",
    "CAFiles",
    "CertificateAuthority",
    "IssuedCertificate",
    "PassphraseError",
    "Revocation",
    "create_issuing_csr",
    "import_issuing_certificate",
    "load_key",
    "parse_serial",
    "read_passphrase",
    "serial_hex",
    "write_atomic",
]
