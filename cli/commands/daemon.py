"""``attestables daemon``: run the launcher daemon in the foreground."""

from __future__ import annotations

import argparse

from ..registry import Subparsers, add_local_command

ORDER = 10


def register(subparsers: Subparsers) -> None:
    parser = add_local_command(
        subparsers,
        "daemon",
        run,
        help="run the daemon in the foreground",
        description="Run the attestables daemon in the foreground until it is stopped (SIGTERM or Ctrl-C).",
    )
    parser.add_argument("--listen", metavar="HOST:PORT", help="address of the API (default 127.0.0.1:7480)")
    parser.add_argument("--state-dir", metavar="DIR", help="where the daemon keeps its state")
    parser.add_argument("--config", metavar="FILE", help="configuration file")


def run(args: argparse.Namespace) -> int:
    # Imported here: the daemon pulls in the server side, which no client command needs.
    from attestables.daemon.main import run_daemon

    flags = {"listen": args.listen, "state_dir": args.state_dir, "config": args.config}
    return run_daemon({key: value for key, value in flags.items() if value is not None})
