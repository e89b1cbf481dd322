"""The daemon's reaper takes exited children nobody waits for, and never one of its own commands."""

from __future__ import annotations

import asyncio
import subprocess
import threading

import pytest

from attestables.daemon.sandbox import reaper


@pytest.fixture
def sweeping(monkeypatch: pytest.MonkeyPatch):
    # collect() only acts once the daemon is a subreaper; here it looks at this test
    # process's own children, which is all it needs.
    monkeypatch.setattr(reaper.REAPER, "enabled", True)
    yield reaper.REAPER


async def test_a_command_keeps_its_exit_status_while_the_reaper_sweeps(sweeping: reaper.Reaper) -> None:
    loop = asyncio.get_running_loop()
    results: list[subprocess.CompletedProcess[str]] = []
    errors: list[BaseException] = []

    def command() -> None:
        try:
            for _ in range(20):
                results.append(reaper.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10,
                                          env={"PATH": "/usr/bin:/bin"}, text=True))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=command)
    worker.start()
    while worker.is_alive():
        sweeping.collect(loop)  # as the daemon does, from its loop, while commands run in threads
        await asyncio.sleep(0)
    worker.join()
    assert not errors
    assert [(r.returncode, r.stdout, r.stderr) for r in results] == [(3, "out\n", "err\n")] * 20
    assert not sweeping.live  # nothing left registered


async def test_an_exited_child_nobody_waits_for_is_reaped(sweeping: reaper.Reaper) -> None:
    proc = subprocess.Popen(["true"])  # a child whose exit nobody collects, as a leftover is
    try:
        for _ in range(100):
            state = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                break
            await asyncio.sleep(0.01)
        assert sweeping.collect(asyncio.get_running_loop()) == 0  # no sandbox was ended
        with pytest.raises(FileNotFoundError):
            open(f"/proc/{proc.pid}/stat")
    finally:
        proc.returncode = 0  # reaped by the sweep, not by Popen


def test_a_command_that_outlives_its_timeout_is_killed_and_waited_for() -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        reaper.run(["sleep", "5"], timeout=0.2, env={"PATH": "/usr/bin:/bin"})
    assert not reaper.REAPER.live
