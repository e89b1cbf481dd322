"""What the console knows about the daemon's objects: bounded, merged from snapshots and events.

The app owns one :class:`Records`, updated only by its message handlers (``Loaded`` and
``EventBatch``); the tabs read it to draw their views. Every collection has a maximum
size: the oldest builds, runs and certificates are forgotten, trace rows live in a ring.
States only move forward: an event or snapshot that arrives late never takes a build or
run back to an earlier state.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from attestables.shared import protocol
from attestables.shared.client import Event

from .messages import Snapshot

MAX_BUILDS = 500
MAX_RUNS = 500
MAX_CERTS = 500
MAX_TRACES = 5000

_BUILD_RANK = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}
_RUN_RANK = {"pending": 0, "starting": 1, "running": 2, "exited": 3, "failed": 3, "killed": 3, "lost": 3}


# A trace row's fields (docs/api.md, ``traces.message``) other than its verification, and
# the types each may have (null too, but for the id). A value of another type (a daemon
# with a bug, or of another version) is left out, as if the field were missing: the tabs
# draw what is there.
_NULL = type(None)
_INT, _NUMBER, _STR = (int, _NULL), (int, float, _NULL), (str, _NULL)
TRACE_TYPES: dict[str, tuple[type, ...]] = {
    "id": (int,), "ts": _STR, "run_id": _STR, "service_id": _STR, "op": _STR, "request_id": _INT,
    "bytes_in": _INT, "bytes_out": _INT, "sha256_in": _STR, "sha256_out": _STR, "latency_ms": _NUMBER,
    "http_status": _INT, "outcome": _STR,
}
TRACE_FIELDS = tuple(TRACE_TYPES)


class Reason(msgspec.Struct, frozen=True, gc=False):
    code: str
    message: str


class Verdict(msgspec.Struct, frozen=True, gc=False):
    """A trace row's verification, as the service reported it (immutable)."""

    status: str | None = None
    reasons: tuple[Reason, ...] = ()


NO_VERDICT = Verdict()


def trace_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """A trace row as the console keeps it: its known fields, scalar values only, and the
    verification as a frozen :class:`Verdict`.

    Such a dict holds nothing the cycle collector tracks, so CPython never tracks the dict
    either: the 5,000 rows kept are not walked by every full collection, and a flood of
    rows is not promoted into the oldest generation to be walked there (which made full
    collections both longer and more frequent; docs/benchmarks.md, console)."""
    row = {key: value for key, types in TRACE_TYPES.items() if type(value := data.get(key)) in types}
    row["verification"] = _verdict(data.get("verification"))
    return row


def _verdict(value: Any) -> Verdict:
    if not isinstance(value, Mapping):
        return NO_VERDICT
    status = value.get("status")
    reasons = value.get("reasons")
    return Verdict(status if isinstance(status, str) else None,
                   tuple(Reason(str(r.get("code")), str(r.get("message"))) for r in reasons if isinstance(r, Mapping))
                   if isinstance(reasons, list) else ())


def _id(data: Mapping[str, Any], field: str) -> str | None:
    """A record's id from an event, or None when it is not a non-empty string (a record
    without one cannot be kept: a daemon with a bug, or of another version)."""
    value = data.get(field)
    return value if isinstance(value, str) and value else None


def _keyed(records: Iterable[Any], field: str) -> list[dict[str, Any]]:
    """The records of a list that have a usable id (see :func:`_id`)."""
    return [r for r in records if isinstance(r, dict) and _id(r, field)]


