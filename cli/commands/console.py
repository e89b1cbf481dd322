"""``attestables console``: the operator console, a full-screen terminal app over the API.

Textual is imported only when the console starts, so the other commands stay quick.
The console connects through the client library, reconnects with backoff for as long
as it runs, and shows the state of the link at the top; ``docs/console.md`` describes
its tabs and keys.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

from attestables.shared.errors import InvalidParams

from ..registry import Subparsers, add_local_command, connection_options, ssh_options

ORDER = 8


def register(subparsers: Subparsers) -> None:
    parser = add_local_command(
        subparsers, "console", console,
        help="open the operator console (full-screen, live)",
        description="Open the operator console: a full-screen terminal app with live tabs for the daemon, "
        "sources, builds, runs, attestations, the EAI message trace and services. It reconnects by itself "
        "and always shows the state of the connection. Press F1 for the keys, Ctrl+P for every action.",
        # The same --url, --token-file and --ssh* options as every client command.
        parents=[connection_options()],
    )
    parser.add_argument("--policy", metavar="POLICY.toml",
                        help="the appraisal policy the Attestation tab verifies against (can be chosen later)")
    parser.add_argument("--bind", action="append", default=[], metavar="ID=KEY",
                        help="bind an action to another key, by its id (e.g. builds.start=ctrl+b); repeatable; "
                        "docs/console.md lists the ids")


def parse_bindings(values: list[str]) -> dict[str, str]:
    from attestables.tui.actions import BY_ID

    keymap: dict[str, str] = {}
    for value in values:
        action_id, sep, key = value.partition("=")
        if not sep or not key.strip():
            raise InvalidParams(f"--bind {value!r}: expected ID=KEY, e.g. builds.start=ctrl+b")
        if action_id not in BY_ID:
            raise InvalidParams(f"--bind {value!r}: no action has the id {action_id!r}")
        keymap[action_id] = key.strip()
    return keymap


def console(args: argparse.Namespace) -> int:
    from attestables.shared.client import TOKEN_ENV, URL_ENV, Client, find_token
    from attestables.shared.paths import default_url

    ssh = ssh_options(args)
    if ssh is not None:
        # Tunnelled: --url names the daemon's address on the remote host, and without a token
        # option the token is read there over the same SSH connection.
        url = args.url
        token = find_token(args.token_file) if args.token_file or os.environ.get(TOKEN_ENV) else None
        connect = functools.partial(Client.connect, ssh=ssh)
    else:
        url = args.url or os.environ.get(URL_ENV) or default_url()
        token = find_token(args.token_file)
        connect = Client.connect
    keymap = parse_bindings(args.bind)
    if not sys.stdout.isatty():
        raise InvalidParams("the console needs a terminal (stdout is not a tty)")

    from attestables.tui.app import create_app
    from attestables.tui.connection import LiveSource

    app = create_app(LiveSource(url or f"ssh://{args.ssh}", token, connect=connect),  # type: ignore[arg-type]
                     policy=args.policy, keymap=keymap, settle_heap=True)
    app.run()
    return 0
