"""Upload -> build -> run -> output, against the real daemon, gcc and bubblewrap."""

from __future__ import annotations

import asyncio

import pytest

from attestables.shared import errors

from .conftest import EXAMPLES, build_source, c_source, run_build, upload, wait_build, wait_run


async def test_hello_builds_runs_and_streams_its_output(client):
    build = await build_source(client, "hello.c", (EXAMPLES / "hello.c").read_text())
    assert build["state"] == "succeeded", build
    assert build["exit_code"] == 0 and build["diagnostics"] == []
    artefact = build["artefact"]
    assert len(artefact["sha256"]) == 64 and artefact["size"] > 0
    assert artefact["elf"]["machine"] == "x86_64" and artefact["elf"]["purecap"] is False
    assert artefact["elf"]["interpreter"].startswith("/lib64/ld-linux")
    assert build["toolchain"]["name"] == "native" and build["toolchain"]["argv"][0].endswith("cc")

    async with await client.subscribe(["runs.output", "runs.state"]) as sub:
        started = await client.call("runs.start", {"build_id": build["build_id"]})
        output, states = "", []
        async with asyncio.timeout(30):
            async for event in sub:
                if event.data["run_id"] != started["run_id"]:
                    continue
                if event.topic == "runs.output":
                    output += event.data["data"]
                else:
                    states.append(event.data["state"])
                    if event.data["state"] in {"exited", "failed", "killed"}:
                        break
    assert "hello from a compartment" in output and "goodbye" in output
    assert states[-1] == "exited" and "running" in states
    run = await client.call("runs.get", {"run_id": started["run_id"]})
    assert run["exit_code"] == 0 and run["signal"] is None and run["backend"] == "bwrap"
    assert run["pid"] and run["started_at"] and run["finished_at"]
    assert run["limits"] == {"cpu_s": 60, "memory_mb": 512, "wall_s": 30, "output_kb": 1024}


async def test_build_failure_has_parsed_diagnostics(client):
    build = await build_source(client, "broken.c", "int main(void) {\n  return undefined_name;\n}\n")
    assert build["state"] == "failed" and build["exit_code"] != 0
    assert build["artefact"] is None
    errs = [d for d in build["diagnostics"] if d["severity"] == "error"]
    assert errs and errs[0]["file"] == "broken.c" and errs[0]["line"] == 2 and errs[0]["column"] > 0
    assert "undefined_name" in errs[0]["message"]
    logs = await client.call("builds.logs", {"build_id": build["build_id"]})
    assert any("undefined_name" in line["line"] for line in logs["lines"])


async def test_build_log_streams_line_by_line_and_ends_with_state(client):
    src = await upload(client, "warn.c", c_source("int main(void) { int unused; return 0; }\n"))
    async with await client.subscribe(["builds.log", "builds.state"]) as sub:
        started = await client.call("builds.start", {"source_id": src["source_id"], "flags": ["-O0", "-g"]})
        lines, final = [], None
        async with asyncio.timeout(60):
            async for event in sub:
                if event.data.get("build_id") != started["build_id"]:
                    continue
                if event.topic == "builds.log":
                    lines.append(event.data["line"])
                elif event.data["state"] in {"succeeded", "failed"}:
                    final = event.data
                    break
    assert final["state"] == "succeeded"
    assert any("unused" in line for line in lines)
    assert [d["severity"] for d in final["diagnostics"]] == ["warning"]
    assert final["flags"] == ["-O0", "-g"]


async def test_run_args_and_exit_code(client):
    build = await build_source(client, "args.c", c_source(
        'int main(int argc, char **argv) { for (int i = 1; i < argc; i++) printf("[%s]", argv[i]);'
        ' return argc; }\n'))
    run, output = await run_build(client, build["build_id"], args=["a b", "--x", "ü"])
    assert output == "[a b][--x][ü]"
    assert run["state"] == "exited" and run["exit_code"] == 4


async def test_define_flag_reaches_the_compiler(client):
    ok = await build_source(client, "define2.c", c_source(
        "int main(void) { printf(\"%d\\n\", GREETING * 2); return 0; }\n"), flags=["-DGREETING=21"])
    _, output = await run_build(client, ok["build_id"])
    assert output.strip() == "42"


