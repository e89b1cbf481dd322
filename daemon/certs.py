"""Run certificates: issued at HELLO, stored, revoked when their run ends.

The launcher certifies exactly what it started: the attestation document is built from
the daemon's own records (the build's measurements, the toolchain, the ELF facts, the
backend and its limits, the pid it spawned), plus the evidence the compartment sent,
which is reported as the compartment's claim and never trusted for anything else. The
certificate's subject key is the key the compartment generated; the private half never
leaves the compartment.

The CA's CRL is the revocation list a service checks; the ``certificates`` table is the
daemon's record. At start the two are reconciled (a revocation the CRL lost is applied
again) and the certificate of every run a dead daemon left behind is revoked.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import msgspec

from attestables.shared import __version__, protocol
from attestables.shared.attestation import document as doc
from attestables.shared.attestation.platform import detect_hwmodel
from attestables.shared.attestation import compute_ueid, read_machine_id
from attestables.shared.errors import Conflict, InvalidParams, NotFound

from .ca import CertificateAuthority, IssuedCertificate, read_passphrase
from .platform_info import platform_claims
from .sandbox.argv import Limits
from .timeutil import now_iso

if TYPE_CHECKING:
    from .daemon import Daemon

log = logging.getLogger(__name__)

# Revocation reasons (RFC 5280 names) used by the daemon itself.
RUN_ENDED = "cessation_of_operation"
DAEMON_LOST = "cessation_of_operation"


def document_isolation(backend: str, limits: Limits) -> doc.Isolation:
    """The isolation claim for ``backend``, in the document's vocabulary (docs/attestation.md)."""
    confined = backend == "bwrap"
    return doc.Isolation(
        network="none" if confined else "host",
        filesystem="readonly" if confined else "host",
        rlimits={
            "cpu_seconds": limits.cpu_s,
            "memory_bytes": limits.memory_mb * 1024 * 1024,
            "open_files": limits.nofile,
            "processes": limits.nproc,
            "file_size_bytes": limits.tmp_mb * 1024 * 1024,
            "wall_seconds": limits.wall_s,
        },
    )


def _iso(moment: datetime, timespec: str = "seconds") -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def certificate_record(row: Any, *, with_pem: bool = False) -> dict[str, Any]:
    record = {
        "serial": row["serial"],
        "run_id": row["run_id"],
        "fingerprint": row["fingerprint"],
        "not_before": row["not_before"],
        "not_after": row["not_after"],
        "revoked": row["revoked_at"] is not None,
        "revoked_at": row["revoked_at"],
        "revocation_reason": row["revocation_reason"],
        "created_at": row["created_at"],
    }
    if with_pem:
        record["pem"] = row["pem"]
        record["document"] = msgspec.json.decode(row["document"])
    return record


