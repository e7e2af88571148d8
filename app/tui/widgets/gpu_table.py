"""A table that is given all its rows again and again, and redraws only what changed.

The GPU and queue views poll every few seconds; most polls change nothing, and then this
table sends nothing to the terminal (an idle TUI over SSH should stay quiet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import RenderableType

from app.tui.widgets.key_table import KeyTable


@dataclass(frozen=True)
class SyncRow:
    """One row: its key, the plain text of each cell (compared), and what is drawn."""

    key: str
    texts: tuple[str, ...]
    """Plain text per column, then anything else that changes the look (e.g. a status):
    a change there redraws the whole row."""
    cells: tuple[RenderableType, ...]


class GpuTable(KeyTable):
    """A KeyTable fed whole snapshots through `sync`; unchanged cells are not touched."""

    def __init__(self, columns: Sequence[tuple[str, str, int | None]], *,
                 id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._columns = list(columns)
        """(key, label, width) per column; width None lets the column size itself."""
        self._keys: list[str] = []
        self._shown: dict[str, tuple[str, ...]] = {}

    def on_mount(self) -> None:
        for key, label, width in self._columns:
            self.add_column(label, key=key, width=width)

    @property
    def row_keys(self) -> list[str]:
        """Keys of the rows shown, top to bottom."""
        return list(self._keys)

    def highlighted_key(self) -> str | None:
        """Key of the row under the cursor."""
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return self._keys[self.cursor_row]

    def sync(self, rows: Sequence[SyncRow], *, force: bool = False) -> int:
        """Show `rows`; returns how many cells were redrawn (0 when nothing changed).

        Same keys in the same order: only cells whose text changed are updated. Rows added,
        removed or moved: the table is refilled and the cursor stays on its row's key.
        `force` redraws every cell (after a theme change: colours are baked into cells).
        """
        keys = [row.key for row in rows]
        if force or keys != self._keys:
            keep = self.highlighted_key()
            self.clear()
            for row in rows:
                self.add_row(*row.cells, key=row.key)
            self._keys = keys
            self._shown = {row.key: row.texts for row in rows}
            if keep in keys:
                self.move_cursor(row=keys.index(keep), animate=False)
            return sum(len(row.cells) for row in rows)
        changed = 0
        for row in rows:
            old = self._shown[row.key]
            if row.texts == old:
                continue
            width = len(self._columns)
            restyle = row.texts[width:] != old[width:]
            cells = {column_key: row.cells[index]
                     for index, (column_key, _label, _width) in enumerate(self._columns)
                     if restyle or row.texts[index] != old[index]}
            self.update_row_cells(row.key, cells)
            changed += len(cells)
            self._shown[row.key] = row.texts
        return changed
