"""Crash consistency: SIGKILL the daemon at random moments of real work, restart it on the
same state dir, and check everything that must survive a crash.

    python -m tests.reliability.crash --iterations 100 [--seed N] [--json FILE] [--keep DIR]

The workload is the case study's, from real parts on loopback (``CaseStudy``: the daemon,
the store, transport and messaging services, ``integration_process.c`` built and allowed
by the services' policies). Each iteration starts, against the daemon:

- uploads: sources of 1 KiB to 600 KiB under a pool of names (new versions), and deletes;
- builds: small programs with random ``-D`` values (the first build after a start also
  builds the runtime library);
- runs: ``attest_hello.c`` (a certificate issued at HELLO, revoked at the end), and one
  program that completes the handshake and then waits (a run under way at the crash);
- EAI traffic: two integration processes polling the store every 0.2 s while sales are
  added, booking taxis and messaging customers through the broker (traces).

Then it waits for the iteration's *target* — an upload just sent, a build entering
``running``, a run starting, a certificate issued or revoked, a message crossing the
broker, or just a random delay — adds a random jitter, and SIGKILLs the daemon.

After each restart, before anything new starts: no process of the dead daemon survives
(its sandboxes run as uids of a range of their own, so any live process with such a uid is
one of them, wherever it was reparented; the runs' recorded pids are checked too; how many
outlived the kill itself, to be killed by the next start, is counted); ``PRAGMA
integrity_check`` is ok, every blob the database names exists and hashes right, there is
no temp file anywhere in the state dir, no run or build is left under way (the runs that
were are ``lost``), every certificate of an ended run is revoked in the records and in the
CRL served at ``/api/v1/crl``, run output files are whole JSON lines (the last may be
torn), and the dead daemon's scratch dir is gone. Then the daemon must serve again. At the
end it runs and certifies a program end to end.

Exit status 0 when every invariant held at every iteration, 1 otherwise (the violations
are printed and written to ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from attestables import cheri
from attestables.shared.case_study import CaseStudy
from attestables.shared.client import Client
from attestables.shared.errors import AttestablesError

from . import invariants
from .common import build, serves_normally, wait_terminal

PHASES = ("upload", "build", "run", "cert_issued", "cert_revoked", "eai", "random")
PROCESS_GRACE_S = 3.0
# The daemon's sandboxes run as uids of a range of their own, above the default range
# other daemons on the machine use: a process with such a uid is this script's sandbox.
UID_BASE = 1_879_048_192 + 65_536 + 8_192
UID_COUNT = 4_096
TRIGGER_TIMEOUT_S = 5.0

WAITER = """\
#include <stdio.h>
#include <unistd.h>
#include "attestables.h"

/* Completes the handshake (a certificate is issued), says so, then waits to be killed. */
int main(void)
{
    if (att_runtime_init() != ATT_OK)
        return 1;
    printf("certified %s\\n", att_certificate_serial());
    fflush(stdout);
    for (;;)
        pause();
}
"""

PROGRAM = """\
#include <stdio.h>

