"""The verifier: every reason code from a crafted certificate, the policy format, the cache,
and the speed goals. Real certificates from the real CA; crafted ones signed with its key."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from attestables.daemon.ca import CertificateAuthority, load_key
from attestables.daemon.ca import profile
from attestables.shared.attestation import (
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
    document_extension,
    x25519_public_bytes,
)
from attestables.shared.errors import InvalidParams
from attestables.shared.verifier import (
    AFFIRMING,
    CONTRAINDICATED,
    REASON_CODES,
    WARNING,
    WARNING_CODES,
    IsolationRequirement,
    Policy,
    PolicyError,
    Verifier,
    load_policy,
    parse_duration,
    parse_policy,
    policy_for_build,
)

ELF = "e" * 64
SRC = "5" * 64
DOCS = Path(__file__).resolve().parent.parent / "docs"
UTC = dt.timezone.utc
PEM = serialization.Encoding.PEM
KEY_AGREEMENT = x509.KeyUsage(False, False, False, False, True, False, False, False, False)


def new_raw_key() -> bytes:
    return x25519_public_bytes(x25519.X25519PrivateKey.generate().public_key())


def make_document(ca: CertificateAuthority, raw: bytes, run_id: str = "run-1", **overrides) -> AttestationDocument:
    fields = dict(
        public_key=raw,
        run=Run(run_id=run_id, build_id="build-1", pid=77, started_at="2025-01-02T03:04:05.000Z"),
        measurements=[Measurement(type="elf-sha256", digest=ELF), Measurement(type="source-sha256", digest=SRC)],
        toolchain=Toolchain(name="native", compiler="cc", version="12", argv=["cc", "x.c"]),
        elf=Elf(machine="x86_64", purecap=False, interpreter=None),
        platform=Platform(
            os="Linux", release="6.1", machine="x86_64", cpu_model="", cpu_count=2, memory_bytes=1 << 30, cheri=False
        ),
        compartment=Compartment(
            backend="bwrap",
            isolation=Isolation(network="none", filesystem="readonly", rlimits={"memory_bytes": 1 << 28}),
            evidence={},
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


class Setup:
    def __init__(self, directory: Path, name: str = "verifier-test") -> None:
        self.ca = CertificateAuthority.create(directory / "ca", name=name)
        self.key = load_key(self.ca.files.issuing_key, None)
        self.root_path = directory / "ca" / "root.pem"
        self.chain = self.ca.chain_pem()

    def issue(self, run_id: str = "run-1", validity: dt.timedelta | None = None, **overrides):
        raw = new_raw_key()
        doc = make_document(self.ca, raw, run_id, **overrides)
        return self.ca.issue_run_certificate(public_key=raw, run_id=run_id, document=doc, validity=validity)

    def craft(
        self,
        *,
        document: bytes | None | AttestationDocument = ...,  # type: ignore[assignment]
        raw: bytes | None = None,
        run_id: str = "run-1",
        key_usage: x509.KeyUsage | None = KEY_AGREEMENT,
        eku: list | None = [ExtendedKeyUsageOID.CLIENT_AUTH],
        extra: tuple[x509.ExtensionType, bool] | None = None,
        signer: ec.EllipticCurvePrivateKey | None = None,
        public_key=None,
    ) -> x509.Certificate:
        """A run certificate with whatever the CA would have refused, signed by its key."""
        raw = raw or new_raw_key()
        if document is ...:
            document = make_document(self.ca, raw, run_id)
        if isinstance(document, AttestationDocument):
            document = document.to_canonical_json()
        now = dt.datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"attestables run {run_id}")]))
            .issuer_name(self.ca.issuing_certificate.subject)
            .public_key(public_key or x25519.X25519PublicKey.from_public_bytes(raw))
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"urn:attestables:run:{run_id}")]),
                critical=False,
            )
        )
        if key_usage is not None:
            builder = builder.add_extension(key_usage, critical=True)
        if eku is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        if document is not None:
            builder = builder.add_extension(document_extension(document), critical=False)
        if extra is not None:
            builder = builder.add_extension(extra[0], critical=extra[1])
        return builder.sign(signer or self.key, hashes.SHA256())

    def verifier(self, **policy_options) -> Verifier:
        options = dict(elf_sha256=ELF, source_sha256=SRC, trusted_roots=[str(self.root_path)])
        options.update(policy_options)
        return Verifier(policy_for_build(**options), crls=[self.ca.crl_der()])


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Setup:
    return Setup(tmp_path_factory.mktemp("verifier"))


def codes(result) -> set[str]:
    return set(result.codes)


# The good case ----------------------------------------------------------------------


def test_a_good_certificate_is_affirming(setup):
    issued = setup.issue()
    verifier = setup.verifier()
    result = verifier.verify(issued.pem, setup.chain)
    assert result.status == AFFIRMING and result.reasons == ()
    assert result.ok
    assert result.fingerprint == issued.fingerprint
    assert result.serial == issued.serial
    as_dict = result.to_dict()
    assert set(as_dict) == {"status", "reasons", "claims", "fingerprint", "serial"}
    assert as_dict["claims"]["run"]["run_id"] == "run-1"
    assert json.loads(json.dumps(as_dict)) == as_dict  # JSON-ready, for the service API
    # Every input form gives the same answer.
    assert verifier.verify(issued.der, setup.chain).status == AFFIRMING
    assert verifier.verify(issued.certificate, [setup.ca.issuing_certificate]).status == AFFIRMING
    assert verifier.verify(issued.pem.decode(), setup.chain.decode()).status == AFFIRMING
    assert Verifier(verifier.policy).verify(issued.pem + setup.chain).status == AFFIRMING  # one bundle
    assert verifier.verify(issued.pem, setup.chain, nonce=result.claims["eat_nonce"]).status == AFFIRMING


def test_cryptography_webpki_verifier_agrees_on_a_good_certificate(setup):
    # Interop check: the library's own RFC 5280 path validation accepts our profile too.
    issued = setup.issue()
    store = verification.Store([setup.ca.root_certificate])
    client = verification.PolicyBuilder().store(store).build_client_verifier()
    verified = client.verify(issued.certificate, [setup.ca.issuing_certificate])
    assert verified.subjects == [x509.UniformResourceIdentifier("urn:attestables:run:run-1")]


# One crafted certificate per reason -------------------------------------------------


def test_another_ca_is_chain_untrusted(setup, tmp_path):
    other = Setup(tmp_path, name="another")
    issued = other.issue()
    result = setup.verifier().verify(issued.pem, other.chain)
    assert result.status == CONTRAINDICATED and "chain_untrusted" in codes(result)
    # Without the chain the issuer cannot be found either.
    assert "chain_untrusted" in codes(setup.verifier().verify(setup.issue().pem))


def test_altered_document_breaks_the_signature(setup):
    issued = setup.issue()
    tampered = issued.der.replace(b'"pid":77', b'"pid":78')
    assert tampered != issued.der and len(tampered) == len(issued.der)
    result = setup.verifier().verify(tampered, setup.chain)
    assert result.status == CONTRAINDICATED and "signature_invalid" in codes(result)


def test_altered_document_resigned_by_another_ca_is_untrusted(setup, tmp_path):
    forger = Setup(tmp_path, name="forger")
    raw = new_raw_key()
    doc = make_document(setup.ca, raw, measurements=[Measurement(type="elf-sha256", digest="f" * 64)])
    forged = forger.craft(document=doc, raw=raw)
    result = setup.verifier().verify(forged, forger.chain)
    assert "chain_untrusted" in codes(result)


def test_same_name_different_key_is_signature_invalid(setup):
    # A forger copies our issuing CA's name but signs with its own key.
    forged = setup.craft(signer=ec.generate_private_key(ec.SECP256R1()))
    result = setup.verifier().verify(forged, setup.chain)
    assert "signature_invalid" in codes(result)


def test_expired_and_not_yet_valid(setup):
    issued = setup.issue()
    verifier = setup.verifier()
    after = issued.not_after + dt.timedelta(seconds=1)
    before = issued.not_before - dt.timedelta(seconds=1)
    assert codes(verifier.verify(issued.pem, setup.chain, now=after)) == {"expired"}
    assert codes(verifier.verify(issued.pem, setup.chain, now=before)) == {"not_yet_valid"}
    assert verifier.verify(issued.pem, setup.chain).status == AFFIRMING  # same cache entry, clock now


def test_revoked_and_a_crl_update_invalidates_the_cache(tmp_path):
    local = Setup(tmp_path)
    issued = local.issue()
    verifier = local.verifier()
    assert verifier.verify(issued.pem, local.chain).status == AFFIRMING
    assert verifier.cache_len > 0
    assert verifier.update_crl(local.ca.revoke(issued.serial, "key_compromise")) is True
    assert verifier.cache_len == 0
    result = verifier.verify(issued.pem, local.chain)
    assert result.status == CONTRAINDICATED and codes(result) == {"revoked"}
    assert "key_compromise" in result.reasons[0].message
    # An older CRL does not replace a newer one; PEM works as well as DER.
    assert verifier.update_crl(x509.load_der_x509_crl(local.ca.crl_der()).public_bytes(PEM)) is True
    stale = Verifier(verifier.policy, crls=[local.ca.crl_der()])
    local.ca.revoke(local.issue().serial)
    assert stale.update_crl(local.ca.crl_der()) is True
    with pytest.raises(InvalidParams):
        stale.update_crl(b"not a crl")


def test_crl_not_signed_by_the_issuer_is_crl_invalid(setup):
    forged_crl = profile.crl(
        issuer_key=ec.generate_private_key(ec.SECP256R1()),
        issuer_name=setup.ca.issuing_certificate.subject,
        issuer_aki=profile.authority_key_identifier(setup.ca.issuing_certificate),
        revoked={},
        number=10**6,
        now=dt.datetime.now(UTC),
    )
    verifier = setup.verifier()
    verifier.update_crl(forged_crl)
    assert "crl_invalid" in codes(verifier.verify(setup.issue().pem, setup.chain))


def test_stale_crl_is_a_warning(setup):
    issued = setup.issue(validity=dt.timedelta(days=30), lifetime=30 * 86400)
    later = setup.ca.crl_next_update + dt.timedelta(hours=1)
    result = setup.verifier().verify(issued.pem, setup.chain, now=later)
    assert result.status == WARNING and codes(result) == {"crl_stale"}


@pytest.mark.parametrize(
    "options",
    [
        dict(key_usage=x509.KeyUsage(True, False, False, False, False, False, False, False, False)),
        dict(key_usage=None),
        dict(eku=[ExtendedKeyUsageOID.SERVER_AUTH]),
        dict(eku=None),
        dict(public_key=ec.generate_private_key(ec.SECP256R1()).public_key()),
    ],
    ids=["digitalSignature-only", "no-keyUsage", "serverAuth", "no-eku", "ec-subject-key"],
)
def test_wrong_key_usage(setup, options):
    result = setup.verifier().verify(setup.craft(**options), setup.chain)
    assert result.status == CONTRAINDICATED and "key_usage" in codes(result)


def test_document_missing_invalid_and_not_canonical(setup):
    verifier = setup.verifier()
    assert codes(verifier.verify(setup.craft(document=None), setup.chain)) == {"document_missing"}
    assert codes(verifier.verify(setup.craft(document=b'{"iat":1}'), setup.chain)) == {"document_invalid"}
    raw = new_raw_key()
    canonical = make_document(setup.ca, raw).to_canonical_json()
    pretty = json.dumps(json.loads(canonical), indent=2, sort_keys=True).encode()
    result = verifier.verify(setup.craft(document=pretty, raw=raw), setup.chain)
    assert result.status == CONTRAINDICATED and codes(result) == {"document_not_canonical"}
    assert result.claims is None


def test_cnf_of_another_key_is_cnf_mismatch(setup):
    doc = make_document(setup.ca, new_raw_key())  # cnf of a key the certificate does not carry
    result = setup.verifier().verify(setup.craft(document=doc), setup.chain)
    assert codes(result) == {"cnf_mismatch"}


def test_document_for_another_run_is_run_mismatch(setup):
    raw = new_raw_key()
    doc = make_document(setup.ca, raw, run_id="run-other")
    assert codes(setup.verifier().verify(setup.craft(document=doc, raw=raw), setup.chain)) == {"run_mismatch"}


def test_issuer_fingerprint_mismatch_is_a_warning(setup):
    raw = new_raw_key()
    doc = make_document(setup.ca, raw, launcher=Launcher(version="0.1.0", issuing_ca_fingerprint="0" * 64))
    result = setup.verifier().verify(setup.craft(document=doc, raw=raw), setup.chain)
    assert result.status == WARNING and codes(result) == {"issuer_mismatch"}


def test_unhandled_critical_extension(setup):
    ext = (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"), True)
    result = setup.verifier().verify(setup.craft(extra=ext), setup.chain)
    assert codes(result) == {"critical_extension"}


def test_unknown_measurement(setup):
    issued = setup.issue()
    assert codes(setup.verifier(elf_sha256="0" * 64).verify(issued.pem, setup.chain)) == {"measurement_unknown"}
    # An entry with both digests must match both.
    mixed = setup.verifier(elf_sha256=ELF, source_sha256="0" * 64)
    assert codes(mixed.verify(issued.pem, setup.chain)) == {"measurement_unknown"}
    source_only = Verifier(
        parse_policy({"trusted_roots": [str(setup.root_path)], "allow": [{"source-sha256": SRC}]})
    )
    assert source_only.verify(issued.pem, setup.chain).status == AFFIRMING
    anything = Verifier(parse_policy({"trusted_roots": [str(setup.root_path)]}))
    result = anything.verify(issued.pem, setup.chain)
    assert result.status == WARNING and codes(result) == {"measurement_unchecked"}


def test_backend_isolation_purecap_debug_and_nonce(setup):
    issued = setup.issue()
    pem, chain = issued.pem, setup.chain
    assert codes(setup.verifier(require_backend="c18n").verify(pem, chain)) == {"backend_mismatch"}
    assert setup.verifier(require_backend=["c18n", "bwrap"]).verify(pem, chain).status == AFFIRMING
    assert codes(setup.verifier(require_purecap=True).verify(pem, chain)) == {"purecap_required"}
    assert codes(setup.verifier(require_debug_disabled=True).verify(pem, chain)) == {"debug_enabled"}
    strict_fs = setup.verifier(require_isolation={"filesystem": "none"})
    assert codes(strict_fs.verify(pem, chain)) == {"isolation_insufficient"}
    small = setup.verifier(require_isolation=IsolationRequirement(rlimits={"memory_bytes": 1 << 20}))
    result = small.verify(pem, chain)
    assert codes(result) == {"isolation_insufficient"} and "memory_bytes" in result.reasons[0].message
    unset = setup.verifier(require_isolation={"rlimits": {"cpu_seconds": 60}})
    assert "not set" in unset.verify(pem, chain).reasons[0].message
    enough = setup.verifier(require_isolation={"network": "none", "filesystem": "readonly",
                                               "rlimits": {"memory_bytes": 1 << 30}})
    assert enough.verify(pem, chain).status == AFFIRMING
    assert codes(setup.verifier().verify(pem, chain, nonce="somethingelse")) == {"nonce_mismatch"}


def test_host_network_is_insufficient_and_unconfined_is_a_warning(setup):
    open_net = Compartment(backend="none", isolation=Isolation(network="host", filesystem="host", rlimits={}),
                           evidence={})
    issued = setup.issue(compartment=open_net)
    result = setup.verifier().verify(issued.pem, setup.chain)
    assert result.status == WARNING and codes(result) == {"unconfined"}
    strict = setup.verifier(require_isolation={"network": "none"})
    assert codes(strict.verify(issued.pem, setup.chain)) == {"unconfined", "isolation_insufficient"}
    assert codes(setup.verifier(require_backend="bwrap").verify(issued.pem, setup.chain)) == {"backend_mismatch"}


def test_too_old_is_a_warning(setup):
    issued = setup.issue()
    verifier = setup.verifier(max_age="10m")
    iat = verifier.verify(issued.pem, setup.chain).claims["iat"]
    result = verifier.verify(issued.pem, setup.chain, now=iat + 3600)
    assert result.status == WARNING and codes(result) == {"too_old"}


def test_garbage_is_certificate_invalid(setup):
    verifier = setup.verifier()
    junks = (b"", b"\x30\x03\x02\x01\x01", "-----BEGIN CERTIFICATE-----\n!!\n", b"-----BEGIN CERTIFICATE-----",
             "caf\u00e9", None, 42)
    for junk in junks:
        result = verifier.verify(junk)
        assert result.status == CONTRAINDICATED and codes(result) == {"certificate_invalid"}
    assert codes(verifier.verify(setup.issue().pem, b"junk chain")) == {"certificate_invalid"}


def test_reason_codes_are_all_exercised_and_classified():
    exercised = {
        "certificate_invalid", "chain_untrusted", "signature_invalid", "critical_extension", "expired",
        "not_yet_valid", "revoked", "crl_invalid", "key_usage", "document_missing", "document_invalid",
        "document_not_canonical", "cnf_mismatch", "run_mismatch", "nonce_mismatch", "measurement_unknown",
        "backend_mismatch", "isolation_insufficient", "purecap_required", "debug_enabled", "too_old",
        "crl_stale", "measurement_unchecked", "unconfined", "issuer_mismatch",
    }
    assert exercised == REASON_CODES
    assert WARNING_CODES == {"too_old", "crl_stale", "measurement_unchecked", "unconfined", "issuer_mismatch"}


# Path validation of CA certificates --------------------------------------------------


def _ca_cert(subject_cn, key, issuer_cert, issuer_key, *, ca=True, pathlen=0, key_usage=profile.CA_KEY_USAGE):
    now = dt.datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None), critical=True)
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.mark.parametrize(
    "variant, code",
    [
        (dict(ca=False), "chain_untrusted"),
        (dict(key_usage=None), "key_usage"),
        (dict(key_usage=x509.KeyUsage(True, False, False, False, False, False, True, False, False)), "key_usage"),
    ],
    ids=["not-a-ca", "no-keyUsage", "no-keyCertSign"],
)
def test_intermediate_ca_constraints(setup, tmp_path, variant, code):
    root_key = load_key(setup.ca.files.root_key, None)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    bad_issuing = _ca_cert("bad issuing", issuing_key, setup.ca.root_certificate, root_key, **variant)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attestables run run-1")]))
        .issuer_name(bad_issuing.subject)
        .public_key(x25519.X25519PrivateKey.generate().public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime.now(UTC) - dt.timedelta(minutes=1))
        .not_valid_after(dt.datetime.now(UTC) + dt.timedelta(hours=1))
        .sign(issuing_key, hashes.SHA256())
    )
    assert code in codes(setup.verifier().verify(leaf, [bad_issuing]))


def test_pathlen_is_enforced(setup):
    root_key = load_key(setup.ca.files.root_key, None)  # our root allows one intermediate
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    mid1 = _ca_cert("mid1", k1, setup.ca.root_certificate, root_key, pathlen=None)
    mid2 = _ca_cert("mid2", k2, mid1, k1, pathlen=0)
    now = dt.datetime.now(UTC)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .issuer_name(mid2.subject)
        .public_key(x25519.X25519PrivateKey.generate().public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(k2, hashes.SHA256())
    )
    result = setup.verifier().verify(leaf, [mid2, mid1])
    assert any(r.code == "chain_untrusted" and "allows 1" in r.message for r in result.reasons)


# Cache ------------------------------------------------------------------------------


def test_cache_is_bounded_and_failed_paths_are_not_cached(setup):
    verifier = Verifier(setup.verifier().policy, cache_size=2)
    certs = [setup.issue().der for _ in range(3)]
    for der in certs:
        assert verifier.verify(der, setup.chain).status == AFFIRMING
    assert verifier.cache_len == 2
    fresh = setup.issue()
    assert "chain_untrusted" in codes(verifier.verify(fresh.der))  # no chain given: not cached
    assert verifier.verify(fresh.der, setup.chain).status == AFFIRMING  # the chain now makes it good
    assert verifier.verify(fresh.der).status == AFFIRMING  # and now it is cached
    verifier.clear_cache()
    assert verifier.cache_len == 0


def test_speed_goals(setup):
    verifier = setup.verifier()
    chain = setup.chain
    fresh = [setup.issue().pem for _ in range(40)]
    verifier.verify(setup.issue().pem, chain)  # warm the CA link memo, as a running service would be
    cold = []
    for pem in fresh:
        start = time.perf_counter()
        verifier.verify(pem, chain)
        cold.append(time.perf_counter() - start)
    warm = []
    for _ in range(400):
        start = time.perf_counter()
        verifier.verify(fresh[0], chain)
        warm.append(time.perf_counter() - start)
    assert statistics.median(cold) <= 0.002, f"cold median {statistics.median(cold) * 1e3:.2f} ms"
    assert statistics.median(warm) <= 0.000050, f"cached median {statistics.median(warm) * 1e6:.1f} us"


def test_verifier_imports_neither_daemon_nor_server_nor_textual():
    code = (
        "import sys, attestables.shared.verifier, attestables.shared.attestation\n"
        "bad = [m for m in sys.modules if m.startswith(('attestables.daemon', 'aiohttp', 'textual'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# Policy -----------------------------------------------------------------------------


def test_example_policy_parses(tmp_path):
    text = (DOCS / "policy.example.toml").read_text()
    policy = parse_policy(text, base_dir=tmp_path, source="policy.example.toml")
    assert policy.trusted_roots and policy.allow
    assert policy.require_backend and policy.max_age == 24 * 3600


def test_load_policy_resolves_roots_relative_to_the_file(setup, tmp_path):
    (tmp_path / "roots").mkdir()
    (tmp_path / "roots" / "launcher.pem").write_bytes(setup.ca.root_pem())
    path = tmp_path / "policy.toml"
    path.write_text(f'trusted_roots = ["roots/launcher.pem"]\n[[allow]]\nelf-sha256 = "{ELF}"\n')
    policy = load_policy(path)
    assert policy.load_roots() == (setup.ca.root_certificate,)
    assert Verifier(policy).verify(setup.issue().pem, setup.chain).status == AFFIRMING
    path.write_text('trusted_roots = ["roots/absent.pem"]\n')
    with pytest.raises(PolicyError, match="absent.pem"):
        load_policy(path)


@pytest.mark.parametrize(
    "text, match",
    [
        ('trusted_roots = ["r.pem"]\nrequire_backed = "bwrap"\n', r"unknown key 'require_backed' \(did you mean 'require_backend'\?\)"),
        ('trusted_roots = ["r.pem"]\n[[allow]]\nelf_sha256 = "' + "a" * 64 + '"\n', r"allow\[0\]: unknown key 'elf_sha256'"),
        ('trusted_roots = ["r.pem"]\n[require_isolation]\nnetwork = "some"\n', "network"),
        ('trusted_roots = ["r.pem"]\n[require_isolation.rlimits]\nram = 1\n', "unknown key 'ram'"),
        ('trusted_roots = ["r.pem"]\nrequire_backend = "docker"\n', "docker"),
        ('trusted_roots = ["r.pem"]\nrequire_purecap = "yes"\n', "require_purecap"),
        ('trusted_roots = ["r.pem"]\nmax_age = "soon"\n', "max_age"),
        ('trusted_roots = ["r.pem"]\n[[allow]]\nname = "x"\n', "needs elf-sha256"),
        ('trusted_roots = ["r.pem"]\n[[allow]]\nelf-sha256 = "abc"\n', "64 hex"),
        ('require_purecap = true\n', "trusted_roots is required"),
        ('trusted_roots = [\n', "not valid TOML"),
    ],
)
def test_policy_is_parsed_strictly(text, match):
    with pytest.raises(PolicyError, match=match):
        parse_policy(text, source="p.toml")


def test_durations():
    assert parse_duration(90) == 90
    assert parse_duration("24h") == 86400
    assert parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400
    for bad in ("", "0s", "h", "1x", True, 0, -5, 1.5):
        with pytest.raises(PolicyError):
            parse_duration(bad)


def test_policy_for_build_allows_exactly_that_build_and_round_trips():
    policy = policy_for_build(
        elf_sha256=ELF.upper(), source_sha256=SRC, name="prog build 7", trusted_roots=["root.pem"],
        require_backend="bwrap", require_isolation={"network": "none", "rlimits": {"wall_seconds": 600}},
        max_age="1d",
    )
    assert len(policy.allow) == 1
    entry = policy.allow[0]
    assert (entry.elf_sha256, entry.source_sha256) == (ELF, SRC)
    assert entry.matches(frozenset({ELF}), frozenset({SRC}))
    assert not entry.matches(frozenset({ELF}), frozenset())
    text = policy.to_toml()
    again = parse_policy(text)
    assert again == policy
    assert isinstance(again, Policy)
