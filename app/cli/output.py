"""Printing data for people (aligned tables) and for scripts (`--json`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from app import formatting


def print_json(data: Any) -> None:
    """Write `data` as JSON to stdout."""
    json.dump(data, sys.stdout, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write rows as a left-aligned table with a header line."""
    cells = [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line.rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def format_time(value: datetime | None) -> str:
    """A time in the local zone, to the second."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    """`app.formatting.format_duration`, `-` when missing (plain ASCII for scripts)."""
    return formatting.format_duration(seconds, "-")


def format_value(value: Any) -> str:
    """`app.formatting.format_value`, `-` when missing (plain ASCII for scripts)."""
    return formatting.format_value(value, "-")


def format_typed(value: Any) -> str:
    """A value with its type showing, as JSON writes it (`"010"` a string, `10` a number,
    `true` a boolean); `-` when missing. For diffs, where `10` and `"10"` differ."""
    if value is None:
        return "-"
    return json.dumps(value, ensure_ascii=False, default=str)
