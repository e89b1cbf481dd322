"""`attestables console` in a real terminal (a pty), not Textual's headless driver.

The terminal driver reads keys in a thread of its own and posts them to the app from a
context of its own; the Pilot tests post from the app's. A timer made while handling a
posted key's arrival once failed there (LookupError when it fired, a traceback on exit)
and only a real terminal showed it. Here the console connects to the benchmark's
stand-in daemon, which streams trace events while keys are pressed; the console must
show the tabs the keys ask for, quit on Ctrl+Q with status 0, never print a traceback,
and log no error of its own.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.bench.console import _start_server

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty and termios")

ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def read_for(fd: int, seconds: float) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the console has exited and closed the terminal
                break
            if not chunk:
                break
            out += chunk
    return out


def test_the_console_in_a_terminal_follows_keys_under_a_stream_and_quits_cleanly(tmp_path: Path) -> None:
    proc, url = asyncio.run(_start_server(2000, 8))
    token = tmp_path / "token"
    token.write_text("bench-token\n", encoding="utf-8")
    token.chmod(0o600)
    state = tmp_path / "state"
    env = {**os.environ, "TERM": "xterm-256color", "XDG_STATE_HOME": str(state), "COLUMNS": "120", "LINES": "40"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: the console, as an operator starts it
        try:
            os.execve(sys.executable, [sys.executable, "-c", "from attestables.cli.main import main; main()",
                                       "console", "--url", url, "--token-file", str(token)], env)
        finally:
            os._exit(127)
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        screen = read_for(fd, 4)
        for key in (b"6", b"\x1b[A", b"\x1b[A", b"\x1b[B", b"3", b"1", b"6", b"\x1b[B"):
            os.write(fd, key)
            screen += read_for(fd, 0.3)
        os.write(fd, b"\x11")  # Ctrl+Q
        screen += read_for(fd, 5)
        deadline = time.monotonic() + 10
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the console did not quit on Ctrl+Q")
    finally:
        os.close(fd)
        proc.terminate()
        proc.wait(timeout=10)
    text = ESCAPES.sub(b"", screen).decode("utf-8", "replace")
    assert "Traceback" not in text and "Error" not in text, text[-3000:]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert "Messages" in text and "following" in text  # the Trace tab, streaming
    assert "Compartment backends" in text  # the Overview tab ("1")
    log = state / "attestables" / "console.log"
    assert not log.exists() or log.read_text(encoding="utf-8") == ""
