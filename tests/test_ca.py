"""The launcher's CA: files and modes, the run-certificate profile (checked by the real
openssl CLI), passphrases, revocation and CRL, the operator's own CA (CSR + import)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import statistics
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from attestables.daemon.ca import (
    CAFiles,
    CertificateAuthority,
    PassphraseError,
    create_issuing_csr,
    import_issuing_certificate,
    parse_serial,
    read_passphrase,
    write_atomic,
)
from attestables.daemon.ca import profile
from attestables.shared.attestation import (
    ATTESTATION_DOCUMENT_OID,
    AttestationDocument,
    Compartment,
    Elf,
    Isolation,
    Launcher,
    Measurement,
    Platform,
    Run,
    Toolchain,
    compute_ueid,
    decode_octet_string,
    extract_document,
    jwk_thumbprint_x25519,
    x25519_public_bytes,
)
from attestables.shared.errors import Conflict, InvalidParams, NotFound, Tampered
from attestables.shared.verifier import Verifier, policy_for_build

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")
UTC = dt.timezone.utc
ELF = "e" * 64


def new_raw_key() -> bytes:
    return x25519_public_bytes(x25519.X25519PrivateKey.generate().public_key())


def document_for(ca: CertificateAuthority, raw: bytes, run_id: str = "run-1", **overrides) -> AttestationDocument:
    fields = dict(
        public_key=raw,
        run=Run(run_id=run_id, build_id="build-1", pid=77, started_at="2025-01-02T03:04:05.000Z"),
        measurements=[Measurement(type="elf-sha256", digest=ELF)],
        toolchain=Toolchain(name="native", compiler="cc", version="12", argv=["cc", "x.c"]),
        elf=Elf(machine="x86_64", purecap=False, interpreter=None),
        platform=Platform(
            os="Linux", release="6.1", machine="x86_64", cpu_model="", cpu_count=2, memory_bytes=1 << 30, cheri=False
        ),
        compartment=Compartment(
            backend="bwrap", isolation=Isolation(network="none", filesystem="readonly", rlimits={}), evidence={}
        ),
        swname="prog",
        swversion="1",
        launcher=Launcher(version="0.1.0", issuing_ca_fingerprint=ca.issuing_fingerprint),
        ueid=compute_ueid("machine"),
        hwmodel="generic x86_64",
        dbgstat="enabled",
    )
    fields.update(overrides)
    return AttestationDocument.create(**fields)


def issue(ca: CertificateAuthority, run_id: str = "run-1", **kwargs):
    raw = new_raw_key()
    return ca.issue_run_certificate(public_key=raw, run_id=run_id, document=document_for(ca, raw, run_id), **kwargs)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, cwd=cwd, timeout=30, check=False)


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("state") / "ca", name="test")


# Creation and files -----------------------------------------------------------------


def test_first_start_creates_root_and_issuing_ca_with_private_keys(tmp_path):
    directory = tmp_path / "state" / "ca"
    old_umask = os.umask(0)  # the modes must not depend on the caller's umask
    try:
        ca = CertificateAuthority.open(directory)
    finally:
        os.umask(old_umask)
    files = CAFiles.at(directory)
    for path in (files.root_cert, files.root_key, files.issuing_cert, files.issuing_key, files.crl):
        assert path.exists(), path
    assert mode(files.root_key) == 0o600
    assert mode(files.issuing_key) == 0o600
    assert mode(files.root_cert) == 0o644
    assert mode(directory) == 0o700
    assert not [p for p in directory.iterdir() if p.name.startswith(".")]  # no temp files left

    root, issuing = ca.root_certificate, ca.issuing_certificate
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"
    assert root.issuer == root.subject
    issuing.verify_directly_issued_by(root)
    root_bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    issuing_bc = issuing.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_bc.critical and root_bc.value.ca and root_bc.value.path_length == 1
    assert issuing_bc.critical and issuing_bc.value.ca and issuing_bc.value.path_length == 0
    ku = issuing.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ca.operator_root

    again = CertificateAuthority.open(directory)  # second start loads, never re-creates
    assert again.issuing_fingerprint == ca.issuing_fingerprint
    assert again.root_fingerprint == ca.root_fingerprint
    with pytest.raises(Conflict, match="already"):
        CertificateAuthority.create(directory)


def test_write_atomic_sets_exact_mode_and_replaces(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    os.chmod(target, 0o666)
    write_atomic(target, b"new", 0o600)
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_key_readable_by_others_is_refused(tmp_path):
    directory = tmp_path / "ca"
    CertificateAuthority.create(directory)
    os.chmod(directory / "issuing.key", 0o644)
    with pytest.raises(Conflict, match="chmod 600"):
        CertificateAuthority.load(directory)


def test_mismatched_key_and_certificate_are_tampering(tmp_path):
    one, other = tmp_path / "one", tmp_path / "other"
    CertificateAuthority.create(one)
    CertificateAuthority.create(other)
    shutil.copy(other / "issuing.pem", one / "issuing.pem")
    with pytest.raises(Tampered, match="does not belong"):
        CertificateAuthority.load(one)


def test_missing_ca_is_not_found(tmp_path):
    with pytest.raises(NotFound):
        CertificateAuthority.load(tmp_path / "nothing")


def test_interrupted_set_up_is_reported_not_papered_over(tmp_path):
    directory = tmp_path / "ca"
    CertificateAuthority.create(directory)
    (directory / "issuing.pem").unlink()  # as if the creation had crashed before writing it
    with pytest.raises(Conflict, match="interrupted"):
        CertificateAuthority.open(directory)


# Passphrases ------------------------------------------------------------------------


def test_encrypted_keys_load_with_the_passphrase_and_fail_clearly_without(tmp_path):
    directory = tmp_path / "ca"
    ca = CertificateAuthority.create(directory, passphrase=b"correct horse battery staple")
    for name in ("root.key", "issuing.key"):
        assert (directory / name).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = CertificateAuthority.load(directory, passphrase=b"correct horse battery staple")
    assert loaded.issuing_fingerprint == ca.issuing_fingerprint
    assert issue(loaded).certificate.verify_directly_issued_by(ca.issuing_certificate) is None
    with pytest.raises(PassphraseError, match="encrypted"):
        CertificateAuthority.load(directory)
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        CertificateAuthority.load(directory, passphrase=b"wrong")
    assert PassphraseError.code == "unauthorized"


def test_passphrase_from_file_and_systemd_credential(tmp_path):
    secret = tmp_path / "pass"
    secret.write_bytes(b"s3cret\n")
    assert read_passphrase(file=secret) == b"s3cret"
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ca-passphrase").write_bytes(b"from-systemd")
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert read_passphrase(credential="ca-passphrase", environ=env) == b"from-systemd"
    with pytest.raises(NotFound, match="CREDENTIALS_DIRECTORY"):
        read_passphrase(credential="ca-passphrase", environ={})
    with pytest.raises(NotFound):
        read_passphrase(credential="absent", environ=env)
    with pytest.raises(InvalidParams):
        read_passphrase(credential="../pass", environ=env)
    with pytest.raises(InvalidParams):
        read_passphrase()
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(InvalidParams, match="empty"):
        read_passphrase(file=tmp_path / "empty")


# The run certificate ----------------------------------------------------------------


def test_run_certificate_profile(ca):
    raw = new_raw_key()
    doc = document_for(ca, raw, "run-42")
    before = dt.datetime.now(UTC).replace(microsecond=0)
    issued = ca.issue_run_certificate(public_key=raw, run_id="run-42", document=doc)
    cert = issued.certificate

    assert cert.version == x509.Version.v3
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "attestables run run-42"
    assert cert.issuer == ca.issuing_certificate.subject
    assert x25519_public_bytes(cert.public_key()) == raw  # RFC 8410 subject key
    assert 0 < cert.serial_number < 2**159
    assert issued.serial == f"{cert.serial_number:x}"
    assert parse_serial(issued.serial) == cert.serial_number
    assert issued.fingerprint == cert.fingerprint(hashes.SHA256()).hex()
    assert issued.der == cert.public_bytes(serialization.Encoding.DER)
    assert issued.pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert issued.not_after - issued.not_before == dt.timedelta(hours=24) + profile.BACKDATE
    assert issued.not_before <= before

    ext = cert.extensions
    bc = ext.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical and bc.value.ca is False
    ku = ext.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert ku.critical and ku.value.key_agreement and not ku.value.digital_signature
    eku = ext.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    san = ext.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:attestables:run:run-42"]
    ski = ext.get_extension_for_oid(ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = ext.get_extension_for_oid(ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    issuing_ski = ca.issuing_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuing_ski.digest

    attestation = ext.get_extension_for_oid(ATTESTATION_DOCUMENT_OID)
    assert attestation.critical is False
    assert attestation.value.value[0] == 0x04  # DER OCTET STRING ...
    assert decode_octet_string(attestation.value.value) == issued.document  # ... wrapping the JSON
    assert issued.document == doc.to_canonical_json()
    assert extract_document(cert) == doc
    assert doc.cnf.jkt == jwk_thumbprint_x25519(raw)


def test_validity_is_configurable_and_capped_by_the_issuing_ca(ca):
    issued = issue(ca, validity=dt.timedelta(hours=1))
    assert issued.not_after - issued.not_before == dt.timedelta(hours=1) + profile.BACKDATE
    capped = issue(ca, validity=dt.timedelta(days=365 * 30))
    assert capped.not_after == ca.issuing_certificate.not_valid_after_utc


@needs_openssl
def test_openssl_verifies_and_prints_the_run_certificate(ca, tmp_path):
    issued = issue(ca, "run-openssl")
    (tmp_path / "run.pem").write_bytes(issued.pem)
    files = ca.files
    ok = openssl(
        "verify", "-x509_strict", "-purpose", "sslclient",
        "-CAfile", str(files.root_cert), "-untrusted", str(files.issuing_cert), str(tmp_path / "run.pem"),
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith(": OK")

    text = openssl("x509", "-text", "-noout", "-in", str(tmp_path / "run.pem"))
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert "X25519" in out
    assert "Key Agreement" in out and "TLS Web Client Authentication" in out
    assert "URI:urn:attestables:run:run-openssl" in out
    assert ATTESTATION_DOCUMENT_OID.dotted_string + ":" in out
    assert '"eat_profile":"urn:attestables:eat-profile:1"' in out

    # The same openssl refuses a certificate from another CA: the check above is not vacuous.
    other = CertificateAuthority.create(tmp_path / "other")
    (tmp_path / "foreign.pem").write_bytes(issue(other).pem)
    bad = openssl(
        "verify", "-CAfile", str(files.root_cert), "-untrusted", str(files.issuing_cert), str(tmp_path / "foreign.pem")
    )
    assert bad.returncode != 0


def test_issuance_is_fast(ca):
    raw = new_raw_key()
    doc = document_for(ca, raw, "run-fast")
    timings = []
    for _ in range(60):
        start = time.perf_counter()
        ca.issue_run_certificate(public_key=raw, run_id="run-fast", document=doc)
        timings.append(time.perf_counter() - start)
    assert statistics.median(timings) <= 0.005  # the goal: <= 5 ms from key to certificate


def test_issuance_refuses_a_document_for_another_key_run_or_ca(ca, tmp_path):
    raw, other = new_raw_key(), new_raw_key()
    with pytest.raises(InvalidParams, match="cnf"):
        ca.issue_run_certificate(public_key=raw, run_id="run-1", document=document_for(ca, other))
    with pytest.raises(InvalidParams, match="for run"):
        ca.issue_run_certificate(public_key=raw, run_id="run-2", document=document_for(ca, raw, "run-1"))
    foreign = CertificateAuthority.create(tmp_path / "foreign")
    with pytest.raises(InvalidParams, match="another issuing CA"):
        ca.issue_run_certificate(public_key=raw, run_id="run-1", document=document_for(foreign, raw))
    with pytest.raises(InvalidParams, match="run id"):
        ca.issue_run_certificate(public_key=raw, run_id="bad id", document=document_for(ca, raw))
    with pytest.raises(InvalidParams, match="32 bytes"):
        ca.issue_run_certificate(public_key=raw[:31], run_id="run-1", document=document_for(ca, raw))
    with pytest.raises(InvalidParams, match="positive"):
        ca.issue_run_certificate(
            public_key=raw, run_id="run-1", document=document_for(ca, raw), validity=dt.timedelta(0)
        )
    # Canonical bytes are accepted as they are; non-canonical ones are not.
    doc_bytes = document_for(ca, raw).to_canonical_json()
    assert ca.issue_run_certificate(public_key=raw, run_id="run-1", document=doc_bytes).document == doc_bytes
    with pytest.raises(InvalidParams):
        ca.issue_run_certificate(public_key=raw, run_id="run-1", document=doc_bytes + b" ")


# Revocation -------------------------------------------------------------------------


def test_revocation_and_crl_round_trip(tmp_path):
    directory = tmp_path / "ca"
    ca = CertificateAuthority.create(directory)
    first_number = ca.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert len(ca.crl) == 0
    kept, revoked = issue(ca, "run-kept"), issue(ca, "run-revoked")

    der = ca.revoke(revoked.serial, "key_compromise")
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(ca.issuing_certificate.public_key())
    assert crl.issuer == ca.issuing_certificate.subject
    assert crl.next_update_utc > crl.last_update_utc
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == first_number + 1
    entry = crl.get_revoked_certificate_by_serial_number(revoked.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(kept.certificate.serial_number) is None
    assert (directory / "crl.der").read_bytes() == der == ca.crl_der()
    assert x509.load_pem_x509_crl(ca.crl_pem()).public_bytes(serialization.Encoding.DER) == der
    assert ca.is_revoked(revoked.serial) and not ca.is_revoked(kept.serial)

    with pytest.raises(Conflict, match="already revoked"):
        ca.revoke(revoked.serial)
    with pytest.raises(InvalidParams, match="reason"):
        ca.revoke(kept.serial, "bored")
    with pytest.raises(InvalidParams):
        ca.revoke("not-hex")

    reloaded = CertificateAuthority.load(directory)  # revocations survive a restart
    assert reloaded.is_revoked(revoked.serial)
    assert [r.reason for r in reloaded.revocations()] == ["key_compromise"]
    reloaded.revoke(kept.serial, "superseded")
    assert len(reloaded.crl) == 2


def test_crl_refresh_before_it_goes_stale(tmp_path):
    now = dt.datetime(2030, 1, 1, tzinfo=UTC)
    ca = CertificateAuthority.create(tmp_path / "ca", clock=lambda: now, crl_validity=dt.timedelta(days=2))
    assert ca.refresh_crl(now=now + dt.timedelta(hours=1)) is False
    assert ca.refresh_crl(now=now + dt.timedelta(days=1, seconds=1)) is True
    assert ca.crl_next_update == now + dt.timedelta(days=3, seconds=1)


def test_crl_signed_by_another_key_is_tampering(tmp_path):
    one, other = tmp_path / "one", tmp_path / "other"
    CertificateAuthority.create(one)
    CertificateAuthority.create(other)
    shutil.copy(other / "crl.der", one / "crl.der")
    with pytest.raises(Tampered, match="crl.der"):
        CertificateAuthority.load(one)


@needs_openssl
def test_openssl_refuses_a_revoked_certificate_with_the_crl(tmp_path):
    ca = CertificateAuthority.create(tmp_path / "ca")
    good, bad = issue(ca, "run-good"), issue(ca, "run-bad")
    ca.revoke(bad.serial, "cessation_of_operation")
    (tmp_path / "crl.pem").write_bytes(ca.crl_pem())
    (tmp_path / "good.pem").write_bytes(good.pem)
    (tmp_path / "bad.pem").write_bytes(bad.pem)
    common = ["verify", "-crl_check", "-CRLfile", str(tmp_path / "crl.pem"),
              "-CAfile", str(ca.files.root_cert), "-untrusted", str(ca.files.issuing_cert)]
    assert openssl(*common, str(tmp_path / "good.pem")).returncode == 0
    refused = openssl(*common, str(tmp_path / "bad.pem"))
    assert refused.returncode != 0 and "revoked" in (refused.stdout + refused.stderr)
    text = openssl("crl", "-inform", "DER", "-in", str(ca.files.crl), "-noout", "-text")
    assert bad.serial.upper() in text.stdout.replace(":", "").upper()


# The operator's own CA --------------------------------------------------------------


class OperatorCA:
    """An operator's PKI: a root and one intermediate (P-384, to differ from ours)."""

    def __init__(self, label: str = "Example Operator") -> None:
        now = dt.datetime.now(UTC)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = self._ca(f"{label} Root", self.root_key.public_key(), None, self.root_key, 2, now)
        self.mid_key = ec.generate_private_key(ec.SECP384R1())
        self.mid = self._ca(f"{label} Intermediate", self.mid_key.public_key(), self.root, self.root_key, 1, now)

    @staticmethod
    def _ca(cn, public_key, parent, signing_key, pathlen, now):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key())
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(parent.subject if parent else name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), critical=True)
            .add_extension(profile.CA_KEY_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(aki, critical=False)
            .sign(signing_key, hashes.SHA384())
        )

    def sign(self, csr_pem: bytes, *, ca=True, pathlen: int | None = 0, key_usage=True,
             not_after: dt.datetime | None = None) -> bytes:
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        now = dt.datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.mid.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(not_after or now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.mid_key.public_key()), critical=False)
        )
        if key_usage:
            builder = builder.add_extension(profile.CA_KEY_USAGE, critical=True)
        return builder.sign(self.mid_key, hashes.SHA384()).public_bytes(serialization.Encoding.PEM)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.mid, self.root))


