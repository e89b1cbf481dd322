"""Reaching a daemon on another machine through SSH (``--ssh USER@HOST[:PORT]``).

The daemon listens on the remote host's loopback only. :func:`open_tunnel` logs in with
asyncssh and forwards a private Unix socket (in a fresh 0700 directory) over
``direct-tcpip`` channels to the daemon's address as seen from the remote host; the
websocket client then connects to that socket. Nothing listens on a local TCP port.

Host keys are checked against a known_hosts file (default ``~/.ssh/known_hosts``): an
unknown host is refused unless ``accept_new`` is set, in which case its key is added to
the file (OpenSSH's ``StrictHostKeyChecking=accept-new``); a host whose key differs from
the recorded one is always refused. Authentication is by a key file given explicitly, or
else by asyncssh's defaults (the agent at ``$SSH_AUTH_SOCK``, then ``~/.ssh/id_*``).
``~/.ssh/config`` is not read: what is used is what the command line says.

When no API token is given, :meth:`SshTunnel.read_token` reads it from the remote state
directory over the same SSH connection (``cat`` of ``api-token``).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
from yarl import URL

from .client import CannotConnect
from .errors import Unauthorized
from .paths import TOKEN_FILE

DEFAULT_SSH_PORT = 22
CONNECT_TIMEOUT_S = 15.0
TOKEN_TIMEOUT_S = 15.0

_TARGET = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:@\s\[\]]+))(?::(?P<port>\d+))?$")

# Where the token is on the remote host: the state dir given, else the first of the places
# a daemon's state dir is by default (systemd's StateDirectory=, the rc.d script's, a
# user's). One POSIX sh command; "$1" is the directory given (or empty).
_TOKEN_SCRIPT = (
    'if [ -n "$1" ]; then set -- "$1"; else set -- "${ATTESTABLES_STATE_DIR:-}" /var/lib/attestables '
    '/var/db/attestables "${XDG_STATE_HOME:-$HOME/.local/state}/attestables"; fi; '
    'for d in "$@"; do '
    'if [ -n "$d" ] && [ -e "$d/' + TOKEN_FILE + '" ]; then exec cat -- "$d/' + TOKEN_FILE + '"; fi; done; '
    'echo "no ' + TOKEN_FILE + ' in $*" >&2; exit 3'
)


class SshError(CannotConnect):
    """The SSH leg failed: bad target, refused host key, failed login, no forwarding."""


@dataclass(frozen=True)
class SshTarget:
    """``USER@HOST[:PORT]``; an IPv6 address goes in brackets: ``root@[2001:db8::1]:2222``."""

    host: str
    port: int = DEFAULT_SSH_PORT
    user: str | None = None

    @classmethod
    def parse(cls, spec: str) -> "SshTarget":
        match = _TARGET.match(spec.strip())
        if not match:
            raise SshError(f"--ssh {spec!r}: expected USER@HOST[:PORT]")
        port = int(match["port"]) if match["port"] else DEFAULT_SSH_PORT
        if not 0 < port < 65536:
            raise SshError(f"--ssh {spec!r}: port {port} is out of range")
        return cls(host=match["v6"] or match["host"], port=port, user=match["user"])

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}{'' if self.port == DEFAULT_SSH_PORT else f':{self.port}'}"


@dataclass(frozen=True)
class SshOptions:
    """How to reach the daemon's host: what ``--ssh`` and its companion options say."""

    target: SshTarget
    key_file: Path | None = None
    known_hosts: Path | None = None  # default ~/.ssh/known_hosts
    accept_new: bool = False
    state_dir: str | None = None  # the remote state dir the token is read from
    connect_timeout: float = CONNECT_TIMEOUT_S

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> "SshOptions":
        return cls(SshTarget.parse(spec), **options)

    @property
    def known_hosts_path(self) -> Path:
        return self.known_hosts if self.known_hosts is not None else Path.home() / ".ssh" / "known_hosts"


class _HostKeyPolicy(asyncssh.SSHClient):
    """Called by asyncssh only for a key that known_hosts does not list for the host."""

    def __init__(self, options: SshOptions, known: asyncssh.SSHKnownHosts) -> None:
        self.options = options
        self.known = known
        self.refusal: str | None = None
        self.added = False

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        lookup_port = None if port == DEFAULT_SSH_PORT else port
        trusted, trusted_cas, *_ = self.known.match(host, addr, lookup_port)
        fingerprint = key.get_fingerprint()
        name = _known_hosts_name(host, port)
        path = self.options.known_hosts_path
        if trusted or trusted_cas:
            self.refusal = (f"the host key of {name} has CHANGED ({key.get_algorithm()} {fingerprint} is not the key "
                            f"{path} records): refusing to connect; if the change is expected, remove the old "
                            f"entry (ssh-keygen -R '{name}' -f {path})")
            return False
        if not self.options.accept_new:
            self.refusal = (f"the host key of {name} is not known ({key.get_algorithm()} {fingerprint}, not in "
                            f"{path}): refusing to connect; check the fingerprint and pass --ssh-accept-new "
                            "to record it")
            return False
        try:
            _append_known_host(path, name, key)
        except OSError as exc:
            self.refusal = f"cannot record the host key of {name} in {path}: {exc.strerror or exc}"
            return False
        self.added = True
        return True


