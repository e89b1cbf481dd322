"""The attestation commands of the CLI against a real daemon, a real compartment and real openssl.

``attestables certs | attest | policy export | verify | ca`` as a user types them: a
program that completes the handshake (``cheri/examples/attest_hello.c``) is built and run
once per module; its certificate is listed, written out, checked by ``openssl verify``,
appraised offline against an exported policy with and without the daemon's CRL. ``ca csr``
and ``ca import`` run on a state directory of their own, signed by a test "operator" CA.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attestables.cli.main import main
from attestables.shared.client import Client

from .conftest import EXAMPLES, build_source, wait_run

DOCUMENT_OID = "2.25.29029789681239518142742138685501625029"

# Completes the handshake, says so, then waits to be stopped: a run whose certificate is
# still valid, for ``certs revoke``.
SLEEPER = """\
#include <stdio.h>
#include <unistd.h>
#include "attestables.h"
int main(void)
{
    if (att_runtime_init() != ATT_OK) { fprintf(stderr, "handshake failed: %s\\n", att_error_detail()); return 1; }
    printf("certificate serial: %s\\n", att_certificate_serial());
    fflush(stdout);
    sleep(60);
    att_runtime_shutdown();
    return 0;
}
"""


def cli(daemon: Any, *args: str, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTESTABLES_")}
    if daemon is not None:
        env["ATTESTABLES_URL"] = daemon.url
        env["ATTESTABLES_TOKEN"] = daemon.token
    return subprocess.run([sys.executable, "-m", "attestables.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl is not installed")
    return path


# -- one attested run per module ----------------------------------------------------------------


@pytest.fixture(scope="module")
def attested(daemon: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """attest_hello built and run to its end; a second program (the sleeper) built too."""

    async def setup() -> dict[str, Any]:
        async with Client.connect(daemon.url, daemon.token) as client:
            hello, sleeper = await asyncio.gather(
                build_source(client, "attest_hello.c", (EXAMPLES / "attest_hello.c").read_text()),
                build_source(client, "sleeper.c", SLEEPER),
            )
            assert hello["state"] == "succeeded", hello
            assert sleeper["state"] == "succeeded", sleeper
            started = await client.call("runs.start", {"build_id": hello["build_id"]})
            final = await wait_run(client, started["run_id"])
            assert final["state"] == "exited" and final["exit_code"] == 0, final
            logs = await client.call("runs.logs", {"run_id": started["run_id"]})
            output = "".join(chunk["data"] for chunk in logs["chunks"])
            match = re.search(r"certificate serial: ([0-9a-f]+)", output)
            assert match, output
            build = await client.call("builds.get", {"build_id": hello["build_id"]})
            return {"build": build, "run_id": started["run_id"], "serial": match.group(1),
                    "other_build_id": sleeper["build_id"]}

    data = asyncio.run(setup())
    data["dir"] = tmp_path_factory.mktemp("attested")
    return data


@pytest.fixture(scope="module")
def files(daemon: Any, attested: dict[str, Any]) -> dict[str, Path]:
    """run.pem (certificate + chain), issuing.pem, root.pem and the daemon's CRL, as a service gets them."""
    base: Path = attested["dir"]
    ok(cli(daemon, "certs", "show", "--run", attested["run_id"], "--out", str(base / "run.pem"),
           "--chain-out", str(base / "issuing.pem")))
    ok(cli(daemon, "ca", "show", "--root-out", str(base / "root.pem")))
    with urllib.request.urlopen(f"{daemon.http_url}/api/v1/crl", timeout=10) as response:
        (base / "crl.der").write_bytes(response.read())
    return {name: base / f"{name}.{ext}" for name, ext in
            (("run", "pem"), ("issuing", "pem"), ("root", "pem"), ("crl", "der"))}


# -- certs ------------------------------------------------------------------------------------


def test_certs_list_shows_the_run_revoked_after_it_ended(daemon, attested):
    listing = ok(cli(daemon, "certs", "list")).stdout
    line = next(line for line in listing.splitlines() if line.startswith(attested["serial"][:16]))
    assert "revoked (cessation_of_operation)" in line

    by_run = json.loads(ok(cli(daemon, "certs", "list", "--run", attested["run_id"][:8], "--json")).stdout)
    [cert] = by_run["certificates"]
    assert cert["serial"] == attested["serial"] and cert["run_id"] == attested["run_id"]
    assert cert["revoked"] is True and cert["revocation_reason"] == "cessation_of_operation"


