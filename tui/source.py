"""Where the console's data comes from: the live daemon, or recorded fixture data.

The app is built around one :class:`Source` (see :func:`attestables.tui.app.create_app`).
A source's :meth:`Source.stream` runs in the app's connection worker and posts the
messages of :mod:`attestables.tui.messages`; :meth:`Source.call` runs one API method for
an action (from an action's own worker). The live source is
:class:`attestables.tui.connection.LiveSource`; tests, snapshots and the docs'
screenshots use :class:`attestables.tui.fixture.FixtureSource`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from textual.message import Message

Post = Callable[[Message], object]


class Source(Protocol):
    """What the app needs of a data source."""

    @property
    def url(self) -> str:
        """Where the data comes from, for the status bar."""
        ...

    async def stream(self, post: Post) -> None:
        """Post connection states, snapshots and event batches until cancelled.

        Runs in the connection worker: it calls ``post`` and never touches a widget.
        """
        ...

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One API call: its result, or the typed error of :mod:`attestables.shared.errors`."""
        ...

    def reload(self) -> None:
        """Ask for a complete re-read of the records (after events were lost)."""
        ...

    async def close(self) -> None:
        """Let go of the connection, if there is one."""
        ...