@pytest.fixture(scope="module")
def operator() -> OperatorCA:
    return OperatorCA()


def test_csr_and_import_of_an_operator_signed_issuing_ca(tmp_path, operator):
    directory = tmp_path / "ca"
    csr_pem = create_issuing_csr(directory, passphrase=b"pw", common_name="attestables issuing CA board-7")
    assert (directory / "issuing.csr").read_bytes() == csr_pem
    assert mode(directory / "issuing.key") == 0o600
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    bc = csr.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    with pytest.raises(Conflict, match="ca import"):
        CertificateAuthority.load(directory, passphrase=b"pw")

    ca = import_issuing_certificate(directory, operator.sign(csr_pem), operator.chain_pem(), passphrase=b"pw")
    assert ca.operator_root and not (directory / "root.key").exists()
    assert ca.root_certificate == operator.root
    assert [c.subject for c in ca.chain] == [csr.subject, operator.mid.subject]
    assert ca.crl.issuer == csr.subject

    issued = issue(ca, "run-op")
    reloaded = CertificateAuthority.load(directory, passphrase=b"pw")
    assert reloaded.issuing_fingerprint == ca.issuing_fingerprint

    # A service trusting only the operator's root accepts the run certificate.
    (tmp_path / "root.pem").write_bytes(ca.root_pem())
    policy = policy_for_build(elf_sha256=ELF, trusted_roots=[str(tmp_path / "root.pem")])
    result = Verifier(policy, crls=[ca.crl_der()]).verify(issued.pem, ca.chain_pem())
    assert result.status == "affirming", result.reasons
    if OPENSSL:
        (tmp_path / "run.pem").write_bytes(issued.pem)
        out = openssl("verify", "-x509_strict", "-CAfile", str(directory / "root.pem"),
                      "-untrusted", str(directory / "issuing.pem"), str(tmp_path / "run.pem"))
        assert out.returncode == 0, out.stderr


