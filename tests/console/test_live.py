"""The console against the real case study: a daemon, the three services, the integration
process, all on loopback (the demo's set-up, :class:`CaseStudy`), driven by Pilot.

Every wait is on the app: actions and loads are awaited as workers (``settle``); what the
daemon streams (log lines, output, trace rows) is awaited as the condition it produces on
screen (``until``), never by a fixed sleep.

The slowest test here is ``test_operator_session`` (a build, two runs, a verification: about
15 s on 2 cores); it is marked ``slow``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from attestables.shared.case_study import CaseStudy
from attestables.shared.local_daemon import LocalDaemon
from attestables.tui.app import ConsoleApp, create_app
from attestables.tui.connection import Backoff, LiveSource
from attestables.tui.dialogs import ConfirmScreen, FormScreen
from attestables.tui.messages import CONNECTED, DISCONNECTED
from attestables.tui.widgets.follow_log import FollowLog
from attestables.tui.widgets.keyed_table import KeyedTable
from attestables.tui.widgets.ring_table import RingTable
from attestables.tui.widgets.sequence import SequenceBody
from attestables.tui.widgets.source_view import SourceView
from textual.widgets import OptionList, Tree

from .conftest import settle, text_of, until

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

SIZE = (120, 40)
WARNS = """#include <stdio.h>

int main(int argc, char **argv)
{
    int unused;
    printf("hello %s from the console test\\n", argc > 1 ? argv[1] : "nobody");
    return 0;
}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def study(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CaseStudy]:
    base = tmp_path_factory.mktemp("console-case-study")
    async with CaseStudy(base, reply_delay=0.2) as running:
        yield running


def live_app(study: CaseStudy, **options: Any) -> ConsoleApp:
    assert study.daemon is not None
    return create_app(LiveSource(study.daemon.url, study.daemon.token, backoff=Backoff(first=0.2)), **options)


async def open_tab(app: ConsoleApp, pilot: Any, key: str, tab: str) -> None:
    """Press a tab's key: the tab shows, with the focus in it (so its keys are in the footer)."""
    await pilot.press(key)
    await settle(app, pilot)
    try:
        await until(pilot, lambda: app.active_tab == tab and app.focused is not None
                    and app.pane(tab) in app.focused.ancestors_with_self, f"the {tab} tab to show, focused", timeout=30)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: active={app.active_tab} focused={app.focused!r} "
                             f"screens={app.screen_stack!r}") from None


async def fill(app: ConsoleApp, pilot: Any, values: dict[str, str]) -> None:
    """Type into the open form's fields, then submit it with its key."""
    await until(pilot, lambda: isinstance(app.screen, FormScreen), "the form to open", timeout=30)
    for name, value in values.items():
        app.screen.query_one(f"#field-{name}").value = value  # type: ignore[attr-defined]
    await pilot.press("ctrl+s")
    await settle(app, pilot)


