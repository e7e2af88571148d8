"""Ask for a name and a description under which to save a version's job parameters."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from app.tui.widgets.footer import KeyFooter

NAME_HELP = "Letters, digits, '-', '_' and '.'; it is how the wizard lists them."


class SaveParamsScreen(ModalScreen[tuple[str, str] | None]):
    """Dismisses with `(name, description)`, or None when cancelled."""

    CSS_PATH = "save_params.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="save-params.cancel"),
        Binding("ctrl+s", "save", "Save", id="save-params.save"),
    ]

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        """Which version's settings are saved (`digits V003`), for the title."""

    def compose(self) -> ComposeResult:
        with Vertical(id="save-dialog"):
            yield Label(f"Save job parameters of {self.source}", id="save-title")
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
        """Save under the typed name (which must not be empty)."""
        name = self.query_one("#save-name", Input).value.strip()
        if not name:
            help_line = self.query_one("#save-name-help", Static)
            help_line.update("name: required. " + NAME_HELP)
            help_line.add_class("error")
            self.query_one("#save-name", Input).focus()
            return
        self.dismiss((name, self.query_one("#save-description", Input).value.strip()))

    def action_cancel(self) -> None:
        """Close without saving."""
        self.dismiss(None)
