"""A daemon killed mid-run, and a client too slow to keep up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator

import aiohttp

from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

from .conftest import build_source, c_source, run_build, wait_run


def present(pid: int) -> bool:
    """Still in the process table (running or a zombie)."""
    return os.path.exists(f"/proc/{pid}")


async def gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` leaves the process table (ended and reaped) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while present(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return not present(pid)


@contextlib.asynccontextmanager
async def unconfined(tmp_path) -> AsyncIterator[Client]:
    """A client of a daemon that allows the unconfined (``none``) backend."""
    daemon = LocalDaemon(tmp_path / "state", config={"allow_unconfined": True})
    await daemon.start()
    try:
        async with Client.connect(daemon.url, daemon.token) as client:
            yield client
    finally:
        await daemon.stop()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


async def test_sigkill_during_a_run_leaves_a_lost_run_and_no_process(tmp_path):
    daemon = LocalDaemon(tmp_path / "state", log=open(tmp_path / "daemon.log", "wb"))  # noqa: SIM115
    await daemon.start()
    try:
        async with Client.connect(daemon.url, daemon.token) as client:
            build = await build_source(client, "forever.c", c_source(
                'int main(void) { puts("up"); fflush(stdout); for (;;) sleep(1); }\n'))
            run_id = (await client.call("runs.start", {"build_id": build["build_id"]}))["run_id"]
            deadline = time.monotonic() + 10
            while (run := await client.call("runs.get", {"run_id": run_id}))["state"] != "running":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        sandbox_pid = run["pid"]
        assert alive(sandbox_pid)
        daemon.kill()  # SIGKILL: no cleanup code runs
        deadline = time.monotonic() + 5
        while alive(sandbox_pid):  # bwrap --die-with-parent ends the sandbox with the daemon
            assert time.monotonic() < deadline, "the sandbox outlived its daemon"
            await asyncio.sleep(0.05)

        await daemon.start()
        async with Client.connect(daemon.url, daemon.token) as client:
            after = await client.call("runs.get", {"run_id": run_id})
            assert after["state"] == "lost" and after["reason"] == "daemon_restart"
            assert after["finished_at"]
            # The restarted daemon works normally: the same build runs again.
            again = await client.call("runs.start", {"build_id": build["build_id"], "limits": {"wall_s": 1}})
            assert (await wait_run(client, again["run_id"]))["reason"] == "wall_limit"
    finally:
        await daemon.stop()
    with sqlite3.connect(daemon.state_dir / "attestables.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM runs WHERE state IN ('pending','starting','running')").fetchone()[0] == 0
    assert not (daemon.state_dir / "daemon.pid").exists()


async def test_second_daemon_on_the_same_state_dir_is_refused(tmp_path):
    first = LocalDaemon(tmp_path / "state")
    await first.start()
    try:
        second = LocalDaemon(tmp_path / "state")
        try:
            await second.start(timeout=10)
            raise AssertionError("a second daemon started on a state dir in use")
        except RuntimeError as exc:
            assert "exited" in str(exc)
        assert (tmp_path / "state" / "daemon.pid").read_text().strip() == str(first.proc.pid)
    finally:
        await first.stop()


async def test_sigterm_stops_runs_and_exits_cleanly(tmp_path):
    daemon = LocalDaemon(tmp_path / "state", config={"stop_grace_s": 1.0})
    await daemon.start()
    async with Client.connect(daemon.url, daemon.token) as client:
        build = await build_source(client, "idle.c", c_source("int main(void) { for (;;) pause(); }\n"))
        run_id = (await client.call("runs.start", {"build_id": build["build_id"]}))["run_id"]
        await asyncio.sleep(0.3)
        pid = (await client.call("runs.get", {"run_id": run_id}))["pid"]
    started = time.monotonic()
    assert await daemon.stop() == 0
    assert time.monotonic() - started < 10
    assert not alive(pid)
    with sqlite3.connect(daemon.state_dir / "attestables.db") as db:
        state, reason = db.execute("SELECT state, reason FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    assert (state, reason) == ("killed", "daemon_shutdown")


async def test_a_slow_subscriber_does_not_delay_a_fast_one(tmp_path):
    # 4 MiB of queue per connection: room for a reading client's hiccups when the machine
    # is busy (with 1 MiB, the fast client itself fell behind once under a loaded CI run),
    # still a small part of the 30 MB the slow one never reads.
    daemon = LocalDaemon(tmp_path / "state", config={"client_queue_kb": 4096})
    await daemon.start()
    try:
        async with Client.connect(daemon.url, daemon.token) as fast, aiohttp.ClientSession() as session:
            # 30 MB at most ~60 MB/s: a rate a reading client keeps up with, far more than
            # the socket buffers of a client that does not read can absorb.
            build = await build_source(fast, "chatty.c", c_source(
                'int main(void) { char line[200]; memset(line, \'y\', 199); line[199] = 0;'
                ' for (int i = 0; i < 150000; i++) { puts(line); if (i % 300 == 299) usleep(1000); }'
                ' return 0; }\n'))
            # The slow client subscribes, then stops reading: TCP backpressure stalls its writer.
            slow = await session.ws_connect(daemon.url, headers={"Authorization": f"Bearer {daemon.token}"})
            await slow.receive()  # hello
            await slow.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe",
                                            "params": {"topics": ["runs.output", "runs.state"]}}))
            sub = await fast.subscribe(["runs.output", "runs.state"])
            run_id = (await fast.call("runs.start", {"build_id": build["build_id"],
                                                     "limits": {"output_kb": 40000}}))["run_id"]
            received, final = 0, None
            async with asyncio.timeout(60):
                async for event in sub:
                    assert event.topic != "events.gap", "the fast client lost events"
                    if event.data.get("run_id") != run_id:
                        continue
                    if event.topic == "runs.output":
                        received += len(event.data["data"])
                    elif event.data["state"] in {"exited", "killed", "failed"}:
                        final = event.data
                        break
            assert final["state"] == "exited" and received == 150000 * 200
            # The daemon still answers promptly while the slow client is stalled.
            assert (await asyncio.wait_for(fast.call("system.info"), 5))["version"]
            # When the slow client finally reads, it is told what it missed.
            gaps, frames = 0, 0
            async with asyncio.timeout(30):
                while True:
                    msg = await slow.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    frames += 1
                    body = json.loads(msg.data)
                    if body.get("method") == "event" and body["params"]["topic"] == "events.gap":
                        gaps += 1
                        assert body["params"]["data"]["dropped"] > 0
                    if body.get("method") == "event" and body["params"]["topic"] == "runs.state" \
                            and body["params"]["data"]["state"] == "exited":
                        break
                    if gaps and frames > 50 and body.get("method") == "event" \
                            and body["params"]["topic"] == "events.gap" and \
                            body["params"]["data"]["to_seq"] >= sub.seq:
                        break
            assert gaps >= 1
            await slow.close()
    finally:
        await daemon.stop()


def test_daemon_refuses_a_bad_config_with_a_clear_message(tmp_path):
    import subprocess
    import sys
    config = tmp_path / "bad.toml"
    config.write_text('run_wall_s = "soon"\n')
    proc = subprocess.run([sys.executable, "-m", "attestables.cli.main", "daemon", "--state-dir",
                           str(tmp_path / "s"), "--config", str(config)], capture_output=True, text=True,
                          timeout=30, env={k: v for k, v in os.environ.items() if not k.startswith("ATTESTABLES")})
    assert proc.returncode == 2
    assert "run_wall_s" in proc.stderr and "Traceback" not in proc.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("run_wal_s = 3\n")
    proc = subprocess.run([sys.executable, "-m", "attestables.cli.main", "daemon", "--state-dir",
                           str(tmp_path / "s"), "--config", str(unknown)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "unknown setting 'run_wal_s'" in proc.stderr
    _ = signal  # keep import for readers: SIGKILL/SIGTERM paths above


async def test_the_unconfined_backend_only_when_allowed(tmp_path):
    async with unconfined(tmp_path) as client:
        info = await client.call("system.info")
        none = {b["name"]: b for b in info["backends"]}["none"]
        assert none["available"] and none["isolation"]["network"] == "host"  # said plainly
        build = await build_source(client, "plain.c", c_source('int main(void) { puts("unconfined"); }\n'))
        run = await client.call("runs.start", {"build_id": build["build_id"], "backend": "none"})
        record = await wait_run(client, run["run_id"])
        assert record["state"] == "exited" and record["backend"] == "none"


ORPHAN = r"""#define _GNU_SOURCE
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(void) {
    /* What bubblewrap#633 leaves: the sandbox's init, orphaned when the bwrap the daemon
       started died before that init armed --die-with-parent. Simulated with the unconfined
       backend: a child in a session of its own (no process-group kill reaches it), named
       as bwrap's fork is, outliving the process the daemon started. */
    int ready[2];
    char byte = 0;
    if (pipe(ready) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        prctl(PR_SET_NAME, "bwrap", 0, 0, 0);
        (void)!write(ready[1], "x", 1);  /* renamed: the parent may go */
        sleep(60);
        _exit(0);
    }
    if (pid < 0 || read(ready[0], &byte, 1) != 1)
        return 1;
    printf("orphan %d\n", (int)pid);
    return 0;
}
"""


async def test_an_orphaned_sandbox_is_ended_when_its_parent_exits(tmp_path):
    async with unconfined(tmp_path) as client:
        build = await build_source(client, "orphan.c", ORPHAN)
        record, output = await run_build(client, build["build_id"], backend="none")
        assert record["state"] == "exited", record
        orphan = int(output.split()[1])
        # The daemon, a child subreaper, became its parent and ended it.
        assert await gone(orphan), "the orphan still runs (or was never reaped)"


LEFTOVERS = r"""#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    /* An unconfined program that leaves children of its own behind, each in a session of
       its own and never waited for: one that has exited before the program ends (a zombie
       the program leaves), one that exits after it (after LATER_MS). */
    int later_ms = argc > 1 ? atoi(argv[1]) : 0;
    pid_t early = fork();
    if (early == 0) {
        setsid();
        _exit(0);
    }
    pid_t late = fork();
    if (late == 0) {
        setsid();
        usleep((useconds_t)later_ms * 1000);
        _exit(0);
    }
    usleep(200 * 1000); /* the early one is a zombie by now */
    printf("left %d %d\n", (int)early, (int)late);
    return 0;
}
"""


async def test_children_an_unconfined_run_leaves_behind_are_reaped_when_they_exit(tmp_path):
    async with unconfined(tmp_path) as client:
        build = await build_source(client, "leftovers.c", LEFTOVERS)
        record, output = await run_build(client, build["build_id"], backend="none", args=["700"])
        assert record["state"] == "exited", record
        early, late = (int(pid) for pid in output.split()[1:3])

        # Exited before its parent: reaped as the run ends.
        assert await gone(early), "the exited child was left a zombie"
        # Exits later, as the daemon's child (subreaper): a zombie until the next sweep,
        # which the end of the next run brings.
        await asyncio.sleep(1.0)
        assert present(late) and not alive(late), "the late child should have exited by now"
        quiet = await build_source(client, "quiet.c", c_source("int main(void) { return 0; }\n"))
        record, _ = await run_build(client, quiet["build_id"], backend="none")
        assert record["state"] == "exited", record
        assert await gone(late), "the child that exited after its run was left a zombie"
        # The daemon's own commands keep their exit status: a build still says what failed.
        broken = await build_source(client, "broken.c", "int main(void) { return syntax error; }\n")
        assert broken["state"] == "failed", broken
