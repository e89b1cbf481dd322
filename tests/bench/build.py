"""``build_overhead_ratio``: builds.start -> succeeded, against the same compiler command.

Ours is the wall time a client sees from sending ``builds.start`` to receiving the
terminal ``builds.state`` event: queueing, staging the sources, the sandbox, the compile,
hashing the artefact and reading its ELF facts, the database writes and the event.

The baseline is the exact compiler argv the daemon recorded in the build's
``toolchain.argv``, run directly (no sandbox, no daemon) against the same files:
``/src`` -> a directory holding the same source, ``/runtime`` -> the very directory the
daemon binds there (its staged runtime: headers, sources and the runtime library it
builds once per toolchain), ``/out`` -> an empty output directory; with the environment
the sandbox gives the compiler, and its temporary files on a tmpfs as in the sandbox.
A second baseline runs the daemon's whole sandboxed command (its ``attestables-confine``,
or prlimit and setpriv; bwrap) directly, which splits the overhead into the sandbox's and the daemon's own.
The first build (the daemon's one-off work, such as the runtime library) is a warm-up.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attestables import cheri
from attestables.daemon.builds.manager import ARTEFACT, OUT, RUNTIME, SRC
from attestables.daemon.config import Settings
from attestables.daemon.sandbox.argv import Limits, bwrap_compile_argv, confine
from attestables.shared.client import Client, Subscription

from .compartment import SandboxUids, daemon_confine_tool, daemon_work_dir
from .measure import Result, interleaved, median, summary_ms

GOAL = 1.25
SOURCE = cheri.EXAMPLES_DIR / "hello.c"
TERMINAL = {"succeeded", "failed", "cancelled"}
ARMS = ("ours", "direct", "sandboxed")
# What the daemon hands the sandboxed command (bwrap --clearenv replaces it inside).
SANDBOX_SPAWN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def daemon_runtime_dir(state_dir: Path) -> Path:
    """The host directory the daemon binds at ``/runtime``: the staged copy in its scratch
    space when it keeps one, else the package's ``cheri/runtime``."""
    work = daemon_work_dir(state_dir)
    staged = work / "runtime" if work is not None else None
    return staged if staged is not None and staged.is_dir() else cheri.RUNTIME_DIR


def host_argv(argv: list[str], mapping: dict[str, str]) -> list[str]:
    """``argv`` with each sandbox path replaced by its host path: whole arguments
    (``/src/x.c``), joined options (``-I/src``, ``-L/runtime/lib``) and option values
    (``--opt=/out``, ``-Wl,-rpath,/runtime``)."""
    names = "|".join(re.escape(inside) for inside in mapping)
    pattern = re.compile(rf"(?:^|(?<=^-I)|(?<=^-L)|(?<=[=,]))({names})(?=/|$)")
    return [pattern.sub(lambda m: mapping[m.group(1)], arg) for arg in argv]


