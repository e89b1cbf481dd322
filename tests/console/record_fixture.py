"""Record the console's fixture data from the real case study: ``python -m tests.console.record_fixture``.

Starts the case study (a daemon, the three services, the integration process built and
allowed by every service's policy), adds two sales, builds a small program with a
compile error and one that prints, runs them, and writes what the API then answers to
``tests/console/fixtures/case_study.json``. The snapshot tests and the docs' screenshots
feed this file to the console through :class:`attestables.tui.fixture.FixtureSource`, so
they show real records without depending on live ids or times. Re-record after an API
change; the snapshots then change with it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from attestables.shared.case_study import CaseStudy, wait_state
from attestables.shared.client import Client

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "case_study.json"
ROOT = Path(__file__).resolve().parents[2]

BAD = """#include <stdio.h>

int main(void)
{
    int unused;
    printf("%d\\n", undefined_name);
    return 0;
}
"""


async def wait_traces(client: Client, run_id: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    async with await client.subscribe(["traces.message"], filter={"run_id": run_id}, since=0) as sub:
        async with asyncio.timeout(timeout):
            rows = (await client.call("traces.list", {"run_id": run_id}))["traces"]
            seen = {r["id"] for r in rows}
            async for event in sub:
                if event.topic == "traces.message" and event.data["id"] not in seen:
                    rows.append(event.data)
                    seen.add(event.data["id"])
                if len(rows) >= count:
                    return sorted(rows, key=lambda r: r["id"])
    return rows


async def record(base: Path) -> dict[str, Any]:
    async with CaseStudy(base, reply_delay=0.5) as study:
        client = study.client
        assert client is not None and study.build is not None
        run_id = await study.start_integration("--interval", "1")
        await study.add_sale("Northwind Outlet", "Ada Lovegood", "+1-555-0142", "12 Imaginary Lane", 18000)
        await study.add_sale("Northwind Outlet", "Bram Placeholder", "+1-555-0143", "9 Nowhere Street", 9000)
        traces = await wait_traces(client, run_id, 6)

        hello = await client.call("sources.upload", {"name": "hello.c",
                                                     "content": (ROOT / "cheri/examples/hello.c").read_text()})
        bad = await client.call("sources.upload", {"name": "bad.c", "content": BAD})
        hello_build = await client.call("builds.start", {"source_id": hello["source_id"], "flags": ["-O1", "-g"]})
        bad_build = await client.call("builds.start", {"source_id": bad["source_id"]})
        hello_rec = await wait_state(client, "builds.state", "build_id", hello_build["build_id"],
                                     {"succeeded", "failed", "cancelled"})
        await wait_state(client, "builds.state", "build_id", bad_build["build_id"], {"succeeded", "failed", "cancelled"})
        hello_run = await client.call("runs.start", {"build_id": hello_rec["build_id"], "args": ["fixture"]})
        await wait_state(client, "runs.state", "run_id", hello_run["run_id"], {"exited", "failed", "killed", "lost"})

        builds = (await client.call("builds.list"))["builds"]
        runs = (await client.call("runs.list"))["runs"]
        sources = (await client.call("sources.list"))["sources"]
        data: dict[str, Any] = {
            "url": "ws://127.0.0.1:7480/api/v1/ws",
            "server_version": client.hello.server_version,
            "info": await client.call("system.info"),
            "ca": await client.call("ca.info"),
            "sources": sources,
            "source_contents": {f"{s['source_id']}@{s['latest_version']}":
                                await client.call("sources.get", {"source_id": s["source_id"]})
                                for s in sources},
            "builds": builds,
            "build_logs": {b["build_id"]: await client.call("builds.logs", {"build_id": b["build_id"]})
                           for b in builds},
            "runs": runs,
            "run_logs": {r["run_id"]: await client.call("runs.logs", {"run_id": r["run_id"]}) for r in runs},
            "certs": (await client.call("certs.list"))["certificates"],
            "cert_details": {run_id: await client.call("certs.get", {"run_id": run_id})},
            "services": (await client.call("services.list"))["services"],
            "traces": traces,
            "policy_toml": await study.policy_toml(),
        }
        data["info"]["state_dir"] = "/var/lib/attestables"
        return data


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="attestables-console-fixture-") as tmp:
        data = asyncio.run(record(Path(tmp)))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
