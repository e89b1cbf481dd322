"""The console's scenes for the snapshot tests and the docs' screenshots, from recorded data.

Each scene is the real app on a :class:`FixtureSource` (the records of
``fixtures/case_study.json``, plus, for some scenes, event batches made from them), at
120x40, with a fixed clock, after the steps a user would take. ``test_snapshots.py``
compares them with the accepted SVGs; ``python -m tests.console.screenshots`` writes them
to ``docs/console/``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attestables.shared.client import Event
from attestables.tui.app import ConsoleApp, create_app
from attestables.tui.fixture import FixtureSource
from attestables.tui.messages import (
    DISCONNECTED,
    ConnectionChanged,
    LogLoaded,
    Verified,
)
from attestables.tui.tabs.attestation import verify_with_policy
from attestables.tui.widgets.follow_log import FollowLog
from textual.pilot import Pilot

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "case_study.json"
FIXED_NOW = 1795361471.0  # an hour after the recording: every certificate is valid
SIZE = (120, 40)

Step = Callable[[ConsoleApp, Pilot[Any]], Awaitable[None]]


def load() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


async def settle(app: ConsoleApp, pilot: Pilot[Any]) -> None:
    """Let every pending action and load (each a worker) finish, and the screen catch up:
    with what input first held back (at most 0.25 s after a key) and the status line's
    event count (drawn at most twice a second) drawn too."""
    for _ in range(10):
        await pilot.pause()
        workers = [w for w in app.workers if w.group != "connection" and not w.is_finished]
        if not workers:
            break
        await app.workers.wait_for_complete(workers)
    for _ in range(50):
        if not app.input_first.waiting and not app.status.pending:
            break
        await pilot.pause(0.02)
    await pilot.pause()


def fixture_app(**options: Any) -> ConsoleApp:
    """The console on the recorded case study, with the fixed clock."""
    return create_app(FixtureSource(load()), clock=lambda: FIXED_NOW, **options)


@contextlib.asynccontextmanager
async def running(tab: str | None = None, **options: Any) -> AsyncIterator[tuple[ConsoleApp, Pilot[Any]]]:
    """:func:`fixture_app` running headless at 120x40, settled, on ``tab`` if given."""
    app = fixture_app(**options)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        if tab is not None:
            app.action_show_tab(tab)
            await settle(app, pilot)
        yield app, pilot


def more_traces(data: dict[str, Any]) -> list[Event]:
    """Trace rows that show every kind of exchange: a refusal, an unreachable service."""
    rows = data["traces"]
    last = rows[-1]
    seq = 1000
    refused = {**rows[0], "id": last["id"] + 1, "ts": "2026-11-22T14:31:13.101Z", "bytes_out": 0, "sha256_out": None,
               "http_status": 403, "outcome": "contraindicated", "latency_ms": 12.4,
               "verification": {"status": "contraindicated", "reasons": [
                   {"code": "measurement_unknown",
                    "message": "the program's measurements match no allow entry of the policy"}]}}
    unreachable = {**rows[1], "id": last["id"] + 2, "ts": "2026-11-22T14:31:14.220Z", "bytes_out": 0,
                   "sha256_out": None, "http_status": None, "outcome": "unreachable", "latency_ms": 1.9,
                   "verification": {"status": None, "reasons": []}}
    return [Event("sub-1", "traces.message", seq + i, row) for i, row in enumerate((refused, unreachable))]


@dataclass
class Scene:
    name: str
    tab: str
    title: str
    batches: Callable[[dict[str, Any]], list[list[Event]]] = lambda data: []
    steps: list[Step] = field(default_factory=list)

    def app(self) -> ConsoleApp:
        data = load()
        source = FixtureSource(data, batches=self.batches(data))
        return create_app(source, clock=lambda: FIXED_NOW)

    async def run_before(self, pilot: Pilot[Any]) -> None:
        app: ConsoleApp = pilot.app  # type: ignore[assignment]
        await settle(app, pilot)
        app.action_show_tab(self.tab)
        await settle(app, pilot)
        for step in self.steps:
            await step(app, pilot)
            await settle(app, pilot)


async def verified(app: ConsoleApp, pilot: Pilot[Any]) -> None:
    """What the verify worker posts after appraising the run's certificate with the services' policy."""
    data = load()
    run_id, cert = next(iter(data["cert_details"].items()))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "policy.toml").write_text(data["policy_toml"])
        (Path(tmp) / "root.pem").write_text(data["ca"]["root_pem"])
        result = verify_with_policy(str(Path(tmp) / "policy.toml"), cert["pem"], cert["chain_pem"], FIXED_NOW)
    app.pane("attestation").post_message(Verified(run_id, "integration-policy.toml", result))


async def long_log_paused(app: ConsoleApp, pilot: Pilot[Any]) -> None:
    """A long compile log: the user scrolls up, and new lines are counted, not shown."""
    data = load()
    build_id = next(b["build_id"] for b in data["builds"] if b["source_name"] == "integration_process.c")
    pane = app.pane("builds")
    assert pane.query_one("#builds-table").select_key(build_id)  # type: ignore[attr-defined]
    await settle(app, pilot)
    lines = [{"stream": "stderr", "line": f"/src/big.c:{n}:5: warning: unused variable 'v{n}' [-Wunused-variable]"}
             for n in range(1, 61)]
    pane.post_message(LogLoaded("build", build_id, lines, seq=5000))
    await settle(app, pilot)
    log = pane.query_one("#build-log", FollowLog)
    log.focus()
    await pilot.press("pageup")
    more = [Event("sub-1", "builds.log", 5001 + n, {"build_id": build_id, "stream": "stderr",
                                                   "line": f"/src/big.c:{61 + n}:5: warning: late line"})
            for n in range(42)]
    from attestables.tui.messages import EventBatch

    app.post_message(EventBatch(tuple(more)))


async def start_run_form(app: ConsoleApp, pilot: Pilot[Any]) -> None:
    await pilot.press("r")


async def disconnected(app: ConsoleApp, pilot: Pilot[Any]) -> None:
    app.post_message(ConnectionChanged(DISCONNECTED, app.source.url, attempt=3, retry_in=4.0,
                                       detail="cannot connect to the daemon at ws://127.0.0.1:7480/api/v1/ws: "
                                              "Connection refused; is the daemon running?"))


async def palette(app: ConsoleApp, pilot: Pilot[Any]) -> None:
    await pilot.press("ctrl+p")
    await pilot.press(*"build")


SCENES = [
    Scene("overview", "overview", "Overview"),
    Scene("sources", "sources", "Sources"),
    Scene("builds", "builds", "Builds: a failed build, its log and diagnostics"),
    Scene("builds_paused", "builds", "Builds: the log paused, counting new lines", steps=[long_log_paused]),
    Scene("runs", "runs", "Runs"),
    Scene("runs_start", "runs", "Runs: starting a run", steps=[start_run_form]),
    Scene("attestation", "attestation", "Attestation, verified against a policy", steps=[verified]),
    Scene("trace", "trace", "Trace: messages, details, sequence diagram, latency",
          batches=lambda data: [more_traces(data)]),
    Scene("services", "services", "Services"),
    Scene("disconnected", "overview", "The link is down: reconnecting", steps=[disconnected]),
    Scene("palette", "overview", "The command palette", steps=[palette]),
]