async def test_runtime_header_is_linked_automatically(client):
    build = await build_source(client, "uses_runtime.c",
                               '#include "attestables.h"\n#include <stdio.h>\n'
                               'int main(void) { puts("runtime header found"); return 0; }\n')
    assert build["state"] == "succeeded", build["diagnostics"]


async def test_sources_with_headers_build_together(client):
    await upload(client, "answer.h", "#define ANSWER 42\n")
    build = await build_source(client, "with_header.c",
                               c_source('#include "answer.h"\nint main(void) { printf("%d", ANSWER); }\n'))
    _, output = await run_build(client, build["build_id"])
    assert output == "42"
    header = [s for s in (await client.call("sources.list"))["sources"] if s["name"] == "answer.h"][0]
    with pytest.raises(errors.InvalidParams, match="header"):
        await client.call("builds.start", {"source_id": header["source_id"]})


async def test_rebuilding_the_same_source_gives_the_same_artefact(client):
    body = c_source("int main(void) { return 0; }\n")
    first = await build_source(client, "repro.c", body)
    second = await build_source(client, "repro.c", body)
    assert first["artefact"]["sha256"] == second["artefact"]["sha256"]


async def test_stop_a_running_program(client):
    build = await build_source(client, "sleeper.c", c_source(
        '#include <signal.h>\nstatic void bye(int s) { (void)s; puts("got SIGTERM"); fflush(stdout); _exit(7); }\n'
        'int main(void) { signal(SIGTERM, bye); puts("ready"); fflush(stdout); for (;;) pause(); }\n'))
    async with await client.subscribe(["runs.output"]) as sub:
        started = await client.call("runs.start", {"build_id": build["build_id"]})
        async with asyncio.timeout(20):
            async for event in sub:
                if event.data["run_id"] == started["run_id"] and "ready" in event.data["data"]:
                    break
    await asyncio.sleep(0.2)  # let bwrap report the sandbox's init pid
    stopped = await client.call("runs.stop", {"run_id": started["run_id"]})
    assert stopped["state"] == "killed" and stopped["reason"] == "stopped"
    logs = await client.call("runs.logs", {"run_id": started["run_id"]})
    assert "got SIGTERM" in "".join(c["data"] for c in logs["chunks"])  # the program had its grace
    with pytest.raises(errors.Conflict):
        await client.call("runs.stop", {"run_id": started["run_id"]})


async def test_stop_escalates_to_sigkill(client):
    build = await build_source(client, "stubborn.c", c_source(
        '#include <signal.h>\nint main(void) { signal(SIGTERM, SIG_IGN); puts("ready"); fflush(stdout);'
        ' for (;;) pause(); }\n'))
    started = await client.call("runs.start", {"build_id": build["build_id"]})
    await asyncio.sleep(0.5)
    stopped = await client.call("runs.stop", {"run_id": started["run_id"]})
    assert stopped["state"] == "killed" and stopped["reason"] == "stopped"


async def test_delete_refused_while_a_run_is_active(client):
    src = await upload(client, "busy.c", c_source("int main(void) { sleep(30); return 0; }\n"))
    started = await client.call("builds.start", {"source_id": src["source_id"]})
    build = await wait_build(client, started["build_id"])
    run = await client.call("runs.start", {"build_id": build["build_id"]})
    with pytest.raises(errors.Conflict):
        await client.call("sources.delete", {"source_id": src["source_id"]})
    await client.call("runs.stop", {"run_id": run["run_id"]})
    await client.call("sources.delete", {"source_id": src["source_id"]})
    # The build record (and its artefact) outlive the source: past runs stay explainable.
    assert (await client.call("builds.get", {"build_id": build["build_id"]}))["state"] == "succeeded"


async def test_run_of_a_failed_build_is_refused(client):
    build = await build_source(client, "nope.c", "int main(void) { return x; }\n")
    with pytest.raises(errors.Conflict):
        await client.call("runs.start", {"build_id": build["build_id"]})


