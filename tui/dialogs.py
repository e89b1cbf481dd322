"""Modal dialogs: a yes/no confirmation, and forms built from a list of fields."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static


class ConfirmScreen(ModalScreen[bool]):
    """Asks before something that cannot be undone; ``y`` confirms, ``n`` or Escape does not."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, detail: str = "", *, yes: str = "Yes") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.detail = detail
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dialog-detail")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


@dataclass
class Field:
    """One form field: an input line, or a choice when ``options`` are given."""

    name: str
    label: str
    value: str = ""
    placeholder: str = ""
    options: Sequence[tuple[str, str]] | None = None
    required: bool = False
    check: Callable[[str], str | None] | None = None  # returns an error message, or None
    help: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class FormScreen(ModalScreen[dict[str, str] | None]):
    """A titled form; Enter or Ctrl+S submits the values (by field name), Escape cancels."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Submit", id="form.submit"),
        Binding("escape", "cancel", "Cancel", id="form.cancel"),
    ]

    def __init__(self, title: str, fields: Sequence[Field], *, submit: str = "OK") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.fields = list(fields)
        self.submit_label = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="form-fields"):
                for f in self.fields:
                    yield Label(f.label + (" *" if f.required else ""), classes="field-label")
                    if f.options is not None:
                        options = [(label, value) for label, value in f.options]
                        initial = f.value if any(v == f.value for _, v in options) else Select.NULL
                        yield Select(options, value=initial, id=f"field-{f.name}", allow_blank=not f.required
                                     or initial is Select.NULL, prompt=f.placeholder or "choose")
                    else:
                        yield Input(f.value, placeholder=f.placeholder, id=f"field-{f.name}")
                    if f.help:
                        yield Static(f.help, classes="field-help")
            yield Static("", id="form-error", classes="form-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.submit_label} (ctrl+s)", id="submit", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for f in self.fields:
            widget = self.query_one(f"#field-{f.name}")
            if isinstance(widget, Select):
                out[f.name] = "" if widget.value is Select.NULL else str(widget.value)
            else:
                assert isinstance(widget, Input)
                out[f.name] = widget.value.strip()
        return out

    def action_submit(self) -> None:
        values = self.values()
        for f in self.fields:
            problem = None
            if f.required and not values[f.name]:
                problem = f"{f.label} is required"
            elif f.check is not None and values[f.name]:
                problem = f.check(values[f.name])
            if problem:
                self.query_one("#form-error", Static).update(problem)
                self.query_one(f"#field-{f.name}").focus()
                return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _enter(self) -> None:
        self.action_submit()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.dismiss(None)


def positive_int(text: str) -> str | None:
    return None if text.isdigit() and int(text) > 0 else "must be a whole number above 0"
