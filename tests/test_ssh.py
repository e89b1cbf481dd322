"""Remote access over SSH: ``--ssh USER@HOST[:PORT]`` against a real OpenSSH server and an asyncssh one.

The OpenSSH server is Debian's ``/usr/sbin/sshd`` started by the test in the foreground on a
loopback port, with its own config, host key and authorized key in a temp dir; it logs in the
user running the tests. The daemon is the session's real daemon on loopback. What is checked is
what an operator relies on: the tunnel reaches the daemon's loopback port, the token is read on
the remote side, an unknown host is refused unless ``--ssh-accept-new`` (which records it), a
changed host key is always refused, and agent and key-file logins both work.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import asyncssh
import pytest

from attestables.shared.client import CannotConnect, Client
from attestables.shared.errors import Unauthorized
from attestables.shared.local_daemon import free_port
from attestables.shared.ssh import SshError, SshOptions, SshTarget

SSHD = "/usr/sbin/sshd"
USER = getpass.getuser()


# -- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, expected", [
    ("root@board", SshTarget("board", 22, "root")),
    ("op@10.0.0.5:2222", SshTarget("10.0.0.5", 2222, "op")),
    ("board.example:22", SshTarget("board.example", 22, None)),
    ("op@[2001:db8::1]:2200", SshTarget("2001:db8::1", 2200, "op")),
])
def test_targets_parse(spec: str, expected: SshTarget) -> None:
    assert SshTarget.parse(spec) == expected


@pytest.mark.parametrize("spec", ["", "root@", "a@b@c", "host:port", "host:70000", "op@2001:db8::1"])
def test_bad_targets_are_refused(spec: str) -> None:
    with pytest.raises(SshError):
        SshTarget.parse(spec)


# -- keys ----------------------------------------------------------------------------------------


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(path)], check=True)
    return path


def known_hosts_line(port: int, host_key: Path) -> str:
    algorithm, blob = Path(f"{host_key}.pub").read_text().split()[:2]
    return f"[127.0.0.1]:{port} {algorithm} {blob}\n"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen not installed (scripts/bootstrap.sh installs openssh-client)")
    d = tmp_path_factory.mktemp("keys")
    return {name: keygen(d / name) for name in ("host", "other_host", "client", "stranger")}


# -- a real OpenSSH server -----------------------------------------------------------------------


class Sshd:
    def __init__(self, base: Path, keys: dict[str, Path]) -> None:
        self.port = free_port()
        self.host_key = keys["host"]
        authorized = base / "authorized_keys"
        authorized.write_text(Path(f"{keys['client']}.pub").read_text())
        authorized.chmod(0o600)
        self.config = base / "sshd_config"
        self.config.write_text(f"""
