"""A DataTable that also answers the keys terminal people expect (j/k, g/G), and can
change a row without repainting the whole table."""

from __future__ import annotations

from collections.abc import Mapping

from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey


class KeyTable(DataTable[object]):
    """DataTable with vi-style movement on top of the arrow keys."""

    HELP_GROUP = "Table"

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="table.down"),
        Binding("k", "cursor_up", "Up", show=False, id="table.up"),
        Binding("g", "scroll_top", "First row", show=False, id="table.top"),
        Binding("G", "scroll_bottom", "Last row", show=False, id="table.bottom"),
    ]

    def action_scroll_home(self) -> None:
        """Home: the first row in a table of rows (DataTable scrolls to the left edge)."""
        if self.cursor_type == "row":
            self.action_scroll_top()
        else:
            super().action_scroll_home()

    def action_scroll_end(self) -> None:
        """End: the last row in a table of rows (DataTable scrolls to the right edge)."""
        if self.cursor_type == "row":
            self.action_scroll_bottom()
        else:
            super().action_scroll_end()

    def update_row_cells(self, row_key: str, cells: Mapping[str, object]) -> None:
        """Put new values in some cells of one row, and repaint that row only.

        `update_cell` repaints the whole table and drops every row's cached render, so
        a poll that changes one cell would send every visible row to the terminal again
        (over SSH, each time). Here only the row's own cached renders are dropped and
        only its lines are redrawn. Column widths stay as they are: for tables whose
        columns have fixed widths, or values no wider than before.
        """
        key = RowKey(row_key)
        row = self._data[key]
        for column, value in cells.items():
            row[ColumnKey(column)] = value
        index = self._row_locations.get(key)
        for cache in (self._row_render_cache, self._cell_render_cache):
            for cache_key in [k for k in cache.keys() if k[0] == key]:  # noqa: SIM118
                cache.discard(cache_key)
        self._row_renderable_cache.discard((self._update_count, index))
        self._line_cache.clear()  # cheap to refill from the row caches that remain
        if index is not None:
            self.refresh_row(index)
