"""What every tab shares: its records, its API calls in workers, its confirmations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from attestables.shared.errors import AttestablesError
from attestables.shared.terminal import printable
from textual import on
from textual.containers import Container
from textual.widget import Widget
from textual.widgets import DataTable
from textual.worker import Worker, WorkerState

from ..dialogs import ConfirmScreen
from ..messages import Snapshot
from ..records import Changes, Records

if TYPE_CHECKING:
    from ..app import ConsoleApp


Handler = TypeVar("Handler", bound=Callable[..., Any])


def contained(handler: Handler) -> Handler:
    """A message handler whose failure is reported, not fatal.

    An exception escaping a handler would end the app with a traceback; here it becomes
    an error notification (details in the console's log) and the console carries on.
    """

    @functools.wraps(handler)
    def wrapper(self: Widget, *args: Any, **kwargs: Any) -> Any:
        try:
            return handler(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - reported to the user, see report_error
            self.app.report_error(error, handler.__qualname__)  # type: ignore[attr-defined]
            return None

    return wrapper  # type: ignore[return-value]


def row_key(event: DataTable.RowHighlighted) -> str | None:
    """The key of a highlighted row (``None`` when the table was just emptied)."""
    key = event.row_key
    value = key.value if key is not None else None
    return value if isinstance(value, str) else None


def describe_error(error: BaseException | None) -> tuple[str, str]:
    """(title, message) for a notification: the typed error's code and message, never a
    traceback; control characters shown (a message may echo what a client sent)."""
    if isinstance(error, AttestablesError):
        title, message = error.code, error.message
    elif isinstance(error, OSError):
        title, message = "error", error.strerror or str(error)
    else:
        title, message = type(error).__name__ if error is not None else "error", str(error) or "failed"
    return printable(str(title)), printable(message)


class Pane(Container):
    """One tab's content. Subclasses draw from :attr:`records` in :meth:`refresh_view`."""

    TAB: ClassVar[str] = ""
    MAIN: ClassVar[str] = ""  # selector of the widget that gets focus when the tab opens

    def __init__(self) -> None:
        super().__init__(id=f"pane-{self.TAB}")
        self._callbacks: dict[Worker[Any], Callable[[Any], None] | None] = {}
        # Kinds of record that changed while this tab was hidden: redrawn when it shows.
        self._stale: set[str] = set()

    @property
    def console(self) -> ConsoleApp:
        return self.app  # type: ignore[return-value]

    @property
    def records(self) -> Records:
        return self.console.records

    def focus_main(self) -> None:
        if self.MAIN:
            for widget in self.query(self.MAIN):
                widget.focus()
                return

    # -- data in --------------------------------------------------------------------------

    @property
    def showing(self) -> bool:
        return self.console.active_tab == self.TAB

    def loaded(self, snapshot: Snapshot, kinds: set[str]) -> None:
        """A snapshot was merged into the records (``kinds`` says which)."""
        self.changed(Changes(kinds=kinds))

    def changed(self, changes: Changes) -> None:
        """A batch of events was merged: redraw now if this tab shows, else when it does.

        Streamed lines (a log, an output) are taken at once either way (:meth:`streamed`):
        they are not in the records, and a hidden tab must not lose them.
        """
        self.streamed(changes)
        if self.showing:
            self.refresh_view(changes)
        else:
            self._stale |= changes.kinds

    def shown(self) -> None:
        """The tab was opened: catch up with what changed while it was hidden."""
        if self._stale:
            kinds, self._stale = self._stale, set()
            self.refresh_view(Changes(kinds=kinds))

    def streamed(self, changes: Changes) -> None:
        """Take the streamed lines of ``changes`` (logs, output) even while hidden."""

    def refresh_view(self, changes: Changes) -> None:
        """Redraw what ``changes`` touched."""

    # -- actions out ----------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             done: Callable[[Any], None] | None = None, success: str | None = None) -> Worker[Any]:
        """Run one API call in a worker; ``done(result)`` runs on this tab when it succeeds.

        A failure becomes an error notification (its code and message). ``success`` is
        a notification to show when it worked.
        """
        source = self.console.source

        async def request() -> Any:
            return await source.call(method, params)

        return self.run_task(request, name=method, done=done, success=success)

    def run_task(self, task: Callable[[], Any], *, name: str, thread: bool = False,
                 done: Callable[[Any], None] | None = None, success: str | None = None) -> Worker[Any]:
        """Run ``task`` (a coroutine function, or a function with ``thread``) in a worker."""
        work = task if thread else task()
        worker = self.run_worker(work, name=name, group="calls", thread=thread, exit_on_error=False,
                                 description=name)

        def finished(result: Any) -> None:
            if success:
                self.notify(success, title=name, timeout=4)
            if done is not None:
                done(result)

        self._callbacks[worker] = finished
        return worker

    @on(Worker.StateChanged)
    @contained
    def _worker_done(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker not in self._callbacks:
            return
        if event.state == WorkerState.SUCCESS:
            callback = self._callbacks.pop(worker)
            if callback is not None:
                callback(worker.result)
        elif event.state == WorkerState.ERROR:
            self._callbacks.pop(worker, None)
            title, message = describe_error(worker.error)
            self.notify(message, title=f"{worker.name}: {title}", severity="error", timeout=8)
        elif event.state == WorkerState.CANCELLED:
            self._callbacks.pop(worker, None)

    def confirm(self, question: str, detail: str, then: Callable[[], None], *, yes: str = "Yes") -> None:
        """Ask first; ``then()`` runs only on yes."""

        def answered(answer: bool | None) -> None:
            if answer:
                then()

        self.app.push_screen(ConfirmScreen(question, detail, yes=yes), answered)

    def selected(self, table: Widget) -> str | None:
        key = getattr(table, "cursor_key", None)
        return key if isinstance(key, str) else None

    def need(self, value: Any, what: str) -> bool:
        """Tell the user when an action has nothing to act on."""
        if value:
            return True
        self.notify(f"choose {what} first", severity="warning", timeout=4)
        return False