ListenAddress 127.0.0.1
Port {self.port}
HostKey {self.host_key}
PidFile {base / 'sshd.pid'}
AuthorizedKeysFile {authorized}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AllowUsers {USER}
AllowTcpForwarding local
PermitOpen 127.0.0.1:*
X11Forwarding no
AllowAgentForwarding no
# The temp dir's parents (/tmp) are world-writable, which StrictModes refuses.
StrictModes no
LogLevel VERBOSE
""")
        self.log = base / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        check = subprocess.run([SSHD, "-t", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            pytest.fail(f"sshd rejects its test config: {check.stderr}")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "wb"), start_new_session=True)  # noqa: SIM115
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"sshd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"sshd did not listen within 10 s: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, Path]) -> Iterator[Sshd]:
    if not os.access(SSHD, os.X_OK):
        pytest.skip(f"{SSHD} not installed (scripts/bootstrap.sh installs openssh-server)")
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        # sshd's privilege-separation directory, which the Debian service unit normally creates.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    server = Sshd(tmp_path_factory.mktemp("sshd"), keys)
    server.start()
    yield server
    server.stop()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ATTESTABLES_", "SSH_AUTH_SOCK"))}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "attestables.cli.main", *args], capture_output=True, text=True,
                          env=base, timeout=60, stdin=subprocess.DEVNULL)


def ssh_args(daemon: Any, sshd: Sshd, known_hosts: Path, *extra: str, key: Path | None = None) -> list[str]:
    args = ["--ssh", f"{USER}@127.0.0.1:{sshd.port}", "--ssh-known-hosts", str(known_hosts),
            "--ssh-state-dir", str(daemon.state_dir), "--url", daemon.url, *extra]
    if key is not None:
        args += ["--ssh-key", str(key)]
    return args


def test_openssh_unknown_host_refused_then_accepted_new_then_known(daemon: Any, sshd: Sshd, keys: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    refused = cli("info", "--json", *ssh_args(daemon, sshd, known, key=keys["client"]))
    assert refused.returncode == 3, refused.stderr
    assert "is not known" in refused.stderr and "--ssh-accept-new" in refused.stderr
    assert not known.exists()

    accepted = cli("info", "--json", *ssh_args(daemon, sshd, known, "--ssh-accept-new", key=keys["client"]))
    assert accepted.returncode == 0, accepted.stderr + sshd.log.read_text()[-1500:]
    info = json.loads(accepted.stdout)
    assert info["state_dir"] == str(daemon.state_dir)  # the token was read on the "remote" side
    assert known.read_text() == known_hosts_line(sshd.port, sshd.host_key)
    assert known.stat().st_mode & 0o077 == 0
    log = sshd.log.read_text()
    assert f"Accepted publickey for {USER} from 127.0.0.1" in log  # the real sshd did the login

    # Known now: no --ssh-accept-new needed; the token given locally is used as is.
    again = cli("sources", "list", *ssh_args(daemon, sshd, known, key=keys["client"]),
                env={"ATTESTABLES_TOKEN": daemon.token})
    assert again.returncode == 0, again.stderr
    wrong = cli("sources", "list", *ssh_args(daemon, sshd, known, key=keys["client"]),
                env={"ATTESTABLES_TOKEN": "not-the-token-" + "0" * 30})
    assert wrong.returncode == 3 and "unauthorized" in wrong.stderr


def test_openssh_changed_host_key_is_refused_even_with_accept_new(daemon: Any, sshd: Sshd, keys: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    recorded = known_hosts_line(sshd.port, keys["other_host"])
    known.write_text(recorded)
    out = cli("info", *ssh_args(daemon, sshd, known, "--ssh-accept-new", key=keys["client"]))
    assert out.returncode == 3
    assert "has CHANGED" in out.stderr and "ssh-keygen -R" in out.stderr
    assert known.read_text() == recorded  # nothing was added


def test_openssh_login_with_an_unauthorized_key_is_refused(daemon: Any, sshd: Sshd, keys: dict[str, Path],
                                                           tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_line(sshd.port, sshd.host_key))
    out = cli("info", *ssh_args(daemon, sshd, known, key=keys["stranger"]))
    assert out.returncode == 3 and "login refused" in out.stderr, out.stderr


def test_openssh_login_through_the_agent(daemon: Any, sshd: Sshd, keys: dict[str, Path], tmp_path: Path) -> None:
    if shutil.which("ssh-agent") is None:
        pytest.skip("ssh-agent not installed")
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_line(sshd.port, sshd.host_key))
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        env = {"SSH_AUTH_SOCK": str(sock), "HOME": str(tmp_path)}  # no ~/.ssh/id_* to fall back on
        subprocess.run(["ssh-add", "-q", str(keys["client"])], check=True, env={**os.environ, **env},
                       capture_output=True)
        out = cli("ps", "--json", *ssh_args(daemon, sshd, known), env=env)
        assert out.returncode == 0, out.stderr
        assert "runs" in json.loads(out.stdout)
    finally:
        agent.terminate()
        agent.wait(5)


# -- an asyncssh server (in the test's event loop) ---------------------------------------------------


class _Server(asyncssh.SSHServer):
    """Allows forwarding to one loopback port only, as a PermitOpen rule would."""

    def __init__(self, allowed_port: int, seen: list[tuple[str, int]]) -> None:
        self.allowed_port = allowed_port
        self.seen = seen

    def begin_auth(self, username: str) -> bool:
        return True

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        self.seen.append((dest_host, dest_port))
        return dest_host == "127.0.0.1" and dest_port == self.allowed_port


async def _run_command(process: asyncssh.SSHServerProcess) -> None:
    """Runs the requested command with the local shell (the token lookup is a sh command)."""
    proc = await asyncio.create_subprocess_shell(process.command or "true", stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    stdout, stderr = await proc.communicate()
    process.stdout.write(stdout.decode())
    process.stderr.write(stderr.decode())
    process.exit(proc.returncode or 0)


@pytest.fixture
async def asyncssh_server(daemon: Any, keys: dict[str, Path]) -> AsyncIterator[dict[str, Any]]:
    seen: list[tuple[str, int]] = []
    server = await asyncssh.create_server(
        lambda: _Server(daemon.port, seen), "127.0.0.1", 0,
        server_host_keys=[str(keys["host"])],
        authorized_client_keys=f"{keys['client']}.pub",
        process_factory=_run_command,
    )
    port = server.sockets[0].getsockname()[1]
    yield {"port": port, "seen": seen}
    server.close()
    await server.wait_closed()


async def test_asyncssh_server_tunnel_token_and_host_key_policy(daemon: Any, asyncssh_server: dict[str, Any],
                                                                keys: dict[str, Path], tmp_path: Path) -> None:
    port = asyncssh_server["port"]
    known = tmp_path / "known_hosts"
    options = SshOptions.from_spec(f"{USER}@127.0.0.1:{port}", key_file=keys["client"], known_hosts=known,
                                   state_dir=str(daemon.state_dir))
    with pytest.raises(CannotConnect, match="is not known"):
        await Client.connect(None, None, ssh=options)

    accept = SshOptions(options.target, key_file=keys["client"], known_hosts=known, accept_new=True,
                        state_dir=str(daemon.state_dir))
    async with Client.connect(daemon.url, None, ssh=accept) as client:
        assert (await client.call("system.info"))["state_dir"] == str(daemon.state_dir)
        async with await client.subscribe(["runs.state"]) as sub:  # events flow through the tunnel too
            assert sub.id
    assert asyncssh_server["seen"][-1] == ("127.0.0.1", daemon.port)
    assert known.read_text() == known_hosts_line(port, keys["host"])

    # The default address (127.0.0.1:7480 on the remote side) is refused by this server: a clear error.
    with pytest.raises(CannotConnect, match="through ssh"):
        await Client.connect(None, daemon.token, ssh=options)

    # A remote state dir without a token: the client says where to get one.
    empty = SshOptions(options.target, key_file=keys["client"], known_hosts=known, state_dir=str(tmp_path))
    with pytest.raises(Unauthorized, match="could not read the API token"):
        await Client.connect(daemon.url, None, ssh=empty)

    known.write_text(known_hosts_line(port, keys["other_host"]))
    with pytest.raises(CannotConnect, match="has CHANGED"):
        await Client.connect(daemon.url, daemon.token, ssh=accept)


async def test_the_console_connects_through_openssh(daemon: Any, sshd: Sshd, keys: dict[str, Path],
                                                    tmp_path: Path) -> None:
    import functools

    from attestables.shared.client import Client
    from attestables.shared.ssh import SshOptions
    from attestables.tui.app import create_app
    from attestables.tui.connection import LiveSource

    from .console.conftest import text_of, until

    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_line(sshd.port, sshd.host_key))
    options = SshOptions.from_spec(f"{USER}@127.0.0.1:{sshd.port}", key_file=keys["client"], known_hosts=known,
                                   accept_new=False, state_dir=str(daemon.state_dir))
    # No token given: the console's connection reads it on the far side, like the CLI's.
    source = LiveSource(daemon.url, None, connect=functools.partial(Client.connect, ssh=options))  # type: ignore[arg-type]
    app = create_app(source)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: "connected to the daemon" in text_of(app.query_one("#overview-health")),
                    "the console to connect through the SSH tunnel", timeout=60)
    assert "Accepted publickey" in sshd.log.read_text()
