"""A modal that shows what a new version changes against its parent, before launching it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from app.tui.widgets.footer import KeyFooter

DiffRow = tuple[str, Any, Any]
"""`(dotted.field, parent value, new value)` as `app.jobs.spec_diff` returns them."""


def format_value(value: Any) -> Text:
    """A spec value for the diff: missing as a dim dash, lists and mappings as JSON."""
    if value is None:
        return Text("—", style="dim")
    if isinstance(value, bool):
        return Text("true" if value else "false")
    if value == "":
        return Text('""', style="dim")
    if isinstance(value, list | dict):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def diff_table(diff: Sequence[DiffRow], old_label: str, new_label: str) -> Table | Text:
    """The changed fields as a table (run parameters first), or a line saying none changed."""
    if not diff:
        return Text(f"No field differs from {old_label}: {new_label} runs the same spec.",
                    style="italic")
    table = Table(expand=True, box=None, padding=(0, 2, 0, 0), show_edge=False)
    table.add_column("Field", style="bold", ratio=2, overflow="fold")
    table.add_column(old_label, style="red", ratio=3, overflow="fold")
    table.add_column(new_label, style="green", ratio=3, overflow="fold")
    rows = sorted(diff, key=lambda row: (not row[0].startswith("parameters."), row[0]))
    for path, old, new in rows:
        table.add_row(path, format_value(old), format_value(new))
    return table


class SpecDiffScreen(ModalScreen[bool]):
    """The diff between a parent version's spec and a new one; dismisses True to launch."""

    CSS_PATH = "spec_diff.tcss"

    BINDINGS = [
        Binding("escape", "close", "Back", id="spec_diff.back"),
        Binding("ctrl+s", "launch", "Launch", id="spec_diff.launch"),
    ]

    def __init__(
        self, diff: Sequence[DiffRow], *, old_label: str, new_label: str,
        title: str | None = None, launch_label: str | None = "Launch",
    ) -> None:
        """`launch_label` None shows the diff only, with a Close button."""
        super().__init__()
        self.diff = list(diff)
        self.old_label = old_label
        self.new_label = new_label
        self.title_text = title or f"{new_label}: changes from {old_label}"
        self.launch_label = launch_label

    def compose(self) -> ComposeResult:
        with Vertical(id="diff-dialog"):
            yield Label(self.title_text, id="diff-title")
            count = len(self.diff)
            yield Static(f"{count} field{'s' if count != 1 else ''} changed", id="diff-count")
            with VerticalScroll(id="diff-body"):
                yield Static(diff_table(self.diff, self.old_label, self.new_label),
                             id="diff-table")
            with Horizontal(id="diff-buttons"):
                if self.launch_label:
                    yield Button(self.launch_label, id="diff-launch", variant="success")
                    yield Button("Back", id="diff-back")
                else:
                    yield Button("Close", id="diff-back")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#diff-back", Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "launch":
            return self.launch_label is not None
        return True

    @on(Button.Pressed, "#diff-launch")
    def action_launch(self) -> None:
        """Launch the new version."""
        if self.launch_label:
            self.dismiss(True)

    @on(Button.Pressed, "#diff-back")
    def action_close(self) -> None:
        """Go back without launching."""
        self.dismiss(False)
