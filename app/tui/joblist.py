"""The job list's data side: the filter syntax, reading a window of rows, the cell texts.

Used by the jobs screen; rows come from the open core (`app.queries`) or, before it has
opened, straight from the SQLite file (`app.store.quicklist`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.formatting import format_duration
from app.readmodels import format_resources
from app.tui.widgets.formatting import format_coarse_duration, format_time, run_duration

if TYPE_CHECKING:
    from app.context import Context
    from app.readmodels import JobRow

Marker = tuple[int, datetime | None]
"""`queries.jobs_change_marker`: (job count, newest change); it moves when rows change."""

SORT_KEYS = ("updated", "created", "name", "status")
SORT_LABELS = {"updated": "last change", "created": "created", "name": "name", "status": "status"}
COLUMNS = (
    ("name", "Name", 26), ("version", "Version", 7), ("status", "Status", 13),
    ("engine", "Engine", 14), ("resources", "Resources", 19), ("created", "Created", 16),
    ("duration", "Duration", 10),
)
"""Every column of the job list: (key, label, width) — 120 columns of terminal."""
COLUMN_KEYS = tuple(key for key, _label, _width in COLUMNS)
"""The keys of `COLUMNS`, in order (the order of `row_texts`)."""
DROP_ORDER = ("resources", "engine", "created", "duration")
"""Columns a narrow terminal leaves out first (the job screen shows them anyway), rather
than scroll sideways or cut the name short."""
NAME_MIN_WIDTH = 16
"""The name column narrows down to this before another column goes."""
CELL_PADDING = 2
"""Cells the table adds to each column."""


def columns_for(width: int) -> tuple[tuple[str, str, int], ...]:
    """The columns that fit a terminal `width` columns wide, the name taking what is left.

    120 columns hold every column; 80 hold five, the name 23 cells wide.
    """
    widths = {key: size for key, _label, size in COLUMNS}
    keys = list(COLUMN_KEYS)

    def room_for_name() -> int:
        # One more cell for the scroll bar's gutter.
        others = sum(widths[key] + CELL_PADDING for key in keys if key != "name")
        return width - others - CELL_PADDING - 1

    for key in DROP_ORDER:
        if room_for_name() >= min(NAME_MIN_WIDTH, widths["name"]) or len(keys) <= 3:
            break
        keys.remove(key)
    name_width = max(NAME_MIN_WIDTH, min(widths["name"], room_for_name()))
    return tuple((key, label, name_width if key == "name" else size)
                 for key, label, size in COLUMNS if key in keys)


def parse_filter(text: str) -> tuple[str, str | None]:
    """`status:failed digits` → (`digits`, `failed`): a status token plus free text."""
    status: str | None = None
    words: list[str] = []
    for word in text.split():
        if word.lower().startswith("status:"):
            status = word.split(":", 1)[1].lower() or None
        else:
            words.append(word)
    return " ".join(words), status


def fetch_rows(source: Context | Path, search: str, status: str | None, sort: Any,
               descending: bool, offset: int, limit: int) -> tuple[list[JobRow], int]:
    """One window of rows and the count, from the core or straight from the file.

    Blocking: call from a worker. Raises TraindeckError (core) or QuickListError (file).
    """
    if isinstance(source, Path):
        from app.store import quicklist

        return (quicklist.list_jobs_fast(source, search, status, sort, descending, offset,
                                         limit),
                quicklist.count_jobs_fast(source, search, status))
    from app import queries

    return (queries.list_jobs(source.db, search, status, sort, descending, offset, limit),
            queries.count_jobs(source.db, search, status))


def row_texts(row: JobRow) -> tuple[str, ...]:
    """What each column shows for `row`, as plain text (compared to skip needless redraws)."""
    return (
        row.name, row.version or "—", row.status, row.engine or "—",
        format_resources(row.gpus, row.nodes, row.runtime) if row.version else "—",
        format_time(row.created), _duration_text(row),
    )


def _duration_text(row: JobRow) -> str:
    """A finished run's exact duration; a running one's in minutes (it ticks: a finer
    clock would redraw the row, and send it over SSH, every poll)."""
    seconds = run_duration(row.started, row.finished)
    return format_duration(seconds) if row.finished is not None else format_coarse_duration(seconds)


