"""The attestation document: schema, canonical form, key binding, extension encoding."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import NameOID

from attestables.shared.attestation import (
    ATTESTATION_DOCUMENT_OID,
    AttestationDocument,
    Compartment,
    DocumentInvalid,
    DocumentMissing,
    DocumentNotCanonical,
    Elf,
    Isolation,
    Launcher,
    Measurement,
    Platform,
    Run,
    Toolchain,
    b64url,
    b64url_decode,
    compute_ueid,
    decode_octet_string,
    detect_hwmodel,
    detect_platform,
    document_extension,
    encode_octet_string,
    extract_document,
    extract_document_bytes,
    jwk_thumbprint_x25519,
    parse_document,
    read_machine_id,
    rfc3339,
    x25519_public_bytes,
)
from attestables.shared.attestation import keys as keys_module
from attestables.shared.errors import InvalidParams, NotFound

ELF = "a" * 64
SRC = "b" * 64
ISSUER_FP = "c" * 64


def raw_key() -> bytes:
    return x25519_public_bytes(x25519.X25519PrivateKey.generate().public_key())


def make_document(public_key: bytes | None = None, **overrides) -> AttestationDocument:
    fields = dict(
        public_key=public_key or raw_key(),
        run=Run(run_id="run-1", build_id="build-1", pid=4242, started_at="2025-01-02T03:04:05.678Z"),
        measurements=[Measurement(type="elf-sha256", digest=ELF), Measurement(type="source-sha256", digest=SRC)],
        toolchain=Toolchain(name="native", compiler="/usr/bin/cc", version="cc 12.2", argv=["cc", "-O2", "x.c"]),
        elf=Elf(machine="x86_64", purecap=False, interpreter="/lib64/ld-linux-x86-64.so.2"),
        platform=Platform(
            os="Linux", release="6.1", machine="x86_64", cpu_model="Some CPU", cpu_count=4,
            memory_bytes=8 << 30, cheri=False,
        ),
        compartment=Compartment(
            backend="bwrap",
            isolation=Isolation(network="none", filesystem="readonly", rlimits={"cpu_seconds": 60}),
            evidence={"cheri": False},
        ),
        swname="integration_process",
        swversion="3",
        launcher=Launcher(version="0.1.0", issuing_ca_fingerprint=ISSUER_FP),
        ueid=compute_ueid("0123456789abcdef0123456789abcdef"),
        hwmodel="generic x86_64",
        dbgstat="enabled",
        iat=1_700_000_000,
    )
    fields.update(overrides)
    return AttestationDocument.create(**fields)


def test_round_trip_is_canonical_and_stable():
    doc = make_document()
    data = doc.to_canonical_json()
    assert parse_document(data) == doc
    assert doc.to_canonical_json() == data  # stable bytes, stable digest
    # RFC 8785: sorted keys, no whitespace.
    assert data.startswith(b'{"cnf":{"jkt":"')
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    claims = json.loads(data)
    assert set(claims) == {
        "eat_profile", "eat_nonce", "iat", "exp", "ueid", "hwmodel", "platform", "swname", "swversion",
        "measurements", "toolchain", "elf", "submods", "cnf", "run", "launcher", "dbgstat",
    }
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert claims["submods"]["compartment"]["backend"] == "bwrap"
    assert doc.claims() == claims


def test_missing_claim_is_refused():
    with pytest.raises(TypeError, match="Missing required argument"):
        AttestationDocument(eat_profile=AttestationDocument.EAT_PROFILE)  # type: ignore[call-arg]
    data = json.loads(make_document().to_canonical_json())
    del data["dbgstat"]
    with pytest.raises(DocumentInvalid, match="dbgstat"):
        parse_document(json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


@pytest.mark.parametrize(
    "override, match",
    [
        (dict(dbgstat="sometimes"), "dbgstat"),
        (dict(swname=""), "swname"),
        (dict(measurements=[Measurement(type="elf-sha256", digest="XYZ")]), "digest"),
        (dict(measurements=[Measurement(type="source-sha256", digest=SRC)]), "no elf-sha256"),
        (dict(run=Run(run_id="bad id!", build_id="b", pid=1, started_at="2025-01-01T00:00:00Z")), "run_id"),
        (dict(run=Run(run_id="r", build_id="b", pid=1, started_at="2025-13-01T00:00:00Z")), "started_at"),
    ],
)
def test_invalid_claims_are_refused_on_serialisation(override, match):
    with pytest.raises(DocumentInvalid, match=match):
        make_document(**override).to_canonical_json()


def test_wrong_types_are_refused():
    doc = make_document()
    bad = AttestationDocument(**{**{f: getattr(doc, f) for f in doc.__struct_fields__}, "iat": "yesterday"})
    with pytest.raises(DocumentInvalid, match="iat"):
        bad.to_canonical_json()
    assert isinstance(DocumentInvalid("x"), InvalidParams)  # crosses the API as invalid_params


def test_never_claims_cheri_that_did_not_happen():
    off_cheri = Compartment(
        backend="c18n", isolation=Isolation(network="none", filesystem="host", rlimits={}), evidence={}
    )
    with pytest.raises(DocumentInvalid, match="c18n"):
        make_document(compartment=off_cheri).to_canonical_json()
    with pytest.raises(DocumentInvalid, match="purecap"):
        make_document(elf=Elf(machine="aarch64", purecap=True, interpreter=None)).to_canonical_json()
    morello = Platform(
        os="FreeBSD", release="15.0", machine="arm64", cpu_model="Morello", cpu_count=4,
        memory_bytes=16 << 30, cheri=True,
    )
    doc = make_document(
        platform=morello, compartment=off_cheri, elf=Elf(machine="aarch64", purecap=True, interpreter="/libexec/ld-elf.so.1")
    )
    assert parse_document(doc.to_canonical_json()).platform.cheri is True


def test_this_machine_is_not_claimed_as_cheri():
    platform = detect_platform()
    assert platform.cheri is False  # no development or CI machine is a Morello board
    assert platform.cpu_count >= 1
    assert detect_hwmodel(platform) == f"generic {platform.machine}"
    morello = Platform(
        os="FreeBSD", release="15.0", machine="arm64", cpu_model="", cpu_count=4, memory_bytes=1, cheri=True
    )
    assert detect_hwmodel(morello) == "Arm Morello"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b.replace(b'{"cnf"', b'{ "cnf"'),  # whitespace
        lambda b: b + b"\n",  # trailing newline
        lambda b: b.replace(b'"dbgstat":"enabled",', b"").replace(b'"cnf"', b'"dbgstat":"enabled","cnf"', 1),  # order
        lambda b: b.replace(b'"iat":1700000000', b'"iat":1.7e9'),  # number form
        lambda b: b.replace(b'"swname":"integration_process"', b'"swname":"integration\\u005fprocess"'),  # escape
    ],
)
def test_not_canonical_is_refused(mangle):
    data = mangle(make_document().to_canonical_json())
    with pytest.raises(DocumentNotCanonical):
        parse_document(data)


def test_duplicate_keys_unknown_claims_and_garbage_are_refused():
    data = make_document().to_canonical_json()
    with pytest.raises(DocumentNotCanonical):  # a duplicate key does not survive re-canonicalisation
        parse_document(data.replace(b'"dbgstat":"enabled"', b'"dbgstat":"disabled","dbgstat":"enabled"'))
    with pytest.raises(DocumentInvalid, match="unknown field"):
        parse_document(data.replace(b'"dbgstat":"enabled"', b'"color":"red","dbgstat":"enabled"'))
    with pytest.raises(DocumentInvalid):
        parse_document(b"not json")
    with pytest.raises(DocumentInvalid):
        parse_document(b"[]")
    with pytest.raises(DocumentInvalid, match="eat_profile"):
        parse_document(data.replace(b"eat-profile:1", b"eat-profile:2"))


def test_okp_thumbprint_matches_rfc8037_vector():
    # RFC 8037 appendix A.3 (an Ed25519 JWK): the same canonical member order we use.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    member_json = '{"crv":"Ed25519","kty":"OKP","x":"%s"}' % x
    assert b64url(hashlib.sha256(member_json.encode()).digest()) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    # And ours is exactly that construction with crv X25519.
    raw = b64url_decode(x)
    expected = b64url(hashlib.sha256(('{"crv":"X25519","kty":"OKP","x":"%s"}' % x).encode()).digest())
    assert jwk_thumbprint_x25519(raw) == expected
    key = x25519.X25519PublicKey.from_public_bytes(raw)
    assert jwk_thumbprint_x25519(key) == expected
    doc = make_document(public_key=raw)
    assert doc.cnf.jkt == expected
    with pytest.raises(InvalidParams, match="32 bytes"):
        jwk_thumbprint_x25519(b"\x00" * 31)


def test_b64url_is_strict():
    assert b64url_decode(b64url(b"\x00\xff\x10")) == b"\x00\xff\x10"
    for bad in ("AA==", "A+B/", "AB"):  # padded, wrong alphabet, non-canonical trailing bits
        with pytest.raises(ValueError):
            b64url_decode(bad)


def test_ueid_is_stable_typed_and_not_the_machine_id(tmp_path):
    machine_id = "0123456789abcdef0123456789abcdef"
    ueid = compute_ueid(machine_id + "\n")
    assert ueid == compute_ueid(machine_id)
    raw = b64url_decode(ueid)
    assert raw[0] == 0x01 and len(raw) == 33  # EAT UEID type RAND, 32 bytes
    assert machine_id.encode() not in raw
    assert compute_ueid("fedcba9876543210fedcba9876543210") != ueid
    path = tmp_path / "machine-id"
    path.write_text(machine_id + "\n")
    assert read_machine_id([tmp_path / "absent", path]) == machine_id.encode()
    with pytest.raises(NotFound):
        read_machine_id([tmp_path / "absent"])
    with pytest.raises(InvalidParams):
        compute_ueid("  \n")
    assert keys_module.UEID_LABEL  # the label is fixed: changing it changes every ueid


@pytest.mark.parametrize("size", [0, 1, 127, 128, 255, 256, 65535, 65536])
def test_octet_string_round_trip(size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    der = encode_octet_string(data)
    assert der[0] == 0x04
    assert decode_octet_string(der) == data


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x04",
        b"\x0c\x01a",  # UTF8String, not OCTET STRING
        b"\x04\x02a",  # short
        b"\x04\x01ab",  # trailing byte
        b"\x04\x81\x01a",  # long form for a short length (BER, not DER)
        b"\x04\x80a\x00\x00",  # indefinite length
        b"\x04\x82\x00\x80" + b"a" * 128,  # leading zero in the length
    ],
)
def test_octet_string_refuses_non_der(der):
    with pytest.raises(ValueError):
        decode_octet_string(der)


def _cert_with(extension: x509.ExtensionType | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(x25519.X25519PrivateKey.generate().public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if extension is not None:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(key, hashes.SHA256())


def test_extension_carries_the_document():
    data = make_document().to_canonical_json()
    ext = document_extension(data)
    assert ext.oid == ATTESTATION_DOCUMENT_OID
    assert ATTESTATION_DOCUMENT_OID.dotted_string.startswith("2.25.")
    cert = _cert_with(ext)
    assert extract_document_bytes(cert) == data
    assert extract_document(cert).to_canonical_json() == data
    with pytest.raises(DocumentMissing):
        extract_document(_cert_with(None))
    with pytest.raises(DocumentInvalid, match="OCTET STRING"):
        extract_document(_cert_with(x509.UnrecognizedExtension(ATTESTATION_DOCUMENT_OID, data)))


def test_rfc3339():
    moment = dt.datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    assert rfc3339(moment) == "2025-01-02T03:04:05.678Z"
    assert rfc3339(moment.timestamp()) == "2025-01-02T03:04:05.678Z"


def test_float_in_evidence_is_canonicalised_and_nan_refused():
    evidence_doc = make_document(
        compartment=Compartment(
            backend="bwrap",
            isolation=Isolation(network="none", filesystem="readonly", rlimits={}),
            evidence={"ratio": 0.5, "big": 1e21},
        )
    )
    data = evidence_doc.to_canonical_json()
    assert b'"big":1e+21' in data and b'"ratio":0.5' in data  # ECMAScript number form
    assert parse_document(data) == evidence_doc
    nan_doc = make_document(
        compartment=Compartment(
            backend="bwrap",
            isolation=Isolation(network="none", filesystem="readonly", rlimits={}),
            evidence={"x": float("nan")},
        )
    )
    with pytest.raises(DocumentInvalid):
        nan_doc.to_canonical_json()


def test_a_document_that_is_not_utf8_is_refused_not_raised():
    from attestables.shared.attestation.document import DocumentError, parse_document

    with pytest.raises(DocumentError):
        parse_document(b'{"eat_nonce": "\xff\xfe"}')
