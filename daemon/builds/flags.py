"""The allow-list of compiler flags a client may ask for.

A build request may carry a short list of extra flags. Every one is checked against an
allow-list, never a deny-list: compiler drivers accept hundreds of options and several
of them read or write arbitrary files (``-o``, ``-I/``, ``-include``, ``@file``,
``-specs=``, ``-B``), load code into the compiler (``-fplugin=``, ``-wrapper``) or change
what is being measured (``--sysroot``, ``-Wl,``, ``-x``). What is allowed:

- one optimisation level: ``-O0 -O1 -O2 -O3 -Os -Og -Oz``. ``-Oz`` is clang's
  "minimum size" level; GCC accepts it from GCC 12 (Debian 12's gcc is 12.2), older GCCs
  reject it at compile time, which is reported as an ordinary build error. ``-Ofast`` is
  refused: it breaks IEEE/ISO semantics silently.
- ``-g`` (debug information).
- ``-DNAME`` and ``-DNAME=VALUE`` with ``NAME`` matching ``[A-Za-z_][A-Za-z0-9_]{0,63}``
  and ``VALUE`` matching ``[A-Za-z0-9_.+-]{0,128}`` (no quotes, spaces, ``$``, backticks,
  ``=``, parentheses). Names beginning with ``__`` belong to the implementation (a program
  must not be able to claim, say, ``__CHERI_PURE_CAPABILITY__``) and ``_FORTIFY_SOURCE``
  is set by the toolchain; both are refused. Other reserved names such as ``_GNU_SOURCE``
  or ``_POSIX_C_SOURCE`` are allowed because ``-std=c11`` programs need them for POSIX.

At most :data:`MAX_FLAGS` flags; a repeated flag, a second ``-O`` or a macro defined twice
is refused (GCC's "last one wins" is a poor thing to record in a measurement).
"""

from __future__ import annotations

import re

from attestables.shared.errors import InvalidParams

MAX_FLAGS = 32
OPT_LEVELS = frozenset({"-O0", "-O1", "-O2", "-O3", "-Os", "-Og", "-Oz"})
DEFAULT_OPT = "-O2"

_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_VALUE = r"[A-Za-z0-9_.+-]{0,128}"
_DEFINE = re.compile(rf"-D(?P<name>{_NAME})(?:=(?P<value>{_VALUE}))?")
# Macros the toolchain owns (see the module docstring).
_RESERVED_MACROS = frozenset({"_FORTIFY_SOURCE"})


def _show(flag: str) -> str:
    """A bounded, printable rendering of a refused flag for the error message."""
    text = flag if len(flag) <= 80 else flag[:77] + "..."
    return repr(text)


def validate_flags(flags: object) -> list[str]:
    """Return ``flags`` as a list if every one is allowed; raise ``InvalidParams`` if not.

    ``None`` means no flags. The error message and ``data['flag']`` name the first
    offending flag.
    """
    if flags is None:
        return []
    if isinstance(flags, (str, bytes)) or not isinstance(flags, (list, tuple)):
        raise InvalidParams("flags must be a list of strings", field="flags")
    if len(flags) > MAX_FLAGS:
        raise InvalidParams(f"too many flags: {len(flags)} (at most {MAX_FLAGS})", field="flags")
    out: list[str] = []
    seen_opt: str | None = None
    seen_macros: set[str] = set()
    for flag in flags:
        if not isinstance(flag, str):
            raise InvalidParams(f"flag {flag!r} is not a string", field="flags")
        if flag in out:
            raise InvalidParams(f"flag {_show(flag)} given twice", field="flags", flag=flag[:80])
        if flag in OPT_LEVELS:
            if seen_opt is not None:
                raise InvalidParams(
                    f"flag {_show(flag)}: only one optimisation level is allowed (already {seen_opt})",
                    field="flags",
                    flag=flag,
                )
            seen_opt = flag
        elif flag == "-g":
            pass
        else:
            m = _DEFINE.fullmatch(flag)
            if m is None:
                raise InvalidParams(f"flag {_show(flag)} is not allowed", field="flags", flag=flag[:80])
            name = m.group("name")
            if name.startswith("__") or name in _RESERVED_MACROS:
                raise InvalidParams(
                    f"flag {_show(flag)}: macro {name} is reserved for the toolchain",
                    field="flags",
                    flag=flag[:80],
                )
            if name in seen_macros:
                raise InvalidParams(f"flag {_show(flag)}: macro {name} defined twice", field="flags", flag=flag[:80])
            seen_macros.add(name)
        out.append(flag)
    return out


def optimisation_level(flags: list[str]) -> str | None:
    """The ``-O`` flag among already validated ``flags``, or ``None``."""
    for flag in flags:
        if flag in OPT_LEVELS:
            return flag
    return None
