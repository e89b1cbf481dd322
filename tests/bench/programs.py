"""The C programs the run benchmarks start, how they are built through the daemon, and
how their output is collected."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attestables.shared.client import Client, Subscription

# The benchmarks' own C programs (compartment programs and host-side drivers).
C_DIR = Path(__file__).resolve().parent / "c"


def c_source(name: str) -> str:
    """``c/NAME`` as one file, ready to upload: an ``#include "x.h"`` of a header of
    ``c/`` is replaced by the header's text (a compartment program is one source)."""
    lines = []
    for line in (C_DIR / name).read_text().splitlines(keepends=True):
        words = line.split()
        header = C_DIR / words[1].strip('"') if len(words) == 2 and words[0] == "#include" else None
        if header is not None and words[1].startswith('"') and header.is_file():
            lines.append(header.read_text())
        else:
            lines.append(line)
    return "".join(lines)


# Prints one line at once (write(2): no stdio buffer to wait for), then exits.
FIRST_BYTE = """\
#include <unistd.h>

int main(void)
{
    (void)write(1, "ready\\n", 6);
    return 0;
}
"""

# Prints argv[1] numbered lines of 20 bytes each, as fast as stdio allows.
LINES = """\
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    for (long i = 1; i <= n; i++)
        printf("line %07ld/%07ld\\n", i, n);
    return 0;
}
"""
LINE_BYTES = 21  # "line 0000001/0200000\n"

TERMINAL_BUILD = {"succeeded", "failed", "cancelled"}
TERMINAL_RUN = {"exited", "failed", "killed", "lost"}


async def build_program(client: Client, state_dir: Path, name: str, source: str) -> tuple[dict[str, Any], bytes]:
    """Upload and build ``source``; the build record and the artefact's bytes.

    The bytes are read from the daemon's blob store: exactly what its runs execute.
    """
    uploaded = await client.call("sources.upload", {"name": name, "content": source})
    async with await client.subscribe(["builds.state"]) as states:
        started = await client.call("builds.start", {"source_id": uploaded["source_id"]})
        async with asyncio.timeout(120):
            async for event in states:
                if event.data.get("build_id") == started["build_id"] and event.data.get("state") in TERMINAL_BUILD:
                    record = event.data
                    break
    if record["state"] != "succeeded":
        raise RuntimeError(f"building {name} failed: {record.get('error')}")
    digest = record["artefact"]["sha256"]
    program = (state_dir / "blobs" / digest[:2] / digest).read_bytes()
    return record, program


@dataclass
class RunOutput:
    """What one run printed, as the client received it, and its terminal state."""

    run_id: str
    stdout: str = ""
    stderr: str = ""
    final: dict[str, Any] | None = None

    def check(self) -> "RunOutput":
        """Raises unless the run exited 0."""
        if self.final is None or self.final.get("state") != "exited" or self.final.get("exit_code") != 0:
            raise RuntimeError(f"run {self.run_id} did not exit cleanly: {self.final}; "
                               f"stderr: {self.stderr.strip()[-2000:]!r}")
        return self

    def values(self, name: str) -> list[str]:
        """The rest of every stdout line that starts with ``name`` and a space."""
        prefix = name + " "
        return [line[len(prefix):] for line in self.stdout.splitlines() if line.startswith(prefix)]


async def start_run(client: Client, build_id: str, args: list[str] | None = None,
                    limits: dict[str, int] | None = None) -> str:
    params: dict[str, Any] = {"build_id": build_id, "args": list(args or [])}
    if limits:
        params["limits"] = limits
    return (await client.call("runs.start", params))["run_id"]


async def collect_runs(events: Subscription, run_ids: list[str], timeout: float = 120) -> dict[str, RunOutput]:
    """Read ``events`` (subscribed to runs.output and runs.state before the runs started)
    until every run in ``run_ids`` has reached a terminal state; their output by run id."""
    outputs = {run_id: RunOutput(run_id) for run_id in run_ids}
    pending = set(run_ids)
    async with asyncio.timeout(timeout):
        async for event in events:
            if event.topic == "events.gap":
                raise RuntimeError(f"run events were dropped: {event.data}")
            output = outputs.get(event.data.get("run_id"))
            if output is None:
                continue
            if event.topic == "runs.output":
                if event.data["stream"] == "stdout":
                    output.stdout += event.data["data"]
                else:
                    output.stderr += event.data["data"]
            elif event.topic == "runs.state" and event.data["state"] in TERMINAL_RUN:
                output.final = event.data
                pending.discard(output.run_id)
                if not pending:
                    return outputs
    raise RuntimeError("the runs stream ended")
