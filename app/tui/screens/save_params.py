"""Ask for a name and a description under which to save a version's job parameters.

The dialog saves (through the `Saver` it is given, in a worker) and closes only once the
save worked: a refused name is said under the field, with what was typed still there.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from app.specs.spec import NAME_PATTERN
from app.tui.screens.fitted_dialog import FittedDialog
from app.tui.widgets.footer import KeyFooter

NAME_HELP = ("1-64 letters, digits, '-' or '_', starting with a letter; "
             "the wizard lists them by it.")
"""The rule of `app.specs.spec.check_name`, as the hint under the field."""

Saver = Callable[[str, str], "str | None"]
"""Saves under (name, description) and returns why it could not, or None (runs in a
worker thread)."""


class SaveParamsScreen(FittedDialog, ModalScreen[tuple[str, str] | None]):
    """Dismisses with `(name, description)`, or None when cancelled."""

    CSS_PATH = "save_params.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="save-params.cancel"),
        Binding("ctrl+s", "save", "Save", id="save-params.save"),
    ]

    class Saved(Message):
        """What the saver answered for (name, description): None when it saved."""

        def __init__(self, name: str, description: str, problem: str | None) -> None:
            super().__init__()
            self.name = name
            self.description = description
            self.problem = problem

    def __init__(self, source: str, saver: Saver | None = None) -> None:
        super().__init__()
        self.source = source
        """Which version's settings are saved (`digits V003`), for the title."""
        self.saver = saver
        """Saves before the dialog closes (None: the caller saves what it is given)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="save-dialog"):
            yield Label(f"Save job parameters of {self.source}", id="save-title")
            with VerticalScroll(id="save-fields", classes="dialog-fields"):
                yield Label("Name")
                yield Input(placeholder="e.g. digits-lr-sweep", id="save-name")
                yield Static(NAME_HELP, id="save-name-help")
                yield Label("Description")
                yield Input(placeholder="optional", id="save-description")
            with Horizontal(id="save-buttons"):
                yield Button("Save", id="save-ok", variant="primary")
                yield Button("Cancel", id="save-cancel")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#save-name", Input).focus()

    @on(Input.Submitted, "#save-name")
    def _name_submitted(self) -> None:
        self.query_one("#save-description", Input).focus()

    @on(Input.Submitted, "#save-description")
    @on(Button.Pressed, "#save-ok")
    def _submit(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#save-cancel")
    def _cancelled(self) -> None:
        self.action_cancel()

    def action_save(self) -> None:
        """Save under the typed name, if it keeps the rule the hint gives."""
        name = self.query_one("#save-name", Input).value.strip()
        description = self.query_one("#save-description", Input).value.strip()
        if not name:
            self._refused("name: required")
        elif not NAME_PATTERN.fullmatch(name):
            self._refused(f"name: {name!r} does not fit")
        elif self.saver is None:
            self.dismiss((name, description))
        else:
            self.query_one("#save-ok", Button).disabled = True
            self._save(self.saver, name, description)

    @work(thread=True, exclusive=True, exit_on_error=False, group="save-params")
    def _save(self, saver: Saver, name: str, description: str) -> None:
        self.post_message(self.Saved(name, description, saver(name, description)))

    @on(Saved)
    def _saved(self, message: Saved) -> None:
        self.query_one("#save-ok", Button).disabled = False
        if message.problem is None:
            self.dismiss((message.name, message.description))
        else:
            self._refused(message.problem)

    def _refused(self, problem: str) -> None:
        """Say why under the name, keep what was typed, and put the cursor back there."""
        help_line = self.query_one("#save-name-help", Static)
        hint = "" if NAME_HELP in problem else f" {NAME_HELP}"
        help_line.update(f"{problem.rstrip('.')}.{hint}")
        help_line.add_class("error")
        self.query_one("#save-name", Input).focus()

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)