int main(void)
{
    printf("value %d\\n", VALUE);
    return 0;
}
"""


@dataclass
class Report:
    iterations: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    triggered: Counter[str] = field(default_factory=Counter)
    violations: list[dict[str, Any]] = field(default_factory=list)
    work: Counter[str] = field(default_factory=Counter)
    lost_runs: int = 0
    orphaned_at_kill: int = 0
    unreferenced_blobs: int = 0
    restart_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def violate(self, iteration: int, invariant: str, detail: str) -> None:
        self.violations.append({"iteration": iteration, "invariant": invariant, "detail": detail})
        print(f"  VIOLATION [{iteration}] {invariant}: {detail}", flush=True)

    def to_dict(self) -> dict[str, Any]:
        restart = sorted(self.restart_s)
        return {"iterations": self.iterations, "kills_by_phase": dict(self.kills),
                "triggered_by_phase": dict(self.triggered), "violations": self.violations,
                "work_done": dict(self.work), "runs_lost": self.lost_runs,
                "sandbox_processes_orphaned_at_kill": self.orphaned_at_kill,
                "unreferenced_blobs_at_end": self.unreferenced_blobs,
                "restart_s_p50": restart[len(restart) // 2] if restart else None,
                "restart_s_max": restart[-1] if restart else None, "elapsed_s": round(self.elapsed_s, 1)}


class Workload:
    """What runs against the daemon during one iteration, and the events that can trigger
    the kill."""

    def __init__(self, crash: Crash, client: Client, rng: random.Random) -> None:
        self.crash = crash
        self.client = client
        self.rng = rng
        self.triggers = {phase: asyncio.Event() for phase in PHASES}
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for name, coro in (("upload", self._uploads()), ("build", self._builds()), ("run", self._runs()),
                           ("eai", self._eai()), ("sales", self._sales()), ("watch", self._watch())):
            self.tasks.append(asyncio.create_task(self._guard(name, coro), name=f"workload {name}"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _guard(self, name: str, coro: Any) -> None:
        with contextlib.suppress(AttestablesError, aiohttp.ClientError, OSError, asyncio.TimeoutError):
            await coro

    async def _uploads(self) -> None:
        rng = self.rng
        while True:
            name = f"pool{rng.randrange(30)}.{'h' if rng.random() < 0.2 else 'c'}"
            size = rng.choice([rng.randint(1, 20), rng.randint(100, 600)]) * 1024
            content = f"/* {rng.random()} */\n" + "x" * size
            call = asyncio.ensure_future(self.client.call("sources.upload", {"name": name, "content": content}))
            self.triggers["upload"].set()
            await call
            self.crash.report.work["uploads"] += 1
            if rng.random() < 0.15:
                listed = (await self.client.call("sources.list"))["sources"]
                pool = [s for s in listed if s["name"].startswith("pool")]
                if pool:
                    with contextlib.suppress(AttestablesError):
                        await self.client.call("sources.delete", {"source_id": rng.choice(pool)["source_id"]})
                        self.crash.report.work["deletes"] += 1

    async def _builds(self) -> None:
        rng = self.rng
        while True:
            uploaded = await self.client.call("sources.upload", {"name": f"prog{rng.randrange(5)}.c",
                                                                 "content": PROGRAM})
            started = await self.client.call("builds.start", {"source_id": uploaded["source_id"],
                                                              "flags": [f"-DVALUE={rng.randrange(10**6)}"]})
            record = await wait_terminal(self.client, "builds", started["build_id"], timeout=60)
            self.crash.report.work[f"builds_{record['state']}"] += 1

    async def _runs(self) -> None:
        crash = self.crash
        waiter = await self.client.call("runs.start", {"build_id": crash.waiter_build, "limits": {"wall_s": 600}})
        _ = waiter
        while True:
            started = await self.client.call("runs.start", {"build_id": crash.hello_build})
            record = await wait_terminal(self.client, "runs", started["run_id"], timeout=60)
            crash.report.work[f"runs_{record['state']}"] += 1

    async def _eai(self) -> None:
        crash = self.crash
        for _ in range(2):
            await self.client.call("runs.start", {
                "build_id": crash.integration_build, "limits": {"wall_s": 600},
                "args": ["--interval", "0.2", "--backoff-min", "0.2", "--backoff-max", "1", "--reply-checks", "3",
                         "--after-id", str(crash.last_sale)]})
        await asyncio.Event().wait()

    async def _sales(self) -> None:
        crash = self.crash
        while True:
            total = self.rng.choice([9000, 18000, 25000])
            crash.last_sale = await crash.study.add_sale("Crash Outfitters", "Kim Example", "+1-555-0177",
                                                         "1 Test Road", total)
            crash.report.work["sales"] += 1
            await asyncio.sleep(0.15)

    async def _watch(self) -> None:
        topics = ["builds.state", "runs.state", "certs.issued", "certs.revoked", "traces.message"]
        built = 0
        async with await self.client.subscribe(topics) as sub:
            async for event in sub:
                data = event.data
                if event.topic == "builds.state" and data.get("state") == "succeeded":
                    built += 1
                elif event.topic == "builds.state" and data.get("state") == "running" and built:
                    # Not the first build after a start, which builds the runtime library
                    # first: this one compiles at once and stores its artefact.
                    self.triggers["build"].set()
                elif event.topic == "runs.state" and data.get("state") in {"starting", "running"}:
                    self.triggers["run"].set()
                elif event.topic == "certs.issued":
                    self.triggers["cert_issued"].set()
                    self.crash.report.work["certificates"] += 1
                elif event.topic == "certs.revoked":
                    self.triggers["cert_revoked"].set()
                elif event.topic == "traces.message":
                    self.triggers["eai"].set()
                    self.crash.report.work["traces"] += 1


class Crash:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.report = Report()
        self.base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="attestables-crash-"))
        self.uid_base = UID_BASE + (args.seed % 4) * UID_COUNT
        self.study = CaseStudy(self.base, daemon_config={"stop_grace_s": 1.0, "sandbox_uid_base": self.uid_base,
                                                         "sandbox_uid_count": UID_COUNT})
        self.hello_build = ""
        self.waiter_build = ""
        self.integration_build = ""
        self.last_sale = 0
        self.last_phase, self.last_hit = "", True
        self.orphans: dict[int, str] = {}
        self.seen: set[tuple[str, str]] = set()

    @property
    def daemon(self) -> Any:
        assert self.study.daemon is not None
        return self.study.daemon

    @property
    def state_dir(self) -> Path:
        return Path(self.daemon.state_dir)

    async def setup(self) -> None:
        await self.study.start()
        assert self.study.build is not None and self.study.client is not None
        self.integration_build = self.study.build["build_id"]
        client = self.study.client
        self.hello_build = (await build(client, "attest_hello.c",
                                        (cheri.EXAMPLES_DIR / "attest_hello.c").read_text()))["build_id"]
        self.waiter_build = (await build(client, "waiter.c", WAITER))["build_id"]
        sales = (await self.study.services["store"].admin("GET", "/admin/sales"))["sales"]
        self.last_sale = max((s["id"] for s in sales), default=0)
        await client.close()
        self.study.client = None

    async def iteration(self, i: int) -> None:
        rng = self.rng
        phase = PHASES[i % len(PHASES)] if self.args.cycle else rng.choice(PHASES)
        async with Client.connect(self.daemon.url, self.daemon.token) as client:
            workload = Workload(self, client, rng)
            workload.start()
            try:
                if phase == "random":
                    await asyncio.sleep(rng.uniform(0.05, self.args.max_delay))
                    hit = True
                else:
                    try:
                        await asyncio.wait_for(workload.triggers[phase].wait(),
                                               TRIGGER_TIMEOUT_S * (3 if phase == "build" else 1))
                        hit = True
                    except TimeoutError:
                        hit = False
                    # Within a few ms of the event: inside the write, the compile, the spawn...
                    low, high = {"upload": (0, 0.02), "build": (0.02, 0.2), "run": (0, 0.03)}.get(phase, (0, 0.01))
                    await asyncio.sleep(rng.uniform(low, high))
                previous_work = Path(self.state_dir.joinpath("work-dir").read_text().strip())
                self.daemon.kill()
            finally:
                await workload.stop()
        self.report.kills[phase] += 1
        self.last_phase, self.last_hit = phase, hit
        if hit:
            self.report.triggered[phase] += 1
        lost = await self.after_kill(i)
        await self.restart(i, lost, previous_work)

    async def after_kill(self, i: int) -> list[str]:
        """Let ``--die-with-parent`` take the dead daemon's sandboxes down; returns the runs
        it left under way. What is still alive after the grace period is counted: it is
        the next start's to kill (checked after the restart)."""
        runs, _ = invariants.active_rows(self.state_dir)
        deadline = time.monotonic() + PROCESS_GRACE_S
        while True:
            left = self.sandbox_processes() | {pid for _, _, pid in runs if pid and invariants.process_alive(pid)}
            if not left or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        self.report.orphaned_at_kill += len(left)
        self.orphans = {pid: invariants.describe(pid) for pid in left}
        return [run_id for run_id, _, _ in runs]

    def sandbox_processes(self) -> set[int]:
        """Live processes running as one of this daemon's sandbox uids."""
        return invariants.processes_of_uids(range(self.uid_base, self.uid_base + UID_COUNT))

    async def no_process_left(self, i: int) -> None:
        """After the restart, before anything new starts: no sandbox process of the dead
        daemon, and none of the pids its runs recorded, is alive."""
        deadline = time.monotonic() + PROCESS_GRACE_S
        while left := self.sandbox_processes() | {p for p in self.orphans if invariants.process_alive(p)}:
            if time.monotonic() > deadline:
                for pid in sorted(left):
                    was = self.orphans.get(pid) or invariants.describe(pid)
                    self.report.violate(i, "no_process_left", f"pid {pid} outlived its daemon and the restart ({was})")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                return
            await asyncio.sleep(0.05)

    async def restart(self, i: int, lost: list[str], previous_work: Path) -> None:
        started = time.monotonic()
        try:
            await self.daemon.start(timeout=60)
        except (RuntimeError, TimeoutError) as exc:
            self.report.violate(i, "restart", f"the daemon did not come back: {exc}")
            raise
        self.report.restart_s.append(round(time.monotonic() - started, 3))
        self.report.lost_runs += len(lost)
        await self.no_process_left(i)
        async with aiohttp.ClientSession() as session, session.get(f"{self.daemon.http_url}/api/v1/crl") as resp:
            crl = await resp.read()
        for name, problems in invariants.check_all(self.state_dir, lost_runs=lost, previous_work=previous_work,
                                                   crl_der=crl).items():
            for problem in problems:
                # A file left behind stays behind: report it once, at the kill that left it.
                if (name, problem) not in self.seen:
                    self.report.violate(i, name, problem)
                if name in {"temp_files", "blobs"}:
                    self.seen.add((name, problem))
        try:
            async with Client.connect(self.daemon.url, self.daemon.token) as client:
                await serves_normally(client)
        except (TimeoutError, AttestablesError, OSError, AssertionError) as exc:
            self.report.violate(i, "serves", f"{type(exc).__name__}: {exc}")
        self.report.iterations += 1

    async def finish(self) -> None:
        """The daemon still runs and certifies a program; then everything stops cleanly."""
        try:
            async with Client.connect(self.daemon.url, self.daemon.token) as client:
                await serves_normally(client, self.hello_build)
        except (TimeoutError, AttestablesError, OSError, AssertionError) as exc:
            self.report.violate(self.report.iterations, "serves_at_end", f"{type(exc).__name__}: {exc}")
        self.report.unreferenced_blobs = invariants.unreferenced_blobs(self.state_dir)

    async def run(self) -> Report:
        started = time.monotonic()
        await self.setup()
        try:
            for i in range(self.args.iterations):
                await self.iteration(i)
                if not self.args.quiet:
                    print(f"[{i + 1}/{self.args.iterations}] killed at {self.last_phase}"
                          f"{'' if self.last_hit else ' (target not reached: killed anyway)'}; restarted in "
                          f"{self.report.restart_s[-1] if self.report.restart_s else '?'} s; "
                          f"{len(self.report.violations)} violations so far", flush=True)
            await self.finish()
        finally:
            await self.study.stop()
            await asyncio.sleep(1)
            for pid in self.sandbox_processes():
                self.report.violate(self.report.iterations, "no_process_left_at_end",
                                    f"pid {pid} ({invariants.describe(pid)})")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.report.elapsed_s = time.monotonic() - started
            if not self.args.keep:
                shutil.rmtree(self.base, ignore_errors=True)
        return self.report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.crash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=100, help="daemon kills (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--max-delay", type=float, default=1.5, help="longest random delay before a kill (s)")
    parser.add_argument("--cycle", action="store_true", help="go through the targets in turn instead of at random")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (logs, state)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = int(time.time())
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"crash consistency: {args.iterations} kills, seed {args.seed}", flush=True)
    report = asyncio.run(Crash(args).run())
    result = {"seed": args.seed, **report.to_dict()}
    print(json.dumps({k: v for k, v in result.items() if k != "violations"}, indent=2))
    for v in report.violations:
        print(f"VIOLATION [{v['iteration']}] {v['invariant']}: {v['detail']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print("crash consistency:", "every invariant held" if not report.violations
          else f"{len(report.violations)} violations", flush=True)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
