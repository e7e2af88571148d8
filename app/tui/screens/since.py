""""Since you left": what finished, failed, stopped or started while the TUI was closed.

The app computes the summary at start-up (`app.since.since_last_seen`, in a worker)
and opens this modal only when there is something to say.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from app.tui import clock
from app.tui.themes import theme_colour
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.formatting import format_time
from app.tui.widgets.key_table import KeyTable
from app.tui.widgets.status import STATUS_GLYPHS

if TYPE_CHECKING:
    from app.since import SinceItem, Summary

COUNT_LABELS = {"succeeded": "succeeded", "failed": "failed", "stopped": "stopped",
                "started": "started"}
COUNT_STATUS = {"succeeded": "succeeded", "failed": "failed", "stopped": "stopped",
                "started": "running"}
"""Which status colour each count is drawn in."""


def ago(moment: datetime, now: datetime) -> str:
    """`3h ago`, `2d ago`: how long the TUI was closed, roughly."""
    minutes = max(0, int((now - moment).total_seconds()) // 60)
    if minutes < 60:
        return f"{minutes}m ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h ago"
    return f"{hours // 24}d ago"


class SinceScreen(ModalScreen[None]):
    """A short report of what happened since the TUI was last open; enter or esc closes."""

    CSS_PATH = "since.tcss"
    AUTO_FOCUS = "#since-table"
    BINDINGS = [
        Binding("escape", "close", "Close", id="since.close"),
        Binding("enter", "close", "Close", show=False, id="since.close-enter"),
        Binding("q", "close", "Close", show=False, id="since.close-q"),
    ]

    def __init__(self, summary: Summary) -> None:
        super().__init__()
        self.summary = summary
        """The changes to report (never empty: the app does not open an empty one)."""

    def compose(self) -> ComposeResult:
        summary = self.summary
        with Vertical(id="since-dialog"):
            yield Label(f"Since you left — {format_time(summary.since)} "
                        f"({ago(summary.since, clock.now())})", id="since-title")
            yield Static(self._counts(), id="since-counts")
            table = KeyTable(id="since-table", cursor_type="row", zebra_stripes=True)
            table.add_column("Version", key="version", width=24)
            table.add_column("Status", key="status", width=12)
            table.add_column("When", key="when", width=16)
            table.add_column("Reason", key="reason", width=40)
            for item in summary.items:
                # Auto height: a failure's whole reason is the point of this report.
                table.add_row(*self._cells(item), key=str(item.version_id), height=None)
            yield table
            if len(summary.items) < summary.total:
                yield Static(f"Showing the newest {len(summary.items)} of {summary.total}.",
                             id="since-more")
            yield Static("enter or esc to close", id="since-hint")
        yield KeyFooter()

    def _counts(self) -> Text:
        text = Text()
        for key, label in COUNT_LABELS.items():
            number = self.summary.counts.get(key, 0)
            if not number:
                continue
            if text:
                text.append("  ·  ")
            status = COUNT_STATUS[key]
            style = theme_colour(self.app, f"status-{status}", "default")
            text.append(f"{STATUS_GLYPHS.get(status, '·')} {number} {label}", style=style)
        return text

    def _cells(self, item: SinceItem) -> tuple[Text | str, ...]:
        style = theme_colour(self.app, f"status-{item.status}", "default")
        status = Text(f"{STATUS_GLYPHS.get(item.status, '·')} {item.status}", style=style)
        reason = Text(item.reason or "—")
        return (Text(item.label, style="bold"), status, format_time(item.when), reason)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        """Close the report."""
        self.dismiss(None)
