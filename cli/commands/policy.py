"""``attestables policy export BUILD_ID``: a policy that accepts exactly one build.

The build's measurements (SHA-256 of its ELF and of its source) become the policy's one
``[[allow]]`` entry, its reference value; the daemon's root CA certificate becomes the
trusted root, written next to the policy (``root.pem``) or where ``--roots-out`` says.
A service loads the file with ``load_policy``; ``attestables verify`` uses it offline.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from attestables.shared.errors import Conflict, InvalidParams

from ..ids import with_id
from ..output import short_id, write_output_file
from ..registry import Context, Subparsers, add_client_command, add_group

ORDER = 78

ROOT_FILE = "root.pem"


def register(subparsers: Subparsers) -> None:
    group = add_group(subparsers, "policy", help="write appraisal policies for services")
    export = add_client_command(
        group,
        "export",
        export_policy,
        help="write a policy that accepts exactly one build (its reference value)",
        description="Write an appraisal policy (TOML) whose allow-list is exactly one build: the SHA-256 of its "
        "ELF and of its source. The daemon's root CA certificate is written next to the policy as root.pem "
        "(or to --roots-out) and named as the trusted root. Without --out the policy goes to standard output.",
    )
    export.add_argument("build_id", metavar="BUILD_ID", help="build id (or a unique prefix)")
    export.add_argument("--out", metavar="POLICY.toml", help="write the policy to this file (default: stdout)")
    export.add_argument(
        "--roots-out", metavar="FILE",
        help="write the root CA certificate here (default: root.pem beside --out; not written without either)",
    )
    export.add_argument("--name", metavar="TEXT", help="the policy's name (default: the source name and build id)")
    export.add_argument(
        "--require-backend", action="append", metavar="B",
        help="accept only this compartment backend (bwrap, c18n, none); repeatable",
    )
    export.add_argument("--require-purecap", action="store_true",
                        help="accept only a purecap ELF on CHERI hardware")
    export.add_argument("--require-debug-disabled", action="store_true",
                        help="refuse documents whose dbgstat is 'enabled'")
    export.add_argument("--max-age", metavar="DURATION",
                        help="documents older than this give the warning too_old (seconds or 90m, 24h, 7d)")
    export.add_argument("--force", action="store_true",
                        help="replace a root file that holds a different certificate")


def _max_age(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text


async def export_policy(args: argparse.Namespace, ctx: Context) -> int:
    from attestables.shared.verifier import policy_for_build

    build = await with_id(
        ctx.client, "build", args.build_id, lambda id_: ctx.client.call("builds.get", {"build_id": id_})
    )
    build_id = build.get("build_id")
    artefact = build.get("artefact") or {}
    if build.get("state") != "succeeded" or not artefact.get("sha256"):
        raise InvalidParams(f"build {build_id} is {build.get('state')}: only a succeeded build has measurements")
    info = await ctx.client.call("ca.info")
    root_pem = str(info["root_pem"]).encode()

    policy_path = Path(args.out) if args.out not in (None, "-") else None
    if args.roots_out is not None:
        roots_path: Path | None = Path(args.roots_out)
    elif policy_path is not None:
        roots_path = policy_path.parent / ROOT_FILE
    else:
        roots_path = None
    if roots_path is None:
        trusted = ROOT_FILE
    elif policy_path is not None:
        trusted = os.path.relpath(roots_path.resolve(), policy_path.resolve().parent)
    else:
        trusted = str(roots_path.resolve())

    name = args.name or f"{build.get('source_name') or 'source'} version {build.get('version')}, build {build_id}"
    policy = policy_for_build(
        elf_sha256=artefact["sha256"],
        source_sha256=build.get("source_sha256"),
        trusted_roots=[trusted],
        name=name,
        require_backend=args.require_backend,
        require_purecap=args.require_purecap,
        require_debug_disabled=args.require_debug_disabled,
        max_age=_max_age(args.max_age),
    )
    text = policy.to_toml()
    header = (
        f"# Accepts exactly build {build_id} ({build.get('source_name')} version {build.get('version')}, "
        f"toolchain {(build.get('toolchain') or {}).get('name')}).\n"
        f"# Trusted root: the launcher's CA, SHA-256 {info['fingerprints']['root']}.\n"
        "# Written by 'attestables policy export'; see docs/attestation.md, \"Policy\".\n"
    )
    text = header + text

    if roots_path is not None:
        _write_root(roots_path, root_pem, force=args.force, out=ctx.out)
    if policy_path is not None:
        write_output_file(str(policy_path), text.encode(), ctx.out)
    if args.require_purecap and not (artefact.get("elf") or {}).get("purecap"):
        ctx.out.note(f"build {short_id(build_id)} is not purecap: with --require-purecap its runs are "
                     "contraindicated (purecap_required)")
    if roots_path is None:
        ctx.out.note("the root certificate was not written: give --out or --roots-out, or save it with "
                     f"'attestables ca show --root-out {ROOT_FILE}' beside the policy")
    if ctx.out.json:
        ctx.out.document({
            "build_id": build_id,
            "elf_sha256": artefact["sha256"],
            "source_sha256": build.get("source_sha256"),
            "policy_path": str(policy_path) if policy_path is not None else None,
            "roots_path": str(roots_path) if roots_path is not None else None,
            "root_fingerprint": info["fingerprints"]["root"],
            "toml": text,
        })
    elif policy_path is None:
        ctx.out.text(text)
    return 0


def _write_root(path: Path, pem: bytes, *, force: bool, out: Any) -> None:
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise InvalidParams(f"cannot read {path}: {exc.strerror or exc}") from None
    if existing == pem:
        return
    if existing is not None and not force:
        raise Conflict(
            f"{path} holds a different certificate (another launcher's root?): give --roots-out to write the "
            "root elsewhere, or --force to replace it",
            path=str(path),
        )
    write_output_file(str(path), pem, out)
