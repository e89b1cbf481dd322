"""Structured diagnostics from a compiler's (gcc or clang) and linker's text output.

The compile log is kept verbatim for people (with gcc's caret lines); this module pulls
out what a console or a client wants to list. Decisions:

- ``severity`` is one of ``'error'``, ``'warning'``, ``'note'``. ``fatal error`` and
  ``sorry, unimplemented`` become ``'error'``; clang's ``remark`` becomes ``'note'``;
  GNU as's ``Error``/``Warning`` are lower-cased.
- ``origin`` says who spoke: ``'compiler'`` (``file:line[:col]: severity: message``),
  ``'linker'`` (GNU ld, lld, collect2) or ``'driver'`` (``gcc: error:``, ``cc1: fatal
  error:``, ``clang: error:``). Linker and driver diagnostics have ``file=None`` unless
  the linker names a source location (GNU ld with ``-g``: ``/src/main.c:5: undefined
  reference to `foo'``; lld: ``>>> referenced by main.c:5 (/src/main.c:5)``).
- A gcc trailing option tag (``[-Wunused-variable]``, ``[-Werror=format=]``) is moved out
  of the message into ``option``.
- Ignored: ``In file included from`` chains, ``In function`` / ``At top level`` context
  lines, source snippets and carets (they start with white space), ``compilation
  terminated.``, clang's ``N errors generated.``.
- ``source_map`` maps sandbox paths back to the user's names: an exact key
  (``'/src/main.c': 'main.c'``) or a directory key ending in ``/``
  (``'/src/': ''`` maps ``/src/lib/x.c`` to ``lib/x.c``). Unmapped paths are kept, except
  the compiler's temporary objects (``/tmp/cc*.o``), which mean nothing to a user and
  become ``None``.
- At most ``limit`` (default 200) diagnostics; messages are cut to 1000 characters.

A source file can print text that looks like a diagnostic (clang echoes source lines);
that only misleads its own author, and the verbatim log is still there.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal

MAX_DIAGNOSTICS = 200
MAX_MESSAGE = 1000
MAX_LINE = 8192

Severity = Literal["error", "warning", "note"]
Origin = Literal["compiler", "linker", "driver"]


@dataclass(frozen=True)
class Diagnostic:
    file: str | None
    line: int | None
    column: int | None
    severity: Severity
    message: str
    origin: Origin = "compiler"
    option: str | None = None  # the warning flag gcc/clang name, e.g. '-Wunused-variable'

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_SEVERITIES: dict[str, Severity] = {
    "error": "error",
    "fatal error": "error",
    "sorry, unimplemented": "error",
    "warning": "warning",
    "note": "note",
    "remark": "note",
}
_SEV = r"(?P<sev>fatal error|error|warning|note|remark|sorry, unimplemented|Error|Warning)"

# file:line:col: severity: message   (column optional). The file must not start with
# white space (gcc's snippet lines do) and is matched lazily up to ':<digits>:'.
_COMPILER = re.compile(rf"^(?P<file>[^\s:][^:]*?):(?P<line>\d+):(?:(?P<col>\d+):)? {_SEV}: (?P<msg>.*)$")
# tool: [severity: ]message, tool being a program name or path without spaces.
_TOOL = re.compile(rf"^(?P<tool>[^\s:]+): (?:{_SEV}: )?(?P<msg>.*)$")
# A linker's location: file:line: message  or  file:(.section+0x12): message
_LINK_LOC = re.compile(r"^(?P<file>[^\s:][^:]*?):(?:(?P<line>\d+)|\((?P<section>[^)]*)\)): (?P<msg>.+)$")
_LINK_KEYWORDS = re.compile(r"undefined reference to|multiple definition of|relocation .* against|"
                            r"first defined here|undefined symbol")
_LLD_REF = re.compile(r"^>>> referenced by (?P<short>\S+?):(?P<line>\d+)(?: \((?P<full>.+):(?P<fline>\d+)\))?\s*$")
_LINK_CONTEXT = re.compile(r"(?:: in function [`'].*[`']|: in function|:)$")
_OPTION = re.compile(r"\s*\[(?P<opt>-W[^\]\s]*)\]$")
_TMP_OBJECT = re.compile(r"^/tmp/[^/]*\.(?:o|s|i)$")
_IGNORED = re.compile(
    r"^(?:In file included from |\s+from |compilation terminated\.|"
    r"\d+ (?:error|warning)s? (?:and \d+ (?:error|warning)s? )?generated\.)"
)
_CONTEXT = re.compile(r"^(?:[^\s:][^:]*: )?(?:In (?:function|member function|constructor|destructor)|"
                      r"At top level|At global scope|Assembler messages)\b.*:?$")

_DRIVERS = re.compile(
    r"^(?:[\w.+-]*-)?(?:cc|c\+\+|gcc|g\+\+|clang|clang\+\+|cc1|cc1plus|lto1|lto-wrapper|as|cpp)"
    r"(?:-[\w.]+)?$"
)
_LINKERS = re.compile(r"^(?:[\w.+-]*-)?(?:ld(?:\.(?:lld|bfd|gold|mold))?|lld|collect2)$")


def _tool_origin(tool: str) -> Origin | None:
    base = tool.rsplit("/", 1)[-1]
    if _LINKERS.fullmatch(base):
        return "linker"
    if _DRIVERS.fullmatch(base):
        return "driver"
    return None


def _map_file(path: str | None, source_map: dict[str, str] | None) -> str | None:
    if path is None:
        return None
    if source_map:
        if path in source_map:
            return source_map[path]
        best = ""
        for key in source_map:
            if key.endswith("/") and path.startswith(key) and len(key) > len(best):
                best = key
        if best:
            return source_map[best] + path[len(best):]
    if _TMP_OBJECT.match(path):
        return None
    return path


def _split_option(msg: str) -> tuple[str, str | None]:
    m = _OPTION.search(msg)
    if m is None:
        return msg, None
    return msg[: m.start()], m.group("opt")


def _severity(word: str | None, default: Severity = "error") -> Severity:
    if word is None:
        return default
    return _SEVERITIES.get(word.lower(), default)


def parse_diagnostics(
    lines: Iterable[str],
    *,
    source_map: dict[str, str] | None = None,
    limit: int = MAX_DIAGNOSTICS,
) -> list[Diagnostic]:
    """Diagnostics found in ``lines`` (gcc, clang, GNU ld, lld), at most ``limit``."""
    out: list[Diagnostic] = []
    after_link_context = False  # previous line was "ld: x.o: in function `main':"

    def add(file: str | None, line: int | None, col: int | None, sev: Severity, msg: str,
            origin: Origin, option: str | None = None) -> None:
        out.append(Diagnostic(
            file=_map_file(file, source_map), line=line, column=col, severity=sev,
            message=msg.strip()[:MAX_MESSAGE], origin=origin, option=option,
        ))

    for raw in lines:
        if len(out) >= limit:
            break
        line = raw.rstrip("\r\n")[:MAX_LINE]
        if not line.strip():
            continue
        link_ctx, after_link_context = after_link_context, False

        ref = _LLD_REF.match(line)
        if ref is not None:
            # lld: the location of the previous "ld.lld: error: undefined symbol".
            last = out[-1] if out else None
            if last is not None and last.origin == "linker" and last.file is None:
                file = ref.group("full") or ref.group("short")
                lineno = int(ref.group("fline") or ref.group("line"))
                out[-1] = Diagnostic(file=_map_file(file, source_map), line=lineno, column=None,
                                     severity=last.severity, message=last.message, origin="linker",
                                     option=last.option)
            continue
        if line[0].isspace() or line.startswith(">>>") or _IGNORED.match(line):
            continue

        m = _COMPILER.match(line)
        if m is not None and _tool_origin(m.group("file")) is None:
            msg, option = _split_option(m.group("msg"))
            col = int(m.group("col")) if m.group("col") else None
            add(m.group("file"), int(m.group("line")), col, _severity(m.group("sev")), msg, "compiler", option)
            continue

        if _CONTEXT.match(line) and _tool_origin(line.split(":", 1)[0]) is None:
            continue

        t = _TOOL.match(line)
        origin = _tool_origin(t.group("tool")) if t is not None else None
        if t is not None and origin is not None:
            msg = t.group("msg")
            if origin == "linker" and t.group("sev") is None:
                if _LINK_CONTEXT.search(msg):
                    after_link_context = True  # the location follows on the next line
                    continue
                loc = _LINK_LOC.match(msg)
                if loc is not None:
                    _add_link_loc(add, loc)
                    continue
                sev = "warning" if msg.startswith("warning: ") else "error"
                add(None, None, None, sev, msg.removeprefix("warning: "), "linker")
                continue
            # A driver line without a severity ("cc1: all warnings being treated as errors")
            # only comments on diagnostics already listed.
            msg, option = _split_option(msg)
            add(None, None, None, _severity(t.group("sev"), "note"), msg, origin, option)
            continue

        loc = _LINK_LOC.match(line)
        if loc is not None and (link_ctx or _LINK_KEYWORDS.search(loc.group("msg"))):
            _add_link_loc(add, loc)
            continue
    return out


def _add_link_loc(add: Any, loc: re.Match[str]) -> None:
    msg = loc.group("msg")
    sev: Severity = "error"
    for word in ("warning", "note", "error"):
        if msg.startswith(word + ": "):
            sev = word  # type: ignore[assignment]
            msg = msg[len(word) + 2:]
            break
    line = int(loc.group("line")) if loc.group("line") else None
    add(loc.group("file"), line, None, sev, msg, "linker")
