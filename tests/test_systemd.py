"""The daemon under a service manager: notify protocol, watchdog, reload, stop, socket activation,
and the shipped unit files (systemd-analyze) and rc.d script (sh -n).

The daemon is started as systemd would start it, with the variables systemd sets: the test binds
the NOTIFY_SOCKET datagram socket itself and reads what the daemon tells it, and passes a
listening socket as fd 3 with LISTEN_FDS/LISTEN_PID for socket activation.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attestables.daemon import systemd
from attestables.shared.client import Client
from attestables.shared.errors import ConnectionLost
from attestables.shared.local_daemon import free_port

from .conftest import build_source, c_source, run_build

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SERVICE = REPO / "daemon" / "systemd" / "attestables.service"
SOCKET = REPO / "daemon" / "systemd" / "attestables.socket"
RC_SCRIPT = REPO / "daemon" / "rc.d" / "attestables"
MAX_EXPOSURE = 3.0

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze not installed (scripts/bootstrap.sh installs it)")


class NotifySocket:
    """The service manager's end of NOTIFY_SOCKET: a datagram socket the test reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.received: list[dict[str, str]] = []

    async def expect(self, key: str, timeout: float = 30.0, value: str = "1") -> dict[str, str]:
        """The next message that sets ``key`` (the ones before it are kept in ``received``)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(self.sock, 4096)
                message = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
                self.received.append(message)
                if message.get(key) == value or (value == "*" and key in message):
                    return message

    def close(self) -> None:
        self.sock.close()


def daemon_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ATTESTABLES_", "NOTIFY_", "WATCHDOG_", "LISTEN_", "JOURNAL_"))}
    env.update(extra)
    return env


def daemon_argv(config: Path, listen: str) -> list[str]:
    return [sys.executable, "-m", "attestables.cli.main", "daemon", "--listen", listen, "--config", str(config)]


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    return await asyncio.to_thread(proc.wait, timeout)


# -- the protocol pieces, in-process ----------------------------------------------------------


def test_notifier_sends_datagrams_and_is_silent_without_a_socket(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "n")}
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(env["NOTIFY_SOCKET"])
    notifier = systemd.Notifier.from_environ(env)
    assert "NOTIFY_SOCKET" not in env  # children must not inherit it
    assert notifier.ready("up")
    assert receiver.recv(100) == b"READY=1\nSTATUS=up"
    assert notifier.reloading()
    assert re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=.*", receiver.recv(200))
    assert notifier.stopping()
    assert receiver.recv(100).startswith(b"STOPPING=1\n")
    notifier.close()
    receiver.close()
    assert systemd.Notifier.from_environ({}).ready() is False
    assert systemd.Notifier("relative/path").enabled is False  # only '/' or '@' addresses


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_this_pid() -> None:
    env = {"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    assert systemd.take_watchdog_interval(env) == 1.5
    assert env == {}
    assert systemd.take_watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.take_watchdog_interval({}) is None
    assert systemd.take_watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_listen_fds_for_another_pid_are_ignored_and_bad_fds_refused() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1"}
    assert systemd.take_listen_sockets(env) == []
    assert env == {}
    # fd 3 a pipe, not a listening socket: refused. In a child, whose fd 3 is free to replace.
    code = (
        "import os\n"
        "from attestables.daemon import systemd\n"
        "r, w = os.pipe(); os.dup2(r, 3)\n"
        "try:\n"
        "    systemd.take_listen_sockets({'LISTEN_PID': str(os.getpid()), 'LISTEN_FDS': '1'})\n"
        "except systemd.ActivationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "socket activation: fd 3 (unknown) is not a socket", out.stderr


def test_journal_stream_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with open(tmp_path / "stream", "w") as fh:
        st = os.fstat(fh.fileno())
        assert systemd.journal_stream_matches(fh.fileno(), {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not systemd.journal_stream_matches(fh.fileno(), {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not systemd.journal_stream_matches(fh.fileno(), {})


# -- a real daemon: ready, watchdog, reload without dropping clients, graceful stop -----------------


async def test_ready_watchdog_reload_and_stop_under_a_notify_socket(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify")
    config = tmp_path / "daemon.toml"
    config.write_text("run_wall_s = 30\nmax_runs = 8\n")
    port = free_port()
    log_path = tmp_path / "daemon.log"
    log = open(log_path, "wb")  # noqa: SIM115
    st = os.fstat(log.fileno())
    # What systemd sets: the state dir (StateDirectory=), credentials (LoadCredential=), the
    # notify socket, the watchdog, and stderr connected to the journal.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    passphrase = "correct horse battery staple 42"
    (credentials / "ca-passphrase").write_text(passphrase + "\n")
    env = daemon_env(STATE_DIRECTORY=str(tmp_path / "state"), CREDENTIALS_DIRECTORY=str(credentials),
                     ATTESTABLES_CA_PASSPHRASE_CREDENTIAL="ca-passphrase", NOTIFY_SOCKET=str(notify.path),
                     WATCHDOG_USEC="300000", JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    proc = subprocess.Popen(daemon_argv(config, f"127.0.0.1:{port}"), env=env, stdout=log, stderr=log,
                            start_new_session=True)
    try:
        ready = await notify.expect("READY")
        assert ready["STATUS"] == f"listening on 127.0.0.1:{port}"
        # Listening when it says so: no retry loop needed.
        token = (tmp_path / "state" / "api-token").read_text().strip()
        # The CA keys were created encrypted with the credential's passphrase.
        assert (tmp_path / "state" / "ca" / "issuing.key").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY")
        async with Client.connect(f"ws://127.0.0.1:{port}/api/v1/ws", token) as client:
            assert (await client.call("system.info"))["state_dir"] == str(tmp_path / "state")
            # WATCHDOG=1 every 150 ms (half of 300 ms).
            started = time.monotonic()
            for _ in range(3):
                await notify.expect("WATCHDOG")
            assert time.monotonic() - started < 2.0

            # SIGHUP: new limits apply; the connected client stays connected.
            config.write_text("run_wall_s = 20\nmax_runs = 3\nevent_ring_size = 100\n")
            proc.send_signal(signal.SIGHUP)
            await notify.expect("RELOADING")
            assert (await notify.expect("READY"))["STATUS"].startswith("serving 1 API clients")
            info = await client.call("system.info")
            assert info["limits"]["default"]["wall_s"] == 20

            # A broken file is refused as a whole: the running configuration stays.
            config.write_text("run_wall_s = 'soon'\n")
            proc.send_signal(signal.SIGHUP)
            await notify.expect("RELOADING")
            await notify.expect("READY")
            info = await client.call("system.info")
            assert info["limits"]["default"]["wall_s"] == 20

            # SIGTERM: STOPPING=1, the client is told, the daemon exits 0 within the stop timeout.
            proc.send_signal(signal.SIGTERM)
            stopping = await notify.expect("STOPPING")
            assert "stopping" in stopping["STATUS"]
            with pytest.raises(ConnectionLost):
                async with asyncio.timeout(10):
                    while True:
                        await client.call("system.info")
                        await asyncio.sleep(0.05)
        assert await wait_exit(proc, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        log.close()
    lines = log_path.read_text().splitlines()
    assert lines and all(re.match(r"<[2-7]>attestables\.", line) for line in lines), lines[:5]
    text = "\n".join(lines)
    assert "<6>attestables.daemon: configuration reloaded: max_runs, run_wall_s" in text
    # event_loop = auto: uvloop, which the project installs on Linux.
    assert re.search(r"^<6>attestables\.daemon: event loop: uvloop [\d.]+$", text, flags=re.MULTILINE)
    assert "<4>attestables.daemon: changed settings that need a restart to take effect: event_ring_size" in text
    assert re.search(r"<3>attestables\.daemon: reload refused, the running configuration stays: run_wall_s", text)
    assert token not in text and passphrase not in text


# -- socket activation -------------------------------------------------------------------------

SHIM = """
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)  # systemd passes the first socket as fd 3
os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="api")
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def _fd_facts(pid: int) -> dict[int, tuple[str, int]]:
    """fd -> (link target, open flags) for every descriptor of ``pid``."""
    facts = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            flags = int(re.search(r"flags:\s+(\d+)", Path(f"/proc/{pid}/fdinfo/{name}").read_text())[1], 8)
        except (OSError, TypeError):
            continue
        facts[int(name)] = (target, flags)
    return facts


