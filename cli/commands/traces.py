"""``attestables traces [--run ID] [--service S] [--follow]``: the EAI message trace."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from attestables.shared import protocol

from ..output import format_size, table
from ..registry import Context, Subparsers, add_client_command

ORDER = 75
PAGE = 500


def register(subparsers: Subparsers) -> None:
    parser = add_client_command(subparsers, "traces", show_traces,
                                help="show the messages carried between compartments and services")
    parser.add_argument("--run", metavar="RUN_ID", help="only this run's messages")
    parser.add_argument("--service", metavar="SERVICE_ID", help="only this service's messages")
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new messages as they cross")


HEADERS = ("ID", "TIME", "RUN", "SERVICE", "OP", "IN", "OUT", "MS", "HTTP", "OUTCOME", "VERIFICATION")


def row(t: Mapping[str, Any]) -> tuple[Any, ...]:
    verification = t.get("verification") or {}
    status = verification.get("status") or "-"
    reasons = ",".join(r.get("code", "?") for r in verification.get("reasons") or [])
    return (t["id"], str(t["ts"])[11:23], str(t["run_id"])[:12], t["service_id"], t["op"],
            format_size(t["bytes_in"]), format_size(t["bytes_out"]), f"{t['latency_ms']:.1f}",
            t["http_status"] if t["http_status"] is not None else "-", t["outcome"],
            status + (f" ({reasons})" if reasons else ""))


async def show_traces(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client
    filt: dict[str, Any] = {}
    if args.run:
        filt["run_id"] = args.run
    if args.service:
        filt["service_id"] = args.service
    # Subscribe before paging, so nothing that crosses in between is missed; rows already
    # printed (by id) are skipped when they also arrive live.
    sub = await client.subscribe([protocol.TRACES_MESSAGE], filter=filt or None) if args.follow else None
    rows: list[Mapping[str, Any]] = []
    since = None
    while True:
        params: dict[str, Any] = {"limit": PAGE, **filt}
        if since is not None:
            params["since"] = since
        page = (await client.call("traces.list", params))["traces"]
        rows += page
        if len(page) < PAGE:
            break
        since = page[-1]["id"]
    if ctx.out.json:
        for t in rows:
            ctx.out.document(t)
    else:
        ctx.out.lines(table(HEADERS, (row(t) for t in rows)))
        ctx.out.stdout.flush()
    if sub is None:
        return 0
    last = rows[-1]["id"] if rows else 0
    async with sub:
        async for event in sub:
            if event.topic != protocol.TRACES_MESSAGE or event.data["id"] <= last:
                continue
            last = event.data["id"]
            if ctx.out.json:
                ctx.out.document(event.data)
            else:
                ctx.out.line("  ".join(str(c) for c in row(event.data)))
                ctx.out.stdout.flush()
    return 0
