"""The ``attestables`` command line: parsing, rendering, exit codes, and what reaches stdout.

A few tests drive ``main`` against a scripted websocket server on a thread of its own
(``main`` runs its own event loop); the lead's end-to-end tests use the real daemon.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from attestables.cli import main as cli
from attestables.cli.commands.builds import builds_table
from attestables.cli.commands.info import render_info
from attestables.cli.commands.runs import run_params, runs_table
from attestables.cli.commands.sources import sources_table
from attestables.cli.output import diagnostic, format_size, short_id, table
from attestables.cli.streams import build_outcome, run_exit_status, run_outcome
from attestables.shared import __version__, protocol
from attestables.shared.errors import NotFound

COMMANDS = ("daemon", "info", "sources", "build", "builds", "run", "ps", "stop", "logs")


def parse(*argv: str) -> Any:
    return cli.parse_args(cli.build_parser(), argv)


# -- parsing --------------------------------------------------------------------------------


def test_help_lists_every_command_with_its_one_line_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    for command in COMMANDS:
        assert command in listed, command
        assert len(listed[command].split()) > 1, f"{command} has no help line"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"attestables {__version__}"


def test_arguments_after_double_dash_reach_the_program_verbatim() -> None:
    args = parse("run", "b_1", "--follow", "--wall-s", "1.5", "--memory-mb", "64", "--", "--x", "--", "y", "-f")
    assert args.build_id == "b_1" and args.follow
    assert args.args == ["--x", "--", "y", "-f"]
    assert run_params(args) == {"args": ["--x", "--", "y", "-f"], "limits": {"wall_s": 1.5, "memory_mb": 64}}
    assert run_params(parse("run", "b_1")) == {}


def test_compiler_flags_may_start_with_a_dash() -> None:
    args = parse("build", "s_1", "--flag", "-O2", "--flag=-Wall", "--follow")
    assert args.flags == ["-O2", "-Wall"]
    assert args.follow


def test_connection_options_follow_the_command() -> None:
    args = parse("ps", "--url", "ws://h:1/api/v1/ws", "--token-file", "/t", "--json")
    assert (args.url, args.token_file, args.json) == ("ws://h:1/api/v1/ws", "/t", True)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["sources"],
        ["run"],
        ["ps", "--", "extra"],
        ["logs"],
        ["logs", "--build", "b_1", "--run", "r_1"],
        ["run", "b_1", "--cpu-s", "lots"],
    ],
)
def test_bad_usage_exits_2_with_a_usage_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "usage: attestables" in err
    assert err.count("error:") == 1


def test_daemon_gets_only_the_options_given(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[dict[str, Any]] = []
    fake = types.ModuleType("attestables.daemon.main")
    fake.run_daemon = lambda flags: received.append(flags) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "attestables.daemon.main", fake)
    assert cli.main(["daemon", "--listen", "0.0.0.0:9000"]) == 7
    assert cli.main(["daemon", "--state-dir", "/s", "--config", "/c.toml"]) == 7
    assert received == [{"listen": "0.0.0.0:9000"}, {"state_dir": "/s", "config": "/c.toml"}]


# -- rendering ------------------------------------------------------------------------------


def test_tables_align_columns_without_trailing_blanks() -> None:
    lines = table(("ID", "STATE", "EXIT"), [("r_1", "running", None), ("r_22222", "exited", 0)])
    assert lines == [
        "ID       STATE    EXIT",
        "r_1      running  -",
        "r_22222  exited   0",
    ]


def test_listings_show_short_ids_and_readable_sizes() -> None:
    source = {"source_id": "s_0123456789abcdef", "name": "hello.c", "latest_version": 3, "size": 2048,
              "sha256": "ab" * 32, "updated_at": None}
    header, row = sources_table([source])
    assert header.split() == ["ID", "NAME", "VERSION", "SIZE", "SHA256", "UPDATED"]
    assert row.split() == ["s_0123456789", "hello.c", "3", "2.0", "KiB", "abababababab", "-"]
    run = {"run_id": "r_0123456789abcdef", "build_id": "b_fedcba9876543210", "state": "killed", "pid": 42,
           "exit_code": None, "signal": 9, "backend": "process", "created_at": None}
    assert runs_table([run])[1].split() == ["r_0123456789", "b_fedcba9876", "killed", "42", "SIGKILL", "process", "-"]
    build = {"build_id": "b_1", "source_id": "s_1", "version": 1, "state": "succeeded",
             "toolchain": {"name": "clang"}, "exit_code": 0, "duration_s": 0.5, "created_at": None}
    assert builds_table([build])[1].split() == ["b_1", "s_1", "1", "succeeded", "clang", "0", "0.50s", "-"]
    assert short_id(None) == "-" and format_size(5) == "5 B" and format_size(3 * 1024**3) == "3.0 GiB"


def test_a_failed_build_ends_with_its_diagnostics_then_its_outcome() -> None:
    build = {
        "build_id": "b_0123456789abcdef", "state": "failed", "exit_code": 1, "duration_s": 0.25,
        "diagnostics": [
            {"file": "hello.c", "line": 3, "column": 5, "severity": "error", "message": "expected ';'"},
            {"file": "hello.c", "line": 7, "column": None, "severity": "warning", "message": "unused x"},
        ],
    }
    assert build_outcome(build) == [
        "hello.c:3:5: error: expected ';'",
        "hello.c:7: warning: unused x",
        "build b_0123456789 failed in 0.25s (exit code 1)",
    ]
    assert diagnostic({"message": "no input"}) == "<source>: error: no input"
    ok = {"build_id": "b_1", "state": "succeeded", "duration_s": 1, "diagnostics": [{"message": "w"}],
          "artefact": {"sha256": "cd" * 32, "size": 10240,
                       "elf": {"machine": "aarch64", "class": "ELF64", "purecap": True}}}
    assert build_outcome(ok) == [
        "build b_1 succeeded in 1.00s: artefact cdcdcdcdcdcd, 10.0 KiB (aarch64 ELF64 purecap)"
    ]


@pytest.mark.parametrize(
    ("run", "status"),
    [
        ({"state": "exited", "exit_code": 0}, 0),
        ({"state": "exited", "exit_code": 42}, 42),
        ({"state": "exited", "exit_code": None, "signal": 11}, 139),
        ({"state": "killed", "signal": "SIGKILL", "reason": "wall-clock limit"}, 137),
        ({"state": "killed", "signal": "TERM"}, 143),
        ({"state": "failed", "reason": "no such backend"}, 1),
        ({"state": "lost"}, 1),
    ],
)
def test_run_follow_exits_like_the_program(run: dict[str, Any], status: int) -> None:
    assert run_exit_status(run) == status


def test_how_a_run_ended_is_said_only_when_it_did_not_just_exit() -> None:
    assert run_outcome({"run_id": "r_1", "state": "exited", "exit_code": 3}) is None
    assert run_outcome({"run_id": "r_1", "state": "killed", "signal": 9, "reason": "wall-clock limit"}) == (
        "run r_1 was killed by SIGKILL: wall-clock limit"
    )
    assert run_outcome({"run_id": "r_1", "state": "failed", "reason": "exec failed"}) == "run r_1 failed: exec failed"


def test_info_shows_platform_toolchains_and_backends() -> None:
    lines = render_info({
        "version": "0.1.0", "schema_version": 1, "state_dir": "/var/lib/attestables",
        "platform": {"os": "Linux", "release": "6.8", "machine": "x86_64", "cpu_model": "Xeon", "cpu_count": 8,
                     "memory_bytes": 8 * 1024**3, "cheri": False},
        "toolchains": [{"name": "clang", "compiler": "/usr/bin/clang", "version": "18.1", "available": True}],
        "backends": [
            {"name": "process", "available": True, "isolation": "bwrap"},
            {"name": "bwrap", "available": False,
             "isolation": {"network": "none", "pid_namespace": True, "user_namespace": True, "wall_s": 300}},
        ],
    })
    text = "\n".join(lines)
    assert "platform   Linux 6.8 x86_64" in text
    assert "cpu        Xeon (8 CPUs)" in text
    assert "memory     8.0 GiB" in text
    assert "cheri      no" in text
    assert "clang      /usr/bin/clang  18.1     yes" in text
    assert "process  yes        bwrap" in text
    assert "bwrap    no         network none; pid+user namespaces" in text


# -- against a scripted server --------------------------------------------------------------

Method = Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[Any]]
TOKEN = "cli-test-token"


class ThreadedDaemon:
    """The envelope on its own thread and loop, so ``main`` can run its own."""

    def __init__(self, methods: dict[str, Method]) -> None:
        self.methods = methods
        self.calls: list[tuple[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ThreadedDaemon:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())
        self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get(protocol.API_PATH, self._websocket)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        self.url = f"ws://{host}:{port}{protocol.API_PATH}"
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        hello = {"schema_version": protocol.SCHEMA_VERSION, "min_supported_schema_version": 1, "server_version": "t"}
        await send(ws, protocol.notification(protocol.HELLO, hello))
        async for message in ws:
            call = protocol.decode(message.data)
            params = call.get("params") or {}
            self.calls.append((call["method"], params))
            try:
                value = await self.methods[call["method"]](ws, params)
            except NotFound as exc:
                await send(ws, protocol.error(call["id"], exc))
            else:
                await send(ws, protocol.result(call["id"], value))
        return ws


async def send(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
    await ws.send_str(protocol.encode(message).decode())


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture(autouse=True)
def no_ambient_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ATTESTABLES_TOKEN", "ATTESTABLES_URL", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def run_cli(server: ThreadedDaemon, token_file: Path, *argv: str) -> int:
    """``main`` with the connection options added before any ``--``."""
    split = argv.index("--") if "--" in argv else len(argv)
    return cli.main([*argv[:split], "--url", server.url, "--token-file", str(token_file), *argv[split:]])


def following(events: list[tuple[str, int, dict[str, Any]]], subscription: str = "sub-1") -> Method:
    """An ``events.subscribe`` that sends ``events`` just after its answer."""

    async def subscribe(ws: web.WebSocketResponse, params: dict[str, Any]) -> Any:
        async def later() -> None:
            await asyncio.sleep(0.02)
            for topic, seq, data in events:
                await send(ws, protocol.event(subscription, topic, seq, data))

        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(later()))
        return {"subscription": subscription, "seq": 1}

    return subscribe


async def answer(value: Any) -> Any:
    return value


def test_run_follow_copies_output_byte_exact_and_exits_like_the_program(
    token_file: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    killed = {"run_id": "r_1", "state": "killed", "signal": 9, "reason": "wall-clock limit"}
    methods: dict[str, Method] = {
        "runs.start": lambda ws, p: answer({"run_id": "r_1"}),
        "events.subscribe": following([
            (protocol.RUNS_OUTPUT, 2, {"run_id": "r_1", "stream": "stdout", "data": "wor", "ts": 1}),
            (protocol.RUNS_OUTPUT, 3, {"run_id": "r_1", "stream": "stderr", "data": "bad\n", "ts": 1}),
            (protocol.RUNS_OUTPUT, 4, {"run_id": "r_1", "stream": "stdout", "data": "ld ✓\n", "ts": 1}),
            (protocol.RUNS_OUTPUT, 5, {"run_id": "r_1", "stream": "daemon", "data": "[limit]\n", "ts": 1}),
            (protocol.RUNS_STATE, 6, killed),
        ]),
        "runs.get": lambda ws, p: answer({"run_id": "r_1", "state": "running"}),
        "runs.logs": lambda ws, p: answer(
            {"chunks": [{"stream": "stdout", "data": "hello\n", "ts": 0}], "truncated": False, "seq": 1}
        ),
        "events.unsubscribe": lambda ws, p: answer({"unsubscribed": True}),
    }
    with ThreadedDaemon(methods) as server:
        status = run_cli(server, token_file, "run", "b_1", "--follow", "--wall-s", "2", "--", "-v", "x")
    captured = capsysbinary.readouterr()
    assert status == 137
    assert captured.out == "hello\nworld ✓\n".encode()
    assert captured.err.startswith(b"bad\n[limit]\n")
    assert b"run r_1 was killed by SIGKILL: wall-clock limit" in captured.err
    assert server.calls[0] == ("runs.start", {"build_id": "b_1", "args": ["-v", "x"], "limits": {"wall_s": 2}})


def test_build_follow_of_a_failed_build_prints_diagnostics_and_exits_1(
    token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = {"build_id": "b_1", "state": "failed", "exit_code": 1, "duration_s": 0.1,
              "diagnostics": [{"file": "a.c", "line": 1, "column": 2, "severity": "error", "message": "oops"}]}
    methods: dict[str, Method] = {
        "builds.start": lambda ws, p: answer({"build_id": "b_1"}),
        "events.subscribe": following([
            (protocol.BUILDS_LOG, 3, {"build_id": "b_1", "stream": "stderr", "line": "a.c:1:2: error: oops", "ts": 1}),
            (protocol.BUILDS_STATE, 4, failed),
        ]),
        "builds.get": lambda ws, p: answer({"build_id": "b_1", "state": "running"}),
        "builds.logs": lambda ws, p: answer({"lines": [], "truncated": False, "seq": 2}),
        "events.unsubscribe": lambda ws, p: answer({"unsubscribed": True}),
    }
    with ThreadedDaemon(methods) as server:
        assert run_cli(server, token_file, "build", "s_1", "--follow", "--flag", "-O2") == 1
    assert capsys.readouterr().out.splitlines() == [
        "a.c:1:2: error: oops", "a.c:1:2: error: oops", "build b_1 failed in 0.10s (exit code 1)"
    ]
    assert server.calls[0] == ("builds.start", {"source_id": "s_1", "flags": ["-O2"]})


def test_short_ids_from_listings_are_accepted(token_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def stop(ws: web.WebSocketResponse, params: dict[str, Any]) -> Any:
        if params["run_id"] != "r_0123456789abcdef":
            raise NotFound(f"no run {params['run_id']}")
        return {"run_id": params["run_id"], "state": "killed", "signal": 15}

    methods: dict[str, Method] = {
        "runs.stop": stop,
        "runs.list": lambda ws, p: answer({"runs": [{"run_id": "r_0123456789abcdef"}, {"run_id": "r_99"}]}),
    }
    with ThreadedDaemon(methods) as server:
        assert run_cli(server, token_file, "stop", "r_0123") == 0
        assert run_cli(server, token_file, "stop", "r_4") == 1
    out, err = capsys.readouterr()
    assert out == "run r_0123456789 was killed by SIGTERM\n"
    assert err == "error: no run r_4 (not_found)\n"


def test_json_output_is_one_document_per_result(token_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {"runs": [{"run_id": "r_1", "state": "running"}]}
    with ThreadedDaemon({"runs.list": lambda ws, p: answer(runs)}) as server:
        assert run_cli(server, token_file, "ps", "--json") == 0
    assert json.loads(capsys.readouterr().out) == runs


def test_connection_problems_are_one_line_and_exit_3(token_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{probe.getsockname()[1]}/api/v1/ws"
    assert cli.main(["ps", "--url", url, "--token-file", str(token_file)]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot connect to the daemon at {url}: ")
    assert err.endswith("(cannot_connect)\n") and err.count("\n") == 1
    with ThreadedDaemon({}) as server:
        wrong = token_file.with_name("wrong")
        wrong.write_text("nope")
        assert cli.main(["ps", "--url", server.url, "--token-file", str(wrong)]) == 3
    assert "refused the API token" in capsys.readouterr().err
    assert cli.main(["info", "--url", url]) == 3  # no token anywhere
    assert "no API token found" in capsys.readouterr().err
