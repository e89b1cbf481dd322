"""Printing a build's compile log and a run's output, stored and live.

Both faces share the stream logic (``attestables.shared.client.Follow``); this module
only decides where each item goes: compile log lines to stdout, program output to
stdout or stderr byte for byte, remarks (gaps, how a run ended) to stderr. A log cut
off at the daemon's size limit says so in its own last line, so nothing is added.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from typing import Any

from attestables.shared import protocol
from attestables.shared.client import Event, follow_build, follow_run, output_bytes

from .output import Output, diagnostic, format_duration, format_size, short_digest, short_id
from .registry import Context


async def follow_build_log(ctx: Context, build_id: str) -> dict[str, Any] | None:
    """Print the build's log until it ends; returns its final record."""
    async with follow_build(ctx.client, build_id) as follow:
        async for event in follow:
            if ctx.out.json:
                ctx.out.document(event)
            elif event.topic == protocol.BUILDS_LOG:
                write_log_line(ctx.out, event.data)
            elif event.topic == protocol.EVENTS_GAP:
                ctx.out.note(gap_text(event))
    if follow.final is not None and not ctx.out.json:
        ctx.out.lines(ctx.out.shown(line) for line in build_outcome(follow.final))
    return follow.final


async def follow_run_output(ctx: Context, run_id: str) -> dict[str, Any] | None:
    """Copy the run's output until it ends; returns its final record."""
    async with follow_run(ctx.client, run_id) as follow:
        async for event in follow:
            if ctx.out.json:
                ctx.out.document(event)
            elif event.topic == protocol.RUNS_OUTPUT:
                ctx.out.raw(event.data.get("stream", "stdout"), output_bytes(event.data))
            elif event.topic == protocol.EVENTS_GAP:
                ctx.out.note(gap_text(event))
    if follow.final is not None and not ctx.out.json:
        note = run_outcome(follow.final)
        if note:
            ctx.out.note(note)
    return follow.final


def write_log_line(out: Output, item: Mapping[str, Any]) -> None:
    out.line(out.shown(str(item.get("line", "")).rstrip("\n")))
    out.stdout.flush()


def gap_text(event: Event) -> str:
    data = event.data if isinstance(event.data, Mapping) else {}
    dropped = data.get("dropped", "some")
    return f"warning: {dropped} event(s) were missed here (the stream fell behind)"


def build_outcome(build: Mapping[str, Any]) -> list[str]:
    """The lines that end a followed build: diagnostics of a failure, then the outcome."""
    state = build.get("state", "?")
    lines = [diagnostic(entry) for entry in build.get("diagnostics") or ()] if state == "failed" else []
    status = f"build {short_id(build.get('build_id'))} {state}"
    if build.get("duration_s") is not None:
        status += f" in {format_duration(build['duration_s'])}"
    artefact = build.get("artefact")
    if state == "succeeded" and artefact:
        status += f": artefact {short_digest(artefact.get('sha256'))}, {format_size(artefact.get('size'))}"
        elf = artefact.get("elf") or {}
        kind = " ".join(str(elf[key]) for key in ("machine", "class") if elf.get(key))
        if elf.get("purecap"):
            kind += " purecap"
        if kind:
            status += f" ({kind})"
    elif state == "failed" and build.get("exit_code") is not None:
        status += f" (exit code {build['exit_code']})"
    if build.get("error"):
        status += f": {build['error']}"
    lines.append(status)
    return lines


def signal_number(value: Any) -> int | None:
    """A signal given as a number or a name (``9``, ``"SIGKILL"``, ``"KILL"``)."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    try:
        return signal.Signals[text if text.startswith("SIG") else f"SIG{text}"].value
    except KeyError:
        return None


def signal_name(value: Any) -> str:
    number = signal_number(value)
    if number is None:
        return str(value)
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_exit_status(run: Mapping[str, Any]) -> int:
    """The exit code ``run --follow`` ends with: the program's, 128+N for signal N, else 1."""
    number = signal_number(run.get("signal"))
    if number:
        return 128 + number
    code = run.get("exit_code")
    if run.get("state") == "exited" and isinstance(code, int):
        return 128 - code if code < 0 else code
    return 1


def run_outcome(run: Mapping[str, Any]) -> str | None:
    """A remark on how a run ended, or ``None`` when its program simply exited."""
    state = run.get("state")
    reason = f": {run['reason']}" if run.get("reason") else ""
    ident = f"run {short_id(run.get('run_id'))}"
    if run.get("signal"):
        verb = "was killed by" if state == "killed" else "ended on"
        return f"{ident} {verb} {signal_name(run['signal'])}{reason}"
    if state == "exited":
        return None
    return f"{ident} {state}{reason}"
