"""A backup of the state dir, taken as docs/operations.md says, restores into a working daemon.

The daemon is stopped, its state dir archived with ``tar`` exactly as the operations guide
shows, and the archive unpacked somewhere else (another machine, as far as the daemon can
tell). The restored daemon must keep its identity and its records: the same API token
(existing clients keep working), the same CA (certificates issued before the backup still
chain to it, new ones are signed by it), the sources, builds, runs and their output, and the
artefacts, which it re-hashes before running them again.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

from .conftest import EXAMPLES, build_source, run_build


def tar(*args: str) -> None:
    subprocess.run(["tar", *args], check=True, capture_output=True, timeout=60)


@pytest.mark.skipif(shutil.which("tar") is None, reason="tar not installed")
async def test_a_restored_backup_keeps_token_ca_records_and_runs(tmp_path: Path) -> None:
    original = tmp_path / "machine-a" / "attestables"
    config = {"stop_grace_s": 1.0}
    async with LocalDaemon(original, config=config) as daemon:
        token = daemon.token
        async with Client.connect(daemon.url, token) as client:
            build = await build_source(client, "attest_hello.c", (EXAMPLES / "attest_hello.c").read_text())
            assert build["state"] == "succeeded", build
            run, output = await run_build(client, build["build_id"])
            assert run["state"] == "exited" and "certificate serial:" in output, output
            ca = await client.call("ca.info")
            certs = (await client.call("certs.list"))["certificates"]
            sources = await client.call("sources.list")
    # docs/operations.md, "Backup": stop, archive the state dir with its modes, start again.
    archive = tmp_path / "attestables-backup.tar.gz"
    tar("-C", str(original.parent), "-cpzf", str(archive), original.name)

    # "Restore", on another machine: unpack where that machine keeps the state dir.
    restored = tmp_path / "machine-b" / "attestables"
    restored.parent.mkdir()
    tar("-C", str(restored.parent), "-xpzf", str(archive))
    assert (restored / "api-token").stat().st_mode & 0o077 == 0  # modes survived
    async with LocalDaemon(restored, config=config) as daemon:
        assert daemon.token == token
        async with Client.connect(daemon.url, token) as client:
            assert (await client.call("ca.info"))["fingerprints"] == ca["fingerprints"]
            assert await client.call("sources.list") == sources
            assert (await client.call("builds.get", {"build_id": build["build_id"]}))["state"] == "succeeded"
            assert (await client.call("runs.get", {"run_id": run["run_id"]}))["state"] == "exited"
            logs = await client.call("runs.logs", {"run_id": run["run_id"]})
            assert "".join(chunk["data"] for chunk in logs["chunks"]) == output
            old = (await client.call("certs.list"))["certificates"]
            assert [c["serial"] for c in old] == [c["serial"] for c in certs]
            assert all(c["revoked"] for c in old)  # the run ended before the backup

            # The restored artefact runs again (re-hashed first) and is certified by the same CA.
            again, output = await run_build(client, build["build_id"])
            assert again["state"] == "exited" and "certificate serial:" in output, output
            detail = await client.call("certs.get", {"run_id": again["run_id"]})
            issuing = x509.load_pem_x509_certificates(ca["issuing_pem"].encode())[0]
            x509.load_pem_x509_certificate(detail["pem"].encode()).verify_directly_issued_by(issuing)
