"""Crash consistency in ``make test``: the crash script at a small count (every kill
target once, ``--cycle``), and the crash windows it found, reproduced deterministically.

``make reliability`` runs the script at the full count (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from attestables import cheri
from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

from .common import build, run_to_end
from .crash import PHASES

ROOT = Path(__file__).resolve().parents[2]
# Every kill target once and one more; `make reliability` runs the script itself, 100 kills.
ITERATIONS = len(PHASES) + 1


def test_the_crash_script_finds_every_invariant_holding(tmp_path: Path) -> None:
    out = tmp_path / "crash.json"
    seed = int.from_bytes(os.urandom(2), "big")
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.crash", "--iterations", str(ITERATIONS),
                           "--cycle", "--seed", str(seed), "--json", str(out), "--keep", str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60 * ITERATIONS, check=False)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["iterations"] == ITERATIONS, report
    assert set(report["kills_by_phase"]) == set(PHASES)  # every target was tried
    assert sum(report["triggered_by_phase"].values()) >= ITERATIONS - 2, report  # and (nearly) always reached
    assert report["runs_lost"] > 0 and report["work_done"].get("certificates", 0) > 0, report
    assert not report["violations"], f"seed {seed}: " + json.dumps(report["violations"], indent=1)
    assert proc.returncode == 0, proc.stdout[-2000:]


async def test_a_revocation_the_crl_holds_but_the_records_lost_is_completed_at_start(tmp_path: Path) -> None:
    """The crash window between writing the CRL and updating the record (found by the
    crash script): at the next start the record says revoked, as the CRL does."""
    daemon = LocalDaemon(tmp_path / "state")
    await daemon.start()
    try:
        async with Client.connect(daemon.url, daemon.token) as client:
            hello = await build(client, "attest_hello.c", (cheri.EXAMPLES_DIR / "attest_hello.c").read_text())
            run, _ = await run_to_end(client, hello["build_id"])
            serial = (await client.call("certs.get", {"run_id": run["run_id"]}))["serial"]
    finally:
        await daemon.stop()
    with sqlite3.connect(daemon.state_dir / "attestables.db") as db:  # as if killed in between
        db.execute("UPDATE certificates SET revoked_at = NULL, revocation_reason = NULL WHERE serial = ?", (serial,))
    await daemon.start()
    try:
        async with Client.connect(daemon.url, daemon.token) as client:
            cert = await client.call("certs.get", {"serial": serial})
            assert cert["revoked"] is True and cert["revocation_reason"] == "cessation_of_operation", cert
    finally:
        await daemon.stop()


async def test_temp_files_of_interrupted_writes_are_removed_at_start(tmp_path: Path) -> None:
    """A daemon killed inside a crash-safe write leaves ``.NAME.RANDOM.tmp``: the blob
    store's, the CA's (the CRL is rewritten at every revocation), the state dir's own."""
    daemon = LocalDaemon(tmp_path / "state")
    await daemon.start()
    await daemon.stop()
    state = daemon.state_dir
    left = [state / "ca" / ".crl.der.0123456789ab.tmp", state / ".api-token.0123456789ab.tmp",
            state / "blobs" / "ab" / ".abcd.0123456789ab.tmp"]
    for path in left:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half a write")
    kept = state / "ca" / "notes.tmp"  # not a temp name: someone's file, left alone
    kept.write_text("operator's")
    await daemon.start()
    await daemon.stop()
    assert [p for p in left if p.exists()] == []
    assert kept.exists()
