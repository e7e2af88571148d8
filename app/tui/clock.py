"""The one clock the TUI reads "now" from, so tests can freeze it.

Durations of running versions and relative times are computed against `now()`;
snapshot tests call `freeze(...)` for output that does not change between runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """The current time in UTC (or the frozen time in tests)."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(at: datetime | None) -> None:
    """Make `now()` return `at` from now on; None lets the clock run again."""
    global _frozen
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    _frozen = at

