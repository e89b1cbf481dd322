"""Compartment runs: start a built program in a backend, stream its output, end it cleanly.

The artefact is read and hashed just before the run; the bytes that were hashed are the
bytes that run (copied into the run's private directory), so a file changed on disk
after its build is refused with ``tampered`` and cannot be swapped in between check and
exec. The program gets the control channel as fd 3. Output is streamed on
``runs.output``, appended to the run's output file and capped at ``output_kb``: past
the cap the run is killed, so the daemon's memory and disk stay bounded.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import functools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from attestables.shared import protocol
from attestables.shared.errors import Conflict, InvalidParams, LimitExceeded, NotFound, Tampered

from ..config import RunLimits
from ..sandbox.process import SandboxProcess
from ..store.blobs import sha256_hex
from ..timeutil import now_iso
from .backends import Backend, choose_backend, run_argv, sandbox_limits
from .channel import CompartmentChannel

if TYPE_CHECKING:
    from ..daemon import Daemon

log = logging.getLogger(__name__)

_json = msgspec.json.encode
MAX_ARGS = 64
INFO_FD = 4  # bwrap --info-fd: names the sandbox's init pid
PROGRAM_FD = 5  # the verified program bytes, copied by bwrap into the sandbox
MAX_ARG_BYTES = 4096
EVENT_CHUNK = 64 * 1024


def run_record(row: Any) -> dict[str, Any]:
    """The API shape of a run row (``runs.get``, ``runs.state`` events)."""
    return {
        "run_id": row["run_id"],
        "build_id": row["build_id"],
        "backend": row["backend"],
        "args": json.loads(row["args"]),
        "limits": json.loads(row["limits"]),
        "state": row["state"],
        "pid": row["pid"],
        "exit_code": row["exit_code"],
        "signal": row["signal"],
        "reason": row["reason"],
        "error": row["error"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
    }


def validate_args(args: list[str]) -> list[str]:
    if len(args) > MAX_ARGS:
        raise LimitExceeded(f"{len(args)} arguments; the limit is {MAX_ARGS}")
    for arg in args:
        if "\0" in arg or len(arg.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
            raise InvalidParams("an argument contains a NUL byte or exceeds 4096 bytes", field="args")
    return args


def resolve_limits(requested: dict[str, int] | None, default: RunLimits, maximum: RunLimits) -> RunLimits:
    values = default.to_dict()
    for key, value in (requested or {}).items():
        if key not in values:
            raise InvalidParams(f"unknown limit {key!r}; known: {', '.join(values)}", field="limits")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvalidParams(f"limits.{key} must be a positive integer", field="limits")
        if value > getattr(maximum, key):
            raise LimitExceeded(f"limits.{key} = {value} exceeds the configured maximum {getattr(maximum, key)}",
                                limit=getattr(maximum, key), field=f"limits.{key}")
        values[key] = value
    return RunLimits(**values)


class _Output:
    """A run's output: decoded per stream, streamed, appended to disk, capped."""

    def __init__(self, run_id: str, path: Path, cap: int, daemon: "Daemon", on_cap: Any) -> None:
        self.run_id = run_id
        self._file = open(path, "ab", buffering=64 * 1024)  # noqa: SIM115 - closed in close()
        self._left = cap
        self._bus = daemon.bus
        self._decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in ("stdout", "stderr")}
        self._on_cap = on_cap
        self.capped = False

    def feed(self, stream: str, chunk: bytes) -> None:
        if self.capped:
            return
        if len(chunk) > self._left:
            chunk = chunk[: self._left]
            self.capped = True
        self._left -= len(chunk)
        text = self._decoders[stream].decode(chunk, final=self.capped)
        if text:
            self._emit(stream, text)
        if self.capped:
            self._emit("daemon", "[output limit reached: the run is being killed]\n")
            self._on_cap()

    def _emit(self, stream: str, text: str) -> None:
        ts = now_iso()
        # Pieces of at most EVENT_CHUNK characters keep every event, and so every queue
        # and the replay ring, in small units however large the pipe reads are.
        for start in range(0, len(text), EVENT_CHUNK):
            entry = {"run_id": self.run_id, "stream": stream, "data": text[start:start + EVENT_CHUNK], "ts": ts}
            self._file.write(_json(entry) + b"\n")
            self._bus.publish(protocol.RUNS_OUTPUT, entry, run_id=self.run_id)

    def finish(self) -> None:
        if not self.capped:
            for stream, decoder in self._decoders.items():
                rest = decoder.decode(b"", final=True)
                if rest:
                    self._emit(stream, rest)
        self.close()

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class _ActiveRun:
    def __init__(self, run_id: str, build_id: str, source_id: str, record: dict[str, Any]) -> None:
        self.record = record
        self.run_id = run_id
        self.build_id = build_id
        self.source_id = source_id
        self.process: SandboxProcess | None = None
        self.kill_reason: str | None = None
        self.output: _Output | None = None
        self.task: asyncio.Task[None] | None = None
        self.channel: socket.socket | None = None
        self.sandbox_init_pid: int | None = None
        self.violation: str | None = None


