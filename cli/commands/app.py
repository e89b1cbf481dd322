"""``attestables app store|transport|messaging``: run one of the digital services.

A service is a separate party from the launcher: it serves HTTPS with its own TLS
certificate, keeps its own database and keys under ``--state-dir``, and releases data
only to run certificates whose attestation document satisfies its ``--policy``.
docs/services.md describes the API, the options and the state directory.
"""

from __future__ import annotations

import argparse
import sys

from ..registry import Subparsers, add_local_command

ORDER = 15

KINDS = ("store", "transport", "messaging")


def register(subparsers: Subparsers) -> None:
    parser = add_local_command(
        subparsers,
        "app",
        run,
        help="run a digital service (store, transport, messaging) in the foreground",
        description="Run one of the case study's digital services in the foreground until SIGTERM or Ctrl-C. "
        "It serves HTTPS with a self-signed certificate (tls.pem in the state directory, for the launcher to "
        "pin) and answers attested requests only for certificates that satisfy its policy. SIGHUP re-reads "
        "the policy file.",
    )
    parser.add_argument("kind", choices=KINDS, metavar="KIND", help="store, transport or messaging")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="address to serve HTTPS on (default 127.0.0.1:7481 store, :7482 transport, "
                        ":7483 messaging)")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="database, keys, TLS certificate, admin token (default: the launcher's state "
                        "directory's apps/SERVICE_ID)")
    parser.add_argument("--policy", metavar="FILE",
                        help="appraisal policy (TOML, docs/attestation.md); without it, STATE_DIR/policy.toml "
                        "if one was pushed, else every attested request is refused (no_policy)")
    parser.add_argument("--service-id", metavar="ID",
                        help="the id bound into every sealed message's HPKE info (default: KIND)")
    parser.add_argument("--crl-url", metavar="URL",
                        help="the launcher's CRL, e.g. http://127.0.0.1:7480/api/v1/crl (fetched at start, then "
                        "refreshed)")
    parser.add_argument("--crl-refresh", metavar="SECONDS", type=float, help="CRL refresh period (default 2)")
    parser.add_argument("--reply-delay", metavar="SECONDS", type=float,
                        help="messaging: seconds until the simulated customer accepts (default 2)")
    parser.add_argument("--log-level", metavar="LEVEL", choices=("debug", "info", "warning", "error"),
                        help="debug, info (default), warning or error")


def run(args: argparse.Namespace) -> int:
    # Imported here: the server side is needed by no other command.
    from attestables.apps import definition
    from attestables.apps.base import ConfigError, ServiceConfig, run_service

    try:
        config = ServiceConfig.build(
            args.kind,
            listen=args.listen,
            state_dir=args.state_dir,
            service_id=args.service_id,
            policy=args.policy,
            crl_url=args.crl_url,
            crl_refresh=args.crl_refresh,
            reply_delay=args.reply_delay,
            log_level=args.log_level,
        )
    except ConfigError as exc:
        print(f"attestables app: {exc}", file=sys.stderr)
        return 2
    return run_service(config, definition(args.kind))