def test_import_replaces_our_own_root_and_sets_its_key_aside(tmp_path, operator):
    directory = tmp_path / "ca"
    own = CertificateAuthority.create(directory)
    csr_pem = create_issuing_csr(directory)  # for the existing issuing key
    assert x509.load_pem_x509_csr(csr_pem).public_key() == own.issuing_certificate.public_key()
    ca = import_issuing_certificate(directory, operator.sign(csr_pem), operator.chain_pem())
    assert ca.root_certificate == operator.root
    assert not (directory / "root.key").exists()
    retired = list(directory.glob("root.key.retired-*"))
    assert len(retired) == 1 and mode(retired[0]) == 0o600


def test_import_refuses_wrong_chains_and_wrong_certificates(tmp_path, operator):
    directory = tmp_path / "ca"
    csr_pem = create_issuing_csr(directory)
    stranger = OperatorCA("Stranger")
    with pytest.raises(InvalidParams, match="does not chain"):
        import_issuing_certificate(directory, operator.sign(csr_pem), stranger.chain_pem())
    with pytest.raises(InvalidParams, match="self-signed root"):
        import_issuing_certificate(
            directory, operator.sign(csr_pem), operator.mid.public_bytes(serialization.Encoding.PEM)
        )
    other_csr = create_issuing_csr(tmp_path / "other")
    with pytest.raises(InvalidParams, match="not this launcher's issuing key"):
        import_issuing_certificate(directory, operator.sign(other_csr), operator.chain_pem())
    with pytest.raises(InvalidParams, match="not a CA"):
        import_issuing_certificate(directory, operator.sign(csr_pem, ca=False), operator.chain_pem())
    with pytest.raises(InvalidParams, match="pathLenConstraint"):
        import_issuing_certificate(directory, operator.sign(csr_pem, pathlen=None), operator.chain_pem())
    with pytest.raises(InvalidParams, match="keyUsage"):
        import_issuing_certificate(directory, operator.sign(csr_pem, key_usage=False), operator.chain_pem())
    past = dt.datetime.now(UTC) - dt.timedelta(minutes=1)
    with pytest.raises(InvalidParams, match="expired"):
        import_issuing_certificate(directory, operator.sign(csr_pem, not_after=past), operator.chain_pem())
    with pytest.raises(InvalidParams, match="PEM or DER"):
        import_issuing_certificate(directory, b"junk", operator.chain_pem())
    assert not (directory / "issuing.pem").exists()  # nothing was installed


def test_expired_certificates_can_be_dropped_from_the_crl(tmp_path):
    now = dt.datetime(2030, 1, 1, tzinfo=UTC)
    directory = tmp_path / "ca"
    ca = CertificateAuthority.create(directory, clock=lambda: now)
    old, young = issue(ca, "run-old"), issue(ca, "run-young")
    ca.revoke(old.serial, "cessation_of_operation")
    ca.revoke(young.serial, "cessation_of_operation")
    number = ca.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert ca.forget([old.serial, "ab" * 8], now=now + dt.timedelta(days=2)) == 1  # unknown serials: ignored
    crl = x509.load_der_x509_crl((directory / "crl.der").read_bytes())  # published at once
    assert crl.get_revoked_certificate_by_serial_number(old.certificate.serial_number) is None
    assert crl.get_revoked_certificate_by_serial_number(young.certificate.serial_number) is not None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1
    assert crl.is_signature_valid(ca.issuing_certificate.public_key())
    assert ca.forget([old.serial]) == 0  # nothing to drop: no new CRL
    assert ca.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number + 1
    assert not CertificateAuthority.load(directory).is_revoked(old.serial)  # and it stays dropped
