"""The operator console: a Textual app over one :class:`~attestables.tui.source.Source`.

:func:`create_app` builds it around a source: the live daemon
(:class:`~attestables.tui.connection.LiveSource`) or recorded data
(:class:`~attestables.tui.fixture.FixtureSource`), so tests and snapshots run the same
app. One worker (``connection``) runs the source's stream; the messages it posts are
handled here, merged into :class:`~attestables.tui.records.Records`, and handed to the
tabs inside one ``batch_update``. Actions run their API calls in workers of their own;
failures arrive as notifications, never as tracebacks.
"""

from __future__ import annotations

import functools
import os
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from attestables.shared.paths import default_state_dir
from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.worker import Worker, WorkerState

from . import heap
from .actions import ACTIONS, BY_ID, TAB_TITLES, TABS, bindings
from .commands import ActionCommands
from .input_first import INPUT_EVENTS, InputFirst
from .messages import CONNECTING, ConnectionChanged, EventBatch, Loaded
from .records import Changes, Records
from .source import Source
from .tabs.attestation import AttestationPane
from .tabs.base import Pane, describe_error
from .tabs.builds import BuildsPane
from .tabs.overview import OverviewPane
from .tabs.runs import RunsPane
from .tabs.services import ServicesPane
from .tabs.sources import SourcesPane
from .tabs.trace import TracePane
from .widgets.key_bar import KeyBar
from .widgets.tab_bar import TabBar
from .widgets.status import ConnectionStatus

# After the connection worker fails unexpectedly, it is started again after this many seconds.
RESTART_S = 2.0