@pytest.mark.slow
async def test_operator_session(study: CaseStudy, tmp_path: Path) -> None:
    """Every tab with live data; a build and its log; a run and its output; an attestation
    verified against a policy; trace rows and their sequence diagram; a stop, confirmed."""
    assert study.daemon is not None and study.build is not None
    integration_run = await study.start_integration("--interval", "1")
    app = live_app(study)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.connection_state == CONNECTED and app.records.loaded, "the first snapshot")

        # Overview: the daemon, its toolchains and CA, all well.
        overview = text_of(app.query_one("#overview-daemon")) + text_of(app.query_one("#overview-ca"))
        assert study.daemon and "0.1.0" in overview and "issuing SHA-256" in overview
        assert "connected to the daemon" in text_of(app.query_one("#overview-health"))

        # Every tab, by its key; each opens with its main widget focused.
        for key, tab in zip("2345671", ("sources", "builds", "runs", "attestation", "trace", "services",
                                        "overview")):
            await open_tab(app, pilot, key, tab)
        services = app.query_one("#services-table", KeyedTable)
        assert {str(services.get_row_at(i)[0]) for i in range(services.row_count)} == {"store", "transport",
                                                                                       "messaging"}

        # Upload a source from a file, through the Upload dialog.
        program = tmp_path / "warns.c"
        program.write_text(WARNS)
        await open_tab(app, pilot, "2", "sources")
        await pilot.press("u")
        await fill(app, pilot, {"path": str(program)})
        sources = app.query_one("#sources-table", KeyedTable)
        await until(pilot, lambda: any(s["name"] == "warns.c" for s in app.records.sources.values()), "the upload")
        source_id = next(s["source_id"] for s in app.records.sources.values() if s["name"] == "warns.c")
        assert sources.select_key(source_id)
        await settle(app, pilot)
        assert "from the console test" in text_of(app.query_one("#source-text"))

        # Build it (b on the Sources tab opens the build form on the Builds tab).
        await pilot.press("b")
        await fill(app, pilot, {"flags": "-O1"})
        assert app.active_tab == "builds"
        build = await until(pilot, lambda: next((b for b in app.records.builds.values()
                                                 if b["source_id"] == source_id
                                                 and b["state"] in ("succeeded", "failed")), None), "the build")
        assert build["state"] == "succeeded", build
        log = app.query_one("#build-log", FollowLog)
        await until(pilot, lambda: "unused variable" in text_of(log), "the compile log")
        assert app.pane("builds").log_for == build["build_id"]  # type: ignore[attr-defined]
        diagnostics = app.query_one("#build-diagnostics", OptionList)
        await until(pilot, lambda: diagnostics.option_count and "unused variable" in
                    str(diagnostics.get_option_at_index(0).prompt), "the diagnostics")
        # g jumps to the diagnostic's line in the source.
        await pilot.press("g")
        await settle(app, pilot)
        assert app.active_tab == "sources"
        assert app.query_one(SourceView).line == 5

        # Run it from the Builds tab, with an argument; its output arrives live.
        await open_tab(app, pilot, "3", "builds")
        assert app.query_one("#builds-table", KeyedTable).cursor_key == build["build_id"]
        await pilot.press("r")
        await fill(app, pilot, {"args": "console", "wall_s": "20"})
        output = app.query_one("#run-output", FollowLog)
        await until(pilot, lambda: "hello console from the console test" in text_of(output), "the run's output")
        run_id = app.pane("runs").output_for  # type: ignore[attr-defined]
        await until(pilot, lambda: app.records.runs.get(run_id, {}).get("state") == "exited", "the run to exit")

        # The integration run's attestation, verified against the policy the services use.
        await study.add_sale("Northwind Outlet", "Cleo Fictional", "+1-555-0177", "3 Test Road", 21000)
        await open_tab(app, pilot, "4", "runs")
        await until(pilot, lambda: integration_run in app.records.certs, "the integration run's certificate")
        assert app.query_one("#runs-table", KeyedTable).select_key(integration_run)
        await pilot.press("a")
        await until(pilot, lambda: app.active_tab == "attestation", "the attestation tab")
        tree = app.query_one("#att-document", Tree)
        labels = {str(node.label) for node in tree.root.children}
        assert any(label.startswith("eat_nonce") for label in labels) and "measurements" in labels
        assert "run certificate" in text_of(app.query_one("#att-chain"))
        policy = tmp_path / "policy.toml"
        policy.write_text(await study.policy_toml())
        (tmp_path / "root.pem").write_text(app.records.ca["root_pem"])  # type: ignore[index]
        await pilot.press("p")
        await fill(app, pilot, {"policy": str(policy)})
        await until(pilot, lambda: "AFFIRMING" in text_of(app.query_one("#att-result")), "the verifier's result")
        # Appraised with the launcher's CRL (ca.crl), as the services appraise it.
        assert "checked against the launcher's CRL" in text_of(app.query_one("#att-result"))

        # Trace: the integration process's messages, in the table and the sequence diagram.
        await open_tab(app, pilot, "6", "trace")
        table = app.query_one("#trace-table", RingTable)
        await until(pilot, lambda: any(t["run_id"] == integration_run and t["service_id"] == "transport"
                                       for t in app.records.traces), "the booking's trace row")
        await until(pilot, lambda: table.row_count >= 3, "trace rows in the table")
        body = app.query_one(SequenceBody)
        await until(pilot, lambda: len(body.arrows) >= 12, "the sequence diagram")
        assert app.query_one("#trace-sequence").run_id == integration_run  # type: ignore[attr-defined]

        # Stop the integration run, confirming first.
        await open_tab(app, pilot, "4", "runs")
        assert app.query_one("#runs-table", KeyedTable).select_key(integration_run)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the confirmation", timeout=30)
        await pilot.press("y")
        await settle(app, pilot)
        await until(pilot, lambda: app.records.runs[integration_run]["state"] == "killed", "the stopped run")
        assert app.records.runs[integration_run]["reason"] == "stopped"
        assert app.records.lost == 0


async def test_refused_action_is_a_notification(study: CaseStudy) -> None:
    """A request the daemon refuses shows its code and message; the console carries on."""
    app = live_app(study)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.records.loaded, "the first snapshot")
        await open_tab(app, pilot, "3", "builds")
        await pilot.press("b")
        await fill(app, pilot, {"flags": "-fplugin=evil.so"})
        notes = [n for n in app._notifications if n.severity == "error"]
        assert notes and "invalid_params" in notes[-1].title and "-fplugin=evil.so" in notes[-1].message
        # Cancelling a build that has ended is refused before asking.
        await open_tab(app, pilot, "3", "builds")
        await pilot.press("c")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert any("has already ended" in n.message for n in app._notifications)


async def test_reconnects_after_the_daemon_restarts(tmp_path: Path) -> None:
    """The status line says when the link is down and the console comes back by itself."""
    daemon = LocalDaemon(tmp_path / "state")
    await daemon.start()
    try:
        app = create_app(LiveSource(daemon.url, daemon.token, backoff=Backoff(first=0.1, maximum=0.5)))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.connection_state == CONNECTED, "the first connection")
            await daemon.stop()
            await until(pilot, lambda: app.connection_state == DISCONNECTED, "the link to drop")
            assert "retrying in" in text_of(app.query_one("#status"))
            await daemon.start()
            await until(pilot, lambda: app.connection_state == CONNECTED and "connected" in
                        text_of(app.query_one("#status")), "the console to reconnect")
            assert app.records.info is not None
    finally:
        await daemon.stop()
