"""A version's events: time, kind, status and message, newest last."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from app.tui.widgets.formatting import format_seconds_time
from app.tui.widgets.key_table import KeyTable
from app.tui.widgets.status import status_text

if TYPE_CHECKING:
    from app.readmodels import EventInfo


class EventsTable(KeyTable):
    """The events tab of a version."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)
        self.add_column("Time", key="time")
        self.add_column("Kind", key="kind")
        self.add_column("Status", key="status")
        self.add_column("Message", key="message")

    def show(self, events: Iterable[EventInfo]) -> None:
        """Replace the rows with `events`."""
        self.clear()
        for event in events:
            self.add_row(format_seconds_time(event.time), event.kind,
                         status_text(self.app, event.status or ""), event.message)
