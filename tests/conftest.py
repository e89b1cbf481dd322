"""Shared fixtures: a real daemon on loopback in a temp state dir, and clients of it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

EXAMPLES = Path(__file__).resolve().parent.parent / "cheri" / "examples"


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One daemon per test worker, started as an operator would start it."""
    base = tmp_path_factory.mktemp("daemon")
    log = open(base / "daemon.log", "wb")  # noqa: SIM115
    local = LocalDaemon(base / "state", log=log, config={"stop_grace_s": 1.0, "run_wall_s": 30})
    asyncio.run(local.start())
    yield local
    asyncio.run(local.stop())
    log.close()


@pytest.fixture
async def client(daemon: LocalDaemon) -> AsyncIterator[Client]:
    async with Client.connect(daemon.url, daemon.token) as c:
        yield c


def c_source(body: str) -> str:
    return "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n" + body


async def upload(client: Client, name: str, content: str) -> dict[str, Any]:
    return await client.call("sources.upload", {"name": name, "content": content})


async def wait_build(client: Client, build_id: str, timeout: float = 60) -> dict[str, Any]:
    """Follow a build to its terminal state through events (no polling sleep)."""
    async with await client.subscribe(["builds.state"], filter={"build_id": build_id}, since=0) as sub:
        record = await client.call("builds.get", {"build_id": build_id})
        if record["state"] in {"succeeded", "failed", "cancelled"}:
            return record
        async with asyncio.timeout(timeout):
            async for event in sub:
                if event.data.get("state") in {"succeeded", "failed", "cancelled"}:
                    return event.data
    raise AssertionError("build stream ended without a terminal state")


async def wait_run(client: Client, run_id: str, timeout: float = 60) -> dict[str, Any]:
    async with await client.subscribe(["runs.state"], filter={"run_id": run_id}, since=0) as sub:
        record = await client.call("runs.get", {"run_id": run_id})
        if record["state"] in {"exited", "failed", "killed", "lost"}:
            return record
        async with asyncio.timeout(timeout):
            async for event in sub:
                if event.data.get("state") in {"exited", "failed", "killed", "lost"}:
                    return event.data
    raise AssertionError("run stream ended without a terminal state")


async def build_source(client: Client, name: str, content: str, **params: Any) -> dict[str, Any]:
    src = await upload(client, name, content)
    started = await client.call("builds.start", {"source_id": src["source_id"], **params})
    return await wait_build(client, started["build_id"])


async def run_build(client: Client, build_id: str, **params: Any) -> tuple[dict[str, Any], str]:
    """Start a run, wait for its end, return (run record, all output text)."""
    started = await client.call("runs.start", {"build_id": build_id, **params})
    record = await wait_run(client, started["run_id"])
    logs = await client.call("runs.logs", {"run_id": started["run_id"]})
    return record, "".join(c["data"] for c in logs["chunks"])


def sandbox_processes() -> list[str]:
    """Command lines of every bwrap process on the machine (for leak checks)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "bwrap" in line and "ps -eo" not in line]


def is_root() -> bool:
    return os.geteuid() == 0
