"""Text from programs and users, made safe to show on a terminal.

A compartment's output, a compiler's diagnostics and an uploaded source are written by
whoever sent the code. Shown as they are, their control characters reach the operator's
terminal: ``ESC [ 2 J`` clears it, an OSC sequence sets its title or, on some terminals,
its clipboard, an unterminated one swallows what follows. :func:`printable` shows each
such character instead, in caret notation (``ESC`` as ``^[``, as ``cat -v`` does), and
keeps line breaks and tabs. The console applies it to every log and source it shows; the
CLI to program output it copies to a terminal (``--raw`` keeps the bytes).
"""

from __future__ import annotations

# C0 controls but tab and newline, DEL, and the C1 controls (which some terminals act on
# as ESC + a letter): each shown as two visible characters.
_CARET = {code: f"^{chr(code + 64)}" for code in range(0x20) if chr(code) not in "\t\n"}
_CARET[0x7F] = "^?"
_CARET.update({code: f"^[{chr(code - 64)}" for code in range(0x80, 0xA0)})
_TABLE = str.maketrans(_CARET)


def printable(text: str) -> str:
    """``text`` with every control character but ``\\n`` and ``\\t`` shown as caret notation
    (a ``\\r\\n`` line end is a line end)."""
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return text.translate(_TABLE)


__all__ = ["printable"]
