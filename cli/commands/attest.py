"""``attestables attest RUN_ID``: a run's attestation document, for people.

The document is what the launcher certified when the program completed its handshake
(docs/attestation.md describes every claim). Shown in sections: the run, its
measurements, the toolchain, the ELF, the platform, the compartment (isolation,
limits, the compartment's own evidence), the launcher, and the validity. When the
platform is not CHERI hardware it says so plainly: no CHERI protection applied.
``--json`` prints the document itself (one line of JSON).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from typing import Any

from ..ids import with_id
from ..output import cell, format_epoch, format_size, format_time, key_values
from ..registry import Context, Subparsers, add_client_command

ORDER = 72

# The document's rlimit names, in the order they are shown, and how to show each value.
RLIMITS = (
    ("cpu_seconds", "CPU time", "s"),
    ("memory_bytes", "memory", "bytes"),
    ("open_files", "open files", ""),
    ("processes", "processes", ""),
    ("file_size_bytes", "file size", "bytes"),
    ("wall_seconds", "wall clock", "s"),
)
INDENT = "  "


def register(subparsers: Subparsers) -> None:
    attest = add_client_command(
        subparsers,
        "attest",
        show_attestation,
        help="show a run's attestation document, readably",
        description="Show the attestation document the launcher certified for a run: run, measurements, "
        "toolchain, ELF, platform, compartment isolation and limits, evidence, launcher, validity. "
        "--json prints the document as JSON.",
    )
    attest.add_argument("run_id", metavar="RUN_ID", help="run id (or a unique prefix)")


async def show_attestation(args: argparse.Namespace, ctx: Context) -> int:
    result = await with_id(
        ctx.client, "run", args.run_id, lambda id_: ctx.client.call("attestation.get", {"run_id": id_})
    )
    document = result.get("document") or {}
    if ctx.out.json:
        ctx.out.document(document)
    else:
        ctx.out.lines(render_document(document, serial=result.get("serial"), revoked=result.get("revoked")))
    return 0


def _section(title: str, pairs: list[tuple[str, Any]]) -> list[str]:
    return ["", title, *(INDENT + line for line in key_values(pairs))]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def cheri_statement(platform: Mapping[str, Any], elf: Mapping[str, Any], backend: Any) -> str:
    """One plain sentence on what CHERI did, and did not do, for this run."""
    if not platform.get("cheri"):
        if backend == "bwrap":
            how = ("the compartment is bubblewrap: Linux namespaces, no network, read-only system "
                   "directories, resource limits")
        elif backend == "none":
            how = "the program ran unconfined (backend none): no compartment at all"
        else:
            how = f"the compartment is {backend}"
        return f"No CHERI protection applied: this platform is not CHERI hardware; {how}."
    if not elf.get("purecap"):
        return (f"CHERI hardware, but the ELF is not purecap: its pointers are not capabilities; "
                f"compartment backend {backend}.")
    return f"CHERI hardware, purecap ELF, compartment backend {backend}."


def rlimit_value(value: Any, unit: str) -> str:
    if value is None:
        return "not limited"
    if unit == "bytes":
        return f"{format_size(value)} ({value})"
    if unit == "s":
        return f"{value} s"
    return cell(value)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested evidence as ``a.b  value`` rows (lists shown inline)."""
    if isinstance(value, Mapping):
        if not value and prefix:
            return [(prefix, "{}")]
        rows: list[tuple[str, Any]] = []
        for key in sorted(value):
            rows += flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list):
        shown = ", ".join(cell(item) if not isinstance(item, (Mapping, list)) else repr(item) for item in value)
        return [(prefix, f"[{shown}]")]
    return [(prefix, value)]


def render_document(document: Mapping[str, Any], *, serial: Any = None, revoked: Any = None) -> list[str]:
    run = _mapping(document.get("run"))
    platform = _mapping(document.get("platform"))
    elf = _mapping(document.get("elf"))
    toolchain = _mapping(document.get("toolchain"))
    compartment = _mapping(_mapping(document.get("submods")).get("compartment"))
    isolation = _mapping(compartment.get("isolation"))
    rlimits = _mapping(isolation.get("rlimits"))
    launcher = _mapping(document.get("launcher"))
    backend = compartment.get("backend")

    state = "revoked" if revoked else "not revoked"
    head = f"attestation document of run {run.get('run_id', '?')}"
    if serial:
        head += f" (certificate {serial}, {state})"
    lines = [head, cheri_statement(platform, elf, backend)]

    lines += _section("run", [
        ("run id", run.get("run_id")),
        ("build id", run.get("build_id")),
        ("pid", run.get("pid")),
        ("started at", f"{format_time(run.get('started_at'))} ({run.get('started_at')})"),
        ("software", f"{document.get('swname')} {document.get('swversion')}"),
    ])
    measurements = [
        (m.get("type"), m.get("digest")) for m in document.get("measurements") or [] if isinstance(m, Mapping)
    ]
    lines += _section("measurements", measurements or [("-", "none")])
    argv = toolchain.get("argv")
    lines += _section("toolchain", [
        ("name", toolchain.get("name")),
        ("compiler", toolchain.get("compiler")),
        ("version", toolchain.get("version") or "-"),
        ("command", shlex.join(str(a) for a in argv) if isinstance(argv, list) and argv else "-"),
    ])
    lines += _section("ELF", [
        ("machine", elf.get("machine")),
        ("purecap", elf.get("purecap")),
        ("interpreter", elf.get("interpreter") or "none (static)"),
    ])
    lines += _section("platform", [
        ("hwmodel", document.get("hwmodel")),
        ("cheri", "yes" if platform.get("cheri") else "no (not CHERI hardware)"),
        ("os", " ".join(str(platform[k]) for k in ("os", "release", "machine") if platform.get(k)) or "-"),
        ("cpu", f"{platform.get('cpu_model') or '-'} ({platform.get('cpu_count', '?')} CPUs)"),
        ("memory", format_size(platform.get("memory_bytes"))),
        ("ueid", document.get("ueid")),
        ("dbgstat", document.get("dbgstat")),
    ])
    limit_rows = [(label, rlimit_value(rlimits.get(name), unit)) for name, label, unit in RLIMITS]
    known = {name for name, _, _ in RLIMITS}
    limit_rows += [(name, cell(value)) for name, value in sorted(rlimits.items()) if name not in known]
    lines += _section("compartment", [
        ("backend", backend),
        ("network", isolation.get("network")),
        ("filesystem", isolation.get("filesystem")),
    ])
    lines += [INDENT + "limits", *(INDENT * 2 + line for line in key_values(limit_rows))]
    evidence = compartment.get("evidence")
    lines += _section("evidence (reported by the compartment itself, not checked)",
                      flatten(evidence) if evidence else [("-", "none")])
    lines += _section("launcher", [
        ("version", launcher.get("version")),
        ("issuing CA", launcher.get("issuing_ca_fingerprint")),
    ])
    lines += _section("validity", [
        ("issued (iat)", format_epoch(document.get("iat"))),
        ("expires (exp)", format_epoch(document.get("exp"))),
        ("nonce", document.get("eat_nonce")),
        ("key (cnf.jkt)", _mapping(document.get("cnf")).get("jkt")),
        ("profile", document.get("eat_profile")),
    ])
    return lines