def _known_hosts_name(host: str, port: int) -> str:
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


def _append_known_host(path: Path, name: str, key: asyncssh.SSHKey) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
    line = f"{name} {algorithm} {blob}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_size:
            with open(path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    line = "\n" + line
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _load_known_hosts(path: Path) -> asyncssh.SSHKnownHosts:
    try:
        data = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        data = ""
    except OSError as exc:
        raise SshError(f"cannot read the known_hosts file {path}: {exc.strerror or exc}") from None
    try:
        # An object, never empty data: asyncssh treats empty known_hosts as "use the default file".
        return asyncssh.import_known_hosts(data)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise SshError(f"cannot parse the known_hosts file {path}: {exc}") from None


class SshTunnel:
    """An SSH connection forwarding a local Unix socket to the daemon's remote address."""

    def __init__(self, options: SshOptions, connection: asyncssh.SSHClientConnection, listener: Any,
                 directory: str, remote: tuple[str, int]) -> None:
        self.options = options
        self.connection = connection
        self._listener = listener
        self._directory = directory
        self.remote = remote
        self.path = os.path.join(directory, "api.sock")

    def session(self) -> aiohttp.ClientSession:
        """An aiohttp session whose every connection goes through the tunnel."""
        return aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.path))

    async def read_token(self, state_dir: str | None = None) -> str:
        """The API token from the remote state dir, read over this SSH connection."""
        command = f"sh -c {shlex.quote(_TOKEN_SCRIPT)} sh {shlex.quote(state_dir or self.options.state_dir or '')}"
        where = str(self.options.target)
        try:
            result = await asyncio.wait_for(self.connection.run(command, check=False), TOKEN_TIMEOUT_S)
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            raise Unauthorized(f"could not read the API token on {where}: {exc or type(exc).__name__}") from None
        token = str(result.stdout or "").strip()
        if result.exit_status != 0 or not token:
            detail = str(result.stderr or "").strip().splitlines()
            raise Unauthorized(
                f"could not read the API token on {where} ({detail[-1] if detail else f'exit {result.exit_status}'}); "
                "pass --token-file or $ATTESTABLES_TOKEN, or --ssh-state-dir if the daemon keeps its state "
                "elsewhere")
        return token

    async def close(self) -> None:
        self._listener.close()
        self.connection.close()
        try:
            await asyncio.wait_for(self.connection.wait_closed(), 5.0)
        except (asyncio.TimeoutError, asyncssh.Error, OSError):
            pass
        shutil.rmtree(self._directory, ignore_errors=True)


async def open_tunnel(options: SshOptions, remote_host: str, remote_port: int) -> SshTunnel:
    """Log in to ``options.target`` and forward a private local socket to ``remote_host:remote_port``.

    Raises :class:`SshError` (a ``CannotConnect``) naming what failed.
    """
    target = options.target
    known = _load_known_hosts(options.known_hosts_path)
    policy = _HostKeyPolicy(options, known)
    kwargs: dict[str, Any] = {
        "port": target.port,
        "known_hosts": known,
        "config": None,
        "connect_timeout": options.connect_timeout,
    }
    if target.user:
        kwargs["username"] = target.user
    if options.key_file is not None:
        try:
            kwargs["client_keys"] = [asyncssh.read_private_key(str(options.key_file))]
        except (OSError, ValueError, asyncssh.KeyImportError) as exc:
            raise SshError(f"cannot use the SSH key {options.key_file}: "
                           f"{getattr(exc, 'strerror', None) or exc} (an encrypted key belongs in the agent)") \
                from None
        kwargs["agent_path"] = None
    try:
        connection = await asyncssh.connect(target.host, client_factory=lambda: policy, **kwargs)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise SshError(f"ssh {target}: {policy.refusal or exc}") from None
    except asyncssh.PermissionDenied:
        how = f"the key {options.key_file}" if options.key_file else "the agent's keys or ~/.ssh/id_*"
        raise SshError(f"ssh {target}: login refused ({how} not accepted)") from None
    except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SshError(f"ssh {target}: cannot connect: {reason}") from None
    directory = tempfile.mkdtemp(prefix="attestables-ssh-")
    try:
        listener = await connection.forward_local_path_to_port(os.path.join(directory, "api.sock"),
                                                               remote_host, remote_port)
    except BaseException as exc:
        connection.close()
        shutil.rmtree(directory, ignore_errors=True)
        if isinstance(exc, (asyncssh.Error, OSError)):
            raise SshError(f"ssh {target}: cannot forward to {remote_host}:{remote_port}: {exc}") from None
        raise
    return SshTunnel(options, connection, listener, directory, (remote_host, remote_port))


def remote_address(url: str | None, default_listen: str) -> tuple[str, int]:
    """The daemon's host and port as the remote host sees them, from ``--url`` or the default."""
    if url:
        parsed = URL(url)
        if parsed.host and parsed.port:
            return parsed.host, parsed.port
        raise SshError(f"--url {url!r}: with --ssh it must name the daemon's host and port on the remote machine")
    host, _, port = default_listen.rpartition(":")
    return host.strip("[]"), int(port)