@dataclass
class Staging:
    """A host copy of what the daemon's compile sandbox sees."""

    root: Path
    src: Path
    out: Path
    tmp: Path  # the compiler's TMPDIR (the sandbox's /tmp is a tmpfs)
    runtime: Path

    @classmethod
    def create(cls, source_name: str, content: bytes, runtime: Path) -> "Staging":
        root = Path(tempfile.mkdtemp(prefix="attestables-bench-build-"))
        src, out = root / "src", root / "out"
        shm = Path("/dev/shm")
        tmp = Path(tempfile.mkdtemp(prefix="attestables-bench-tmp-",
                                    dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
        src.mkdir()
        out.mkdir()
        # Same modes as the daemon's staging: a sandbox uid (root daemon) must reach them.
        for path, mode in ((root, 0o711), (src, 0o755), (out, 0o777), (tmp, 0o1777)):
            path.chmod(mode)
        (src / source_name).write_bytes(content)
        (src / source_name).chmod(0o644)
        return cls(root, src, out, tmp, runtime)

    @property
    def artefact(self) -> Path:
        return self.out / ARTEFACT

    def mapping(self) -> dict[str, str]:
        return {SRC: str(self.src), RUNTIME: str(self.runtime), OUT: str(self.out)}

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def direct_env(tmp: Path) -> dict[str, str]:
    """The environment the compile sandbox gives the compiler, with a host TMPDIR."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp), "TMPDIR": str(tmp), "LC_ALL": "C",
            "SOURCE_DATE_EPOCH": "0"}


def sandboxed_argv(compiler_argv: list[str], staging: Staging, settings: Settings,
                   run_as: tuple[int, int] | None, tool: str | None) -> list[str]:
    """The daemon's whole compile command (``builds/sandboxed.py``)."""
    limits = Limits(cpu_s=settings.build_timeout_s, memory_mb=settings.build_memory_mb,
                    wall_s=settings.build_timeout_s, output_kb=settings.build_log_max_kb, nproc=64, tmp_mb=256)
    sandbox = bwrap_compile_argv(compiler_argv, source_dir_host=str(staging.src), output_dir_host=str(staging.out),
                                 runtime_dir_host=str(staging.runtime))
    return confine(limits, run_as, tool=tool) + sandbox


def run_command(argv: list[str], env: dict[str, str], cwd: Path, artefact: Path) -> float:
    """Run one compile to its end; its wall time. Raises if it produced no artefact."""
    artefact.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          start_new_session=True, check=False)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or not artefact.is_file():
        raise RuntimeError(f"baseline compile failed ({proc.returncode}): {argv}\n"
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return elapsed


async def build_once(client: Client, states: Subscription, source_id: str) -> tuple[float, dict[str, Any]]:
    """builds.start -> terminal builds.state, as a client sees it."""
    t0 = time.perf_counter()
    started = await client.call("builds.start", {"source_id": source_id})
    build_id = started["build_id"]
    async with asyncio.timeout(120):
        async for event in states:
            if event.topic == "events.gap":
                raise RuntimeError(f"build events were dropped: {event.data}")
            if event.data.get("build_id") == build_id and event.data.get("state") in TERMINAL:
                elapsed = time.perf_counter() - t0
                if event.data["state"] != "succeeded":
                    raise RuntimeError(f"the benchmark build failed: {event.data.get('error')}")
                return elapsed, event.data
    raise RuntimeError("the builds.state stream ended")


async def bench_build(client: Client, state_dir: Path, repeats: int, settings: Settings) -> list[Result]:
    content = SOURCE.read_bytes()
    source = await client.call("sources.upload", {"name": SOURCE.name, "content": content.decode()})
    async with await client.subscribe(["builds.state"]) as states:
        # Warm-up (not counted): page cache, the daemon's first build (and its one-off
        # work, such as building the runtime library), and the argv it records.
        _, record = await build_once(client, states, source["source_id"])
        staging = Staging.create(SOURCE.name, content, daemon_runtime_dir(state_dir))
        try:
            recorded = list(record["toolchain"]["argv"])
            direct = host_argv(recorded, staging.mapping())
            uids = SandboxUids(settings)
            tool = daemon_confine_tool(state_dir)

            def sandboxed() -> list[str]:
                return sandboxed_argv(recorded, staging, settings, uids.next(), tool)

            env = direct_env(staging.tmp)
            run_command(direct, env, staging.tmp, staging.artefact)
            run_command(sandboxed(), SANDBOX_SPAWN_ENV, staging.root, staging.artefact)

            samples: dict[str, list[float]] = {arm: [] for arm in ARMS}
            daemon_durations: list[float] = []
            for _, arm in interleaved(repeats, ARMS):
                if arm == "ours":
                    elapsed, record = await build_once(client, states, source["source_id"])
                    daemon_durations.append(float(record["duration_s"]))
                elif arm == "direct":
                    elapsed = run_command(direct, env, staging.tmp, staging.artefact)
                else:
                    elapsed = run_command(sandboxed(), SANDBOX_SPAWN_ENV, staging.root, staging.artefact)
                samples[arm].append(elapsed)
        finally:
            staging.remove()

    ours, base, sbx = (median(samples[a]) for a in ARMS)
    return [Result(
        key="build_overhead_ratio",
        value=round(ours / base, 3),
        unit="ratio",
        goal=GOAL,
        goal_op="<=",
        extra={
            "ours_ms_p50": summary_ms(samples["ours"])["p50"],
            "baseline_ms_p50": summary_ms(samples["direct"])["p50"],
            "sandboxed_baseline_ms_p50": summary_ms(samples["sandboxed"])["p50"],
            "ratio_vs_sandboxed": round(ours / sbx, 3),
            "sandbox_overhead_ms": round((sbx - base) * 1000, 3),
            "daemon_overhead_ms": round((ours - sbx) * 1000, 3),
            "daemon_duration_ms_p50": round(median(daemon_durations) * 1000, 3),
            "repeats": repeats,
            "source": SOURCE.name,
            "compiler_argv": recorded,
            "baseline": "the recorded toolchain.argv run directly, no sandbox",
            "ours_ms": summary_ms(samples["ours"]),
            "baseline_ms": summary_ms(samples["direct"]),
            "sandboxed_baseline_ms": summary_ms(samples["sandboxed"]),
        },
    )]
