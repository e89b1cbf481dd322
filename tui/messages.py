"""The typed messages that carry data into the console.

The connection worker (:mod:`attestables.tui.connection`) and the fixture source
(:mod:`attestables.tui.fixture`) post exactly these, and nothing else reaches the
widgets: tests and snapshots feed recorded data through the same path as the live
daemon. Handlers on the app and the tabs own all state; workers never touch a widget.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from attestables.shared.client import Event
from textual.message import Message

# Connection states shown in the status bar.
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class Snapshot:
    """Records read with calls (not events). A field left ``None`` was not re-read.

    ``complete`` is true for the full read after each (re)connect: tables then drop rows
    the daemon no longer has. Periodic refreshes re-read only what has no events.
    """

    info: dict[str, Any] | None = None
    ca: dict[str, Any] | None = None
    sources: list[dict[str, Any]] | None = None
    builds: list[dict[str, Any]] | None = None
    runs: list[dict[str, Any]] | None = None
    certs: list[dict[str, Any]] | None = None
    services: list[dict[str, Any]] | None = None
    traces: list[dict[str, Any]] | None = None
    trace_count: int | None = None
    complete: bool = False


class ConnectionChanged(Message):
    """The link to the daemon changed: connecting, connected, or lost (with the next try)."""

    def __init__(self, state: str, url: str, *, detail: str = "", attempt: int = 0,
                 retry_in: float | None = None, server_version: str | None = None) -> None:
        super().__init__()
        self.state = state
        self.url = url
        self.detail = detail
        self.attempt = attempt
        self.retry_in = retry_in
        self.server_version = server_version

    def can_replace(self, message: Message) -> bool:
        # Only the newest connection state matters to the status bar.
        return isinstance(message, ConnectionChanged)


class Loaded(Message):
    """A :class:`Snapshot` was read."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class EventBatch(Message):
    """Events of every topic, in arrival order, collected over one flush interval.

    ``dropped`` counts events the console itself had to let go of (its pending buffer was
    full because the screen could not keep up); ``events.gap`` events in ``events`` count
    those lost before they reached the console. ``handled`` is set by the app once the
    batch is applied: the connection worker sends the next batch only then, so a busy
    screen receives fewer, larger batches instead of a growing queue.
    """

    def __init__(self, events: tuple[Event, ...], dropped: int = 0) -> None:
        super().__init__()
        self.events = events
        self.dropped = dropped
        self.handled = False

    def by_topic(self) -> dict[str, list[Any]]:
        """Each topic's event data, in order."""
        grouped: dict[str, list[Any]] = defaultdict(list)
        for event in self.events:
            grouped[event.topic].append(event)
        return grouped


@dataclass
class LogLoaded(Message):
    """The stored log of one build or run (``builds.logs``/``runs.logs``), up to ``seq``."""

    kind: str  # "build" or "run"
    object_id: str
    items: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0
    truncated: bool = False


@dataclass
class SourceLoaded(Message):
    """One source version with its content, to show (scrolled to ``line`` if given)."""

    record: dict[str, Any]
    line: int | None = None


@dataclass
class AttestationLoaded(Message):
    """A run's certificate record with its PEM, chain and attestation document (``certs.get``)."""

    run_id: str
    certificate: dict[str, Any]


@dataclass
class Verified(Message):
    """The verifier's result for a run's certificate against a policy file."""

    run_id: str
    policy: str
    result: dict[str, Any]