async def test_limits_outside_the_maxima_are_refused(client):
    build = await build_source(client, "limits.c", c_source("int main(void) { return 0; }\n"))
    with pytest.raises(errors.LimitExceeded):
        await client.call("runs.start", {"build_id": build["build_id"], "limits": {"memory_mb": 10 ** 6}})
    with pytest.raises(errors.InvalidParams):
        await client.call("runs.start", {"build_id": build["build_id"], "limits": {"gpu": 1}})
    with pytest.raises(errors.InvalidParams):
        await client.call("runs.start", {"build_id": build["build_id"], "limits": {"cpu_s": 0}})
    with pytest.raises(errors.Unavailable):
        await client.call("runs.start", {"build_id": build["build_id"], "backend": "none"})
    with pytest.raises(errors.InvalidParams):
        await client.call("runs.start", {"build_id": build["build_id"], "backend": "docker"})


async def test_cancel_a_queued_or_running_build(client):
    # A compile that takes a while from a small source: macros expanding to 4^9 statements.
    macros = "#define X0 a = a * 3 + 1;\n" + "".join(f"#define X{i} X{i-1} X{i-1} X{i-1} X{i-1}\n"
                                                         for i in range(1, 10))
    src = await upload(client, "slow.c", macros + "int main(void) { volatile int a = 0; X9 return a; }\n")
    started = await client.call("builds.start", {"source_id": src["source_id"], "flags": ["-O2"]})
    await asyncio.sleep(0.3)
    cancelled = await client.call("builds.cancel", {"build_id": started["build_id"]})
    assert cancelled["state"] == "cancelled"
    with pytest.raises(errors.Conflict):
        await client.call("builds.cancel", {"build_id": started["build_id"]})


async def test_since_replays_a_finished_run(client):
    build = await build_source(client, "replay.c", c_source('int main(void) { puts("replayed"); }\n'))
    info = await client.call("builds.logs", {"build_id": build["build_id"]})
    started = await client.call("runs.start", {"build_id": build["build_id"]})
    await wait_run(client, started["run_id"])
    async with await client.subscribe(["runs.output", "runs.state"], filter={"run_id": started["run_id"]},
                                      since=info["seq"]) as sub:
        seen = []
        async with asyncio.timeout(10):
            async for event in sub:
                seen.append(event)
                if event.topic == "runs.state" and event.data["state"] == "exited":
                    break
    assert any(e.topic == "runs.output" and "replayed" in e.data["data"] for e in seen)
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)


async def test_the_control_channel_is_fd_3_and_announced(client):
    build = await build_source(client, "channel.c", c_source('''
#include <fcntl.h>
#include <sys/socket.h>
int main(void) {
    const char *fd = getenv("ATTESTABLES_FD");
    int type = 0; socklen_t len = sizeof type;
    int is_socket = getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
    printf("ATTESTABLES_FD=%s socket=%d fd4=%d fd5=%d\\n", fd ? fd : "-", is_socket,
           fcntl(4, F_GETFD) != -1, fcntl(5, F_GETFD) != -1);
    return 0;
}
'''))
    _, output = await run_build(client, build["build_id"])
    # fd 3 is the daemon's socket; the descriptors bwrap used to set up (4, 5) are not leaked.
    assert output.strip() == "ATTESTABLES_FD=3 socket=1 fd4=0 fd5=0"


async def test_the_program_sees_a_clean_environment_and_a_private_tmp(client):
    build = await build_source(client, "env.c", c_source('''
extern char **environ;
int main(void) {
    for (char **e = environ; *e; e++) printf("%s\\n", *e);
    FILE *f = fopen("/tmp/scratch", "w");
    printf("tmp writable=%d\\n", f != NULL);
    printf("root writable=%d\\n", fopen("/new-file", "w") != NULL);
    printf("home visible=%d\\n", fopen("/root/.bashrc", "r") != NULL);
    return 0;
}
'''))
    _, output = await run_build(client, build["build_id"])
    lines = set(output.split("\n"))
    assert "ATTESTABLES_FD=3" in lines and "tmp writable=1" in lines
    assert "root writable=0" in lines and "home visible=0" in lines
    assert not any(line.startswith(("ATTESTABLES_TOKEN", "ATTESTABLES_URL")) for line in lines)
