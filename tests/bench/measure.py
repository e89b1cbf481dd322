"""What every benchmark shares: medians, the result record, interleaving, RSS and CPU
sampling."""

from __future__ import annotations

import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

MIB = 1024 * 1024


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): a value that was really measured."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[rank])


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def summary_ms(samples_s: Sequence[float]) -> dict[str, Any]:
    """p50/p10/p90 and the raw samples of a list of durations, in milliseconds."""
    return {
        "p50": ms(median(samples_s)),
        "p10": ms(percentile(samples_s, 10)),
        "p90": ms(percentile(samples_s, 90)),
        "samples": [ms(s) for s in samples_s],
    }


def interleaved(repeats: int, arms: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(repeat, arm) in an order that alternates each repeat, so slow drift of the
    machine (page cache, CPU frequency, other load) falls on every arm alike."""
    for i in range(repeats):
        for arm in (arms if i % 2 == 0 else list(reversed(arms))):
            yield i, arm


@dataclass
class Result:
    """One top-level key of ``bench-results.json``."""

    key: str
    value: float
    unit: str
    goal: float
    goal_op: str  # "<=" or ">="
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return self.value <= self.goal if self.goal_op == "<=" else self.value >= self.goal

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "goal": self.goal, "goal_op": self.goal_op,
                "met": self.met, **self.extra}


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), in bytes."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's RSS from a thread (so a busy event loop cannot delay it)."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"rss-sampler {pid}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(rss_bytes(self.pid))
            except (OSError, RuntimeError):
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) so far, in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14, 15)


class CpuSampler:
    """Samples the CPU time of named processes from a thread, with the monotonic clock,
    so that the CPU each used during an interval known only afterwards can be read."""

    def __init__(self, pids: dict[str, int], interval_s: float = 0.02) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.samples: list[tuple[int, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic_ns(), {n: cpu_seconds(p) for n, p in self.pids.items()}))
            except (OSError, IndexError, ValueError):
                return
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "CpuSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def used(self, name: str, begin_ns: int, end_ns: int) -> float | None:
        """CPU seconds ``name`` used from ``begin_ns`` to ``end_ns`` (monotonic): the
        difference between the first and last samples inside, scaled to the interval.
        None when the interval is too short to hold two samples (the kernel counts CPU
        time in clock ticks, 10 ms: an interval should span many)."""
        inside = [(t, cpu[name]) for t, cpu in self.samples if begin_ns <= t <= end_ns]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return None
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) * (end_ns - begin_ns) / (t1 - t0)