def _newer(rank: dict[str, int], old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """May ``new`` replace ``old``? Not if it is an earlier state (a late event or snapshot)."""
    if old is None:
        return True
    return rank.get(str(new.get("state")), 0) >= rank.get(str(old.get("state")), 0)


class Bounded(OrderedDict[str, dict[str, Any]]):
    """Records by id, newest last, at most ``limit`` (the oldest are forgotten)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.forgotten = 0

    def put(self, key: str, record: dict[str, Any]) -> None:
        self[key] = record
        while len(self) > self.limit:
            self.popitem(last=False)
            self.forgotten += 1

    def newest_first(self) -> list[dict[str, Any]]:
        return list(reversed(self.values()))


@dataclass
class Changes:
    """What one batch of events changed, for the tabs to redraw only that."""

    kinds: set[str] = field(default_factory=set)
    traces: list[dict[str, Any]] = field(default_factory=list)
    build_log: list[Event] = field(default_factory=list)
    run_output: list[Event] = field(default_factory=list)
    lost: int = 0


class Records:
    """Every record the tabs show."""

    def __init__(self) -> None:
        self.info: dict[str, Any] | None = None
        self.ca: dict[str, Any] | None = None
        self.sources: dict[str, dict[str, Any]] = {}
        self.builds = Bounded(MAX_BUILDS)
        self.runs = Bounded(MAX_RUNS)
        self.certs = Bounded(MAX_CERTS)  # by run id
        self.services: dict[str, dict[str, Any]] = {}
        self.traces: deque[dict[str, Any]] = deque(maxlen=MAX_TRACES)
        self.trace_count = 0
        self.events = 0
        self.lost = 0
        self.loaded = False

    def load(self, snapshot: Snapshot) -> set[str]:
        """Merge a snapshot; returns the kinds of record it carried."""
        kinds: set[str] = set()
        if snapshot.info is not None:
            self.info = snapshot.info
            kinds.add("info")
        if snapshot.ca is not None:
            self.ca = snapshot.ca
            kinds.add("ca")
        if snapshot.sources is not None:
            self.sources = {s["source_id"]: s for s in _keyed(snapshot.sources, "source_id")}
            kinds.add("sources")
        if snapshot.services is not None:
            self.services = {s["service_id"]: s for s in _keyed(snapshot.services, "service_id")}
            kinds.add("services")
        if snapshot.builds is not None:
            self._replace(self.builds, "build_id", _keyed(snapshot.builds, "build_id"), _BUILD_RANK,
                          snapshot.complete)
            kinds.add("builds")
        if snapshot.runs is not None:
            self._replace(self.runs, "run_id", _keyed(snapshot.runs, "run_id"), _RUN_RANK, snapshot.complete)
            kinds.add("runs")
        if snapshot.certs is not None:
            if snapshot.complete:
                self.certs.clear()
            for cert in sorted(_keyed(snapshot.certs, "run_id"), key=lambda c: str(c.get("created_at"))):
                self.certs.put(cert["run_id"], cert)
            kinds.add("certs")
        if snapshot.traces is not None:
            if snapshot.complete:
                self.traces.clear()
            known = {t["id"] for t in self.traces}
            rows = (trace_record(t) for t in snapshot.traces if isinstance(t, Mapping))
            self.traces.extend(row for row in rows if "id" in row and row["id"] not in known)
            kinds.add("traces")
        if snapshot.trace_count is not None:
            self.trace_count = max(self.trace_count if not snapshot.complete else 0, snapshot.trace_count)
        self.loaded = self.loaded or snapshot.complete
        return kinds

    @staticmethod
    def _replace(target: Bounded, key: str, records: list[dict[str, Any]], rank: dict[str, int],
                 complete: bool) -> None:
        old = dict(target)
        if complete:
            target.clear()
        # Lists come newest first; keep ours oldest first.
        for record in sorted(records, key=lambda r: (str(r.get("created_at")), r[key])):
            previous = old.get(record[key])
            target.put(record[key], record if _newer(rank, previous, record) else previous)  # type: ignore[arg-type]

    def apply(self, events: Iterable[Event], dropped: int = 0) -> Changes:
        """Merge a batch of events, oldest first."""
        changes = Changes(lost=dropped)
        for event in events:
            self.events += 1
            topic, data = event.topic, event.data
            if not isinstance(data, dict):
                continue
            if topic == protocol.TRACES_MESSAGE:
                row = trace_record(data)
                if "id" not in row:
                    continue  # no identity to key it by (a daemon with a bug): not kept
                self.traces.append(row)
                self.trace_count = max(self.trace_count, int(row.get("id") or 0))
                changes.traces.append(row)
            elif topic == protocol.BUILDS_LOG:
                changes.build_log.append(event)
            elif topic == protocol.RUNS_OUTPUT:
                changes.run_output.append(event)
            elif topic == protocol.BUILDS_STATE and (build_id := _id(data, "build_id")):
                if _newer(_BUILD_RANK, self.builds.get(build_id), data):
                    self.builds.put(build_id, data)
                    changes.kinds.add("builds")
            elif topic == protocol.RUNS_STATE and (run_id := _id(data, "run_id")):
                if _newer(_RUN_RANK, self.runs.get(run_id), data):
                    self.runs.put(run_id, data)
                    changes.kinds.add("runs")
            elif topic == protocol.CERTS_ISSUED and (run_id := _id(data, "run_id")):
                self.certs.put(run_id, {**data, "revoked": False, "revoked_at": None, "revocation_reason": None})
                changes.kinds.add("certs")
            elif topic == protocol.CERTS_REVOKED and (run_id := _id(data, "run_id")):
                cert = self.certs.get(run_id) or {"serial": data.get("serial"), "run_id": run_id}
                self.certs.put(run_id, {**cert, "revoked": True, "revocation_reason": data.get("reason")})
                changes.kinds.add("certs")
            elif topic == protocol.EVENTS_GAP and type(dropped := data.get("dropped")) is int and dropped > 0:
                changes.lost += dropped
        if changes.traces:
            changes.kinds.add("traces")
        self.lost += changes.lost
        return changes

    def update(self, kind: str, record: dict[str, Any]) -> None:
        """A record an action's call returned (e.g. the stopped run)."""
        if kind == "runs":
            if _newer(_RUN_RANK, self.runs.get(record["run_id"]), record):
                self.runs.put(record["run_id"], record)
        elif kind == "builds":
            if _newer(_BUILD_RANK, self.builds.get(record["build_id"]), record):
                self.builds.put(record["build_id"], record)
        elif kind == "certs":
            self.certs.put(record["run_id"], record)
        elif kind == "services":
            self.services[record["service_id"]] = record

    # -- what several tabs ask ------------------------------------------------------------

    def toolchains(self) -> list[dict[str, Any]]:
        return list((self.info or {}).get("toolchains") or [])

    def backends(self) -> list[dict[str, Any]]:
        return list((self.info or {}).get("backends") or [])

    def service_health(self, service_id: str, window: int = 20) -> tuple[str, str]:
        """(word, detail) from the service's latest trace rows: ``ok``, ``failing``, ``idle``."""
        rows = [t for t in reversed(self.traces) if t.get("service_id") == service_id][:window]
        if not rows:
            return "idle", "no messages yet"
        ok = sum(1 for t in rows if t.get("outcome") == "ok")
        last = rows[0]
        detail = f"{ok}/{len(rows)} ok · last {last.get('outcome')} at {str(last.get('ts', ''))[11:19]}"
        if last.get("outcome") == "ok":
            return "ok", detail
        if last.get("outcome") in ("unreachable", "timeout", "transport_error", "bad_answer"):
            return "failing", detail
        return "refusing", detail