def test_certs_show_summary_and_prefixes(daemon, attested, files):
    serial, run_id = attested["serial"], attested["run_id"]
    shown = ok(cli(daemon, "certs", "show", serial[:10])).stdout
    assert serial in shown and f"urn:attestables:run:{run_id}" in shown
    assert "X25519" in shown and "revoked" in shown
    colons = ":".join(serial.upper()[i:i + 2] for i in range(0, len(serial), 2))  # as openssl prints it
    record = json.loads(ok(cli(daemon, "certs", "show", colons, "--json")).stdout)
    assert record["run_id"] == run_id and record["document"]["run"]["run_id"] == run_id
    bundle = files["run"].read_text()
    assert bundle.startswith(record["pem"]) and bundle.count("BEGIN CERTIFICATE") == 2
    assert files["issuing"].read_text() == record["chain_pem"]
    missing = cli(daemon, "certs", "show", "--run", "r_doesnotexist")
    assert missing.returncode == 1 and "(not_found)" in missing.stderr and "Traceback" not in missing.stderr


def test_openssl_accepts_the_certificate_and_shows_the_document(attested, files):
    tool = openssl()
    verified = subprocess.run(
        [tool, "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", str(files["root"]),
         "-untrusted", str(files["issuing"]), str(files["run"])],
        capture_output=True, text=True,
    )
    # Revoked, but openssl checks no CRL unless told to: the chain itself is sound.
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified.stdout + verified.stderr
    text = subprocess.run([tool, "x509", "-text", "-noout", "-in", str(files["run"])], capture_output=True,
                          text=True, check=True).stdout
    assert f"URI:urn:attestables:run:{attested['run_id']}" in text
    assert DOCUMENT_OID in text and '"eat_profile":"urn:attestables:eat-profile:1"' in text


async def _wait_for_certificate(daemon: Any, run_id: str, timeout: float = 20) -> dict[str, Any]:
    async with Client.connect(daemon.url, daemon.token) as client:
        deadline = time.monotonic() + timeout
        while True:
            listing = await client.call("certs.list", {"run_id": run_id})
            if listing["certificates"]:
                return listing["certificates"][0]
            assert time.monotonic() < deadline, "the run never completed its handshake"
            await asyncio.sleep(0.05)


def test_certs_revoke_a_live_run(daemon, attested):
    started = json.loads(ok(cli(daemon, "run", attested["other_build_id"], "--json")).stdout)
    run_id = started["run_id"]
    try:
        cert = asyncio.run(_wait_for_certificate(daemon, run_id))
        assert cert["revoked"] is False
        bad = cli(daemon, "certs", "revoke", cert["serial"], "--reason", "because")
        assert bad.returncode == 2 and "invalid choice" in bad.stderr
        revoked = ok(cli(daemon, "certs", "revoke", cert["serial"][:12], "--reason", "key_compromise"))
        assert f"revoked certificate {cert['serial']}" in revoked.stdout
        record = json.loads(ok(cli(daemon, "certs", "show", cert["serial"], "--json")).stdout)
        assert record["revoked"] is True and record["revocation_reason"] == "key_compromise"
        again = cli(daemon, "certs", "revoke", cert["serial"])
        assert again.returncode == 1 and "(conflict)" in again.stderr
    finally:
        cli(daemon, "stop", run_id)


def test_revocation_reasons_match_the_ca(capsys: pytest.CaptureFixture[str]):
    from attestables.cli.commands.certs import REVOCATION_REASONS
    from attestables.daemon.ca import REVOCATION_REASONS as CA_REASONS

    assert REVOCATION_REASONS == tuple(CA_REASONS)
    with pytest.raises(SystemExit):
        main(["certs", "revoke", "--help"])
    helptext = capsys.readouterr().out
    assert all(reason in helptext for reason in CA_REASONS)


# -- attest -----------------------------------------------------------------------------------


