"""Editable rows: a list the user grows with "add" and shrinks with a remove button per row.

`EditableRows` is the shared base of the wizard's lists: `ParamRows` (run parameters
as `name = value`, coerced exactly as the CLI coerces `--set name=value`), `EnvRows`
(`env:` variables, the same rows), `PathRows` (data storage paths), `PatternRows` (log
metric patterns) and `DatasetRows` (a dataset and one of its versions per row).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from app.errors import FieldError
from app.jobs import parse_assignments
from app.specs.spec import ParamValue, format_parameter


class EditableRow(Horizontal):
    """One row: its controls, a remove button and an error note.

    The controls are held as attributes, so a row can be read the moment it exists,
    before its children are mounted.
    """

    def __init__(self, controls: list[Widget]) -> None:
        self.controls = controls
        self.error = Static("", classes="row-error -empty", markup=False)
        remove = Button("✕", classes="remove-row", compact=True, tooltip="Remove this row")
        super().__init__(*controls, remove, self.error, classes="row")


class EditableRows(Vertical):
    """Rows the user can add and remove, each with its own error note.

    Subclasses say what one row holds in `make_row_controls`.
    """

    DEFAULT_CSS = """
    EditableRows {
        height: auto;
        width: 1fr;
    }
    EditableRows > .rows {
        height: auto;
    }
    EditableRows .row {
        height: 1;
        margin-bottom: 1;
    }
    EditableRows .row > .remove-row {
        min-width: 3;
        width: 3;
        margin: 0 1;
    }
    EditableRows .row-error {
        width: 1fr;
        color: $text-error;
    }
    EditableRows > .rows-footer {
        height: 1;
    }
    EditableRows .add-row {
        width: auto;
        min-width: 0;
        margin-right: 2;
    }
    EditableRows .list-note {
        width: 1fr;
        color: $text-muted;
    }
    EditableRows .list-note.-error {
        color: $text-error;
    }
    """

    ADD_LABEL: ClassVar[str] = "+ add"
    """Label of the button that adds a row."""
    _hint = ""
    """Shown beside the add button while the list has no error."""

    class Changed(Message):
        """A row was added or removed (edits inside a row bubble up as their own events)."""

        def __init__(self, rows: EditableRows) -> None:
            super().__init__()
            self.rows = rows

        @property
        def control(self) -> EditableRows:
            """The list that changed."""
            return self.rows

    def compose(self) -> ComposeResult:
        yield Vertical(classes="rows")
        with Horizontal(classes="rows-footer"):
            yield Button(self.ADD_LABEL, classes="add-row", compact=True)
            yield Static("", classes="list-note", markup=False)

    def make_row_controls(self, value: Any) -> list[Widget]:
        """The controls of one row showing `value` (None for a new, empty row)."""
        raise NotImplementedError

    @property
    def rows(self) -> list[EditableRow]:
        """The rows, in order."""
        return list(self.query_one(".rows", Vertical).query_children(EditableRow))

    async def set_rows(self, values: Iterable[Any]) -> None:
        """Replace every row with rows showing `values`."""
        container = self.query_one(".rows", Vertical)
        await container.remove_children()
        await container.mount_all([EditableRow(self.make_row_controls(value)) for value in values])

    async def add_row(self, value: Any = None, *, focus: bool = True) -> Widget:
        """Append a row and (by default) focus its first control; posts nothing."""
        row = EditableRow(self.make_row_controls(value))
        await self.query_one(".rows", Vertical).mount(row)
        if focus:
            row.controls[0].focus()
        return row

    @on(Button.Pressed, ".add-row")
    async def _on_add(self, event: Button.Pressed) -> None:
        event.stop()
        await self.add_row()
        self.post_message(self.Changed(self))

    @on(Button.Pressed, ".remove-row")
    async def _on_remove(self, event: Button.Pressed) -> None:
        event.stop()
        row = event.button.parent
        if isinstance(row, Widget):
            await row.remove()
            self.post_message(self.Changed(self))

    def set_hint(self, hint: str) -> None:
        """Text shown beside the add button while the list has no error."""
        self._hint = hint
        note = self.query_one(".list-note", Static)
        if not note.has_class("-error") and note.content != hint:
            note.update(hint)

    def set_errors(self, rows: Mapping[int, str], general: str = "") -> None:
        """Show an error beside each row in `rows` (by index) and one for the whole list."""
        for index, row in enumerate(self.rows):
            error = row.error
            error.set_class(not rows.get(index), "-empty")
            if error.content != rows.get(index, ""):
                error.update(rows.get(index, ""))
        note = self.query_one(".list-note", Static)
        note.set_class(bool(general), "-error")
        if note.content != (general or self._hint):
            note.update(general or self._hint)


class ParamRows(EditableRows):
    """Run parameters as `name = value` rows.

    Values are typed as text and coerced like the CLI's `--set` (numbers and booleans as
    YAML reads them). A value shown from a loaded spec and left untouched keeps its exact
    original type, so `"10"` saved as text does not silently become the number 10.
    """

    DEFAULT_CSS = """
    ParamRows .param-name {
        width: 20;
    }
    ParamRows .param-eq {
        width: 3;
        content-align: center middle;
    }
    ParamRows .param-value {
        width: 21;
    }
    """

    ADD_LABEL = "+ add parameter"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._originals: dict[str, tuple[str, ParamValue]] = {}

    def make_row_controls(self, value: Any) -> list[Widget]:
        name, text = value if value is not None else ("", "")
        return [
            Input(name, placeholder="name", classes="param-name", compact=True),
            Label(" = ", classes="param-eq"),
            Input(text, placeholder="value", classes="param-value", compact=True),
        ]

    async def set_params(self, params: Mapping[str, ParamValue]) -> None:
        """Show `params` as rows, remembering each value's exact type."""
        self._originals = {name: (format_parameter(v), v) for name, v in params.items()}
        await self.set_rows([(name, text) for name, (text, _) in self._originals.items()])

    def items(self) -> list[tuple[str, str]]:
        """Each row's name and value text, in order."""
        out = []
        for row in self.rows:
            name, _, value = row.controls
            assert isinstance(name, Input) and isinstance(value, Input)
            out.append((name.value.strip(), value.value))
        return out

    def collect(self) -> tuple[dict[str, ParamValue], dict[int, str]]:
        """The parameters, and an error message per row index that cannot be used.

        Rows with neither name nor value are ignored.
        """
        params: dict[str, ParamValue] = {}
        errors: dict[int, str] = {}
        for index, (name, text) in enumerate(self.items()):
            if not name and not text.strip():
                continue
            if not name:
                errors[index] = "give the parameter a name"
                continue
            if name in params:
                errors[index] = f"{name!r} is given twice"
                continue
            try:
                value = parse_assignments([f"{name}={text}"], "parameters")[name]
            except FieldError as exc:
                errors[index] = exc.message
                continue
            original = self._originals.get(name)
            params[name] = original[1] if original and original[0] == text else value
        return params, errors

    def row_of(self, name: str) -> int | None:
        """The index of the row holding parameter `name`."""
        return next((i for i, (n, _) in enumerate(self.items()) if n == name), None)