async def test_socket_activation_serves_the_inherited_socket_and_keeps_it_from_children(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    inode = os.fstat(listener.fileno()).st_ino
    notify = NotifySocket(tmp_path / "notify")
    config = tmp_path / "daemon.toml"
    config.write_text("stop_grace_s = 1.0\n")
    unused = free_port()  # the `listen` setting: never bound when activated
    argv = [sys.executable, "-c", SHIM, str(listener.fileno()), "-m", "attestables.cli.main", "daemon",
            "--listen", f"127.0.0.1:{unused}", "--state-dir", str(tmp_path / "state"), "--config", str(config)]
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, env=daemon_env(NOTIFY_SOCKET=str(notify.path)), pass_fds=(listener.fileno(),),
                            stdout=log, stderr=log, start_new_session=True)
    listener.close()  # the daemon holds it now, as it would hold systemd's
    try:
        ready = await notify.expect("READY")
        assert ready["STATUS"] == f"listening on 127.0.0.1:{port} (api) (socket activation)"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", unused)) != 0  # `listen` was not bound
        # The socket left fd 3 for a close-on-exec descriptor above 9.
        facts = _fd_facts(proc.pid)
        moved = [fd for fd, (target, _) in facts.items() if target == f"socket:[{inode}]"]
        assert len(moved) == 1 and moved[0] >= 10, facts
        assert facts[moved[0]][1] & os.O_CLOEXEC
        assert facts.get(3, ("", 0))[0] != f"socket:[{inode}]"

        token = (tmp_path / "state" / "api-token").read_text().strip()
        async with Client.connect(f"ws://127.0.0.1:{port}/api/v1/ws", token) as client:
            # A compartment's fd 3 is its channel (the handshake needs it), and nothing of the
            # API's socket reaches it: it cannot accept() on fd 3 or on any other descriptor.
            program = c_source("""
#include <sys/socket.h>
int main(void) {
    int leaked = 0;
    for (int fd = 3; fd < 64; fd++) {
        int listening = 0; socklen_t len = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) leaked++;
    }
    printf("listening sockets: %d\\n", leaked);
    return 0;
}
""")
            build = await build_source(client, "fds.c", program)
            assert build["state"] == "succeeded", build
            record, output = await run_build(client, build["build_id"])
            assert record["state"] == "exited" and output == "listening sockets: 0\n", (record, output)
        proc.send_signal(signal.SIGTERM)
        assert await wait_exit(proc, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        log.close()


# -- the unit files ----------------------------------------------------------------------------


@functools.cache
def _print_unit(which: str | None = None) -> str:
    argv = [str(REPO / ".venv" / "bin" / "attestables")] if (REPO / ".venv" / "bin" / "attestables").exists() \
        else [sys.executable, "-m", "attestables.cli.main"]
    argv += ["daemon", "--print-unit"] + ([which] if which else [])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=daemon_env())
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_print_unit_prints_the_shipped_units_with_this_installation_in_them() -> None:
    service = _print_unit()
    executable = re.search(r"^ExecStart=(\S+) daemon ", service, flags=re.MULTILINE)[1]
    assert os.access(executable, os.X_OK) and executable != systemd.DEFAULT_EXECUTABLE
    assert service == SERVICE.read_text().replace(systemd.DEFAULT_EXECUTABLE, executable)
    assert _print_unit("socket") == SOCKET.read_text()
    assert _print_unit("rc.d").startswith("#!/bin/sh")


