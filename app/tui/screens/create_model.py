"""Register a succeeded version as a model: its name, a description, copy the artifacts?

The dialog creates the model itself (in a worker) so that a refused name or a failed copy
is shown beside the field, and the dialog stays open to fix it. It dismisses with the new
model version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from app.tui.screens.fitted_dialog import FittedDialog
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.toggles import Check

if TYPE_CHECKING:
    from app.context import Context
    from app.registry import ModelVersionInfo

NAME_HELP = "1-64 letters, digits, '-' or '_', starting with a letter. An existing model " \
            "gets a new version."
COPY_HELP = "Copy the output files under Traindeck's data folder, so the model outlives " \
            "the job's outputs. Otherwise the output folder is referenced where it is."


class CreateModelScreen(FittedDialog, ModalScreen["ModelVersionInfo | None"]):
    """Asks for the model's name (default: the job's), a description and whether to copy."""

    CSS_PATH = "create_model.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="create-model.cancel"),
        Binding("ctrl+s", "create", "Create", id="create-model.create"),
    ]

    busy: reactive[bool] = reactive(False, init=False)
    """True while the model is being created (and files copied)."""
    error: reactive[str] = reactive("", init=False)
    """Why the last try was refused ('' when there was none)."""

    class Done(Message):
        """The create worker finished: the new model version, or why not."""

        def __init__(self, info: ModelVersionInfo | None, error: str = "") -> None:
            super().__init__()
            self.info = info
            self.error = error

    def __init__(self, ctx: Context, job: str, label: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.job = job
        """The training job the model comes from."""
        self.label = label
        """Its succeeded version (`V003`)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="model-dialog"):
            yield Label(f"Create a model from {self.job} {self.label}", id="model-title")
            with VerticalScroll(id="model-fields", classes="dialog-fields"):
                yield Label("Model name")
                yield Input(self.job, placeholder="e.g. digits-classifier", id="model-name")
                yield Static(NAME_HELP, id="model-name-help", classes="model-help")
                yield Label("Description")
                yield Input(placeholder="optional", id="model-description")
                yield Check("Copy artifacts", id="model-copy")
                yield Static(COPY_HELP, classes="model-help")
                yield Static("", id="model-error")
            with Horizontal(id="model-buttons"):
                yield Button("Create (ctrl+s)", id="model-ok", variant="primary")
                yield Button("Cancel", id="model-cancel")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#model-error").display = False
        self.query_one("#model-name", Input).focus()

    @on(Input.Submitted, "#model-name")
    def _name_submitted(self) -> None:
        self.query_one("#model-description", Input).focus()

    @on(Input.Submitted, "#model-description")
    @on(Button.Pressed, "#model-ok")
    def _submit(self) -> None:
        self.action_create()

    @on(Button.Pressed, "#model-cancel")
    def _cancelled(self) -> None:
        self.action_cancel()

    def action_create(self) -> None:
        """Create the model version (the name must not be empty)."""
        if self.busy:
            return
        name = self.query_one("#model-name", Input).value.strip()
        if not name:
            self.error = "name: required"
            self.query_one("#model-name", Input).focus()
            return
        description = self.query_one("#model-description", Input).value.strip()
        copy = self.query_one("#model-copy", Checkbox).value
        self.error = ""
        self.busy = True
        self._create(name, description, copy)

    @work(thread=True, exclusive=True, exit_on_error=False, group="create-model")
    def _create(self, name: str, description: str, copy: bool) -> None:
        """Record the model version (copying the files first when asked)."""
        from app.errors import TraindeckError
        from app.registry import create_model

        try:
            info = create_model(self.ctx, name, self.job, self.label, copy=copy,
                                description=description)
        except TraindeckError as exc:
            self.post_message(self.Done(None, str(exc)))
            return
        self.post_message(self.Done(info))

    @on(Done)
    def _done(self, message: Done) -> None:
        self.busy = False
        if message.info is None:
            self.error = message.error
            return
        self.dismiss(message.info)

    def watch_busy(self, busy: bool) -> None:
        button = self.query_one("#model-ok", Button)
        button.disabled = busy
        button.label = "Creating…" if busy else "Create (ctrl+s)"

    def watch_error(self, error: str) -> None:
        line = self.query_one("#model-error", Static)
        line.update(error)
        line.display = bool(error)

    def action_cancel(self) -> None:
        """Close without creating anything."""
        if not self.busy:
            self.dismiss(None)