class Runs:
    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.settings = daemon.settings
        self.work = daemon.work_dir / "runs"
        self.outputs = daemon.state_dir / "runs"
        self._active: dict[str, _ActiveRun] = {}

    # -- API ------------------------------------------------------------------------------

    def active_for_source(self, source_id: str) -> bool:
        return any(a.source_id == source_id for a in self._active.values())

    async def start(self, build_id: str, backend_name: str | None, args: list[str] | None,
                    limits: dict[str, int] | None) -> dict[str, Any]:
        build = await self.daemon.builds.get(build_id)
        if build["state"] != "succeeded" or not build["artefact"]:
            raise Conflict(f"build {build_id} is {build['state']}; only a succeeded build can run",
                           build_id=build_id, state=build["state"])
        backend = choose_backend(self.daemon.backends, backend_name, self.settings.default_backend)
        args = validate_args(list(args or []))
        resolved = resolve_limits(limits, self.settings.default_limits, self.settings.max_limits)
        if len(self._active) >= self.settings.max_runs:
            raise LimitExceeded(f"{len(self._active)} runs active; the limit is {self.settings.max_runs}")
        run_id = "r_" + secrets.token_hex(8)
        record = {"run_id": run_id, "build_id": build_id, "backend": backend.name, "args": args,
                  "limits": resolved.to_dict(), "state": "pending", "pid": None, "exit_code": None, "signal": None,
                  "reason": None, "error": None, "created_at": now_iso(), "started_at": None, "finished_at": None}
        await self.daemon.db.execute(
            """INSERT INTO runs (run_id, build_id, backend, args, limits, state, created_at)
               VALUES (?, ?, ?, ?, ?, 'pending', ?)""",
            (run_id, build_id, backend.name, json.dumps(args), json.dumps(record["limits"]), record["created_at"]))
        active = _ActiveRun(run_id, build_id, build["source_id"], record)
        self._active[run_id] = active
        try:
            program = self._verified_artefact(build["artefact"]["sha256"])
        except Tampered as exc:
            self._active.pop(run_id, None)
            await self._finish(run_id, state="failed", reason="tampered", error=exc.message)
            exc.data["run_id"] = run_id
            raise
        self._publish(active)
        active.task = asyncio.create_task(self._run(active, build, backend, program, args, resolved),
                                          name=f"run {run_id}")
        return {"run_id": run_id}

    async def get(self, run_id: str) -> dict[str, Any]:
        active = self._active.get(run_id)
        if active is not None:
            return dict(active.record)  # the live record: no database round trip
        row = await self.daemon.db.fetchone("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if row is None:
            raise NotFound(f"no run {run_id}", run_id=run_id)
        return run_record(row)

    async def list(self, limit: int = 200, state: str | None = None) -> list[dict[str, Any]]:
        if state:
            rows = await self.daemon.db.fetchall(
                "SELECT * FROM runs WHERE state = ? ORDER BY created_at DESC LIMIT ?", (state, limit))
        else:
            rows = await self.daemon.db.fetchall("SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [run_record(r) for r in rows]

    async def logs(self, run_id: str) -> dict[str, Any]:
        record = await self.get(run_id)
        active = self._active.get(run_id)
        if active is not None and active.output is not None:
            active.output.flush()
        path = self.outputs / f"{run_id}.out"
        chunks: list[dict[str, Any]] = []
        # Read and take the seq with no await in between: a follower resumes exactly here.
        try:
            with open(path, "rb") as fh:
                for line in fh:
                    try:
                        entry = msgspec.json.decode(line)
                    except msgspec.DecodeError:
                        break  # a line torn by a killed daemon: what came before is whole
                    chunks.append({"stream": entry["stream"], "data": entry["data"], "ts": entry["ts"]})
        except FileNotFoundError:
            pass
        return {"run_id": run_id, "state": record["state"], "chunks": chunks,
                "truncated": record["reason"] == "output_limit", "seq": self.daemon.bus.seq}

    async def stop(self, run_id: str) -> dict[str, Any]:
        record = await self.get(run_id)
        active = self._active.get(run_id)
        if active is None:
            raise Conflict(f"run {run_id} is already {record['state']}", run_id=run_id, state=record["state"])
        await self._terminate(active, "stopped")
        if active.task is not None:
            await asyncio.wait({active.task})
        return await self.get(run_id)

    # -- lifecycle ------------------------------------------------------------------------

    async def recover(self) -> None:
        """At start: runs a dead daemon left behind are ``lost``; their processes are gone.

        bwrap's ``--die-with-parent`` killed each sandbox when the old daemon died; a run
        whose recorded process still exists (``none`` backend, or an unexpected survivor)
        is killed here by its process group, after checking the pid still names it.
        """
        rows = await self.daemon.db.fetchall(
            "SELECT run_id, pid FROM runs WHERE state IN ('pending', 'starting', 'running')")
        if self.daemon.host.is_root:
            killed = _kill_orphaned_sandboxes(self.settings.sandbox_uid_base, self.settings.sandbox_uid_count)
            if killed:
                log.warning("killed %d sandbox process(es) a dead daemon left behind", killed)
        for row in rows:
            if row["pid"]:
                _kill_leftover(row["pid"])
            await self._finish(row["run_id"], state="lost", reason="daemon_restart",
                               error="the daemon stopped while the run was active", publish=False)
        self.outputs.mkdir(mode=0o700, parents=True, exist_ok=True)

    async def shutdown(self) -> None:
        """Stop every run within the grace period (SIGTERM, then SIGKILL)."""
        actives = list(self._active.values())
        await asyncio.gather(*(self._terminate(a, "daemon_shutdown") for a in actives), return_exceptions=True)
        tasks = [a.task for a in actives if a.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.stop_grace_s + 5)

    # -- internals ------------------------------------------------------------------------

    def _verified_artefact(self, digest: str) -> bytes:
        """The artefact's bytes, hashed now: these exact bytes are what will run."""
        try:
            data = self.daemon.blobs.path(digest).read_bytes()
        except FileNotFoundError:
            raise Tampered(f"artefact {digest[:12]} is missing from the store", sha256=digest) from None
        actual = sha256_hex(data)
        if actual != digest:
            raise Tampered(f"artefact {digest[:12]} was changed on disk after its build (now {actual[:12]}); "
                           "rebuild the source", sha256=digest, actual=actual)
        return data

    def _stage(self, run_id: str, program: bytes, backend: Backend) -> tuple[int, str]:
        """Hand the verified bytes to the backend: (fd, path).

        bwrap reads them from a sealed memfd (no file on disk to swap); the backends
        without a mount namespace exec a private copy in the run's directory.
        """
        fd = os.memfd_create(f"attestables-{run_id}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        os.write(fd, program)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                    | fcntl.F_SEAL_SEAL)
        os.lseek(fd, 0, os.SEEK_SET)
        if backend.name == "bwrap":
            return fd, ""
        run_dir = self.work / run_id
        run_dir.mkdir()
        run_dir.chmod(0o711)  # the sandbox uid reaches the program by path
        path = run_dir / "program"
        path.write_bytes(program)
        path.chmod(0o555)
        return fd, str(path)

    def _publish(self, active: _ActiveRun, **changes: Any) -> None:
        """Apply ``changes`` to the live record and publish it (the database is written by
        the caller where the change must survive a crash)."""
        active.record.update(changes)
        record = dict(active.record)
        self.daemon.bus.publish(protocol.RUNS_STATE, record, run_id=active.run_id, build_id=active.build_id)

    async def _publish_state(self, run_id: str) -> dict[str, Any]:
        record = await self.get(run_id)
        self.daemon.bus.publish(protocol.RUNS_STATE, record, run_id=run_id, build_id=record["build_id"])
        return record

    async def _finish(self, run_id: str, *, state: str, reason: str | None = None, exit_code: int | None = None,
                      sig: int | None = None, error: str | None = None, publish: bool = True) -> None:
        await self.daemon.db.execute(
            """UPDATE runs SET state = ?, reason = ?, exit_code = ?, signal = ?, error = ?, finished_at = ?
               WHERE run_id = ?""", (state, reason, exit_code, sig, error, now_iso(), run_id))
        if publish:
            await self._publish_state(run_id)

    async def _run(self, active: _ActiveRun, build: dict[str, Any], backend: Backend, program: bytes,
                   args: list[str], limits: RunLimits) -> None:
        run_id = active.run_id
        db = self.daemon.db
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        info_r, info_w = os.pipe()
        program_fd = -1
        channel_task: asyncio.Task[None] | None = None
        state, reason, exit_code, sig, error = "failed", None, None, None, None
        stack = contextlib.ExitStack()
        try:
            run_as = stack.enter_context(self.daemon.host.identity())
            # Not written to the database: recovery treats pending and starting alike.
            self._publish(active, state="starting")
            output = _Output(run_id, self.outputs / f"{run_id}.out", limits.output_kb * 1024, self.daemon,
                             on_cap=lambda: self._kill_now(active, "output_limit"))
            active.output = output
            program_fd, program_path = self._stage(run_id, program, backend)
            argv = run_argv(backend, program_fd=PROGRAM_FD, program_path=program_path, args=args,
                            limits=sandbox_limits(limits, self.settings), run_as=run_as, info_fd=INFO_FD,
                            confine_tool=await self.daemon.host.ready())
            env = {"ATTESTABLES_FD": "3", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
            extra = [(info_w, INFO_FD), (program_fd, PROGRAM_FD)]
            proc = await SandboxProcess.spawn(argv, env=env, on_output=output.feed, fd3=child_sock.fileno(),
                                              extra_fds=extra)
            os.close(program_fd)
            program_fd = -1
            active.process = proc
            child_sock.close()
            os.close(info_w)
            info_w = -1
            active.channel = parent_sock
            started_at = now_iso()
            await db.execute("UPDATE runs SET state = 'running', pid = ?, started_at = ? WHERE run_id = ?",
                             (proc.pid, started_at, run_id))
            self._publish(active, state="running", pid=proc.pid, started_at=started_at)
            if backend.name == "bwrap":
                self._watch_info(active, info_r)
                info_r = -1
            channel = CompartmentChannel(
                self.daemon, parent_sock, run_id=run_id, build=build, limits=sandbox_limits(limits, self.settings),
                on_violation=lambda why: self._violation(active, why),
                requests=functools.partial(self.daemon.broker.handle, run_id))
            channel_task = asyncio.create_task(channel.serve(), name=f"channel {run_id}")
            try:
                status = await asyncio.wait_for(proc.wait(), limits.wall_s)
            except asyncio.TimeoutError:
                self._kill_now(active, "wall_limit")
                status = await proc.wait()
            output.finish()
            state, exit_code, sig = _classify(status.exit_code, status.signal)
            if active.kill_reason == "protocol_violation":
                state, reason, error = "failed", "protocol_violation", active.violation
            elif active.kill_reason:
                state, reason = "killed", active.kill_reason
            elif state == "killed":
                reason = "cpu_limit" if sig == signal.SIGXCPU else "signal"
        except asyncio.CancelledError:
            if active.process is not None:
                active.process.signal(signal.SIGKILL)
            state, reason = "killed", active.kill_reason or "daemon_shutdown"
        except Exception as exc:
            log.exception("run %s failed to start", run_id)
            state, reason, error = "failed", "start_failed", f"could not start the compartment: {exc}"
        finally:
            if channel_task is not None:
                channel_task.cancel()
                await asyncio.gather(channel_task, return_exceptions=True)
            if active.output is not None:
                active.output.close()
            for s in (parent_sock, child_sock):
                s.close()
            for fd in (info_r, info_w, program_fd):
                if fd >= 0:
                    os.close(fd)
            stack.close()
            shutil.rmtree(self.work / run_id, ignore_errors=True)
        try:
            await self.daemon.certs.revoke_for_run(run_id)  # an ended run's certificate is void
        except Exception:
            log.exception("run %s: could not revoke its certificate", run_id)
        finished_at = now_iso()
        await self.daemon.db.execute(
            """UPDATE runs SET state = ?, reason = ?, exit_code = ?, signal = ?, error = ?, finished_at = ?
               WHERE run_id = ?""", (state, reason, exit_code, sig, error, finished_at, run_id))
        # Leaves the active set only once the database says how it ended, so a reader never
        # sees a finished run as still running.
        self._active.pop(run_id, None)
        self._publish(active, state=state, reason=reason, exit_code=exit_code, signal=sig, error=error,
                      finished_at=finished_at)

    def _violation(self, active: _ActiveRun, why: str) -> None:
        """The compartment broke the channel protocol: end the run now."""
        active.violation = why
        self._kill_now(active, "protocol_violation")

    def _watch_info(self, active: _ActiveRun, fd: int) -> None:
        """bwrap's --info-fd JSON names the sandbox's init pid (for a graceful stop).

        Read without blocking: bwrap writes one small JSON object and closes the fd.
        """
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        buf = bytearray()

        def readable() -> None:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            buf.extend(chunk)
            if chunk and len(buf) < 65536:
                return
            loop.remove_reader(fd)
            os.close(fd)
            try:
                active.sandbox_init_pid = int(json.loads(bytes(buf) or b"{}").get("child-pid", 0)) or None
            except (ValueError, AttributeError):
                pass

        loop.add_reader(fd, readable)

    def _kill_now(self, active: _ActiveRun, reason: str) -> None:
        if active.kill_reason is None:
            active.kill_reason = reason
        if active.process is not None:
            active.process.signal(signal.SIGKILL)

    async def _terminate(self, active: _ActiveRun, reason: str) -> None:
        """SIGTERM the program, SIGKILL the sandbox after the grace period."""
        if active.kill_reason is None:
            active.kill_reason = reason
        proc = active.process
        if proc is None:
            if active.task is not None:
                active.task.cancel()
            return
        _signal_sandbox(active, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), self.settings.stop_grace_s)
        except asyncio.TimeoutError:
            proc.signal(signal.SIGKILL)


def _classify(exit_code: int | None, sig: int | None) -> tuple[str, int | None, int | None]:
    """Map a wait status to (state, exit_code, signal).

    bwrap reports a program killed by signal N as exit status 128+N (the shell's
    convention), so a status above 128 is read as that signal.
    """
    if sig is not None:
        return "killed", None, sig
    if exit_code is not None and 128 < exit_code < 128 + 65:
        return "killed", exit_code, exit_code - 128
    return "exited", exit_code, None


def _signal_sandbox(active: _ActiveRun, sig: int) -> None:
    """Deliver ``sig`` to the program inside the sandbox, not to bwrap.

    Signalling bwrap itself would end the sandbox with SIGKILL (die-with-parent), leaving
    the program no grace; the sandbox's init ignores signals it has no handler for. So the
    signal goes to the init's children: the program and anything it started.
    """
    init = active.sandbox_init_pid
    if init is None:
        if active.process is not None:
            active.process.signal(sig)
        return
    for child in _children(init):
        try:
            os.kill(child, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except (OSError, ValueError):
        return []


def _kill_orphaned_sandboxes(uid_base: int, uid_count: int) -> int:
    """SIGKILL sandbox processes orphaned by a dead daemon; returns how many.

    bubblewrap's --die-with-parent has a window (bubblewrap#633): a sandbox's inner bwrap
    (its pid 1) may miss its parent's death and run on, reparented to init. Such a process
    is recognisable: its parent is init, its real uid is in the sandbox range no account
    uses, and it is bwrap. Killing a pid namespace's init ends everything inside it.
    """
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
            ppid = int(fields["PPid"].split()[0])
            uid = int(fields["Uid"].split()[0])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                program = fh.read().split(b"\0", 1)[0]
        except (OSError, KeyError, ValueError, IndexError):
            continue
        if ppid == 1 and uid_base <= uid < uid_base + uid_count and program.endswith(b"bwrap"):
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


def _kill_leftover(pid: int) -> None:
    """Kill a process left by a dead daemon, only if it is still one of our sandboxes."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read().split(b"\0")
    except OSError:
        return  # gone
    heads = (b"bwrap", b"attestables-confine", b"prlimit", b"setpriv", b"/program")
    if not any(part.endswith(heads) for part in cmdline):
        return  # the pid was reused by an unrelated process
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
