"""``attestables services register|list|remove``: the digital services the broker talks to."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..output import table
from ..registry import Context, Subparsers, add_client_command, add_group

ORDER = 70


def register(subparsers: Subparsers) -> None:
    group = add_group(subparsers, "services", help="register, list and remove digital services")
    reg = add_client_command(group, "register", register_service,
                             help="register a service: its sealing key is fetched over the pinned TLS")
    reg.add_argument("service_id", metavar="SERVICE_ID", help="the id compartments address it by (e.g. store)")
    reg.add_argument("url", metavar="URL", help="https://HOST:PORT")
    pin = reg.add_mutually_exclusive_group(required=True)
    pin.add_argument("--tls-ca", metavar="PEM_FILE", type=Path,
                     help="the certificate (or CA) the service's TLS must chain to")
    pin.add_argument("--tls-fingerprint", metavar="SHA256", help="the SHA-256 of the service's TLS certificate")
    add_client_command(group, "list", list_services, help="list registered services")
    rm = add_client_command(group, "remove", remove_service, help="forget a service")
    rm.add_argument("service_id", metavar="SERVICE_ID")


async def register_service(args: argparse.Namespace, ctx: Context) -> int:
    params = {"service_id": args.service_id, "url": args.url}
    if args.tls_ca is not None:
        params["tls_ca_pem"] = args.tls_ca.read_text()
    else:
        params["tls_fingerprint"] = args.tls_fingerprint
    result = await ctx.client.call("services.register", params)
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.line(f"registered {result['service_id']} at {result['url']} "
                     f"(sealing key sha256 {result['public_key_sha256'][:16]}…)")
    return 0


async def list_services(args: argparse.Namespace, ctx: Context) -> int:
    result = await ctx.client.call("services.list")
    if ctx.out.json:
        ctx.out.document(result)
        return 0
    ctx.out.lines(table(("SERVICE", "URL", "TLS", "KEY SHA256", "ENDPOINTS"), (
        (s["service_id"], s["url"], s["tls"], s["public_key_sha256"][:16],
         ", ".join(f"{op} {path}" for op, path in sorted(s["endpoints"].items())))
        for s in result["services"])))
    return 0


async def remove_service(args: argparse.Namespace, ctx: Context) -> int:
    result = await ctx.client.call("services.remove", {"service_id": args.service_id})
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.line(f"removed {args.service_id}")
    return 0
