"""What the console tests share: waits on the app (``settle`` for workers, ``until`` for streamed data)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Log, Static

from .scenes import settle  # noqa: F401  (re-exported for the tests)


async def until(pilot: Pilot[Any], condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Let the app process messages until ``condition()`` holds (events from real processes).

    Each round waits for the app to go idle, then at most 50 ms for the next message from
    the daemon; it fails with ``what`` after ``timeout`` seconds.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await pilot.pause()
        value = condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)


def text_of(widget: Any) -> str:
    """What a widget shows, as plain text."""
    if isinstance(widget, Log):
        return "\n".join(widget.lines)
    content = widget.content if isinstance(widget, Static) else widget
    plain = getattr(content, "plain", None)
    if isinstance(plain, str):
        return plain
    console = Console(width=200, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(content)
    return capture.get()
