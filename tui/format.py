"""How the console writes ids, sizes, times and states: short, fixed-width, no clock reads.

Nothing here looks at the current time or the local time zone, so the same record always
renders the same way (which keeps the snapshot tests and the docs' screenshots stable).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

# Styles of states and verification results, shared by every table.
STATE_STYLES = {
    "queued": "dim",
    "pending": "dim",
    "starting": "cyan",
    "running": "bold cyan",
    "succeeded": "green",
    "exited": "green",
    "failed": "bold red",
    "killed": "yellow",
    "lost": "red",
    "cancelled": "yellow",
    "affirming": "green",
    "warning": "yellow",
    "contraindicated": "bold red",
    "ok": "green",
    "revoked": "red",
}


def short_id(value: Any, length: int = 12) -> str:
    return "-" if not value else str(value)[:length]


def short_digest(value: Any, length: int = 12) -> str:
    return "-" if not value else str(value)[:length]


def size(value: Any) -> str:
    if value is None:
        return "-"
    n = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def clock(value: Any, millis: bool = False) -> str:
    """``HH:MM:SS`` (UTC, as the daemon wrote it) of an ISO time, or ``-``."""
    if not value:
        return "-"
    text = str(value)
    return text[11:23] if millis else text[11:19]


def when(value: Any) -> str:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) of an ISO time, or ``-``."""
    if not value:
        return "-"
    text = str(value)
    return f"{text[:10]} {text[11:19]}"


def duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 60:
        return f"{s:.2f} s"
    minutes, s = divmod(int(s), 60)
    return f"{minutes}m{s:02d}s"


def millis(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"


def state(value: Any) -> Text:
    """A state or status word, coloured."""
    word = str(value or "-")
    return Text(word, style=STATE_STYLES.get(word, ""))


def run_exit(run: dict[str, Any]) -> str:
    """How a run ended, in a few characters: ``0``, ``SIG15``, ``-``."""
    if run.get("signal"):
        return f"SIG{run['signal']}"
    if run.get("exit_code") is not None:
        return str(run["exit_code"])
    return "-"


def bool_word(value: Any, yes: str = "yes", no: str = "no") -> str:
    return yes if value else no
