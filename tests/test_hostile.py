"""Hostile sources and programs: each is contained and the daemon carries on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from attestables.shared import errors

from .conftest import build_source, c_source, run_build


def process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


async def assert_daemon_healthy(client) -> None:
    info = await client.call("system.info")
    assert info["version"]


async def test_including_the_token_file_fails_and_leaks_nothing(client, daemon):
    token_path = daemon.state_dir / "api-token"
    build = await build_source(client, "steal.c", f'#include "{token_path}"\nint main(void) {{ return 0; }}\n')
    assert build["state"] == "failed"
    logs = await client.call("builds.logs", {"build_id": build["build_id"]})
    text = "\n".join(line["line"] for line in logs["lines"])
    assert "No such file" in text
    assert daemon.token not in text
    assert daemon.token not in str(build)


async def test_a_program_cannot_read_the_token_file(client, daemon):
    token_path = daemon.state_dir / "api-token"
    build = await build_source(client, "read_token.c", c_source(f'''
int main(void) {{
    FILE *f = fopen("{token_path}", "r");
    if (!f) {{ perror("fopen"); return 3; }}
    char buf[128] = {{0}};
    fread(buf, 1, sizeof buf - 1, f);
    printf("TOKEN=%s", buf);
    return 0;
}}
'''))
    run, output = await run_build(client, build["build_id"])
    assert run["exit_code"] == 3
    assert daemon.token not in output


async def test_a_program_cannot_reach_the_daemon_port(client, daemon):
    build = await build_source(client, "connect.c", c_source(f'''
#include <arpa/inet.h>
#include <sys/socket.h>
int main(void) {{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {{ .sin_family = AF_INET, .sin_port = htons({daemon.port}) }};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {{ perror("connect"); return 4; }}
    puts("CONNECTED");
    return 0;
}}
'''))
    run, output = await run_build(client, build["build_id"])
    assert run["exit_code"] == 4
    assert "CONNECTED" not in output


async def test_a_fork_bomb_is_contained(client):
    build = await build_source(client, "forkbomb.c", c_source('''
int main(void) {
    int failures = 0;
    for (int i = 0; i < 100000; i++) {
        if (fork() < 0) { failures++; if (failures > 100) break; }
    }
    if (failures) { printf("fork refused %d times\\n", failures); fflush(stdout); }
    return 0;
}
'''))
    run, output = await run_build(client, build["build_id"], limits={"wall_s": 10})
    assert "fork refused" in output  # RLIMIT_NPROC bit, not the wall clock
    assert run["state"] in {"exited", "killed"}
    assert not process_alive(run["pid"])
    await assert_daemon_healthy(client)


async def test_a_memory_hog_is_contained(client):
    build = await build_source(client, "hog.c", c_source('''
int main(void) {
    size_t total = 0;
    for (;;) {
        char *p = malloc(16 << 20);
        if (!p) { printf("malloc refused after %zu MiB\\n", total >> 20); return 5; }
        memset(p, 1, 16 << 20);
        total += 16 << 20;
    }
}
'''))
    run, output = await run_build(client, build["build_id"], limits={"memory_mb": 64})
    assert run["exit_code"] == 5 and "malloc refused after" in output
    mib = int(output.split("after ")[1].split()[0])
    assert mib <= 64
    await assert_daemon_healthy(client)


async def test_an_endless_loop_is_killed_at_the_wall_limit(client):
    build = await build_source(client, "loop.c", c_source("int main(void) { for (;;) pause(); }\n"))
    run, _ = await run_build(client, build["build_id"], limits={"wall_s": 1})
    assert run["state"] == "killed" and run["reason"] == "wall_limit"
    assert not process_alive(run["pid"])


async def test_a_cpu_spinner_is_killed_at_the_cpu_limit(client):
    build = await build_source(client, "spin.c", c_source("int main(void) { volatile long x = 0; for (;;) x++; }\n"))
    run, _ = await run_build(client, build["build_id"], limits={"cpu_s": 1, "wall_s": 20})
    assert run["state"] == "killed" and run["reason"] == "cpu_limit"


async def test_an_output_flood_is_capped(client):
    build = await build_source(client, "flood.c", c_source(
        'int main(void) { char line[100]; memset(line, \'x\', 99); line[99] = 0;'
        ' for (;;) puts(line); }\n'))
    run, output = await run_build(client, build["build_id"], limits={"output_kb": 64})
    assert run["state"] == "killed" and run["reason"] == "output_limit"
    assert 64 * 1024 <= len(output) <= 64 * 1024 + 200  # the cap, plus the daemon's one-line note
    logs = await client.call("runs.logs", {"run_id": run["run_id"]})
    assert logs["truncated"] is True


async def test_an_artefact_changed_on_disk_is_refused(client, daemon):
    build = await build_source(client, "victim.c", c_source('int main(void) { puts("genuine"); }\n'))
    digest = build["artefact"]["sha256"]
    blob = Path(daemon.state_dir) / "blobs" / digest[:2] / digest
    original = blob.read_bytes()
    os.chmod(blob, 0o600)
    blob.write_bytes(original.replace(b"genuine", b"evil!!!"))
    try:
        with pytest.raises(errors.Tampered) as info:
            await client.call("runs.start", {"build_id": build["build_id"]})
        run_id = info.value.data["run_id"]
        run = await client.call("runs.get", {"run_id": run_id})
        assert run["state"] == "failed" and run["reason"] == "tampered"
    finally:
        blob.write_bytes(original)
    run, output = await run_build(client, build["build_id"])
    assert output.strip() == "genuine"


async def test_a_program_signalling_its_parent_hurts_nothing(client):
    build = await build_source(client, "killer.c", c_source('''
#include <signal.h>
int main(void) {
    kill(getppid(), SIGKILL);
    kill(-1, SIGKILL);
    kill(1, SIGTERM);
    puts("still here");
    return 0;
}
'''))
    run, _ = await run_build(client, build["build_id"])
    assert run["state"] in {"exited", "killed"}
    await assert_daemon_healthy(client)


async def test_many_runs_at_once_all_finish(client):
    build = await build_source(client, "quick.c", c_source('int main(void) { puts("done"); return 0; }\n'))
    results = await asyncio.gather(*(run_build(client, build["build_id"]) for _ in range(8)))
    assert all(run["exit_code"] == 0 and out.strip() == "done" for run, out in results)


async def test_rebuilding_after_tamper_restores_the_artefact(client, daemon):
    body = c_source('int main(void) { puts("restored"); }\n')
    build = await build_source(client, "restore.c", body)
    digest = build["artefact"]["sha256"]
    blob = Path(daemon.state_dir) / "blobs" / digest[:2] / digest
    os.chmod(blob, 0o600)
    blob.write_bytes(b"garbage")
    with pytest.raises(errors.Tampered):
        await client.call("runs.start", {"build_id": build["build_id"]})
    again = await build_source(client, "restore.c", body)  # "rebuild the source", as the error says
    assert again["artefact"]["sha256"] == digest
    run, output = await run_build(client, again["build_id"])
    assert output.strip() == "restored"
