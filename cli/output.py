"""Rendering for people and for programs: aligned tables, short ids, JSON documents.

Human output is plain text with no colour or box drawing, so it reads the same in a
terminal, a pipe and a log file. ``--json`` output is one JSON document per result,
or one JSON object per line for a followed stream.
"""

from __future__ import annotations

import codecs
import dataclasses
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, UTC
from typing import Any, TextIO

from attestables.shared import protocol
from attestables.shared.terminal import printable

SHORT_ID = 12
SHORT_DIGEST = 12


@dataclasses.dataclass
class Output:
    """Where a command writes, and whether it writes for people or for programs."""

    json: bool = False
    stdout: TextIO = dataclasses.field(default_factory=lambda: sys.stdout)
    stderr: TextIO = dataclasses.field(default_factory=lambda: sys.stderr)
    # Per stream of program output shown as text: a character split across chunks.
    _decoders: dict[str, codecs.IncrementalDecoder] = dataclasses.field(default_factory=dict, init=False, repr=False)

    def document(self, value: Any) -> None:
        """One JSON document (a result, or one event of a followed stream) on one line."""
        self.stdout.write(to_json(value) + "\n")
        self.stdout.flush()

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def lines(self, texts: Iterable[str]) -> None:
        for text in texts:
            self.line(text)

    def text(self, text: str) -> None:
        """Text exactly as given (no newline added)."""
        self.stdout.write(text)

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, kept out of stdout."""
        self.stderr.write(f"attestables: {text}\n")
        self.stderr.flush()

    def raw(self, stream: str, data: bytes) -> None:
        """Program output: its stdout to ours, anything else (its stderr, the daemon's
        remarks on the stream) to our stderr. Byte for byte into a file or a pipe; to a
        terminal as text with its control characters shown, not obeyed
        (:func:`attestables.shared.terminal.printable`: the program is whoever sent it)."""
        target = self.stdout if stream == "stdout" else self.stderr
        target.flush()
        binary = getattr(target, "buffer", None)
        if binary is None or _is_terminal(target):
            decoder = self._decoders.setdefault(stream, codecs.getincrementaldecoder("utf-8")("replace"))
            target.write(printable(decoder.decode(data)))
            target.flush()
        else:
            binary.write(data)
            binary.flush()

    def shown(self, text: str) -> str:
        """``text`` from a program (a compiler's line) as stdout may show it: with control
        characters shown on a terminal, as it is in a file or a pipe."""
        return printable(text) if _is_terminal(self.stdout) else text


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def to_json(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return protocol.encode(value).decode()


def short_id(value: Any) -> str:
    """The first characters of an id, enough to tell objects apart in a listing."""
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= SHORT_ID else text[:SHORT_ID].rstrip("-_")


def short_digest(value: Any) -> str:
    return "-" if not value else str(value)[:SHORT_DIGEST]


def format_size(size: Any) -> str:
    """Bytes in the largest binary unit that keeps the number at or above 1."""
    if size is None:
        return "-"
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{int(amount)} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def format_time(value: Any) -> str:
    """A timestamp (ISO 8601 text or epoch seconds) as local ``YYYY-MM-DD HH:MM:SS``."""
    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, (int, float)):
            moment = datetime.fromtimestamp(value, tz=UTC)
        else:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return str(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks.

    A numeric-looking header is not special-cased: every column is left aligned so
    the output stays friendly to ``cut`` and ``awk``.
    """
    text_rows = [[cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in text_rows:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))
    out = []
    for row in [list(headers), *text_rows]:
        out.append("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())
    return out


def key_values(pairs: Iterable[tuple[str, Any]]) -> list[str]:
    """``key   value`` lines with the values aligned."""
    pairs = [(key, cell(value)) for key, value in pairs]
    width = max((len(key) for key, _ in pairs), default=0)
    return [f"{key.ljust(width)}  {value}".rstrip() for key, value in pairs]


def diagnostic(entry: Mapping[str, Any]) -> str:
    """One compiler diagnostic as ``file:line:col: severity: message`` (what editors parse)."""
    place = [str(entry.get("file") or "<source>")]
    for key in ("line", "column"):
        if entry.get(key) is not None:
            place.append(str(entry[key]))
    return f"{':'.join(place)}: {entry.get('severity') or 'error'}: {entry.get('message', '')}"


def write_output_file(path: str, data: bytes, out: Output) -> None:
    """Write ``data`` to ``path`` (``-``: our stdout) and say so on stderr.

    For public material only (certificates, CRLs, policies): the file gets the usual
    mode (the umask decides), and an existing file is replaced.
    """
    from attestables.shared.errors import InvalidParams

    if path == "-":
        out.stdout.flush()
        binary = getattr(out.stdout, "buffer", None)
        if binary is None:
            out.stdout.write(data.decode("utf-8", "replace"))
        else:
            binary.write(data)
            binary.flush()
        return
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise InvalidParams(f"cannot write {path}: {exc.strerror or exc}") from None
    out.note(f"wrote {path}")


def format_epoch(value: Any) -> str:
    """POSIX seconds as local time, with the UTC time beside it (``iat``/``exp`` claims)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return cell(value)
    try:
        moment = datetime.fromtimestamp(value, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return str(value)
    return f"{format_time(value)} ({moment.strftime('%Y-%m-%dT%H:%M:%SZ')}, {int(value)})"
