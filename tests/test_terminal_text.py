"""Control characters from programs reach no terminal: the console's logs and source view,
and the CLI's copy of program output when it writes to a terminal (a real pty here)."""

from __future__ import annotations

import io
import os
import pty

from attestables.cli.output import Output
from attestables.shared.terminal import printable

HOSTILE = "ok \x1b[2J\x1b]0;PWNED\x07 \x1b]52;c;ZXZpbA==\x1b\\ \x9b31m \x7f\tend\r\n"


def test_printable_shows_every_control_character_but_newline_and_tab() -> None:
    shown = printable(HOSTILE)
    assert shown == "ok ^[[2J^[]0;PWNED^G ^[]52;c;ZXZpbA==^[\\ ^[[31m ^?\tend\n"
    assert not any(ord(c) < 0x20 and c not in "\t\n" or 0x7F <= ord(c) < 0xA0 for c in shown)
    assert printable("naïve ✓ résumé\n") == "naïve ✓ résumé\n"  # text is text
    assert printable("a\rb") == "a^Mb"


def test_the_cli_copies_program_output_as_bytes_to_a_pipe_and_shows_controls_on_a_terminal() -> None:
    pipe = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    Output(stdout=pipe).raw("stdout", HOSTILE.encode())
    pipe.flush()
    assert pipe.buffer.getvalue() == HOSTILE.encode()  # type: ignore[attr-defined]

    main, secondary = pty.openpty()
    try:
        terminal = os.fdopen(secondary, "w", encoding="utf-8", closefd=False)
        out = Output(stdout=terminal)
        data = HOSTILE.encode()
        for cut in (4, 17):  # chunks may split anything, a character included
            out.raw("stdout", data[:cut])
            data = data[cut:]
        out.raw("stdout", data)
        out.raw("stdout", "é".encode()[:1])
        out.raw("stdout", "é".encode()[1:] + b"\n")
        out.line(out.shown("gcc: \x1b[31merror"))
        terminal.flush()
        received = b""
        while b"error" not in received:
            received += os.read(main, 4096)
    finally:
        os.close(main)
        os.close(secondary)
    text = received.decode("utf-8")
    assert "\x1b" not in text and "^[[2J" in text and "^[]0;PWNED^G" in text and "é" in text
    assert "gcc: ^[[31merror" in text


async def test_the_console_s_logs_and_source_view_show_controls() -> None:
    from attestables.tui.widgets.follow_log import FollowLog
    from attestables.tui.widgets.source_view import SourceView
    from textual.app import App, ComposeResult

    class Logs(App[None]):
        def compose(self) -> ComposeResult:
            yield FollowLog(id="log")
            yield SourceView(id="source")

    app = Logs()
    async with app.run_test(size=(100, 20)) as pilot:
        log = app.query_one(FollowLog)
        log.write_text(HOSTILE)
        log.write_lines(["line \x1b]0;x\x07"])
        app.query_one(SourceView).show({"name": "x.c", "version": 1,
                                        "content": 'int main(void) { puts("\x1b[2J"); }\n'})
        await pilot.pause()
        drawn = [app.screen._compositor.render_strips()[y].text for y in range(20)]  # what the terminal gets
        assert not any("\x1b" in line or "\x07" in line for line in drawn)
        assert any("^[[2J" in line for line in drawn) and any("^[]0;x^G" in line for line in drawn)


def test_the_attestation_tree_shows_a_run_s_arguments_as_text() -> None:
    from attestables.tui.tabs.attestation import fill_tree
    from textual.widgets import Tree

    tree: Tree[None] = Tree("document")
    fill_tree(tree.root, {"run": {"args": ["--name", "\x1b]0;PWNED\x07"]}, "\x1b[2J": 1}, 0)
    labels = []
    stack = [tree.root]
    while stack:
        node = stack.pop()
        labels.append(str(node.label))
        stack.extend(node.children)
    assert not any("\x1b" in label or "\x07" in label for label in labels)
    assert "[1]: ^[]0;PWNED^G" in labels and "^[[2J: 1" in labels


def test_an_error_that_echoes_a_client_s_input_is_shown_as_text() -> None:
    from attestables.shared.errors import InvalidParams
    from attestables.tui.tabs.base import describe_error

    title, message = describe_error(InvalidParams("flag '-D\x1b]0;x\x07' is not allowed"))
    assert (title, message) == ("invalid_params", "flag '-D^[]0;x^G' is not allowed")