class Certificates:
    def __init__(self, daemon: "Daemon", ca: CertificateAuthority) -> None:
        self.daemon = daemon
        self.ca = ca
        platform = platform_claims()
        self._platform = platform
        self._hwmodel = detect_hwmodel(platform)
        self._ueid = compute_ueid(read_machine_id())

    @classmethod
    def open_ca(cls, settings: Any) -> CertificateAuthority:
        """Load or create the CA under ``STATE_DIR/ca`` (blocking: call in a thread)."""
        passphrase = None
        if settings.ca_passphrase_file:
            passphrase = read_passphrase(file=settings.ca_passphrase_file)
        elif settings.ca_passphrase_credential:
            passphrase = read_passphrase(credential=settings.ca_passphrase_credential)
        return CertificateAuthority.open(settings.state_dir / "ca", passphrase=passphrase,
                                         run_validity=timedelta(seconds=settings.run_cert_validity_s))

    # -- issuance (called by the compartment channel at HELLO) ----------------------------

    def build_document(self, *, run: dict[str, Any], build: dict[str, Any], public_key: bytes,
                       evidence: dict[str, Any], limits: Limits) -> doc.AttestationDocument:
        artefact = build["artefact"]
        toolchain = build["toolchain"]
        elf = artefact["elf"] or {}
        return doc.AttestationDocument.create(
            public_key=public_key,
            run=doc.Run(run_id=run["run_id"], build_id=build["build_id"], pid=run["pid"] or 0,
                        started_at=_iso(datetime.fromisoformat(run["started_at"].replace("Z", "+00:00")),
                                        "milliseconds")),
            measurements=[doc.Measurement(type="elf-sha256", digest=artefact["sha256"]),
                          doc.Measurement(type="source-sha256", digest=build["source_sha256"])],
            toolchain=doc.Toolchain(name=toolchain["name"], compiler=toolchain.get("compiler") or "unknown",
                                    version=toolchain.get("version") or "", argv=list(toolchain.get("argv") or [])),
            elf=doc.Elf(machine=elf.get("machine", "unknown"), purecap=bool(elf.get("purecap")),
                        interpreter=elf.get("interpreter")),
            platform=self._platform,
            compartment=doc.Compartment(backend=run["backend"], isolation=document_isolation(run["backend"], limits),
                                        evidence=evidence),
            swname=build["source_name"].removesuffix(".c"),
            swversion=str(build["version"]),
            launcher=doc.Launcher(version=__version__, issuing_ca_fingerprint=self.ca.issuing_fingerprint),
            ueid=self._ueid,
            hwmodel=self._hwmodel,
            # Honest: the launcher offers no debug interface, but root on the board can read
            # a compartment's memory (docs/threat-model.md), so debugging is not disabled.
            dbgstat="enabled",
        )

    async def issue(self, *, run: dict[str, Any], build: dict[str, Any], public_key: bytes,
                    evidence: dict[str, Any], limits: Limits) -> IssuedCertificate:
        document = self.build_document(run=run, build=build, public_key=public_key, evidence=evidence,
                                       limits=limits)
        issued = self.ca.issue_run_certificate(public_key=public_key, run_id=run["run_id"], document=document)
        await self.daemon.db.execute(
            """INSERT INTO certificates (serial, run_id, fingerprint, not_before, not_after, pem, document,
                                         created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (issued.serial, run["run_id"], issued.fingerprint, _iso(issued.not_before), _iso(issued.not_after),
             issued.pem.decode(), issued.document.decode(), now_iso()))
        self.daemon.bus.publish(protocol.CERTS_ISSUED, {
            "serial": issued.serial, "run_id": run["run_id"], "fingerprint": issued.fingerprint,
            "not_after": _iso(issued.not_after)}, run_id=run["run_id"])
        return issued

    # -- revocation -------------------------------------------------------------------------

    async def revoke(self, serial: str, reason: str) -> dict[str, Any]:
        row = await self._row_by_serial(serial)
        if row["revoked_at"] is not None:
            raise Conflict(f"certificate {serial} is already revoked", serial=serial)
        # The CRL is re-signed and fsynced: off the event loop.
        await asyncio.to_thread(self.ca.revoke, serial, reason)
        await self.daemon.db.execute(
            "UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE serial = ?",
            (now_iso(), reason, serial))
        self.daemon.bus.publish(protocol.CERTS_REVOKED, {"serial": serial, "run_id": row["run_id"],
                                                         "reason": reason}, run_id=row["run_id"])
        return certificate_record(await self._row_by_serial(serial))

    async def revoke_for_run(self, run_id: str, reason: str = RUN_ENDED) -> None:
        row = await self.daemon.db.fetchone(
            "SELECT serial FROM certificates WHERE run_id = ? AND revoked_at IS NULL", (run_id,))
        if row is not None:
            await self.revoke(row["serial"], reason)

    async def prune_crl(self) -> int:
        """Drop from the CRL the certificates that expired before the current CRL was
        issued (so one CRL issued after their expiry listed them); returns how many."""
        cutoff = _iso(self.ca.crl.last_update_utc)
        rows = await self.daemon.db.fetchall(
            "SELECT serial FROM certificates WHERE revoked_at IS NOT NULL AND not_after < ?", (cutoff,))
        expired = [r["serial"] for r in rows if self.ca.is_revoked(r["serial"])]
        if not expired:
            return 0
        count = await asyncio.to_thread(self.ca.forget, expired)
        log.info("dropped %d expired certificate(s) from the CRL", count)
        return count

    async def recover(self) -> None:
        """Reconcile the CRL with the records; revoke certificates of runs that ended.

        A certificate past its notAfter needs no CRL entry (``prune_crl`` drops those), so
        the records of expired ones are not reconciled."""
        rows = await self.daemon.db.fetchall(
            """SELECT c.serial, c.revocation_reason, c.revoked_at, r.state FROM certificates c
               JOIN runs r USING (run_id)
               WHERE (c.revoked_at IS NOT NULL OR r.state IN ('exited', 'failed', 'killed', 'lost'))
                 AND c.not_after > ?""", (_iso(datetime.now(timezone.utc)),))
        in_crl = {r.serial: r for r in self.ca.revocations()}
        for row in rows:
            published = in_crl.get(row["serial"])
            if published is not None:
                if row["revoked_at"] is None:
                    # revoke() writes the CRL first: a crash before the record was updated
                    # leaves a revoked certificate that the records call valid. Complete them.
                    await self.daemon.db.execute(
                        "UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE serial = ?",
                        (_iso(published.revoked_at, "milliseconds"), published.reason, row["serial"]))
                    log.info("recorded the revocation of certificate %s the CRL already held", row["serial"])
                continue
            reason = row["revocation_reason"] or DAEMON_LOST
            await asyncio.to_thread(self.ca.revoke, row["serial"], reason)
            if row["revoked_at"] is None:
                await self.daemon.db.execute(
                    "UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE serial = ?",
                    (now_iso(), reason, row["serial"]))
            log.info("revoked certificate %s at start (%s)", row["serial"], reason)
        await self.prune_crl()
        await asyncio.to_thread(self.ca.refresh_crl)

    # -- queries ----------------------------------------------------------------------------

    async def _row_by_serial(self, serial: str) -> Any:
        row = await self.daemon.db.fetchone("SELECT * FROM certificates WHERE serial = ?", (serial.lower(),))
        if row is None:
            raise NotFound(f"no certificate with serial {serial}", serial=serial)
        return row

    async def get(self, *, serial: str | None, run_id: str | None) -> dict[str, Any]:
        if (serial is None) == (run_id is None):
            raise InvalidParams("give exactly one of serial and run_id")
        if serial is not None:
            row = await self._row_by_serial(serial)
        else:
            row = await self.daemon.db.fetchone("SELECT * FROM certificates WHERE run_id = ?", (run_id,))
            if row is None:
                raise NotFound(f"run {run_id} has no certificate (it never completed the handshake)",
                               run_id=run_id)
        record = certificate_record(row, with_pem=True)
        record["chain_pem"] = self.ca.chain_pem().decode()
        return record

    async def list(self, limit: int, run_id: str | None = None) -> list[dict[str, Any]]:
        if run_id:
            rows = await self.daemon.db.fetchall(
                "SELECT * FROM certificates WHERE run_id = ? ORDER BY created_at DESC LIMIT ?", (run_id, limit))
        else:
            rows = await self.daemon.db.fetchall(
                "SELECT * FROM certificates ORDER BY created_at DESC LIMIT ?", (limit,))
        return [certificate_record(r) for r in rows]

    def info(self) -> dict[str, Any]:
        return {
            "root_pem": self.ca.root_pem().decode(),
            "issuing_pem": self.ca.chain_pem().decode(),
            "fingerprints": {"root": self.ca.root_fingerprint, "issuing": self.ca.issuing_fingerprint},
            "operator_root": self.ca.operator_root,
            "crl_next_update": _iso(self.ca.crl_next_update),
            "revoked": len(self.ca.revocations()),
        }

    def crl(self, *, pem: bool) -> bytes:
        return self.ca.crl_pem() if pem else self.ca.crl_der()
