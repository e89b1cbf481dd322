"""The handshake through the real daemon: HELLO -> certificate -> CERT, revocation, CRL,
and protocol violations on the compartment channel."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import x25519

from attestables.shared import errors
from attestables.shared.attestation import extract_document, jwk_thumbprint_x25519

from .conftest import EXAMPLES, build_source, c_source, run_build


async def test_attest_hello_gets_a_certificate_for_exactly_what_ran(client, daemon):
    build = await build_source(client, "attest_hello.c", (EXAMPLES / "attest_hello.c").read_text())
    assert build["state"] == "succeeded", build["diagnostics"]
    async with await client.subscribe(["certs.issued", "certs.revoked"]) as sub:
        run, output = await run_build(client, build["build_id"])
        assert run["state"] == "exited" and run["exit_code"] == 0, output
        serial = output.split("certificate serial:")[1].split()[0]
        kinds = []
        async with asyncio.timeout(10):
            async for event in sub:
                if event.data["run_id"] == run["run_id"]:
                    kinds.append(event.topic)
                    if event.topic == "certs.revoked":
                        break
    assert kinds == ["certs.issued", "certs.revoked"]  # the run ended: its certificate is void

    cert = await client.call("certs.get", {"run_id": run["run_id"]})
    assert cert["serial"] == serial and cert["revoked"] is True
    leaf = x509.load_pem_x509_certificate(cert["pem"].encode())
    document = extract_document(leaf)
    assert document.run.run_id == run["run_id"] and document.run.build_id == build["build_id"]
    assert document.run.pid == run["pid"]
    assert document.digests("elf-sha256") == {build["artefact"]["sha256"]}
    assert document.digests("source-sha256") == {build["source_sha256"]}
    assert document.cnf.jkt == jwk_thumbprint_x25519(leaf.public_key())
    assert document.platform.cheri is False and document.elf.purecap is False  # honest off CHERI
    assert document.compartment.backend == "bwrap"
    assert document.compartment.isolation.network == "none"
    assert document.compartment.evidence.get("cheri") is False
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"urn:attestables:run:{run['run_id']}"]

    attestation = await client.call("attestation.get", {"run_id": run["run_id"]})
    assert attestation["document"]["run"]["run_id"] == run["run_id"]

    async with aiohttp.ClientSession() as session:
        async with session.get(f"{daemon.http_url}/api/v1/crl") as resp:
            crl = x509.load_der_x509_crl(await resp.read())
        async with session.get(f"{daemon.http_url}/api/v1/crl?format=pem") as resp:
            assert (await resp.read()).startswith(b"-----BEGIN X509 CRL-----")
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None


async def test_openssl_accepts_a_real_run_certificate(client, tmp_path: Path):
    build = await build_source(client, "attest_hello.c", (EXAMPLES / "attest_hello.c").read_text())
    run, _ = await run_build(client, build["build_id"])
    cert = await client.call("certs.get", {"run_id": run["run_id"]})
    ca = await client.call("ca.info")
    (tmp_path / "run.pem").write_text(cert["pem"])
    (tmp_path / "root.pem").write_text(ca["root_pem"])
    (tmp_path / "issuing.pem").write_text(ca["issuing_pem"])
    verify = subprocess.run(["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", "run.pem"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert verify.returncode == 0 and "run.pem: OK" in verify.stdout, verify.stderr
    text = subprocess.run(["openssl", "x509", "-in", "run.pem", "-noout", "-text"], cwd=tmp_path,
                          capture_output=True, text=True, check=True).stdout
    assert "X25519" in text and "Key Agreement" in text and "TLS Web Client Authentication" in text
    assert f"urn:attestables:run:{run['run_id']}" in text


SEED = "a seed only this test knows"
# The compartment's private key in this test: SHA-256 of a seed it gets as an argument, so
# that the key itself is in neither the source, the binary nor the run's record.
FIXED_KEY = hashlib.sha256(SEED.encode()).digest()


def fixed_key_program() -> str:
    """A compartment that speaks HELLO itself with a private key the test knows."""
    return c_source(f'''
#include <stdint.h>
#include <openssl/evp.h>
static int put(const unsigned char *p, size_t n) {{
    while (n) {{ ssize_t w = write(3, p, n); if (w <= 0) return -1; p += w; n -= (size_t)w; }}
    return 0;
}}
int main(int argc, char **argv) {{
    unsigned char sk[32]; unsigned int sklen = 32;
    if (argc < 2 || EVP_Digest(argv[1], strlen(argv[1]), sk, &sklen, EVP_sha256(), NULL) != 1) return 1;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
    unsigned char pk[32]; size_t pklen = 32;
    if (!k || EVP_PKEY_get_raw_public_key(k, pk, &pklen) != 1) return 2;
    const char *evidence = "{{\\"cheri\\":false,\\"capabilities\\":null,\\"abi\\":\\"native\\"}}";
    uint32_t elen = (uint32_t)strlen(evidence);
    uint32_t len = 1 + 2 + 2 + 32 + 4 + elen;
    unsigned char head[5 + 4] = {{ (unsigned char)(len >> 24), (unsigned char)(len >> 16),
        (unsigned char)(len >> 8), (unsigned char)len, 1, 0, 1, 0, 32 }};
    unsigned char el[4] = {{ (unsigned char)(elen >> 24), (unsigned char)(elen >> 16),
        (unsigned char)(elen >> 8), (unsigned char)elen }};
    if (put(head, sizeof head) || put(pk, 32) || put(el, 4) || put((const unsigned char *)evidence, elen))
        return 3;
    unsigned char buf[4096];
    ssize_t got = read(3, buf, sizeof buf);  /* the CERT frame, at least its start */
    printf("got %zd bytes, type %d\\n", got, got > 4 ? buf[4] : -1);
    EVP_PKEY_free(k);
    return got > 4 && buf[4] == 2 ? 0 : 4;
}}
''')


async def test_the_compartment_private_key_is_in_no_file_of_the_state_dir(client, daemon):
    build = await build_source(client, "fixed_key.c", fixed_key_program())
    assert build["state"] == "succeeded", build["diagnostics"]
    run, output = await run_build(client, build["build_id"], args=[SEED])
    assert run["exit_code"] == 0, output
    public = x25519.X25519PrivateKey.from_private_bytes(FIXED_KEY).public_key().public_bytes_raw()
    cert = await client.call("certs.get", {"run_id": run["run_id"]})
    assert x509.load_pem_x509_certificate(cert["pem"].encode()).public_key().public_bytes_raw() == public
    needles = [FIXED_KEY, FIXED_KEY.hex().encode(), base64.b64encode(FIXED_KEY).rstrip(b"="),
               base64.urlsafe_b64encode(FIXED_KEY).rstrip(b"=")]
    scanned = 0
    for path in Path(daemon.state_dir).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            scanned += 1
            for needle in needles:
                assert needle not in data, f"{path} holds the compartment's private key"
    assert scanned > 5


def test_ca_keys_are_private(daemon):
    ca_dir = Path(daemon.state_dir) / "ca"
    for name in ("root.key", "issuing.key"):
        assert (ca_dir / name).stat().st_mode & 0o777 == 0o600
    assert (Path(daemon.state_dir) / "api-token").stat().st_mode & 0o777 == 0o600
    assert (Path(daemon.state_dir) / "attestables.db").stat().st_mode & 0o077 == 0


VIOLATIONS = {
    "oversized_length": 'write(3, "\\xff\\xff\\xff\\xff\\x01", 5);',
    "zero_length": 'write(3, "\\x00\\x00\\x00\\x00\\x01", 5);',
    "unknown_type": 'write(3, "\\x00\\x00\\x00\\x01\\x63", 5);',
    "launcher_only_type": 'write(3, "\\x00\\x00\\x00\\x01\\x02", 5);',
    "read_before_hello": 'write(3, "\\x00\\x00\\x00\\x01\\x04", 5);',
    "malformed_hello": 'write(3, "\\x00\\x00\\x00\\x03\\x01\\x00\\x01", 7);',
    "truncated_frame": 'write(3, "\\x00\\x00\\x01\\x00\\x01\\x00", 6); close(3);',
    "flood": 'static const char f[] = "\\x00\\x00\\x00\\x05\\x07\\x00\\x00\\x00\\x00";'
             ' for (int i = 0; i < 200000; i++) if (write(3, f, 9) < 0) break;',
}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
async def test_protocol_violations_end_the_run_with_a_clear_state(client, name):
    body = VIOLATIONS[name]
    build = await build_source(client, f"violate_{name}.c", c_source(
        f"int main(void) {{ {body} sleep(5); return 0; }}\n"))
    assert build["state"] == "succeeded", build["diagnostics"]
    run, _ = await run_build(client, build["build_id"], limits={"wall_s": 20})
    assert run["state"] == "failed" and run["reason"] == "protocol_violation", run
    assert run["error"]
    with pytest.raises(errors.NotFound):
        await client.call("certs.get", {"run_id": run["run_id"]})
    assert (await client.call("system.info"))["version"]  # the daemon carries on


async def test_a_program_that_never_speaks_is_not_certified(client):
    build = await build_source(client, "silent.c", c_source('int main(void) { puts("quiet"); return 0; }\n'))
    run, _ = await run_build(client, build["build_id"])
    assert run["state"] == "exited"
    with pytest.raises(errors.NotFound):
        await client.call("certs.get", {"run_id": run["run_id"]})


async def test_revoke_by_api(client):
    build = await build_source(client, "attest_wait.c", (EXAMPLES / "attest_hello.c").read_text())
    run, output = await run_build(client, build["build_id"])
    serial = output.split("certificate serial:")[1].split()[0]
    with pytest.raises(errors.Conflict):  # already revoked when its run ended
        await client.call("certs.revoke", {"serial": serial, "reason": "key_compromise"})
    with pytest.raises(errors.NotFound):
        await client.call("certs.revoke", {"serial": "abcdef", "reason": "key_compromise"})
    listed = await client.call("certs.list", {"run_id": run["run_id"]})
    assert [c["serial"] for c in listed["certificates"]] == [serial]


async def test_a_passphrase_protected_ca(tmp_path):
    from attestables.shared.local_daemon import LocalDaemon
    from attestables.shared.client import Client

    secret = tmp_path / "ca-passphrase"
    secret.write_text("correct horse battery staple\n")
    secret.chmod(0o600)
    daemon = LocalDaemon(tmp_path / "state", config={"ca_passphrase_file": str(secret)})
    await daemon.start()
    try:
        async with Client.connect(daemon.url, daemon.token) as client:
            fingerprints = (await client.call("ca.info"))["fingerprints"]
    finally:
        await daemon.stop()
    key = (tmp_path / "state" / "ca" / "issuing.key").read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in key
    # Without the passphrase the daemon refuses to start, saying why.
    log = tmp_path / "nopass.log"
    with open(log, "wb") as fh:
        bare = LocalDaemon(tmp_path / "state", log=fh)
        with pytest.raises(RuntimeError, match="exited"):
            await bare.start(timeout=15)
    assert "passphrase" in log.read_text().lower() and "Traceback" not in log.read_text()
    # With it, the same CA comes back.
    daemon = LocalDaemon(tmp_path / "state", config={"ca_passphrase_file": str(secret)})
    await daemon.start()
    try:
        async with Client.connect(daemon.url, daemon.token) as client:
            assert (await client.call("ca.info"))["fingerprints"] == fingerprints
    finally:
        await daemon.stop()


async def test_expired_certificates_leave_the_crl_after_a_crl_lists_them_past_expiry(tmp_path):
    from attestables.shared.client import Client
    from attestables.shared.local_daemon import LocalDaemon

    async def crl_serials(client: Client) -> set[int]:
        answer = await client.call("ca.crl")
        crl = x509.load_pem_x509_crl(answer["crl_pem"].encode())
        assert answer["revoked"] == len(crl)
        return {entry.serial_number for entry in crl}

    daemon = LocalDaemon(tmp_path / "state", config={"run_cert_validity_s": 5})
    await daemon.start()
    try:
        async with Client.connect(daemon.url, daemon.token) as client:
            build = await build_source(client, "attest_hello.c", (EXAMPLES / "attest_hello.c").read_text())
            _, first = await run_build(client, build["build_id"])
            old = int(first.split("certificate serial:")[1].split()[0], 16)
            # Past its notAfter by more than the second that certificate and CRL times are cut to.
            await asyncio.sleep(6.5)
            _, second = await run_build(client, build["build_id"])
            young = int(second.split("certificate serial:")[1].split()[0], 16)
            # The CRL issued when the second run ended lists both, the first past its expiry.
            assert await crl_serials(client) == {old, young}
    finally:
        await daemon.stop()
    await daemon.start()  # the start-up reconciliation drops what may go
    try:
        async with Client.connect(daemon.url, daemon.token) as client:
            assert await crl_serials(client) == {young}
            record = await client.call("certs.get", {"serial": format(old, "x")})
            assert record["revoked"] is True  # the record keeps the history; only the CRL forgets
    finally:
        await daemon.stop()
