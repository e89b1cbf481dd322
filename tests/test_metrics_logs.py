"""Logs (one line per event, journald and JSON forms, no secrets) and ``GET /metrics``."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from attestables.daemon import logs
from attestables.daemon.events import Event
from attestables.daemon.metrics import Histogram, Metrics, _sample
from attestables.shared.client import Client
from attestables.shared.local_daemon import LocalDaemon

from .conftest import build_source, c_source, run_build

TOKEN = "tok_" + "x" * 40


@pytest.fixture
def captured() -> Any:
    """A logger writing to a string in the format given, with the secrets list restored after."""
    saved = set(logs._secrets)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def setup(log_format: str) -> io.StringIO:
        stream = io.StringIO()
        assert logs.setup_logging("debug", log_format, stream=stream) == log_format
        return stream

    yield setup
    root.handlers[:] = handlers
    root.setLevel(level)
    logs._secrets.clear()
    logs._secrets.update(saved)


# -- logs --------------------------------------------------------------------------------------


def test_journal_lines_have_a_priority_prefix_and_no_timestamp(captured: Any) -> None:
    stream = captured("journal")
    log = logging.getLogger("attestables.test")
    log.info("listening on %s", "127.0.0.1:7480")
    log.warning("slow client")
    log.error("cannot start")
    log.debug("detail")
    assert stream.getvalue().splitlines() == [
        "<6>attestables.test: listening on 127.0.0.1:7480",
        "<4>attestables.test: slow client",
        "<3>attestables.test: cannot start",
        "<7>attestables.test: detail",
    ]


def test_a_traceback_stays_on_the_line_of_its_event(captured: Any) -> None:
    stream = captured("text")
    try:
        raise ValueError("first\nsecond")
    except ValueError:
        logging.getLogger("attestables.test").exception("it failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ERROR attestables\.test: it failed\\nTraceback", lines[0])
    assert "ValueError: first\\nsecond" in lines[0]


def test_json_lines_parse_and_carry_the_exception(captured: Any) -> None:
    stream = captured("json")
    log = logging.getLogger("attestables.test")
    log.info("hello %d", 1)
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("boom")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "hello 1" and first["level"] == "info" and first["logger"] == "attestables.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert second["level"] == "error" and "ZeroDivisionError" in second["exception"]


def test_secrets_are_redacted_in_every_format(captured: Any) -> None:
    logs.add_secret(TOKEN)
    logs.add_secret("short")  # too short to search for without garbling the log
    key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----"
    for log_format in ("text", "journal", "json"):
        stream = captured(log_format)
        log = logging.getLogger("attestables.test")
        log.warning("token %s in a message", TOKEN)
        log.warning("header Authorization: Bearer abcdefghij.klm")
        log.warning("a key: %s", key)
        log.warning("short words stay")
        out = stream.getvalue()
        assert TOKEN not in out and "abcdefghij" not in out and "MIGHAgEA" not in out
        assert out.count(logs.REDACTED) == 3
        assert "short words stay" in out


def test_auto_format_is_text_off_the_journal(captured: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    assert logs.resolve_format("auto", io.StringIO()) == "text"


# -- metrics, in-process -----------------------------------------------------------------------


def test_histogram_buckets_are_cumulative_and_labels_escaped() -> None:
    h = Histogram((0.1, 1.0))
    for value in (0.05, 0.5, 0.5, 3.0):
        h.observe(value, service='a"b')
    assert h.lines("x") == [
        'x_bucket{service="a\\"b",le="0.1"} 1',
        'x_bucket{service="a\\"b",le="1.0"} 3',
        'x_bucket{service="a\\"b",le="+Inf"} 4',
        'x_sum{service="a\\"b"} 4.05',
        'x_count{service="a\\"b"} 4',
    ]
    assert _sample("y", {"l": "back\\slash\nnew"}, 2) == 'y{l="back\\\\slash\\nnew"} 2'


class _FakeBus:
    def __init__(self) -> None:
        self.listeners: list[Any] = []
        self.published = 7

    def subscriber_count(self) -> int:
        return 2


class _FakeDb:
    async def fetchall(self, sql: str) -> list[dict[str, Any]]:
        return [{"state": "succeeded", "n": 4}] if "builds" in sql else [{"state": "running", "n": 1}]


class _FakeDaemon:
    def __init__(self) -> None:
        self.bus = _FakeBus()
        self.db = _FakeDb()
        self.boot_id = "b00t"
        self.connections = {object(), object(), object()}
        self.stats = {"events_dropped": 5}


async def test_metrics_count_eai_messages_by_service_operation_status_and_time_them() -> None:
    daemon = _FakeDaemon()
    metrics = Metrics(daemon)  # type: ignore[arg-type]
    [observe] = daemon.bus.listeners
    trace = {"service_id": "store", "op": "read", "outcome": "ok", "latency_ms": 3.0}
    observe(Event(1, "traces.message", {}, trace, 0))
    observe(Event(2, "traces.message", {}, {**trace, "latency_ms": 30.0}, 0))
    observe(Event(3, "traces.message", {}, {**trace, "op": "write", "outcome": "forbidden"}, 0))
    observe(Event(4, "builds.state", {}, {"state": "succeeded", "duration_s": 0.7}, 0))
    observe(Event(5, "builds.state", {}, {"state": "running"}, 0))  # not terminal: not counted
    observe(Event(6, "runs.state", {}, {"state": "killed", "reason": "wall_limit", "started_at": "2025-01-01T00:00:00Z",
                                        "finished_at": "2025-01-01T00:00:02.500Z"}, 0))
    text = await metrics.render()
    assert 'attestables_eai_messages_total{service="store",operation="read",status="ok"} 2' in text
    assert 'attestables_eai_messages_total{service="store",operation="write",status="forbidden"} 1' in text
    assert 'attestables_eai_latency_seconds_bucket{operation="read",service="store",le="0.005"} 1' in text
    assert 'attestables_eai_latency_seconds_count{operation="read",service="store"} 2' in text
    assert 'attestables_builds{state="succeeded"} 4' in text and 'attestables_builds{state="failed"} 0' in text
    assert 'attestables_runs{state="running"} 1' in text
    assert 'attestables_builds_finished_total{state="succeeded"} 1' in text
    assert 'attestables_runs_finished_total{state="killed",reason="wall_limit"} 1' in text
    assert 'attestables_run_duration_seconds_sum{state="killed"} 2.5' in text
    assert "attestables_websocket_clients 3" in text
    assert "attestables_events_dropped_total 5" in text
    # Every family is announced once, with HELP and TYPE, and every sample line parses.
    names = re.findall(r"^# TYPE (\S+) (counter|gauge|histogram)$", text, flags=re.MULTILINE)
    assert len(names) == len({n for n, _ in names}) >= 15
    for line in text.splitlines():
        assert line.startswith("# ") or re.fullmatch(r'[a-z_]+(\{[^}]*\})? -?[0-9.e+-]+', line), line


# -- a real daemon: /metrics access, reload of it, logs without secrets -------------------------


async def test_metrics_endpoint_access_by_config_and_logs_without_secrets(tmp_path: Path) -> None:
    log_path = tmp_path / "daemon.log"
    log = open(log_path, "wb")  # noqa: SIM115
    local = LocalDaemon(tmp_path / "state", log=log, config={"log_format": "json", "metrics_access": "token",
                                                            "stop_grace_s": 1.0})
    await local.start()
    try:
        token = local.token
        url = f"{local.http_url}/metrics"
        async with aiohttp.ClientSession() as http, Client.connect(local.url, token) as client:
            async with http.get(url) as resp:
                assert resp.status == 401
            async with http.get(url, headers={"Authorization": "Bearer wrong-token-0123456789"}) as resp:
                assert resp.status == 401
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                text = await resp.text()
            assert "attestables_websocket_clients 1" in text

            built = await build_source(client, "m.c", c_source('int main(void) { puts("m"); return 0; }'))
            await run_build(client, built["build_id"])
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                text = await resp.text()
            assert 'attestables_builds{state="succeeded"} 1' in text
            assert 'attestables_builds_finished_total{state="succeeded"} 1' in text
            assert 'attestables_runs_finished_total{state="exited",reason=""} 1' in text
            assert re.search(r'attestables_build_duration_seconds_count\{state="succeeded"\} 1', text)

            # Opened by a reload (SIGHUP), then switched off: the client stays connected throughout.
            config = tmp_path / "state.toml"
            for access, status in (("open", 200), ("off", 404)):
                config.write_text(config.read_text().replace('"token"', f'"{access}"').replace('"open"', f'"{access}"'))
                os.kill(local.proc.pid, signal.SIGHUP)  # type: ignore[union-attr]
                async with asyncio.timeout(10):
                    while True:
                        async with http.get(url) as resp:
                            if resp.status == status:
                                break
                        await asyncio.sleep(0.05)
            assert (await client.call("system.info"))["version"]
    finally:
        await local.stop()
        log.close()
    lines = log_path.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line one JSON object
    assert any(e["message"].startswith("refused a metrics scrape") for e in entries)
    assert any(e["message"] == "configuration reloaded: metrics_access" for e in entries)
    assert token not in log_path.read_text() and "wrong-token" not in log_path.read_text()


def test_the_daemon_refuses_an_unknown_log_format(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "attestables.cli.main", "daemon", "--state-dir", str(tmp_path),
                          "--log-format", "xml"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice: 'xml'" in out.stderr
