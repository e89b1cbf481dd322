"""Run certificates: issuance in the real daemon against the seed's openssl method, and
the shared verifier, cold and cached.

``cert_issue_ms_p50``: a compartment program (``c/cert_timer.c``) made by the daemon's
own build sends HELLO with a key it made beforehand and times, with CLOCK_MONOTONIC,
until the whole CERT frame has arrived: the daemon's decoding of HELLO, the attestation
document, the ECDSA signature, the ``certificates`` row (an fsync'd commit), the
``certs.issued`` event and the CERT frame. It sends HELLO ``SETTLE_MS`` after it starts,
when the daemon has finished starting the run and is reading the channel, so the figure
is the daemon's "HELLO received -> CERT sent" (plus two socket transits). A third arm
sends HELLO at once, as ``att_runtime_init()`` does (``hello_at_start_ms_p50``): that
adds whatever the daemon still does for the run's start before it reads the channel.
One run of each per repeat, interleaved with the baseline: the seed's method,
``openssl genpkey`` (RSA-2048) then ``openssl req -x509`` as two subprocesses, timed
from before the first to after the second. ``cert_issue_speedup_vs_openssl_cli`` is
baseline ÷ ours.

The breakdown times, in this process, what the daemon does at HELLO: the document
(``Certificates.build_document``), its canonical JSON, ``issue_run_certificate`` (the
canonical JSON again, the signature, DER and PEM), and an INSERT + commit of a row of
4 KiB into a SQLite file like the daemon's (WAL, synchronous=FULL) on the same file
system as its state dir, made right after each measured issuance. Whatever ours takes
beyond their sum (``unaccounted``) is the daemon's plumbing: the event loop, aiosqlite's
thread hops, the event, the socket.

``verify_cached_us_p50`` and ``verify_cold_ms_p50``: ``Verifier.verify`` on a real run
certificate bundle (leaf + issuing CA PEM, as the broker posts it), with the daemon's
root and CRL and the policy ``policy export`` would write for the build. Cold: a fresh
``Verifier`` for each call (built outside the clock), so nothing is remembered — not
even the issuing CA's signature or the CRL's; ``verify_new_certificate_ms_p50`` is the
same after ``clear_cache()`` on a long-lived verifier, i.e. what a service pays for the
first request of a new run. Cached: the same bundle again, the mean of a batch of calls.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from attestables.daemon.ca import CertificateAuthority
from attestables.daemon.certs import Certificates
from attestables.daemon.compartments.backends import sandbox_limits
from attestables.daemon.config import Settings
from attestables.shared.attestation.document import parse_document
from attestables.shared.attestation.extension import extract_document_bytes
from attestables.shared.client import Client
from attestables.shared.verifier import Verifier, load_certificates, policy_for_build

from .measure import Result, interleaved, median, ms, percentile, summary_ms
from .programs import build_program, c_source, collect_runs, start_run

ISSUE_GOAL_MS = 5.0
SPEEDUP_GOAL = 50.0
VERIFY_CACHED_GOAL_US = 50.0
VERIFY_COLD_GOAL_MS = 2.0
ARMS = ("ours", "openssl", "at_start")
SETTLE_MS = 100
CRL_PATH = "/api/v1/crl"
EVIDENCE = {"cheri": False, "capabilities": None, "abi": "native"}  # what cert_timer.c sends


def openssl_issue(workdir: Path) -> float:
    """The seed's certificate generation: an RSA-2048 key, then a self-signed certificate."""
    key, cert = workdir / "key.pem", workdir / "cert.pem"
    t0 = time.perf_counter()
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-new", "-key", str(key), "-subj", "/CN=attestables run",
                    "-days", "1", "-out", str(cert)], check=True, capture_output=True)
    elapsed = time.perf_counter() - t0
    key.unlink()
    cert.unlink()
    return elapsed


async def cert_run(client: Client, events: Any, build_id: str, settle_ms: int = SETTLE_MS) -> tuple[str, float]:
    """One cert_timer run: (run id, HELLO -> CERT in seconds, as the compartment timed it)."""
    run_id = await start_run(client, build_id, [str(settle_ms)])
    output = (await collect_runs(events, [run_id]))[run_id].check()
    (value,) = output.values("cert_us")
    return run_id, float(value) / 1e6


