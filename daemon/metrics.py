"""``GET /metrics``: the daemon's counters in Prometheus' text exposition format (0.0.4).

Counts and latencies are taken from the event bus (a listener, so no manager knows about
metrics); states are counted from the database when scraped, so they are right after a
restart too. Every label value comes from a bounded set (registered services, operations,
outcomes, states), so the number of series stays bounded. No client library: the format
is a few lines of text.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

from attestables.shared import __version__, protocol

from .events import Event

if TYPE_CHECKING:
    from .daemon import Daemon

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. EAI messages cross loopback or a LAN: milliseconds matter. Builds take seconds.
EAI_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUILD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
RUN_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0)


class Histogram:
    """Cumulative buckets, a sum and a count, per label set."""

    def __init__(self, buckets: Iterable[float]) -> None:
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[tuple[str, str], ...], list[Any]] = {}

    def observe(self, value: float, **labels: str) -> None:
        if not math.isfinite(value) or value < 0:
            return
        key = tuple(sorted(labels.items()))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [[0] * len(self.buckets), 0.0, 0]
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            series[0][index] += 1
        series[1] += value
        series[2] += 1

    def lines(self, name: str) -> list[str]:
        out = []
        for key, (counts, total, count) in sorted(self._series.items()):
            labels = dict(key)
            running = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                running += n
                out.append(_sample(f"{name}_bucket", {**labels, "le": _number(bound)}, running))
            out.append(_sample(f"{name}_bucket", {**labels, "le": "+Inf"}, count))
            out.append(_sample(f"{name}_sum", labels, total))
            out.append(_sample(f"{name}_count", labels, count))
        return out


class Metrics:
    """Observes the bus from the start; :meth:`render` produces one scrape."""

    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon
        self.started = time.time()
        self.eai_messages: Counter[tuple[str, str, str]] = Counter()
        self.eai_latency = Histogram(EAI_BUCKETS)
        self.builds_finished: Counter[str] = Counter()
        self.build_duration = Histogram(BUILD_BUCKETS)
        self.runs_finished: Counter[tuple[str, str]] = Counter()
        self.run_duration = Histogram(RUN_BUCKETS)
        self.certificates: Counter[str] = Counter()
        self.reloads: Counter[str] = Counter()
        daemon.bus.listeners.append(self.observe)

    def observe(self, event: Event) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        if event.topic == protocol.TRACES_MESSAGE:
            service, operation = str(data.get("service_id")), str(data.get("op"))
            self.eai_messages[(service, operation, str(data.get("outcome")))] += 1
            latency = data.get("latency_ms")
            if isinstance(latency, (int, float)):
                self.eai_latency.observe(latency / 1000.0, service=service, operation=operation)
        elif event.topic == protocol.BUILDS_STATE and data.get("state") in protocol.BUILD_TERMINAL:
            self.builds_finished[data["state"]] += 1
            duration = data.get("duration_s")
            if isinstance(duration, (int, float)):
                self.build_duration.observe(float(duration), state=data["state"])
        elif event.topic == protocol.RUNS_STATE and data.get("state") in protocol.RUN_TERMINAL:
            self.runs_finished[(data["state"], str(data.get("reason") or ""))] += 1
            duration = _seconds_between(data.get("started_at"), data.get("finished_at"))
            if duration is not None:
                self.run_duration.observe(duration, state=data["state"])
        elif event.topic == protocol.CERTS_ISSUED:
            self.certificates["issued"] += 1
        elif event.topic == protocol.CERTS_REVOKED:
            self.certificates["revoked"] += 1

    async def render(self) -> str:
        daemon = self.daemon
        builds = await _count_states(daemon, "builds", protocol.BUILD_STATES)
        runs = await _count_states(daemon, "runs", protocol.RUN_STATES)
        out: list[str] = []

        def family(name: str, kind: str, help: str, samples: list[str]) -> None:
            out.append(f"# HELP {name} {help}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)

        family("attestables_info", "gauge", "The daemon's version and boot id.",
               [_sample("attestables_info", {"version": __version__, "boot_id": daemon.boot_id}, 1)])
        family("attestables_start_time_seconds", "gauge", "When the daemon started (Unix time).",
               [_sample("attestables_start_time_seconds", {}, round(self.started, 3))])
        family("attestables_builds", "gauge", "Builds in the database by state.",
               [_sample("attestables_builds", {"state": s}, n) for s, n in builds.items()])
        family("attestables_runs", "gauge", "Runs in the database by state.",
               [_sample("attestables_runs", {"state": s}, n) for s, n in runs.items()])
        family("attestables_builds_finished_total", "counter", "Builds that ended since the daemon started.",
               [_sample("attestables_builds_finished_total", {"state": s}, n)
                for s, n in sorted(self.builds_finished.items())])
        family("attestables_build_duration_seconds", "histogram", "Compile time of finished builds.",
               self.build_duration.lines("attestables_build_duration_seconds"))
        family("attestables_runs_finished_total", "counter", "Runs that ended since the daemon started.",
               [_sample("attestables_runs_finished_total", {"state": s, "reason": r}, n)
                for (s, r), n in sorted(self.runs_finished.items())])
        family("attestables_run_duration_seconds", "histogram", "Wall time of finished runs.",
               self.run_duration.lines("attestables_run_duration_seconds"))
        family("attestables_eai_messages_total", "counter",
               "READ/WRITE messages relayed to services, by service, operation and outcome.",
               [_sample("attestables_eai_messages_total", {"service": s, "operation": o, "status": st}, n)
                for (s, o, st), n in sorted(self.eai_messages.items())])
        family("attestables_eai_latency_seconds", "histogram",
               "Round trip of a relayed message to its service, by service and operation.",
               self.eai_latency.lines("attestables_eai_latency_seconds"))
        family("attestables_certificates_total", "counter", "Run certificates issued and revoked.",
               [_sample("attestables_certificates_total", {"event": e}, self.certificates[e])
                for e in ("issued", "revoked")])
        family("attestables_websocket_clients", "gauge", "API clients connected now.",
               [_sample("attestables_websocket_clients", {}, len(daemon.connections))])
        family("attestables_event_subscriptions", "gauge", "Event subscriptions open now.",
               [_sample("attestables_event_subscriptions", {}, daemon.bus.subscriber_count())])
        family("attestables_events_published_total", "counter", "Events published on the bus.",
               [_sample("attestables_events_published_total", {}, daemon.bus.published)])
        family("attestables_events_dropped_total", "counter",
               "Events dropped because a client's queue was full (each was reported as a gap).",
               [_sample("attestables_events_dropped_total", {}, daemon.stats["events_dropped"])])
        family("attestables_config_reloads_total", "counter", "SIGHUP reloads, by result.",
               [_sample("attestables_config_reloads_total", {"result": r}, self.reloads[r])
                for r in ("applied", "refused")])
        return "\n".join(out) + "\n"


async def _count_states(daemon: "Daemon", table: str, states: Iterable[str]) -> dict[str, int]:
    counts = {state: 0 for state in states}
    for row in await daemon.db.fetchall(f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state"):
        counts[row["state"]] = row["n"]
    return counts


def _seconds_between(start: Any, end: Any) -> float | None:
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except ValueError:
        return None


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value)) if not float(value).is_integer() else f"{value:.1f}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, labels: dict[str, str], value: float | int) -> str:
    if labels:
        inner = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
        return f"{name}{{{inner}}} {_number(value)}"
    return f"{name} {_number(value)}"