def test_attest_prints_the_document_readably(daemon, attested):
    build = attested["build"]
    text = ok(cli(daemon, "attest", attested["run_id"][:10])).stdout
    for section in ("\nrun\n", "\nmeasurements\n", "\ntoolchain\n", "\nELF\n", "\nplatform\n", "\ncompartment\n",
                    "\nevidence", "\nlauncher\n", "\nvalidity\n"):
        assert section in text, section
    assert re.search(rf"elf-sha256\s+{build['artefact']['sha256']}", text)
    assert re.search(rf"source-sha256\s+{build['source_sha256']}", text)
    assert attested["serial"] in text and "revoked" in text
    document = json.loads(ok(cli(daemon, "attest", attested["run_id"], "--json")).stdout)
    assert document["run"]["run_id"] == attested["run_id"]
    if not document["platform"]["cheri"]:
        assert "No CHERI protection applied" in text
        assert document["submods"]["compartment"]["backend"] != "bwrap" or "bubblewrap" in text
    expires = datetime.fromtimestamp(document["exp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expires in text  # exp as a date


# -- policy export and verify -----------------------------------------------------------------


def test_policy_export_then_verify_with_and_without_the_crl(daemon, attested, files, tmp_path):
    from attestables.shared.verifier import load_policy

    build = attested["build"]
    policy_path = tmp_path / "policies" / "P.toml"
    policy_path.parent.mkdir()
    ok(cli(daemon, "policy", "export", build["build_id"][:8], "--out", str(policy_path), "--max-age", "24h"))
    assert (policy_path.parent / "root.pem").read_bytes() == files["root"].read_bytes()
    policy = load_policy(policy_path)
    [entry] = policy.allow
    assert entry.elf_sha256 == build["artefact"]["sha256"] and entry.source_sha256 == build["source_sha256"]
    assert policy.max_age == 86400

    revoked = cli(None, "verify", str(files["run"]), "--policy", str(policy_path), "--crl", str(files["crl"]))
    assert revoked.returncode == 1, revoked.stderr
    assert revoked.stdout.startswith("contraindicated\n")
    assert re.search(r"^  revoked: ", revoked.stdout, re.M)

    result = cli(None, "verify", str(files["run"]), "--policy", str(policy_path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["status"] in {"affirming", "warning"}
    assert verdict["serial"] == attested["serial"]
    assert not {r["code"] for r in verdict["reasons"]} - {"too_old", "crl_stale", "issuer_mismatch"}

    # The leaf alone plus --chain works as well as the bundle.
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(files["run"].read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    assert cli(None, "verify", str(leaf), "--policy", str(policy_path), "--chain", str(files["issuing"])
               ).returncode == 0
    untrusted = cli(None, "verify", str(leaf), "--policy", str(policy_path))
    assert untrusted.returncode == 1 and "chain_untrusted: " in untrusted.stdout


def test_a_policy_for_another_build_is_measurement_unknown(daemon, attested, files, tmp_path):
    policy_path = tmp_path / "other.toml"
    exported = ok(cli(daemon, "policy", "export", attested["other_build_id"], "--roots-out",
                      str(tmp_path / "launcher-root.pem"), "--require-backend", "bwrap", "--json"))
    policy_path.write_text(json.loads(exported.stdout)["toml"])
    assert 'trusted_roots = ["' in policy_path.read_text()
    result = cli(None, "verify", str(files["run"]), "--policy", str(policy_path))
    assert result.returncode == 1
    assert result.stdout.startswith("contraindicated\n") and "  measurement_unknown: " in result.stdout


def test_verify_warning_exit_codes_and_errors(attested, files, tmp_path):
    anything = tmp_path / "anything.toml"
    shutil.copy(files["root"], tmp_path / "root.pem")
    anything.write_text('trusted_roots = ["root.pem"]\n')  # no [[allow]]: measurement_unchecked
    warned = cli(None, "verify", str(files["run"]), "--policy", str(anything))
    assert warned.returncode == 0 and warned.stdout.startswith("warning\n")
    assert "  measurement_unchecked: " in warned.stdout
    assert cli(None, "verify", str(files["run"]), "--policy", str(anything), "--strict").returncode == 4

    typo = tmp_path / "typo.toml"
    typo.write_text('trusted_roots = ["root.pem"]\nrequire_backed = "bwrap"\n')
    bad = cli(None, "verify", str(files["run"]), "--policy", str(typo))
    assert bad.returncode == 1 and bad.stdout == ""
    assert "require_backend" in bad.stderr and "Traceback" not in bad.stderr
    not_a_crl = cli(None, "verify", str(files["run"]), "--policy", str(anything), "--crl", str(files["root"]))
    assert not_a_crl.returncode == 1 and "CRL" in not_a_crl.stderr and "Traceback" not in not_a_crl.stderr


def test_ca_show(daemon, files):
    shown = ok(cli(daemon, "ca", "show")).stdout
    info = json.loads(ok(cli(daemon, "ca", "show", "--json")).stdout)
    assert info["fingerprints"]["root"] in shown and info["fingerprints"]["issuing"] in shown
    assert info["root_pem"] == files["root"].read_text()
    assert info["root"]["fingerprint"] == info["fingerprints"]["root"]
    assert "revoked" in shown and "next update" in shown


# -- ca csr / ca import: the operator's own CA ---------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                                                      "Operator Inc")])


def _ca_cert(subject: x509.Name, key: Any, issuer: x509.Name, issuer_key: Any, pathlen: int) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=pathlen), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


class Operator:
    """A test "operator" CA: a root and an intermediate that signs the launcher's issuing CA."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _ca_cert(_name("Operator Root"), self.root_key.public_key(), _name("Operator Root"),
                             self.root_key, 2)
        self.mid_key = ec.generate_private_key(ec.SECP256R1())
        self.mid = _ca_cert(_name("Operator Intermediate"), self.mid_key.public_key(), self.root.subject,
                            self.root_key, 1)

    def sign(self, csr_pem: bytes) -> x509.Certificate:
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        return _ca_cert(csr.subject, csr.public_key(), self.mid.subject, self.mid_key, 0)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.mid, self.root))


def test_ca_csr_and_import_with_the_operators_ca(tmp_path):
    from attestables.daemon.ca import CertificateAuthority

    state = tmp_path / "state"
    original = CertificateAuthority.open(state / "ca")
    operator = Operator()

    csr = ok(cli(None, "ca", "csr", "--state-dir", str(state), "--out", str(tmp_path / "issuing.csr")))
    assert "ca import" in csr.stderr
    csr_pem = (tmp_path / "issuing.csr").read_bytes()
    assert csr_pem == (state / "ca" / "issuing.csr").read_bytes()
    request = x509.load_pem_x509_csr(csr_pem)
    assert request.public_key() == original.issuing_certificate.public_key()  # the existing issuing key
    assert not (state / "daemon.pid").exists()  # the lock file it made is gone again

    # A certificate for some other key is refused, and nothing changes.
    stranger = _ca_cert(_name("stranger"), ec.generate_private_key(ec.SECP256R1()).public_key(),
                        operator.mid.subject, operator.mid_key, 0)
    (tmp_path / "stranger.pem").write_bytes(stranger.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "chain.pem").write_bytes(operator.chain_pem())
    refused = cli(None, "ca", "import", str(tmp_path / "stranger.pem"), "--chain", str(tmp_path / "chain.pem"),
                  "--state-dir", str(state))
    assert refused.returncode == 1 and "issuing key" in refused.stderr and "Traceback" not in refused.stderr
    assert (state / "ca" / "root.pem").read_bytes() == original.root_pem()

    signed = operator.sign(csr_pem)
    (tmp_path / "signed.pem").write_bytes(signed.public_bytes(serialization.Encoding.PEM))
    imported = ok(cli(None, "ca", "import", str(tmp_path / "signed.pem"), "--chain", str(tmp_path / "chain.pem"),
                      "--state-dir", str(state), "--json"))
    assert "restart" in imported.stderr.lower()
    summary = json.loads(imported.stdout)
    assert summary["issuing"]["issuer"] == operator.mid.subject.rfc4514_string()
    ca = CertificateAuthority.load(state / "ca")
    assert ca.root_certificate == operator.root and ca.chain == (signed, operator.mid)
    assert ca.operator_root and not (state / "ca" / "root.key").exists()
    assert list((state / "ca").glob("root.key.retired-*"))


def test_ca_csr_with_a_passphrase(tmp_path):
    from attestables.daemon.ca import CertificateAuthority

    state = tmp_path / "state"
    secret = tmp_path / "passphrase"
    secret.write_bytes(os.urandom(24).hex().encode() + b"\n")
    CertificateAuthority.open(state / "ca", passphrase=secret.read_bytes().strip())
    missing = cli(None, "ca", "csr", "--state-dir", str(state))
    assert missing.returncode == 1 and "(unauthorized)" in missing.stderr and "passphrase" in missing.stderr
    made = ok(cli(None, "ca", "csr", "--state-dir", str(state), "--passphrase-file", str(secret)))
    assert made.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----")


def test_ca_csr_and_import_refuse_while_a_daemon_holds_the_state_dir(daemon, tmp_path):
    before = sorted(p.name for p in (daemon.state_dir / "ca").iterdir())
    csr = cli(None, "ca", "csr", "--state-dir", str(daemon.state_dir), "--out", str(tmp_path / "x.csr"))
    assert csr.returncode == 1 and "daemon" in csr.stderr and "running" in csr.stderr and "(conflict)" in csr.stderr
    (tmp_path / "c.pem").write_text("")
    imp = cli(None, "ca", "import", str(tmp_path / "c.pem"), "--chain", str(tmp_path / "c.pem"),
              "--state-dir", str(daemon.state_dir))
    assert imp.returncode == 1 and "running" in imp.stderr
    assert not (tmp_path / "x.csr").exists()
    assert sorted(p.name for p in (daemon.state_dir / "ca").iterdir()) == before
    assert (daemon.state_dir / "daemon.pid").exists()
