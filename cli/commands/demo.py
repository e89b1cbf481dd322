"""``attestables demo``: the whole path on loopback, from nothing, in a temp state dir.

Starts a real daemon (``attestables daemon``) on a free loopback port, uploads
``cheri/examples/hello.c``, builds it in the compile sandbox with the log streamed,
runs it in the default compartment with its output streamed, prints the build and run
records, and stops the daemon. Nothing of the operator's own state is touched.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from attestables import cheri
from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

from ..output import Output, format_size, key_values, short_digest
from ..registry import Context, Subparsers, add_local_command
from ..streams import follow_build_log, follow_run_output, run_exit_status

ORDER = 5


def register(subparsers: Subparsers) -> None:
    parser = add_local_command(subparsers, "demo", demo,
                               help="run the launcher end to end on loopback in a temp state dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp state dir and print where it is")
    parser.add_argument("--source", type=Path, default=cheri.EXAMPLES_DIR / "hello.c",
                        help="the C source to build and run (default: cheri/examples/hello.c)")


def demo(args: argparse.Namespace) -> int:
    return asyncio.run(_demo(args.source, keep=args.keep))


def _step(out: Output, text: str) -> None:
    out.line("")
    out.line(f"== {text}")
    out.stdout.flush()


async def _demo(source: Path, *, keep: bool) -> int:
    out = Output()
    base = Path(tempfile.mkdtemp(prefix="attestables-demo-"))
    log_path = base / "daemon.log"
    with open(log_path, "wb") as log:
        daemon = LocalDaemon(base / "state", log=log)
        _step(out, f"starting a daemon on {daemon.listen} (state dir {daemon.state_dir})")
        try:
            await daemon.start()
        except (RuntimeError, TimeoutError) as exc:
            out.note(f"the daemon did not start: {exc}; its log:\n{log_path.read_text(errors='replace')}")
            return 1
        try:
            async with Client.connect(daemon.url, daemon.token) as client:
                return await _walk(Context(client, out), source)
        finally:
            status = await daemon.stop()
            _step(out, f"daemon stopped (exit status {status})")
            if keep:
                out.line(f"state dir and daemon log kept in {base}")
            else:
                shutil.rmtree(base, ignore_errors=True)


async def _walk(ctx: Context, source: Path) -> int:
    client, out = ctx.client, ctx.out
    info = await client.call("system.info")
    platform = info["platform"]
    out.line(f"platform: {platform['os']} {platform['release']} {platform['machine']}, "
             f"CHERI: {'yes' if platform['cheri'] else 'no (builds are native, compartments are bubblewrap)'}")

    _step(out, f"upload {source.name}")
    uploaded = await client.call("sources.upload", {"name": source.name, "content": source.read_text()})
    out.lines(key_values([("source", uploaded["source_id"]), ("version", uploaded["version"]),
                          ("sha256", uploaded["sha256"]), ("size", format_size(uploaded["size"]))]))

    _step(out, "build (compile log follows)")
    build_id = (await client.call("builds.start", {"source_id": uploaded["source_id"]}))["build_id"]
    build = await follow_build_log(ctx, build_id)
    if build is None or build["state"] != "succeeded":
        return 1

    _step(out, "run in the compartment (program output follows)")
    run_id = (await client.call("runs.start", {"build_id": build_id}))["run_id"]
    run = await follow_run_output(ctx, run_id)
    if run is None:
        return 1

    _step(out, "build record")
    artefact = build["artefact"] or {}
    elf = artefact.get("elf") or {}
    out.lines(key_values([
        ("build", build["build_id"]), ("state", build["state"]), ("toolchain", build["toolchain"]["name"]),
        ("compiler", build["toolchain"]["version"]), ("duration", f"{build['duration_s']} s"),
        ("artefact sha256", artefact.get("sha256")), ("source sha256", build["source_sha256"]),
        ("elf", f"{elf.get('machine')}, {elf.get('class')}-bit, purecap {elf.get('purecap')}, "
                f"interpreter {elf.get('interpreter')}"),
    ]))
    _step(out, "run record")
    out.lines(key_values([
        ("run", run["run_id"]), ("state", run["state"]), ("exit code", run["exit_code"]),
        ("backend", run["backend"]), ("limits", ", ".join(f"{k} {v}" for k, v in run["limits"].items())),
        ("started", run["started_at"]), ("finished", run["finished_at"]),
        ("artefact", short_digest(artefact.get("sha256"))),
    ]))
    sys.stdout.flush()
    return run_exit_status(run)
