"""What a new version changes against its parent: the table the wizard's confirm page shows
before a modify launches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

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
