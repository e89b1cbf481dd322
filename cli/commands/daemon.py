"""``attestables daemon``: run the launcher daemon in the foreground, or print its service files."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from ..registry import Subparsers, add_local_command

ORDER = 10

PRINTABLE = {"service": "attestables.service", "socket": "attestables.socket", "rc.d": "rc.d"}


def register(subparsers: Subparsers) -> None:
    parser = add_local_command(
        subparsers,
        "daemon",
        run,
        help="run the daemon in the foreground",
        description="Run the attestables daemon in the foreground until it is stopped (SIGTERM or Ctrl-C). "
        "SIGHUP reloads the configuration. Under systemd it reports readiness, pings the watchdog "
        "and accepts socket activation (see docs/operations.md).",
    )
    parser.add_argument("--listen", metavar="HOST:PORT", help="address of the API (default 127.0.0.1:7480)")
    parser.add_argument("--state-dir", metavar="DIR", help="where the daemon keeps its state")
    parser.add_argument("--config", metavar="FILE", help="configuration file")
    parser.add_argument("--log-format", choices=("auto", "text", "journal", "json"),
                        help="log line format (default auto: journal under journald, else text)")
    parser.add_argument(
        "--print-unit", nargs="?", const="service", choices=tuple(PRINTABLE), metavar="service|socket|rc.d",
        help="print the systemd service unit (or the socket unit, or the CheriBSD rc.d script), with this "
        "installation's path in it, and exit",
    )


def run(args: argparse.Namespace) -> int:
    if args.print_unit:
        return print_unit(args.print_unit)
    # Imported here: the daemon pulls in the server side, which no client command needs.
    from attestables.daemon.main import run_daemon

    flags = {"listen": args.listen, "state_dir": args.state_dir, "config": args.config,
             "log_format": args.log_format}
    return run_daemon({key: value for key, value in flags.items() if value is not None})


def print_unit(which: str) -> int:
    from attestables.daemon import systemd

    executable = _executable()
    if which == "rc.d":
        text = systemd.RC_SCRIPT.read_text(encoding="utf-8")
        if executable:
            text = text.replace(systemd.DEFAULT_EXECUTABLE, executable)
    else:
        text = systemd.unit_text(PRINTABLE[which], executable)
    sys.stdout.write(text)
    return 0


def _executable() -> str | None:
    """The absolute path of the ``attestables`` entry point this process was started from."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "attestables" and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    found = shutil.which("attestables", path=os.path.dirname(sys.executable))
    return os.path.abspath(found) if found else None
