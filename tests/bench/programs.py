"""The C programs the run benchmarks start, and how they are built through the daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from attestables.shared.client import Client

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
