"""The daemon's parts, wired together: one object the API handlers reach through."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from attestables.shared import __version__, protocol
from attestables.shared.channel import ServiceKey
from attestables.shared.files import is_temp_name

from .builds.manager import Builds
from .builds.toolchains import NATIVE, Toolchain, detect_toolchains
from .compartments.backends import Backend, detect_backends
from .compartments.runs import Runs
from .ca import CertificateAuthority
from .broker.broker import Broker
from .certs import Certificates
from .config import RESTART_ONLY, Settings
from .events import EventBus
from .platform_info import platform_facts
from .sandbox.host import SandboxHost
from .sandbox.reaper import REAPER, SWEEP_S
from .sources import Sources
from .store.blobs import BlobStore
from .workdir import prepare_work_dir
from .store.db import SCHEMA_VERSION as DB_SCHEMA_VERSION, Database

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 3600.0


def _sweep_temp(directory: Path) -> int:
    """Remove the temp files (``shared.files.is_temp_name``) an interrupted write left in
    ``directory`` (not below it); returns how many."""
    removed = 0
    for path in directory.glob(".*.tmp") if directory.is_dir() else ():
        if is_temp_name(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


class Daemon:
    """Owns the store, the event bus and the managers; created by ``open``, ended by ``close``."""

    def __init__(self, settings: Settings, db: Database, blobs: BlobStore, toolchains: dict[str, Toolchain],
                 host: SandboxHost, backends: dict[str, Backend], work_dir: Path, ca: CertificateAuthority) -> None:
        self.settings = settings
        self.state_dir: Path = settings.state_dir
        self.work_dir = work_dir
        self.db = db
        self.blobs = blobs
        self.toolchains = toolchains
        self.host = host
        self.backends = backends
        # attestables-confine, built in the background with the native compiler; once it
        # works, prlimit/setpriv are no longer needed, so the backends are detected again.
        native = toolchains.get(NATIVE)
        host.prepare(work_dir / "bin", native.compiler if native is not None and native.available else None,
                     on_ready=self.redetect_backends)
        self.bus = EventBus(settings.event_ring_size, settings.event_ring_kb * 1024)
        self.stats: collections.Counter[str] = collections.Counter()
        self.sources = Sources(db, blobs, settings.max_source_bytes, settings.max_sources)
        self.builds = Builds(self)
        self.runs = Runs(self)
        self.certs = Certificates(self, ca)
        self.broker = Broker(self)
        self.connections: set[Any] = set()
        # Names this daemon process: event seq numbers restart with it, so a client that
        # resumes with ``since`` compares boot ids first.
        self.boot_id = secrets.token_hex(8)
        self._housekeeping: list[asyncio.Task[None]] = []

    def start_housekeeping(self) -> None:
        self._housekeeping = [asyncio.create_task(self._housekeep(), name="housekeeping"),
                              asyncio.create_task(self._sweep_children(), name="sweep children")]

    async def _sweep_children(self) -> None:
        """Reap exited children nobody waits for (an unconfined run's leftovers) and end
        orphaned sandboxes, even when no run ends to trigger it (sandbox/reaper.py)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                REAPER.collect(loop)
            except Exception:
                log.exception("could not sweep the daemon's children")

    async def _housekeep(self) -> None:
        """Periodic upkeep: drop expired certificates from the CRL, re-sign it well before
        its nextUpdate."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                await self.certs.prune_crl()
                await asyncio.to_thread(self.certs.ca.refresh_crl)
            except Exception:
                log.exception("could not refresh the CRL")

    @classmethod
    async def open(cls, settings: Settings) -> "Daemon":
        state = settings.state_dir
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(state, 0o700)
        # The CA first: a missing passphrase stops the start before anything is opened.
        ca = await asyncio.to_thread(Certificates.open_ca, settings)
        work = prepare_work_dir(state, settings.work_dir)
        blobs = BlobStore(state / "blobs")
        # Temp files of writes a killed daemon left: blobs, and the CA's (the CRL is
        # rewritten at every revocation), and the state dir's own (token, work-dir marker).
        swept = blobs.sweep_temp() + _sweep_temp(state / "ca") + _sweep_temp(state)
        if swept:
            log.info("removed %d temp files left by an interrupted write", swept)
        toolchains = await asyncio.to_thread(detect_toolchains, sdk_dir=settings.cheribuild_sdk or None)
        host = SandboxHost(settings.sandbox_uid_base, settings.sandbox_uid_count, settings.sandbox_gid)
        REAPER.enable()  # orphaned sandboxes become the daemon's children, to end (reaper.py)
        db = await Database.open(state / "attestables.db")
        try:
            daemon = cls(settings, db, blobs, toolchains, host, detect_backends(settings, host), work, ca)
            await daemon.runs.recover()
            await daemon.builds.recover()
            await daemon.certs.recover()
            collected = await daemon.sources.collect_unnamed_blobs()
            if collected:
                log.info("erased %d blob(s) no record names (left by an interrupted write or delete)", collected)
            await daemon.broker.registry.load()
        except BaseException:
            await db.close()  # its thread would otherwise keep the process alive
            raise
        return daemon

    async def close(self) -> None:
        for task in self._housekeeping:
            task.cancel()
        await self.runs.shutdown()
        await self.builds.shutdown()
        await self.broker.close()
        await self.db.close()
        await self.host.ready()  # its compiler writes into the work dir
        shutil.rmtree(self.work_dir, ignore_errors=True)

    async def reload(self, new: Settings) -> tuple[list[str], list[str]]:
        """Apply re-read settings to the running daemon; returns (applied, needing a restart).

        Limits, quotas and policy switches take effect for what starts next (runs, builds,
        connections already under way keep what they started with); the service registry is
        re-read from the database. Settings in ``RESTART_ONLY`` keep their running value.
        """
        old = self.settings
        changed = [f.name for f in dataclasses.fields(Settings) if getattr(old, f.name) != getattr(new, f.name)]
        restart = [name for name in changed if name in RESTART_ONLY]
        applied = [name for name in changed if name not in RESTART_ONLY]
        settings = dataclasses.replace(new, **{name: getattr(old, name) for name in restart})
        self.settings = self.runs.settings = self.builds.settings = settings
        self.sources.max_bytes, self.sources.max_sources = settings.max_source_bytes, settings.max_sources
        if "allow_unconfined" in applied:
            self.redetect_backends()
        await self.broker.registry.load()
        return applied, restart

    def redetect_backends(self) -> None:
        self.backends = detect_backends(self.settings, self.host)

    def service_keys(self) -> list[ServiceKey]:
        """The sealing keys sent to each compartment after CERT: one per registered service."""
        return self.broker.registry.keys()

    def hello(self) -> dict[str, Any]:
        return {"schema_version": protocol.SCHEMA_VERSION,
                "min_supported_schema_version": protocol.MIN_SUPPORTED_SCHEMA_VERSION,
                "server_version": __version__, "boot_id": self.boot_id}

    def info(self) -> dict[str, Any]:
        limits = self.settings.default_limits
        return {
            "version": __version__,
            "schema_version": protocol.SCHEMA_VERSION,
            "db_schema_version": DB_SCHEMA_VERSION,
            "platform": platform_facts(),
            "toolchains": [
                {"name": t.name, "compiler": t.compiler, "version": t.version, "available": t.available,
                 "abi": t.abi} for t in self.toolchains.values()
            ],
            "backends": [b.describe(limits, self.settings) for b in self.backends.values()],
            "default_backend": self.settings.default_backend,
            "state_dir": str(self.state_dir),
            "limits": {"default": limits.to_dict(), "max": self.settings.max_limits.to_dict()},
        }