def test_the_service_unit_is_hardened_as_the_issue_asks() -> None:
    directives = {}
    for line in SERVICE.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key, []).append(value)
    expected = {"Type": "notify", "DynamicUser": "yes", "StateDirectory": "attestables", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes", "UMask": "0077",
                "CapabilityBoundingSet": ""}
    assert {key: directives.get(key, [None])[0] for key in expected} == expected
    assert directives["SystemCallFilter"][0].startswith("@system-service ")
    assert "AF_UNIX" in directives["RestrictAddressFamilies"][0]
    assert "WatchdogSec" in directives and "ExecReload" in directives
    # Every hardening option set weaker than it could be is explained in a comment.
    text = SERVICE.read_text()
    for weakened in ("ProtectKernelTunables=no", "ProtectKernelLogs=no", "ProcSubset=all"):
        assert weakened in text
        before = text[: text.index(weakened)].rsplit("\n\n", 1)[-1]
        assert "bubblewrap" in before, weakened


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    (tmp_path / "attestables.service").write_text(_print_unit())
    (tmp_path / "attestables.socket").write_text(_print_unit("socket"))
    out = subprocess.run(["systemd-analyze", "verify", "attestables.socket", "attestables.service"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr.strip() == "", out.stderr


@needs_systemd_analyze
def test_exposure_score_is_within_the_goal_and_recorded_in_operations_md(tmp_path: Path) -> None:
    (tmp_path / "attestables.service").write_text(_print_unit())
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", "attestables.service"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for attestables\.service: (\d+\.\d)", out.stdout)
    assert match, out.stdout[-2000:] + out.stderr
    score = float(match[1])
    assert score <= MAX_EXPOSURE
    recorded = re.search(r"exposure level \*\*(\d+\.\d)\*\*", (DOCS / "operations.md").read_text())
    assert recorded and float(recorded[1]) == score


def test_rc_script_parses_and_follows_rc_subr_conventions() -> None:
    out = subprocess.run(["sh", "-n", str(RC_SCRIPT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = RC_SCRIPT.read_text()
    for needle in ("# PROVIDE: attestables", "# REQUIRE:", "# KEYWORD: shutdown", ". /etc/rc.subr",
                   'rcvar="attestables_enable"', "load_rc_config $name", 'run_rc_command "$1"',
                   ': ${attestables_enable:="NO"}', 'extra_commands="reload"', "NOT YET RUN ON A BOARD"):
        assert needle in text, needle
    assert os.stat(RC_SCRIPT).st_mode & 0o111
