"""What must hold in a daemon's state dir after any crash, checked from outside.

Each check returns a list of violations (empty: it holds). They read the state dir
directly (SQLite read-only, the blob files, the CA's CRL), so they work on a dead daemon's
state as well as on a live one's (SQLite's WAL lets a reader in beside the writer).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography import x509

from attestables.shared.files import is_temp_name

ACTIVE_RUN_STATES = ("pending", "starting", "running")
ACTIVE_BUILD_STATES = ("queued", "running")


def connect(state_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{state_dir / 'attestables.db'}?mode=ro", uri=True, timeout=10)


def integrity(state_dir: Path) -> list[str]:
    """``PRAGMA integrity_check`` is ok and no foreign key dangles."""
    with connect(state_dir) as db:
        result = [row[0] for row in db.execute("PRAGMA integrity_check")]
        dangling = db.execute("PRAGMA foreign_key_check").fetchall()
    problems = [] if result == ["ok"] else [f"integrity_check: {'; '.join(result[:5])}"]
    if dangling:
        problems.append(f"foreign_key_check: {dangling[:5]}")
    return problems


def named_blobs(state_dir: Path) -> dict[str, str]:
    """Every blob the database names as stored content: digest -> where it is named."""
    with connect(state_dir) as db:
        named = {row[0]: f"source {row[1]} v{row[2]}"
                 for row in db.execute("SELECT sha256, source_id, version FROM source_versions")}
        named.update({row[0]: f"artefact of {row[1]}" for row in db.execute(
            "SELECT artefact_sha256, build_id FROM builds WHERE artefact_sha256 IS NOT NULL")})
    return named


def blobs(state_dir: Path) -> list[str]:
    """Every blob the database names exists and hashes to its name."""
    problems = []
    root = state_dir / "blobs"
    for digest, where in named_blobs(state_dir).items():
        path = root / digest[:2] / digest
        try:
            actual = hashlib.sha256(path.read_bytes()).hexdigest()
        except FileNotFoundError:
            problems.append(f"blob {digest[:12]} ({where}) is missing")
            continue
        if actual != digest:
            problems.append(f"blob {digest[:12]} ({where}) hashes to {actual[:12]}")
    return problems


def unreferenced_blobs(state_dir: Path) -> int:
    """Blobs no row names (left by a kill between writing a blob and committing its row, or
    between a delete's commit and its erase): garbage, which a restart erases."""
    named = set(named_blobs(state_dir))
    root = state_dir / "blobs"
    present = {p.name for sub in root.iterdir() if sub.is_dir() for p in sub.iterdir() if not is_temp_name(p.name)}
    return len(present - named)


def temp_files(state_dir: Path) -> list[str]:
    """No temp file of an interrupted write anywhere in the state dir."""
    return [f"temp file left: {path.relative_to(state_dir)}" for path in state_dir.rglob("*")
            if is_temp_name(path.name)]


def active_rows(state_dir: Path) -> tuple[list[tuple[str, str, int | None]], list[tuple[str, str]]]:
    """(runs, builds) the database says are under way."""
    with connect(state_dir) as db:
        runs = db.execute(f"SELECT run_id, state, pid FROM runs WHERE state IN {ACTIVE_RUN_STATES}").fetchall()
        builds = db.execute(f"SELECT build_id, state FROM builds WHERE state IN {ACTIVE_BUILD_STATES}").fetchall()
    return runs, builds


def nothing_active(state_dir: Path, lost_runs: Iterable[str] = ()) -> list[str]:
    """After a restart (before anything new starts): no run or build is left under way, and
    each run that was under way when the daemon died is ``lost``."""
    runs, builds = active_rows(state_dir)
    problems = [f"run {r[0]} left {r[1]} by a dead daemon" for r in runs]
    problems += [f"build {b[0]} left {b[1]} by a dead daemon" for b in builds]
    lost = list(lost_runs)
    if lost:
        with connect(state_dir) as db:
            marks = ",".join("?" * len(lost))
            for run_id, state, reason in db.execute(
                    f"SELECT run_id, state, reason FROM runs WHERE run_id IN ({marks})", lost):
                if (state, reason) != ("lost", "daemon_restart"):
                    problems.append(f"run {run_id} was active at the crash and is {state}/{reason}, not lost")
    return problems


def certificates(state_dir: Path, crl_der: bytes | None = None) -> list[str]:
    """Every certificate of an ended run is revoked, in the records and in the CRL; the
    CRL is signed by the issuing CA and names no serial the records do not know."""
    problems = []
    crl_path = state_dir / "ca" / "crl.der"
    crl = x509.load_der_x509_crl(crl_der if crl_der is not None else crl_path.read_bytes())
    issuing = x509.load_pem_x509_certificates((state_dir / "ca" / "issuing.pem").read_bytes())[0]
    if not crl.is_signature_valid(issuing.public_key()):  # type: ignore[arg-type]
        problems.append("the CRL's signature does not verify against the issuing CA")
    revoked_in_crl = {format(r.serial_number, "x") for r in crl}
    with connect(state_dir) as db:
        rows = db.execute("""SELECT c.serial, c.revoked_at, r.state FROM certificates c
                             JOIN runs r USING (run_id)""").fetchall()
    known = {row[0] for row in rows}
    for serial, revoked_at, state in rows:
        if state in ACTIVE_RUN_STATES:
            continue
        if revoked_at is None:
            problems.append(f"certificate {serial} of an ended run ({state}) is not revoked in the records")
        if serial not in revoked_in_crl:
            problems.append(f"certificate {serial} of an ended run ({state}) is not in the CRL")
    stray = revoked_in_crl - known
    if stray:
        problems.append(f"the CRL revokes serials the records do not know: {sorted(stray)[:5]}")
    return problems


def run_outputs(state_dir: Path) -> list[str]:
    """Each run's output file is JSON lines; only the last line may be torn by a crash."""
    problems = []
    for path in (state_dir / "runs").glob("*.out"):
        lines = path.read_bytes().split(b"\n")
        for i, line in enumerate(lines[:-1]):
            try:
                json.loads(line)
            except ValueError:
                if i != len(lines) - 2 or lines[-1]:
                    problems.append(f"{path.name}: line {i + 1} of {len(lines) - 1} is not JSON")
                    break
    return problems


def work_dir_gone(previous: Path | None) -> list[str]:
    """The dead daemon's scratch dir was removed by the next start."""
    if previous is not None and previous.exists():
        return [f"the previous work dir {previous} is still there"]
    return []


def check_all(state_dir: Path, *, lost_runs: Iterable[str] = (), previous_work: Path | None = None,
              crl_der: bytes | None = None) -> dict[str, list[str]]:
    """Every invariant of a restarted daemon's state; {name: violations}."""
    checks: dict[str, Any] = {
        "integrity": lambda: integrity(state_dir),
        "blobs": lambda: blobs(state_dir),
        "temp_files": lambda: temp_files(state_dir),
        # The restarted daemon erased what a kill left unnamed, before serving.
        "unnamed_blobs": lambda: [f"{n} blob(s) no row names survived the restart"]
        if (n := unreferenced_blobs(state_dir)) else [],
        "nothing_active": lambda: nothing_active(state_dir, lost_runs),
        "certificates": lambda: certificates(state_dir, crl_der),
        "run_outputs": lambda: run_outputs(state_dir),
        "work_dir": lambda: work_dir_gone(previous_work),
    }
    out = {}
    for name, check in checks.items():
        try:
            out[name] = check()
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is itself a finding
            out[name] = [f"check failed: {type(exc).__name__}: {exc}"]
    return out


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def describe(pid: int) -> str:
    """A process for a report: its pid in its own namespace, uid, parent and command line."""
    facts = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in {"NSpid", "Uid", "PPid", "State"}:
                    facts[key] = " ".join(value.split()[:2] if key != "NSpid" else value.split())
    except OSError:
        pass
    inner = facts.get("NSpid", "").split()
    where = f"pid {inner[-1]} in its namespace" if len(inner) > 1 else "host namespace"
    return f"{where}, uid {facts.get('Uid', '?').split()[0]}, state {facts.get('State', '?')}: {cmdline(pid)[:120]}"


def processes_of_uids(uids: range) -> set[int]:
    """Live processes whose real uid is in ``uids``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) in uids and process_alive(int(entry)):
                            found.add(int(entry))
                        break
        except (OSError, ValueError, IndexError):
            pass
    return found


def children_of(pid: int) -> set[int]:
    """Direct children of every thread of ``pid``."""
    out: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.update(int(p) for p in fh.read().split())
        except (OSError, ValueError):
            pass
    return out