class ConsoleApp(App[None]):
    """The attestables operator console."""

    CSS_PATH = Path(__file__).with_name("console.tcss")
    TITLE = "attestables console"
    COMMANDS = App.COMMANDS | {ActionCommands}
    BINDINGS = [*bindings(None), Binding("f1", "toggle_keys", "Keys", id="app.keys", tooltip="Show every key")]

    def __init__(self, source: Source, *, policy: str | None = None, keymap: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time, error_log: Path | None = None,
                 settle_heap: bool = False) -> None:
        """``settle_heap``: the app owns its process (``attestables console``); after the
        first load, the start-up heap is frozen out of the cycle collector's walks
        (:mod:`.heap`)."""
        super().__init__()
        self.source = source
        self.error_log = error_log or default_state_dir() / "console.log"
        self.internal_errors: list[str] = []
        self.policy = policy
        self.clock = clock
        self.records = Records()
        self.connection_state = CONNECTING
        self.connection_detail = ""
        self.keymap = dict(keymap or {})
        self.batches = 0
        self._heap_settled = not settle_heap
        # Input first (see input_first.py); an app that owns its process also keeps the
        # cycle collector out of the way while a key waits for its screen update.
        self.input_first = InputFirst(self.set_timer, pause_collector=settle_heap)
        heap.break_strip_cycles()
        if "TEXTUAL_ANIMATIONS" not in os.environ:
            # No sliding tab underline (~18 frames after every tab switch, each competing
            # with the next key and the event stream); TEXTUAL_ANIMATIONS=full brings it back.
            self.animation_level = "none"
        self._panes: dict[str, Pane] = {}
        self.active_tab = "overview"

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        self.status = ConnectionStatus(self.source.url, id="status")
        yield self.status
        # The panes are the screen's own children, one shown at a time (see TabBar).
        self.tab_bar = TabBar([(tab, self._tab_title(tab)) for tab in TABS], self.active_tab, id="tab-bar")
        yield self.tab_bar
        for tab, pane in zip(TABS, self._make_panes()):
            self._panes[tab] = pane
            pane.display = tab == self.active_tab
            yield pane
        yield KeyBar(id="keys")

    def _tab_title(self, tab: str) -> str:
        """``6 Trace``: the key that opens the tab (as remapped, if it is) and its name."""
        key = self.key_for(f"tab.{tab}").split(",")[0].strip()
        return f"{self.get_key_display(Binding(key, ''))} {TAB_TITLES[tab]}"

    def _make_panes(self) -> list[Pane]:
        return [OverviewPane(), SourcesPane(), BuildsPane(), RunsPane(), AttestationPane(self.policy), TracePane(),
                ServicesPane()]

    @property
    def panes(self) -> list[Pane]:
        return list(self._panes.values())

    def pane(self, tab: str) -> Pane:
        """A tab's pane (held, not queried: a dialog may be the active screen)."""
        return self._panes[tab]

    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)
        self.start_connection()
        self.call_after_refresh(self._focus_tab, "overview")

    async def on_unmount(self) -> None:
        self.input_first.close()
        await self.source.close()

    def start_connection(self) -> None:
        self.run_worker(self.source.stream(self.post_message), name="connection", group="connection",
                        exclusive=True, exit_on_error=False, description=f"connection to {self.source.url}")

    # -- input first ---------------------------------------------------------------------

    def post_message(self, message: Message) -> bool:
        if isinstance(message, INPUT_EVENTS) and not message.is_forwarded:  # not one coming back up
            self.input_first.arrived()
        return super().post_message(message)

    async def on_event(self, event: events.Event) -> None:
        arrived = isinstance(event, INPUT_EVENTS) and not event.is_forwarded  # passing it on marks it
        if arrived:
            self.input_first.handling()
        await super().on_event(event)
        if arrived:
            self.call_after_refresh(self._input_served)

    def _input_served(self) -> None:
        # Looked at again after each frame while the hold lasts (at most 0.25 s: a screen
        # that never settles, a spinner say, does not keep this going).
        if self.input_first.waiting and self._input_in_flight():
            self.call_after_refresh(self._input_served)
            return
        self.input_first.served()

    def _input_in_flight(self) -> bool:
        """Is the last input still on its way, or its update still to be drawn?

        The app passes a key to the focused widget; unhandled, it comes back up through
        the widget's ancestors to the app's own bindings (the tab keys). Until the queues
        along that chain are empty and the screen has nothing left to draw, the key's
        update is not on the screen.
        """
        screen = self.screen
        if any(getattr(screen, flag, False) for flag in ("_layout_required", "_repaint_required", "_dirty_widgets")):
            return True
        node = self.focused or screen
        return any(not queue.empty() for queue in (getattr(n, "_message_queue", None) for n in node.ancestors_with_self)
                   if queue is not None)

    # -- failures ------------------------------------------------------------------------

    def report_error(self, error: BaseException, where: str) -> None:
        """A bug in the console: an error notification and a traceback in the log, never on screen."""
        summary = f"{type(error).__name__}: {error}"
        self.internal_errors.append(f"{where}: {summary}")
        logged = self._log_error(error, where)
        detail = f"details in {logged}" if logged else "no log could be written"
        self.notify(f"{summary}\nThe console carries on; {detail}.", title=f"console error in {where}",
                    severity="error", timeout=10)

    def _log_error(self, error: BaseException, where: str) -> Path | None:
        try:
            self.error_log.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.error_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                stamp = datetime.now(UTC).isoformat(timespec="seconds")
                fh.write(f"--- {stamp} {where}\n")
                fh.write("".join(traceback.format_exception(error)))
            return self.error_log
        except OSError:
            return None

    async def run_action(self, action: Any, default_namespace: Any = None) -> bool:
        """Every key binding and palette entry lands here: a failing action is reported, not fatal."""
        try:
            return await super().run_action(action, default_namespace)
        except Exception as error:  # noqa: BLE001 - see report_error
            self.report_error(error, f"action {action}")
            return True

    def _each_pane(self, call: Callable[[Pane], None]) -> None:
        for pane in self.panes:
            try:
                call(pane)
            except Exception as error:  # noqa: BLE001 - one tab's bug must not stop the others
                self.report_error(error, type(pane).__name__)

    # -- keys ----------------------------------------------------------------------------

    def key_for(self, action_id: str) -> str:
        return self.keymap.get(action_id, BY_ID[action_id].key)

    def run_console_action(self, action_id: str) -> None:
        """Run an action by id (the command palette's entries land here)."""
        action = BY_ID[action_id]
        if action.tab is None:
            self.call_later(self.run_action, action.action)
            return
        pane = self.pane(action.tab)
        self.on_tab(action.tab, lambda: self.run_action(action.action, pane))

    def action_show_tab(self, tab: str) -> None:
        if len(self.screen_stack) > 1:
            return  # a dialog is open
        if tab not in self._panes:
            raise ValueError(f"no tab {tab!r}")
        if tab == self.active_tab:
            self._focus_tab(tab)
            return
        # One frame for the switch: the pane catches up with what changed while it was
        # hidden and takes the focus before the screen is laid out and drawn, instead of
        # a full frame for the switch and a second one, almost as large, for its catch-up.
        with self.batch_update():
            self.pane(self.active_tab).display = False
            self.pane(tab).display = True
            self.tab_bar.active = tab
            self.active_tab = tab
            self._each_pane(lambda pane: pane.shown() if pane.TAB == tab else None)
            self._focus_tab(tab)

    def _focus_tab(self, tab: str) -> None:
        # Only while ``tab`` is the active one and no dialog is open.
        if self.active_tab == tab and len(self.screen_stack) == 1:
            self.pane(tab).focus_main()

    @on(TabBar.Clicked)
    def _tab_clicked(self, message: TabBar.Clicked) -> None:
        self.action_show_tab(message.tab)

    def action_toggle_keys(self) -> None:
        if self.screen.query("KeyPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_reload(self) -> None:
        self.source.reload()
        self.notify("re-reading every record from the daemon", title="reload", timeout=3)

    # -- data in -------------------------------------------------------------------------

    @on(ConnectionChanged)
    def _connection(self, message: ConnectionChanged) -> None:
        self.connection_state = message.state
        self.connection_detail = message.detail
        self.status.show(message)
        overview = self.pane("overview")
        if isinstance(overview, OverviewPane):
            overview.connection_changed()

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if not self.is_running:
            return  # shutting down: the tabs are going away
        try:
            kinds = self.records.load(message.snapshot)
        except Exception as error:  # noqa: BLE001 - see report_error: the console carries on
            self.report_error(error, "records from the daemon")
            return
        with self.batch_update():
            self._each_pane(lambda pane: pane.loaded(message.snapshot, kinds))
        if self.records.loaded and not self._heap_settled:
            self._heap_settled = True
            heap.settle()  # the start-up heap leaves the cycle collector's walks

    @on(EventBatch)
    def _events(self, message: EventBatch) -> None:
        # Held while the user is pressing keys (input_first.py); the pump gathers what
        # arrives meanwhile (it posts the next batch only once this one is handled).
        if not self.input_first.defer(functools.partial(self._apply_events, message)):
            self._apply_events(message)

    def _apply_events(self, message: EventBatch) -> None:
        try:
            if not self.is_running:
                return
            changes = self.records.apply(message.events, message.dropped)
            self.batches += 1
            with self.batch_update():
                self._each_pane(lambda pane: pane.changed(changes))
                status = self.status
                status.events = self.records.events
                status.lost = self.records.lost
            if changes.lost:
                self.notify(f"{changes.lost:,} events did not reach the console; re-reading the records",
                            title="events lost", severity="warning", timeout=6)
        except Exception as error:  # noqa: BLE001 - see report_error: the next batches still come
            self.report_error(error, "event batch")
        finally:
            message.handled = True

    def refresh_tab(self, tab: str, kinds: set[str]) -> None:
        self.pane(tab).refresh_view(Changes(kinds=kinds))

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "connection":
            return
        if event.state == WorkerState.ERROR:
            title, message = describe_error(worker.error)
            self.notify(f"{message}; restarting in {RESTART_S:g} s", title=f"connection: {title}",
                        severity="error", timeout=8)
            self.set_timer(RESTART_S, self.start_connection)

    # -- moves between tabs --------------------------------------------------------------

    def on_tab(self, tab: str, then: Callable[[], Any]) -> None:
        """Show ``tab``, focus it, then call ``then`` (which may open a dialog).

        The focus must be in the tab before a dialog opens: closing the dialog gives the
        focus back to where it was, and a focused widget in a hidden tab shows that tab.
        """
        self.action_show_tab(tab)

        def focused_then() -> Any:
            self._focus_tab(tab)
            try:
                return then()
            except Exception as error:  # noqa: BLE001 - see report_error
                self.report_error(error, f"{tab} action")
                return None

        self.call_after_refresh(focused_then)

    def start_build(self, source_id: str | None = None) -> None:
        pane = self.pane("builds")
        assert isinstance(pane, BuildsPane)
        self.on_tab("builds", lambda: pane.action_start_build(source_id))

    def start_run(self, build_id: str | None = None) -> None:
        pane = self.pane("runs")
        assert isinstance(pane, RunsPane)
        self.on_tab("runs", lambda: pane.action_start_run(build_id))

    def goto_source(self, source_id: str, version: int | None, line: int | None) -> None:
        if source_id not in self.records.sources:
            self.notify(f"source {source_id} has been deleted", severity="warning")
            return
        self.action_show_tab("sources")
        pane = self.pane("sources")
        assert isinstance(pane, SourcesPane)
        pane.show_source(source_id, version, line)

    def show_attestation(self, run_id: str) -> None:
        if run_id not in self.records.certs:
            self.notify(f"run {run_id} has no certificate (it never completed the handshake)", severity="warning")
            return
        self.action_show_tab("attestation")
        pane = self.pane("attestation")
        assert isinstance(pane, AttestationPane)
        pane.show_run(run_id)

    def show_trace(self, run_id: str) -> None:
        self.action_show_tab("trace")
        pane = self.pane("trace")
        assert isinstance(pane, TracePane)
        pane.set_filter("run_id", run_id)


def create_app(source: Source, **options: Any) -> ConsoleApp:
    """The console over ``source`` (live: :class:`LiveSource`; recorded: :class:`FixtureSource`)."""
    return ConsoleApp(source, **options)


__all__ = ["ACTIONS", "ConsoleApp", "create_app"]
