"""The event bus: sequence numbers, filters, bounded replay ring and gap reporting."""

from __future__ import annotations

from attestables.daemon.events import EventBus


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, str, int, object]] = []

    def offer(self, subscription, topic, seq, data):
        self.got.append((subscription, topic, seq, data))


def test_filters_and_topics():
    bus = EventBus(100)
    sink = Sink()
    bus.subscribe(sink, frozenset({"runs.output"}), {"run_id": "r1"})
    bus.publish("runs.output", {"data": "a"}, run_id="r1")
    bus.publish("runs.output", {"data": "b"}, run_id="r2")
    bus.publish("runs.state", {"state": "x"}, run_id="r1")
    assert [g[3]["data"] for g in sink.got] == ["a"]


def test_since_replays_after_the_given_seq_in_order():
    bus = EventBus(100)
    seqs = [bus.publish("builds.log", {"line": str(i)}, build_id="b") for i in range(5)]
    sink = Sink()
    bus.subscribe(sink, frozenset({"builds.log"}), None, since=seqs[1])
    assert [g[2] for g in sink.got] == seqs[2:]
    live = bus.publish("builds.log", {"line": "live"}, build_id="b")
    assert sink.got[-1][2] == live


def test_a_ring_overrun_is_reported_as_a_gap():
    bus = EventBus(3)
    for i in range(10):
        bus.publish("builds.log", {"line": str(i)}, build_id="b")
    sink = Sink()
    bus.subscribe(sink, frozenset({"builds.log"}), None, since=0)
    topic, data = sink.got[0][1], sink.got[0][3]
    assert topic == "events.gap" and data["dropped"] == 7 and data["from_seq"] == 1 and data["to_seq"] == 7
    assert [g[2] for g in sink.got[1:]] == [8, 9, 10]


def test_the_ring_is_bounded_by_bytes():
    bus = EventBus(10_000, ring_bytes=100_000)
    for _ in range(100):
        bus.publish("runs.output", {"data": "x" * 10_000}, run_id="r")
    sink = Sink()
    bus.subscribe(sink, frozenset({"runs.output"}), None, since=0)
    replayed = [g for g in sink.got if g[1] == "runs.output"]
    assert 1 <= len(replayed) <= 10
    assert sink.got[0][1] == "events.gap"


def test_unsubscribe_only_by_owner():
    bus = EventBus(10)
    owner, other = object(), object()
    sub = bus.subscribe(Sink(), frozenset({"runs.state"}), None, owner=owner)
    assert not bus.unsubscribe(sub, owner=other)
    assert bus.unsubscribe(sub, owner=owner)
    assert bus.subscriber_count() == 0


def test_a_filtered_replay_reports_a_gap_only_for_its_own_lost_events():
    bus = EventBus(4)
    for i in range(10):  # another run's flood pushes everything older out of the ring
        bus.publish("runs.output", {"data": str(i)}, run_id="busy")
    mine = bus.publish("runs.state", {"state": "running"}, run_id="mine")
    sink = Sink()
    bus.subscribe(sink, frozenset({"runs.state", "runs.output"}), {"run_id": "mine"}, since=0)
    assert [g[1] for g in sink.got] == ["runs.state"] and sink.got[0][2] == mine
    busy = Sink()
    bus.subscribe(busy, frozenset({"runs.output"}), {"run_id": "busy"}, since=0)
    assert busy.got[0][1] == "events.gap"  # its own events were lost: it is told
