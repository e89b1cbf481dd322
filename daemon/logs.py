"""The daemon's log: one line per event, in the form its reader wants, with secrets removed.

Three formats (setting ``log_format``):

- ``text``: ``2025-01-31T12:00:00.123Z INFO attestables.daemon: message`` for a terminal;
- ``journal``: ``<6>attestables.daemon: message``: a syslog priority prefix and no
  timestamp, because journald stamps and ranks each line itself (``sd-daemon(3)``);
- ``json``: one JSON object per line (``ts``, ``level``, ``logger``, ``message``, and
  ``exception`` when there is one) for log shippers.

``auto`` (the default) picks ``journal`` when stderr is the journal's stream
(``$JOURNAL_STREAM``), else ``text``. A message or traceback that spans lines is joined
into one (newlines written as ``\\n``), so a line is always an event.

Secrets never reach the output: the API token and the CA passphrase are registered with
:func:`add_secret` once known and replaced by ``[redacted]`` wherever they appear, as
are ``Bearer`` credentials and PEM private-key blocks. That is a last line of defence;
the code does not log secrets in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

from .systemd import journal_stream_matches

REDACTED = "[redacted]"
# A secret shorter than this is not searched for: redacting every "abc" would garble the log.
MIN_SECRET_LEN = 8

# syslog priorities (RFC 5424) as journald reads them from a "<N>" prefix.
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}

_PATTERNS = (
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL),
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"),
)

_secrets: set[str] = set()


def add_secret(value: str | bytes | None) -> None:
    """Never let ``value`` appear in the log (the API token, the CA passphrase)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value:
        value = value.strip()
        if len(value) >= MIN_SECRET_LEN:
            _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _PATTERNS[0].sub(REDACTED, text)
    return _PATTERNS[1].sub(lambda m: m.group(1) + REDACTED, text)


def _one_line(text: str) -> str:
    return text.replace("\r", "").replace("\n", "\\n")


def _priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


class _LineFormatter(logging.Formatter):
    """Shared by the formats: the message with its exception, redacted, on one line."""

    def body(self, record: logging.LogRecord) -> tuple[str, str]:
        message = record.getMessage()
        exception = ""
        if record.exc_info:
            exception = self.formatException(record.exc_info)
        elif record.exc_text:
            exception = record.exc_text
        if record.stack_info:
            exception = (exception + "\n" if exception else "") + self.formatStack(record.stack_info)
        return redact(message), redact(exception)


class TextFormatter(_LineFormatter):
    def format(self, record: logging.LogRecord) -> str:
        message, exception = self.body(record)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"{stamp} {record.levelname} {record.name}: {message}"
        return _one_line(line + (f"\n{exception}" if exception else ""))


class JournalFormatter(_LineFormatter):
    def format(self, record: logging.LogRecord) -> str:
        message, exception = self.body(record)
        line = f"<{_priority(record.levelno)}>{record.name}: {message}"
        return _one_line(line + (f"\n{exception}" if exception else ""))


class JsonFormatter(_LineFormatter):
    def format(self, record: logging.LogRecord) -> str:
        message, exception = self.body(record)
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if exception:
            entry["exception"] = exception
        return json.dumps(entry, ensure_ascii=False)


def resolve_format(log_format: str, stream: TextIO | None = None) -> str:
    """``auto`` becomes ``journal`` under journald, else ``text``."""
    if log_format != "auto":
        return log_format
    stream = sys.stderr if stream is None else stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return "text"
    return "journal" if journal_stream_matches(fd) else "text"


def setup_logging(level: str, log_format: str = "auto", stream: TextIO | None = None) -> str:
    """Send every log record to ``stream`` (stderr) in ``log_format``; returns the format used."""
    chosen = resolve_format(log_format, stream)
    formatter = {"text": TextFormatter, "journal": JournalFormatter, "json": JsonFormatter}[chosen]()
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
    # aiohttp's access log would add a line per request (and per metrics scrape).
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return chosen


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