class CommitProbe:
    """INSERT + commit of one row into a WAL, synchronous=FULL SQLite file in ``directory``
    (the daemon's settings, on the same file system as its state dir): the durable write
    the daemon makes before it sends CERT. fsync times on a shared machine drift, so the
    probe runs beside each measured issuance rather than once."""

    def __init__(self, directory: Path, row_bytes: int = 4096) -> None:
        self.path = directory / "bench-commit-probe.db"
        self.path.unlink(missing_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        self.body = os.urandom(row_bytes)
        self.samples: list[float] = []

    def commit(self) -> None:
        t0 = time.perf_counter()
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO t (body) VALUES (?)", (self.body,))
        self.conn.execute("COMMIT")
        self.samples.append(time.perf_counter() - t0)

    def close(self) -> None:
        self.conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def issuance_breakdown(run: dict[str, Any], build: dict[str, Any], public_key: bytes, settings: Settings,
                       commits: list[float], repeats: int) -> dict[str, Any]:
    """What the daemon does at HELLO, timed step by step in this process with a CA of
    its own (same profile: ECDSA P-256) and the real run and build records."""
    with tempfile.TemporaryDirectory(prefix="attestables-bench-ca-") as tmp:
        ca = CertificateAuthority.create(Path(tmp) / "ca")
        certs = Certificates(None, ca)  # type: ignore[arg-type]  # issuance never touches the daemon
        limits = sandbox_limits(settings.default_limits, settings)
        document_s, canonical_s, issue_s = [], [], []
        issued = None
        for _ in range(repeats):
            t0 = time.perf_counter()
            document = certs.build_document(run=run, build=build, public_key=public_key, evidence=EVIDENCE,
                                            limits=limits)
            t1 = time.perf_counter()
            document.to_canonical_json()
            t2 = time.perf_counter()
            issued = ca.issue_run_certificate(public_key=public_key, run_id=run["run_id"], document=document)
            t3 = time.perf_counter()
            document_s.append(t1 - t0)
            canonical_s.append(t2 - t1)
            issue_s.append(t3 - t2)
    assert issued is not None
    return {
        "document_ms_p50": ms(median(document_s)),
        "canonical_json_ms_p50": ms(median(canonical_s)),
        "issue_run_certificate_ms_p50": ms(median(issue_s)),
        "signature_and_encoding_ms_p50": ms(max(0.0, median(issue_s) - median(canonical_s))),
        "db_commit_ms_p50": ms(median(commits)),
        "db_commit_ms_p90": ms(percentile(commits, 90)),
        "in_process_total_ms_p50": ms(median(document_s) + median(issue_s) + median(commits)),
        "certificate_der_bytes": len(issued.der),
        "document_bytes": len(issued.document),
    }


async def bench_cert_issue(client: Client, state_dir: Path, http_url: str, repeats: int,
                           settings: Settings) -> tuple[list[Result], dict[str, Any]]:
    """The issuance figures, and what the verifier benchmark needs: a real certificate of a
    run that had not ended when the CRL handed over was published."""
    async with aiohttp.ClientSession() as session, session.get(http_url + CRL_PATH) as resp:
        resp.raise_for_status()
        crl = await resp.read()  # before any run below: none of their certificates is on it
    ca_info = await client.call("ca.info")
    record, _ = await build_program(client, state_dir, "cert_timer.c", c_source("cert_timer.c"))
    samples: dict[str, list[float]] = {arm: [] for arm in ARMS}
    run_ids: list[str] = []
    probe = CommitProbe(state_dir.parent)
    try:
        with tempfile.TemporaryDirectory(prefix="attestables-bench-openssl-") as tmp:
            workdir = Path(tmp)
            async with await client.subscribe(["runs.output", "runs.state"]) as events:
                # Warm-up (not counted): the first run of the program, the page cache, openssl's.
                await cert_run(client, events, record["build_id"])
                await asyncio.to_thread(openssl_issue, workdir)
                for _, arm in interleaved(repeats, ARMS):
                    if arm == "ours":
                        run_id, elapsed = await cert_run(client, events, record["build_id"])
                        run_ids.append(run_id)
                        probe.commit()
                    elif arm == "at_start":
                        _, elapsed = await cert_run(client, events, record["build_id"], settle_ms=0)
                    else:
                        elapsed = openssl_issue(workdir)  # blocking on purpose: nothing else should run
                    samples[arm].append(elapsed)
    finally:
        probe.close()
    run = await client.call("runs.get", {"run_id": run_ids[-1]})
    cert = await client.call("certs.get", {"run_id": run_ids[-1]})
    leaf = load_certificates(cert["pem"])[0]
    public_key = leaf.public_key().public_bytes_raw()  # type: ignore[union-attr]
    breakdown = await asyncio.to_thread(issuance_breakdown, run, record, public_key, settings, probe.samples,
                                        max(10, repeats * 5))
    ours, base = median(samples["ours"]), median(samples["openssl"])
    # Medians of separately measured steps: an estimate, and on a noisy machine it can be < 0.
    breakdown["unaccounted_ms_p50"] = round(ms(ours) - breakdown["in_process_total_ms_p50"], 3)
    common = {"repeats": repeats, "program": "tests/bench/c/cert_timer.c"}
    results = [
        Result(
            key="cert_issue_ms_p50",
            value=ms(ours),
            unit="ms",
            goal=ISSUE_GOAL_MS,
            goal_op="<=",
            extra={
                "ours_ms_p50": ms(ours),
                "ours_ms": summary_ms(samples["ours"]),
                "hello_at_start_ms_p50": ms(median(samples["at_start"])),
                "hello_at_start_ms": summary_ms(samples["at_start"]),
                "settle_ms": SETTLE_MS,
                **{f"breakdown_{k}": v for k, v in breakdown.items()},
                **common,
                "measured": f"in the compartment: HELLO written ({SETTLE_MS} ms after start) -> whole CERT frame read "
                            "(CLOCK_MONOTONIC)",
            },
        ),
        Result(
            key="cert_issue_speedup_vs_openssl_cli",
            value=round(base / ours, 1),
            unit="x",
            goal=SPEEDUP_GOAL,
            goal_op=">=",
            extra={
                "ours_ms_p50": ms(ours),
                "baseline_ms_p50": ms(base),
                "baseline_ms": summary_ms(samples["openssl"]),
                **common,
                "baseline": "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048, then "
                            "openssl req -x509 -new -key ... -subj /CN=... -days 1 (two subprocesses)",
            },
        ),
    ]
    material = {"bundle": cert["pem"] + cert["chain_pem"], "root_pem": ca_info["root_pem"], "crl": crl,
                "elf_sha256": record["artefact"]["sha256"], "source_sha256": record["source_sha256"]}
    return results, material


def bench_verify(material: dict[str, Any], repeats: int, batch: int) -> list[Result]:
    """Cold and cached ``Verifier.verify`` of the bundle in ``material`` (blocking)."""
    bundle: str = material["bundle"]
    roots = load_certificates(material["root_pem"])
    policy = policy_for_build(elf_sha256=material["elf_sha256"], source_sha256=material["source_sha256"],
                              trusted_roots=("root.pem",), require_backend="bwrap")

    def fresh() -> Verifier:
        return Verifier(policy, roots=roots, crls=[material["crl"]])

    status = fresh().verify(bundle)
    if status.status == "contraindicated":
        raise RuntimeError(f"the benchmark certificate does not verify: {status.to_dict()}")

    long_lived = fresh()
    long_lived.verify(bundle)
    cold: list[float] = []
    new_cert: list[float] = []
    cached: list[float] = []
    for _, arm in interleaved(repeats, ("cold", "new_certificate", "cached")):
        if arm == "cold":
            verifier = fresh()
            t0 = time.perf_counter()
            verifier.verify(bundle)
            cold.append(time.perf_counter() - t0)
        elif arm == "new_certificate":
            long_lived.clear_cache()
            t0 = time.perf_counter()
            long_lived.verify(bundle)
            new_cert.append(time.perf_counter() - t0)
        else:
            long_lived.verify(bundle)
            t0 = time.perf_counter()
            for _ in range(batch):
                long_lived.verify(bundle)
            cached.append((time.perf_counter() - t0) / batch)

    # Where a cold verification goes: its costliest single steps, alone.
    leaf = load_certificates(bundle)[0]
    issuing = load_certificates(bundle)[1]
    parts: dict[str, list[float]] = {"parse_bundle": [], "leaf_signature": [], "document_parse": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        load_certificates(bundle)
        t1 = time.perf_counter()
        leaf.verify_directly_issued_by(issuing)
        t2 = time.perf_counter()
        parse_document(extract_document_bytes(leaf))
        t3 = time.perf_counter()
        parts["parse_bundle"].append(t1 - t0)
        parts["leaf_signature"].append(t2 - t1)
        parts["document_parse"].append(t3 - t2)

    common = {"repeats": repeats, "status": status.status, "bundle_bytes": len(bundle)}
    return [
        Result(
            key="verify_cached_us_p50",
            value=round(median(cached) * 1e6, 2),
            unit="us",
            goal=VERIFY_CACHED_GOAL_US,
            goal_op="<=",
            extra={"ours_ms_p50": ms(median(cached)), "batch": batch,
                   "samples_us": [round(s * 1e6, 2) for s in cached], **common,
                   "measured": "Verifier.verify(the same PEM bundle) on a warm verifier, mean of a batch"},
        ),
        Result(
            key="verify_cold_ms_p50",
            value=ms(median(cold)),
            unit="ms",
            goal=VERIFY_COLD_GOAL_MS,
            goal_op="<=",
            extra={"ours_ms_p50": ms(median(cold)), "ours_ms": summary_ms(cold),
                   "verify_new_certificate_ms_p50": ms(median(new_cert)),
                   "verify_new_certificate_ms": summary_ms(new_cert),
                   **{f"part_{k}_ms_p50": ms(median(v)) for k, v in parts.items()}, **common,
                   "measured": "Verifier.verify on a fresh Verifier (nothing memoised); "
                               "verify_new_certificate: after clear_cache() on a long-lived one"},
        ),
    ]


async def bench_attestation(client: Client, state_dir: Path, http_url: str, repeats: int, verify_repeats: int,
                            verify_batch: int, settings: Settings) -> list[Result]:
    """Every key of this module: issuance first, then the verifier on its certificate."""
    results, material = await bench_cert_issue(client, state_dir, http_url, repeats, settings)
    return results + await asyncio.to_thread(bench_verify, material, verify_repeats, verify_batch)
