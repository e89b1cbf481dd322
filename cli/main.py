"""``attestables``: the command line of the attestable launcher.

``attestables daemon`` runs the daemon; every other command talks to a running daemon
over its websocket API (``--url``, default ``$ATTESTABLES_URL`` or the local daemon;
the token from ``--token-file``, ``$ATTESTABLES_TOKEN`` or the state directory), or to
a daemon on another machine through SSH (``--ssh USER@HOST[:PORT]``).
``--json`` prints machine-readable output. Commands live one module each in
``attestables.cli.commands`` (see ``attestables.cli.registry``).

Exit codes:

- 0: success;
- 1: failure: an error from the daemon, a failed or cancelled build, a run that failed
  to start;
- 2: usage error;
- 3: connection or authentication problem (daemon unreachable, token missing or
  refused, incompatible API schema, connection lost);
- ``run --follow``: the program's own exit code, 128 + N if signal N ended it;
- 130: interrupted (Ctrl-C); 141: stdout closed early (broken pipe).

Errors are one line on stderr, ``error: <message> (<code>)``, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import io
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from attestables.shared import __version__
from attestables.shared.errors import AttestablesError, ConnectionLost, Unauthorized

from . import commands, registry
from .output import Output

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def command_modules() -> list[ModuleType]:
    """Every command module, in ``--help`` order."""
    modules = [
        importlib.import_module(f"{commands.__name__}.{info.name}")
        for info in pkgutil.iter_modules(commands.__path__)
        if not info.name.startswith("_")
    ]
    return sorted(modules, key=lambda module: (getattr(module, "ORDER", 100), module.__name__))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attestables",
        description="Build C sources into compartments, run them, and attest them, through the attestables daemon.",
        epilog="Run 'attestables COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"attestables {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command", required=True)
    for module in command_modules():
        module.register(subparsers)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv``; a command that takes ``-- ARGS`` gets them verbatim, ``--`` included."""
    argv = _join_dash_values(list(argv))
    if "--" in argv:
        split = argv.index("--")
        head, tail = argv[:split], argv[split + 1 :]
        # A quiet first try: if this command takes no passthrough arguments, the
        # full parse below reports any error once, with argparse's own handling of "--".
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                args = parser.parse_args(head)
        except SystemExit:
            args = None
        command = getattr(args, registry.COMMAND_ATTR, None)
        if args is not None and isinstance(command, registry.ClientCommand) and command.passthrough is not None:
            setattr(args, command.passthrough, tail)
            return args
    return parser.parse_args(argv)


def _join_dash_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return out + argv[index:]
        if arg in registry.DASH_VALUE_OPTIONS and index + 1 < len(argv) and argv[index + 1] != "--":
            out.append(f"{arg}={argv[index + 1]}")
            index += 2
            continue
        out.append(arg)
        index += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, sys.argv[1:] if argv is None else argv)
    command = getattr(args, registry.COMMAND_ATTR)
    out = Output(json=bool(getattr(args, "json", False)))
    try:
        if isinstance(command, registry.LocalCommand):
            return command.handler(args)
        return asyncio.run(_run_client(command, args, out))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Let the reader go (``attestables ps | head``) without a traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except AttestablesError as exc:
        _report(exc, out)
        return exit_code_for(exc)
    except TimeoutError:
        out.stderr.write("error: the daemon did not answer in time (timeout)\n")
        return EXIT_CONNECTION


def exit_code_for(exc: AttestablesError) -> int:
    from attestables.shared.client import CannotConnect, IncompatibleServer

    if isinstance(exc, (Unauthorized, ConnectionLost, CannotConnect, IncompatibleServer)):
        return EXIT_CONNECTION
    return EXIT_FAILURE


def _report(exc: AttestablesError, out: Output) -> None:
    out.stdout.flush()
    out.stderr.write(f"error: {exc.message} ({exc.code})\n")
    out.stderr.flush()


async def _run_client(command: registry.ClientCommand, args: argparse.Namespace, out: Output) -> int:
    async with registry.connect(args) as client:
        return await command.handler(args, registry.Context(client, out))


if __name__ == "__main__":
    sys.exit(main())
