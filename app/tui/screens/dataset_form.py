"""Make a dataset (name, description, the first version's files) or add a version to one.

The dialog makes the dataset itself, in a worker: the files of the location are listed
(an `s3://` prefix over the network) and the manifest is recorded by `app.datasets`, the
same functions the CLI calls. A refusal is shown under the field it names, and the
dialog stays open to fix it. It dismisses with the new version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from app.tui.screens.fitted_dialog import FittedDialog
from app.tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from app.context import Context
    from app.datasets import DatasetVersionInfo

FIELDS = ("name", "path", "description")
"""The fields of the form, named as the core's errors name them."""
HELP = {
    "name": "1-64 letters, digits, '-' or '_', starting with a letter.",
    "description": "",
    "path": "A local folder (absolute, ~, or relative to where Traindeck started) or "
            "s3://bucket/prefix. Its files are listed now; their count and size are kept, "
            "so later changes show.",
}


def split_field_error(error: str) -> tuple[str, str]:
    """`("path", "... is not an existing directory")` from the core's one-line error
    (`"path: ... is not an existing directory"`); `("", error)` when it names no field."""
    head, sep, rest = error.partition(": ")
    if sep and head in FIELDS:
        return head, rest
    return "", error


class DatasetFormScreen(FittedDialog, ModalScreen["DatasetVersionInfo | None"]):
    """New dataset (`dataset` None) or the next version of `dataset`."""

    CSS_PATH = "dataset_form.tcss"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dataset-form.cancel"),
        Binding("ctrl+s", "save", "Save", id="dataset-form.save"),
    ]

    busy: reactive[bool] = reactive(False, init=False)
    """True while the files are being listed and the version recorded."""
    errors: reactive[dict[str, str]] = reactive(dict, init=False, always_update=True)
    """Why each field is refused (field → reason; '' for the form as a whole)."""

    class Done(Message):
        """The worker finished: the new version, or why not."""

        def __init__(self, info: DatasetVersionInfo | None, error: str = "") -> None:
            super().__init__()
            self.info = info
            self.error = error

    def __init__(self, ctx: Context, *, dataset: str | None = None, source: str = "") -> None:
        super().__init__()
        self.ctx = ctx
        self.dataset = dataset
        """The dataset a version is added to; None to make a new dataset."""
        self.source = source
        """The location the path field starts with (the newest version's, for a new one)."""

    @property
    def creating(self) -> bool:
        """True for a new dataset, False for a new version of one."""
        return self.dataset is None

    def compose(self) -> ComposeResult:
        # The fields scroll when the terminal is too short; the title and buttons stay.
        with Vertical(id="dataset-dialog"):
            title = "New dataset" if self.creating else f"Add a version to {self.dataset}"
            yield Label(title, id="dataset-title")
            with VerticalScroll(id="dataset-fields", classes="dialog-fields"):
                if self.creating:
                    yield Label("Name")
                    yield Input(placeholder="e.g. mnist-train", id="dataset-name")
                    yield Static(HELP["name"], id="dataset-name-help", classes="field-help")
                yield Label(f"Files of the {'first' if self.creating else 'new'} version")
                yield Input(self.source, placeholder="/data/mnist or s3://bucket/mnist/train",
                            id="dataset-path")
                yield Static(HELP["path"], id="dataset-path-help", classes="field-help")
                yield Label("Description" + ("" if self.creating else " of the new version"))
                yield Input(placeholder="optional", id="dataset-description")
                yield Static(HELP["description"], id="dataset-description-help",
                             classes="field-help")
                yield Static("", id="dataset-status")
            with Horizontal(id="dataset-buttons"):
                yield Button(self._save_label(), id="dataset-ok", variant="primary")
                yield Button("Cancel", id="dataset-cancel")
        yield KeyFooter()

    def _save_label(self) -> str:
        return ("Create" if self.creating else "Add version") + " (ctrl+s)"

    def on_mount(self) -> None:
        self.query_one("#dataset-status").display = False
        self.query_one("#dataset-description-help").display = False  # until refused
        first = "#dataset-name" if self.creating else "#dataset-path"
        self.query_one(first, Input).focus()

    # -- moving on and checking as one types ---------------------------------------------

    @on(Input.Submitted, "#dataset-name")
    def _name_submitted(self) -> None:
        self.query_one("#dataset-path", Input).focus()

    @on(Input.Submitted, "#dataset-path")
    def _path_submitted(self) -> None:
        self.query_one("#dataset-description", Input).focus()

    @on(Input.Submitted, "#dataset-description")
    @on(Button.Pressed, "#dataset-ok")
    def _submit(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#dataset-cancel")
    def _cancelled(self) -> None:
        self.action_cancel()

    @on(Input.Changed, "#dataset-name")
    def _name_changed(self, event: Input.Changed) -> None:
        from app.datasets import check_dataset_name

        self._check_field("name", check_dataset_name, event.value.strip())

    @on(Input.Changed, "#dataset-description")
    def _description_changed(self, event: Input.Changed) -> None:
        from app.datasets import check_description

        self._check_field("description", check_description, event.value.strip())

    @on(Input.Changed, "#dataset-path")
    def _path_changed(self) -> None:
        if "path" in self.errors:  # checked again (it needs the disk) when saved
            self.errors = {k: v for k, v in self.errors.items() if k != "path"}

    def _check_field(self, field: str, check: Callable[[str], None], value: str) -> None:
        """Run one of the core's pure checks on `value`; show its refusal under the field."""
        from app.errors import FieldError

        errors = {k: v for k, v in self.errors.items() if k not in (field, "")}
        if value:
            try:
                check(value)
            except FieldError as exc:
                errors[field] = exc.message
        self.errors = errors

    # -- saving ----------------------------------------------------------------------------

    def _value(self, field: str) -> str:
        found = self.query(f"#dataset-{field}").results(Input)
        return next((i.value.strip() for i in found), "")

    def action_save(self) -> None:
        """List the files and record the dataset or version (in a worker)."""
        if self.busy:
            return
        errors = {k: v for k, v in self.errors.items() if k in ("name", "description")}
        if self.creating and not self._value("name"):
            errors["name"] = "required: a name for the dataset"
        if not self._value("path"):
            errors["path"] = "required: a local folder or s3://bucket/prefix"
        if errors:
            self.errors = errors
            self._focus_field(next(iter(errors)))
            return
        self.errors = {}
        self.busy = True
        self._save(self._value("name"), self._value("description"), self._value("path"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="dataset-form")
    def _save(self, name: str, description: str, path: str) -> None:
        """Check, list the files, record the manifest: all in `app.datasets`."""
        from app.datasets import add_version, create_dataset
        from app.errors import TraindeckError

        try:
            if self.dataset is None:
                info = create_dataset(self.ctx, name, path, description)
            else:
                info = add_version(self.ctx, self.dataset, path, description)
        except TraindeckError as exc:
            self.post_message(self.Done(None, str(exc)))
            return
        self.post_message(self.Done(info))

    @on(Done)
    def _done(self, message: Done) -> None:
        self.busy = False
        if message.info is not None:
            self.dismiss(message.info)
            return
        field, reason = split_field_error(message.error)
        if field == "name" and not self.creating:
            field, reason = "", message.error
        self.errors = {field: reason}
        self._focus_field(field or "path")

    def _focus_field(self, field: str) -> None:
        if field in FIELDS and self.query(f"#dataset-{field}"):
            self.query_one(f"#dataset-{field}", Input).focus()

    # -- showing ---------------------------------------------------------------------------

    def watch_busy(self, busy: bool) -> None:
        button = self.query_one("#dataset-ok", Button)
        button.disabled = busy
        button.label = "Listing files…" if busy else self._save_label()
        for field_input in self.query(Input):
            field_input.disabled = busy
        status = self.query_one("#dataset-status", Static)
        status.set_class(False, "error")
        if busy:
            path = self._value("path")
            where = "over the network" if "://" in path else "on disk"
            status.update(f"Listing the files of {path} {where}…")
        status.display = busy

    def watch_errors(self, errors: dict[str, str]) -> None:
        for field in FIELDS:
            if not self.query(f"#dataset-{field}-help"):
                continue
            help_line = self.query_one(f"#dataset-{field}-help", Static)
            reason = errors.get(field)
            help_line.update(reason or HELP[field])
            help_line.set_class(bool(reason), "error")
            help_line.display = bool(reason or HELP[field])
            self.query_one(f"#dataset-{field}", Input).set_class(bool(reason), "-invalid")
        status = self.query_one("#dataset-status", Static)
        general = errors.get("", "")
        if general or not self.busy:
            status.update(general)
            status.set_class(bool(general), "error")
            status.display = bool(general)

    def action_cancel(self) -> None:
        """Close without making anything (not while the files are being listed)."""
        if self.busy:
            self.notify("Still listing the files; the dialog closes when that is done.",
                        severity="warning")
            return
        self.dismiss(None)
