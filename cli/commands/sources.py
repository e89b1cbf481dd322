"""``attestables sources``: upload, list, show and delete C sources."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from attestables.shared.errors import InvalidParams

from ..ids import with_id
from ..output import format_size, format_time, short_digest, short_id, table
from ..registry import Context, Subparsers, add_client_command, add_group

ORDER = 30


def register(subparsers: Subparsers) -> None:
    group = add_group(subparsers, "sources", help="upload, list, show and delete C sources")

    upload = add_client_command(
        group, "upload", upload_source, help="upload a C source (a new version if the name exists)"
    )
    upload.add_argument("file", metavar="FILE", help="the source file ('-' reads standard input)")
    upload.add_argument("--name", help="name to store it under (default: the file's name)")

    add_client_command(group, "list", list_sources, help="list sources and their latest versions")

    show = add_client_command(group, "show", show_source, help="print a source's content")
    show.add_argument("source_id", metavar="ID", help="source id (or a unique prefix)")
    show.add_argument("--version", type=int, metavar="V", help="which version (default: the latest)")

    delete = add_client_command(group, "delete", delete_source, help="delete a source and all its versions")
    delete.add_argument("source_id", metavar="ID", help="source id (or a unique prefix)")


async def upload_source(args: argparse.Namespace, ctx: Context) -> int:
    name, content = read_source(args.file, args.name)
    result = await ctx.client.call("sources.upload", {"name": name, "content": content})
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.line(
            f"source {result['source_id']} version {result['version']}: {name}, "
            f"{format_size(result.get('size'))}, sha256 {short_digest(result.get('sha256'))}"
        )
    return 0


def read_source(file: str, name: str | None) -> tuple[str, str]:
    """The name to upload under and the text of FILE (``-``: standard input)."""
    if file == "-":
        if not name:
            raise InvalidParams("--name is required when the source comes from standard input")
        data = sys.stdin.buffer.read()
    else:
        path = Path(file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidParams(f"cannot read {file}: {exc.strerror or exc}") from None
        name = name or path.name
    try:
        return name, data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidParams(f"{file} is not UTF-8 text") from None


async def list_sources(args: argparse.Namespace, ctx: Context) -> int:
    result = await ctx.client.call("sources.list")
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.lines(sources_table(result.get("sources", ())))
    return 0


def sources_table(sources: Iterable[Mapping[str, Any]]) -> list[str]:
    return table(
        ("ID", "NAME", "VERSION", "SIZE", "SHA256", "UPDATED"),
        (
            (
                short_id(s.get("source_id")),
                s.get("name"),
                s.get("latest_version"),
                format_size(s.get("size")),
                short_digest(s.get("sha256")),
                format_time(s.get("updated_at") or s.get("created_at")),
            )
            for s in sources
        ),
    )


async def show_source(args: argparse.Namespace, ctx: Context) -> int:
    params: dict[str, Any] = {}
    if args.version is not None:
        params["version"] = args.version
    result = await with_id(
        ctx.client, "source", args.source_id, lambda id_: ctx.client.call("sources.get", {"source_id": id_, **params})
    )
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.text(result.get("content", ""))
    return 0


async def delete_source(args: argparse.Namespace, ctx: Context) -> int:
    async def delete(id_: str) -> tuple[str, Any]:
        return id_, await ctx.client.call("sources.delete", {"source_id": id_})

    source_id, result = await with_id(ctx.client, "source", args.source_id, delete)
    if ctx.out.json:
        ctx.out.document(result)
    else:
        ctx.out.line(f"deleted source {source_id}")
    return 0