class EnvRows(ParamRows):
    """Extra environment variables as `NAME = value` rows (`env:`; values are text to the
    script: numbers and booleans typed here become text when the spec is checked)."""

    ADD_LABEL = "+ add variable"

    def on_mount(self) -> None:
        self.set_hint("NAME=value for every process; no shell")


class PathRows(EditableRows):
    """Data storage paths, one per row: a local folder or `s3://bucket/prefix/`."""

    DEFAULT_CSS = """
    PathRows .data-path {
        width: 44;
    }
    """

    ADD_LABEL = "+ add path"

    PLACEHOLDER: ClassVar[str] = "e.g. ./data or s3://bucket/prefix/"

    def make_row_controls(self, value: Any) -> list[Widget]:
        return [Input(value or "", placeholder=self.PLACEHOLDER, classes="data-path",
                      compact=True)]

    def paths(self) -> list[str]:
        """The text of each row, in order (blank rows included)."""
        return [row.controls[0].value.strip() for row in self.rows
                if isinstance(row.controls[0], Input)]


class PatternRows(PathRows):
    """`metrics.log_patterns`: one regular expression per row (`paths()` gives their text)."""

    ADD_LABEL = "+ add pattern"
    PLACEHOLDER = r"e.g. loss: (?P<loss>\S+)"


class DatasetRows(EditableRows):
    """Datasets, one per row: a dataset and one of its versions."""

    DEFAULT_CSS = """
    DatasetRows .dataset-name {
        width: 26;
    }
    DatasetRows .dataset-version {
        width: 17;
        margin-left: 1;
    }
    """

    ADD_LABEL = "+ add dataset"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.datasets: dict[str, list[str]] = {}
        """Dataset name → version labels, oldest first (set before rows are made)."""

    def make_row_controls(self, value: Any) -> list[Widget]:
        name, version = value if value is not None else (None, None)
        names = list(self.datasets)
        if name and name not in names:
            names.append(name)  # kept, so that the check can say it does not exist
        versions = list(self.datasets.get(name, [])) if name else []
        if version and version not in versions:
            versions.append(version)
        if name and not version and versions:
            version = versions[-1]
        return [
            Select([(n, n) for n in names], prompt="dataset", value=name or Select.NULL,
                   classes="dataset-name", compact=True),
            Select([(v, v) for v in versions], prompt="version",
                   value=version or Select.NULL, classes="dataset-version", compact=True),
        ]

    @on(Select.Changed, ".dataset-name")
    def _dataset_chosen(self, event: Select.Changed) -> None:
        row = event.select.parent
        if not isinstance(row, EditableRow):
            return
        versions = [] if event.select.is_blank() else self.datasets.get(str(event.value), [])
        version_select = row.controls[1]
        assert isinstance(version_select, Select)
        version_select.set_options([(v, v) for v in versions])
        if versions:
            version_select.value = versions[-1]  # the newest version, to start with

    def refs(self) -> list[tuple[str | None, str | None]]:
        """The dataset and version of each row (None where not chosen)."""
        out = []
        for row in self.rows:
            name, version = row.controls
            assert isinstance(name, Select) and isinstance(version, Select)
            out.append((None if name.is_blank() else str(name.value),
                        None if version.is_blank() else str(version.value)))
        return out
