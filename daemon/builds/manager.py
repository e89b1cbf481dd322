"""The build queue: compile a source version in the sandbox and record the measurement.

A build runs in its own scratch directory (``<work>/builds/<id>/src`` read-only at ``/src``,
``out`` writable at ``/out``); the sandbox sees nothing else of the state dir. The log
streams line by line on ``builds.log`` and is kept (capped) with the build record; the
artefact is hashed once and stored content-addressed with its ELF facts.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from attestables import cheri
from attestables.shared import protocol
from attestables.shared.errors import AttestablesError, Conflict, InvalidParams, NotFound, Unavailable

from ..sandbox.process import SandboxProcess
from ..timeutil import now_iso
from .diagnostics import parse_diagnostics
from .elf import read_elf_facts
from .flags import validate_flags
from .runtime_lib import LINK_NAME, RuntimeLibrary
from .sandboxed import run_compile
from .toolchains import Toolchain

if TYPE_CHECKING:
    from ..daemon import Daemon

log = logging.getLogger(__name__)

SRC, OUT, RUNTIME = "/src", "/out", "/runtime"
ARTEFACT = "program"
_json = msgspec.json.encode


def build_record(row: Any) -> dict[str, Any]:
    """The API shape of a build row (``builds.get``, ``builds.state`` events)."""
    artefact = None
    if row["artefact_sha256"]:
        artefact = {"sha256": row["artefact_sha256"], "size": row["artefact_size"],
                    "elf": msgspec.json.decode(row["elf"]) if row["elf"] else None}
    return {
        "build_id": row["build_id"],
        "source_id": row["source_id"],
        "source_name": row["source_name"],
        "version": row["version"],
        "source_sha256": row["source_sha256"],
        "state": row["state"],
        "exit_code": row["exit_code"],
        "error": row["error"],
        "duration_s": row["duration_s"],
        "diagnostics": msgspec.json.decode(row["diagnostics"]),
        "artefact": artefact,
        "toolchain": msgspec.json.decode(row["toolchain"]),
        "flags": msgspec.json.decode(row["flags"]),
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }


class _ActiveBuild:
    def __init__(self, build_id: str, source_id: str, record: dict[str, Any]) -> None:
        self.record = record
        self.build_id = build_id
        self.source_id = source_id
        self.process: SandboxProcess | None = None
        self.cancelled = False
        self.task: asyncio.Task[None] | None = None


class Builds:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.settings = daemon.settings
        self.work = daemon.work_dir / "builds"
        self._slots = asyncio.Semaphore(self.settings.build_concurrency)
        self.runtime = RuntimeLibrary(daemon)
        self._active: dict[str, _ActiveBuild] = {}

    # -- API ------------------------------------------------------------------------------

    def active_for_source(self, source_id: str) -> bool:
        return any(a.source_id == source_id for a in self._active.values())

    def toolchain(self, name: str | None) -> Toolchain:
        toolchains = self.daemon.toolchains
        if name is None:
            name = "native" if "native" in toolchains else next(iter(toolchains))
        tc = toolchains.get(name)
        if tc is None:
            raise InvalidParams(f"unknown toolchain {name!r}; known: {', '.join(toolchains)}", field="toolchain")
        if not tc.available:
            raise Unavailable(f"toolchain {name} is not available on this host", toolchain=name)
        return tc

    async def start(self, source_id: str, version: int | None, toolchain: str | None,
                    flags: list[str] | None) -> dict[str, Any]:
        meta = await self.daemon.sources.version_row(source_id, version)
        if not meta["name"].endswith(".c"):
            raise InvalidParams(f"{meta['name']} is a header; build a .c source", field="source_id")
        checked_flags = validate_flags(flags or [])
        tc = self.toolchain(toolchain)
        build_id = "b_" + secrets.token_hex(8)
        identity = tc.identity()
        identity["argv"] = self._compile_argv(tc, meta["name"], checked_flags)
        identity["runtime_sources_sha256"] = self.runtime.source_digest
        record = {"build_id": build_id, "source_id": source_id, "source_name": meta["name"],
                  "version": meta["version"], "source_sha256": meta["sha256"], "state": "queued", "exit_code": None,
                  "error": None, "duration_s": None, "diagnostics": [], "artefact": None, "toolchain": identity,
                  "flags": checked_flags, "created_at": now_iso(), "started_at": None, "finished_at": None}
        await self.daemon.db.execute(
            """INSERT INTO builds (build_id, source_id, source_name, version, source_sha256, toolchain,
                                   flags, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)""",
            (build_id, source_id, meta["name"], meta["version"], meta["sha256"], _json(identity).decode(),
             _json(checked_flags).decode(), record["created_at"]))
        active = _ActiveBuild(build_id, source_id, record)
        self._active[build_id] = active
        self._publish(active)
        active.task = asyncio.create_task(self._run(active, tc, meta, checked_flags), name=f"build {build_id}")
        return {"build_id": build_id}

    async def get(self, build_id: str) -> dict[str, Any]:
        active = self._active.get(build_id)
        if active is not None:
            return dict(active.record)  # the live record: no database round trip
        return build_record(await self._row(build_id))

    async def list(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self.daemon.db.fetchall("SELECT * FROM builds ORDER BY created_at DESC LIMIT ?", (limit,))
        return [build_record(r) for r in rows]

    async def logs(self, build_id: str) -> dict[str, Any]:
        row = await self.daemon.db.fetchone("SELECT log, log_truncated, state FROM builds WHERE build_id = ?",
                                            (build_id,))
        if row is None:
            raise NotFound(f"no build {build_id}", build_id=build_id)
        active = self._active.get(build_id)
        # While running, the live log is in memory (``_LogBuffer``); the seq is taken in the
        # same step, with no await, so a follower resumes exactly after it.
        if active is not None and getattr(active, "log", None) is not None:
            lines, truncated = list(active.log.lines), active.log.truncated
        else:
            lines, truncated = msgspec.json.decode(row["log"]), bool(row["log_truncated"])
        return {"build_id": build_id, "lines": lines, "truncated": truncated, "seq": self.daemon.bus.seq}

    async def cancel(self, build_id: str) -> dict[str, Any]:
        row = await self._row(build_id)
        active = self._active.get(build_id)
        if row["state"] in protocol.BUILD_TERMINAL or active is None:
            raise Conflict(f"build {build_id} is already {row['state']}", build_id=build_id, state=row["state"])
        active.cancelled = True
        if active.process is not None:
            active.process.signal(signal.SIGKILL)
        elif active.task is not None:
            active.task.cancel()
        if active.task is not None:
            await asyncio.wait({active.task})
        return await self.get(build_id)

    # -- lifecycle ------------------------------------------------------------------------

    async def recover(self) -> None:
        """At start: builds a dead daemon left unfinished failed with it."""
        await self.daemon.db.execute(
            """UPDATE builds SET state = 'failed', error = 'interrupted: the daemon stopped during the build',
                      finished_at = ? WHERE state IN ('queued', 'running')""", (now_iso(),))
        await asyncio.to_thread(self.runtime.stage)

    async def shutdown(self) -> None:
        for active in list(self._active.values()):
            active.cancelled = True
            if active.process is not None:
                active.process.signal(signal.SIGKILL)
            if active.task is not None:
                active.task.cancel()
        tasks = [a.task for a in self._active.values() if a.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # -- internals ------------------------------------------------------------------------

    async def _row(self, build_id: str) -> Any:
        row = await self.daemon.db.fetchone("SELECT * FROM builds WHERE build_id = ?", (build_id,))
        if row is None:
            raise NotFound(f"no build {build_id}", build_id=build_id)
        return row

    def _publish(self, active: _ActiveBuild, **changes: Any) -> None:
        """Apply ``changes`` to the live record and publish it."""
        active.record.update(changes)
        self.daemon.bus.publish(protocol.BUILDS_STATE, dict(active.record), build_id=active.build_id)

    def _compile_argv(self, tc: Toolchain, name: str, flags: list[str]) -> list[str]:
        return tc.compile_argv(
            [f"{SRC}/{name}"], f"{OUT}/{ARTEFACT}", include_dirs=[SRC, f"{RUNTIME}/include"], flags=flags,
            lib_dirs=[self.runtime.lib_dir_in_sandbox(tc)],
            libs=[LINK_NAME, *(lib.removeprefix("-l") for lib in cheri.RUNTIME_LIBS)])

    async def _stage(self, build_id: str, meta: dict[str, Any]) -> tuple[Path, Path]:
        base = self.work / build_id
        src, out = base / "src", base / "out"
        base.mkdir(mode=0o711)
        src.mkdir(mode=0o755)
        out.mkdir()
        # The compiler may run as the sandbox uid and must write here; chmod, since the
        # daemon's umask (077) would strip the bits from mkdir's mode.
        for path, mode in ((base, 0o711), (src, 0o755), (out, 0o777)):
            path.chmod(mode)
        blobs = self.daemon.blobs
        files = [{"name": meta["name"], "sha256": meta["sha256"]}, *await self.daemon.sources.headers()]
        for f in files:
            target = src / f["name"]
            target.write_bytes(blobs.read_verified(f["sha256"]))
            target.chmod(0o644)
        return src, out

    async def _run(self, active: _ActiveBuild, tc: Toolchain, meta: dict[str, Any], flags: list[str]) -> None:
        build_id = active.build_id
        db, bus = self.daemon.db, self.daemon.bus
        log_buf = _LogBuffer(self.settings.build_log_max_kb * 1024, build_id, bus)
        active.log = log_buf  # type: ignore[attr-defined]
        started = time.monotonic()
        result: dict[str, Any] = {"state": "failed", "exit_code": None, "error": None}
        try:
            async with self._slots:
                if active.cancelled:
                    raise asyncio.CancelledError
                started_at = now_iso()
                await db.execute("UPDATE builds SET state = 'running', started_at = ? WHERE build_id = ?",
                                 (started_at, build_id))
                started = time.monotonic()
                self._publish(active, state="running", started_at=started_at)
                src, out = await self._stage(build_id, meta)
                # The runtime library comes first (built once per toolchain); its own
                # compile log goes to the daemon's log, not this build's.
                await self.runtime.ensure(tc, on_line=lambda stream, line: log.info("runtime: %s", line))
                status = await run_compile(
                    self.daemon, self._compile_argv(tc, meta["name"], flags), src=src, out=out,
                    runtime=self.runtime.dir, on_line=log_buf.add,
                    on_spawn=lambda proc: setattr(active, "process", proc))
                if status is None:
                    result["error"] = f"compile exceeded the {self.settings.build_timeout_s} s wall-time limit"
                if active.cancelled:
                    raise asyncio.CancelledError
                if status is not None:
                    result["exit_code"] = status.exit_code if status.signal is None else 128 + status.signal
                    artefact = out / ARTEFACT
                    if status.exit_code == 0 and artefact.is_file():
                        digest, size = await self.daemon.blobs.put_file(artefact)
                        elf = read_elf_facts(self.daemon.blobs.path(digest))
                        result.update(state="succeeded", artefact_sha256=digest, artefact_size=size,
                                      elf=_json(elf.to_dict()).decode())
                    elif status.exit_code == 0:
                        result["error"] = "the compiler exited 0 but wrote no artefact"
                    else:
                        result["error"] = f"compiler exited with status {result['exit_code']}"
        except asyncio.CancelledError:
            result.update(state="cancelled", error="cancelled")
        except AttestablesError as exc:  # e.g. the runtime library could not be built
            log.error("build %s failed: %s", build_id, exc.message)
            result["error"] = exc.message
        except Exception as exc:  # a bug or host problem: the build fails, the daemon lives
            log.exception("build %s failed unexpectedly", build_id)
            result["error"] = f"internal error: {type(exc).__name__}"
        source_map = {f"{SRC}/{meta['name']}": meta["name"]}
        diagnostics = [d.to_dict() for d in parse_diagnostics((l["line"] for l in log_buf.lines),
                                                               source_map=source_map)]
        finished_at, duration = now_iso(), round(time.monotonic() - started, 3)
        await db.execute(
            """UPDATE builds SET state = ?, exit_code = ?, error = ?, diagnostics = ?, artefact_sha256 = ?,
                      artefact_size = ?, elf = ?, log = ?, log_truncated = ?, finished_at = ?, duration_s = ?
               WHERE build_id = ?""",
            (result["state"], result["exit_code"], result["error"], _json(diagnostics).decode(),
             result.get("artefact_sha256"), result.get("artefact_size"), result.get("elf"),
             _json(log_buf.lines).decode(), int(log_buf.truncated), finished_at, duration, build_id))
        self._active.pop(build_id, None)
        artefact = None
        if result.get("artefact_sha256"):
            artefact = {"sha256": result["artefact_sha256"], "size": result["artefact_size"],
                        "elf": msgspec.json.decode(result["elf"])}
        self._publish(active, state=result["state"], exit_code=result["exit_code"], error=result["error"],
                      diagnostics=diagnostics, artefact=artefact, finished_at=finished_at, duration_s=duration)
        # After the outcome is out (off the loop: the event goes to subscribers first), the
        # scratch dir is no one's business but ours.
        await asyncio.to_thread(shutil.rmtree, self.work / build_id, ignore_errors=True)


class _LogBuffer:
    """The compile log: streamed live and kept, both up to a byte cap."""

    def __init__(self, cap: int, build_id: str, bus: Any) -> None:
        self.lines: list[dict[str, Any]] = []
        self.truncated = False
        self._left = cap
        self._build_id = build_id
        self._bus = bus

    def add(self, stream: str, line: str) -> None:
        if self.truncated:
            return
        cost = len(line) + 1
        if cost > self._left:
            self.truncated = True
            line = f"[log truncated at the {self._build_id} log limit]"
            stream = "daemon"
        self._left -= cost
        entry = {"stream": stream, "line": line, "ts": now_iso()}
        self.lines.append(entry)
        self._bus.publish(protocol.BUILDS_LOG, {"build_id": self._build_id, **entry}, build_id=self._build_id)
