"""How a subcommand plugs into ``attestables``.

Every module in ``attestables.cli.commands`` is a command module: it defines
``register(subparsers)`` and, optionally, ``ORDER`` (its place in ``--help``, lower
first; default 100). ``main`` discovers the modules, so adding a command is adding a
file; no other module changes. Inside ``register`` a module adds its parsers with:

- :func:`add_client_command` for commands that talk to the daemon: the connection
  options (``--url``, ``--token-file``, ``--json``, and ``--ssh`` with its companions)
  are added, and the handler is awaited as ``handler(args, ctx)`` with a connected
  :class:`Context`;
- :func:`add_local_command` for commands that do not (``daemon``): the handler is
  called as ``handler(args)``;
- :func:`add_group` for a noun with verbs beneath it (``sources upload``).

A command that manages its own connection (the console) takes the same options with
``parents=[connection_options()]`` and opens it with :func:`connect`.

Handlers return the exit code and raise ``AttestablesError`` for failures; ``main``
turns those into ``error: <message> (<code>)`` and the documented exit codes.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from .output import Output

if TYPE_CHECKING:
    from attestables.shared.client import Client, _Connecting
    from attestables.shared.ssh import SshOptions

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass(frozen=True)
class Context:
    """What a client command works with: a connected client and the chosen output."""

    client: Client
    out: Output


ClientHandler = Callable[[argparse.Namespace, Context], Awaitable[int]]
LocalHandler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class ClientCommand:
    handler: ClientHandler
    # Name of the attribute that receives everything after the first ``--``, if any.
    passthrough: str | None = None


@dataclass(frozen=True)
class LocalCommand:
    handler: LocalHandler


Command: TypeAlias = ClientCommand | LocalCommand

# The attribute of the parsed namespace that carries the chosen command.
COMMAND_ATTR = "_command"

# Options whose value may begin with "-" (compiler flags such as ``--flag -O2``);
# main joins them with their value before argparse sees them.
DASH_VALUE_OPTIONS: set[str] = set()


def connection_options() -> argparse.ArgumentParser:
    """The options shared by every command that talks to the daemon."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--url", metavar="URL", help="the daemon's websocket URL (default: $ATTESTABLES_URL, else the local daemon)"
    )
    group.add_argument(
        "--token-file",
        metavar="FILE",
        help="read the API token from FILE (default: $ATTESTABLES_TOKEN, else the state directory's api-token)",
    )
    group.add_argument("--json", action="store_true", help="print machine-readable JSON instead of text")
    ssh = parent.add_argument_group("remote daemon over SSH")
    ssh.add_argument(
        "--ssh", metavar="USER@HOST[:PORT]",
        help="reach the daemon on HOST through an SSH tunnel to its loopback port (--url then names the "
        "daemon's address on HOST; without --token-file or $ATTESTABLES_TOKEN the token is read on HOST)",
    )
    ssh.add_argument("--ssh-key", metavar="FILE", help="log in with this private key (default: the agent, ~/.ssh/id_*)")
    ssh.add_argument("--ssh-known-hosts", metavar="FILE", help="check the host key against FILE "
                     "(default ~/.ssh/known_hosts)")
    ssh.add_argument("--ssh-accept-new", action="store_true",
                     help="accept and record the key of a host not yet in known_hosts (a changed key is still refused)")
    ssh.add_argument("--ssh-state-dir", metavar="DIR",
                     help="the daemon's state directory on HOST, where its api-token is read")
    return parent


def ssh_options(args: argparse.Namespace) -> SshOptions | None:
    """The ``--ssh*`` options as :class:`SshOptions`, or ``None`` without ``--ssh``."""
    spec = getattr(args, "ssh", None)
    if not spec:
        return None
    from attestables.shared.ssh import SshOptions

    return SshOptions.from_spec(
        spec,
        key_file=Path(args.ssh_key).expanduser() if args.ssh_key else None,
        known_hosts=Path(args.ssh_known_hosts).expanduser() if args.ssh_known_hosts else None,
        accept_new=bool(args.ssh_accept_new),
        state_dir=args.ssh_state_dir,
    )


def connect(args: argparse.Namespace) -> _Connecting:
    """Open the connection the connection options describe (``async with connect(args) as client``)."""
    from attestables.shared.client import TOKEN_ENV, URL_ENV, Client, find_token
    from attestables.shared.paths import default_url

    ssh = ssh_options(args)
    if ssh is not None:
        # The local state dir's token belongs to a local daemon, never to the remote one.
        token = find_token(args.token_file) if args.token_file or os.environ.get(TOKEN_ENV) else None
        return Client.connect(args.url, token, ssh=ssh)
    url = args.url or os.environ.get(URL_ENV) or default_url()
    return Client.connect(url, find_token(args.token_file))


_CONNECTION = connection_options()


def add_client_command(
    subparsers: Subparsers,
    name: str,
    handler: ClientHandler,
    *,
    help: str,
    description: str | None = None,
    passthrough: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A subcommand that talks to the daemon; ``passthrough`` names where ``-- ARGS`` go."""
    parser = subparsers.add_parser(
        name, help=help, description=description or _sentence(help), parents=[_CONNECTION], **kwargs
    )
    parser.set_defaults(**{COMMAND_ATTR: ClientCommand(handler, passthrough)})
    if passthrough is not None:
        parser.set_defaults(**{passthrough: []})
    return parser


def add_local_command(
    subparsers: Subparsers,
    name: str,
    handler: LocalHandler,
    *,
    help: str,
    description: str | None = None,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """A subcommand that runs here without a connection to the daemon."""
    parser = subparsers.add_parser(name, help=help, description=description or _sentence(help), **kwargs)
    parser.set_defaults(**{COMMAND_ATTR: LocalCommand(handler)})
    return parser


def add_group(subparsers: Subparsers, name: str, *, help: str, description: str | None = None) -> Subparsers:
    """A noun whose verbs are subcommands of their own (``attestables sources list``)."""
    parser = subparsers.add_parser(name, help=help, description=description or _sentence(help))
    return parser.add_subparsers(title="commands", metavar="COMMAND", dest=f"{name}_command", required=True)


def value_may_start_with_dash(*options: str) -> None:
    """Let ``OPTION -VALUE`` mean ``OPTION=-VALUE`` for these options."""
    DASH_VALUE_OPTIONS.update(options)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
