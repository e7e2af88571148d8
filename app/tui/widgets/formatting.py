"""Plain-text formatting shared by the screens: times, durations, resources, values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.tui import clock


def format_time(value: datetime | None) -> str:
    """`2024-05-01 14:03` in local time, or `—`."""
    if value is None:
        return "—"
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def format_seconds_time(value: datetime | None) -> str:
    """`2024-05-01 14:03:07` in local time, or `—`."""
    if value is None:
        return "—"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_coarse_duration(seconds: float | None) -> str:
    """`<1m`, `47m`, `3h 04m`, `2d 05h`: minutes at best, for values that tick (a running
    version's duration), so that a poll seldom changes what is on screen."""
    if seconds is None:
        return "—"
    minutes = max(0, int(seconds)) // 60
    if minutes < 1:
        return "<1m"
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def run_duration(started: datetime | None, finished: datetime | None) -> float | None:
    """Seconds between start and finish, or until the TUI's `now` while still running."""
    if started is None:
        return None
    end = finished or clock.now()
    return max(0.0, (end - started).total_seconds())


class WrappedPath:
    """A path (or a line of them) that wraps after a `/` or a space, never inside a name
    that fits a line: `/data/runs/digits/` then `out/V003`, not `/data/runs/dig` `its/…`.
    A name longer than a whole line folds."""

    def __init__(self, text: str) -> None:
        self.text = text

    def lines(self, width: int) -> list[str]:
        """The text cut into lines at most `width` cells wide."""
        import re

        width = max(1, width)
        lines = [""]
        for chunk in re.findall(r"[^/ ]*[/ ]+|[^/ ]+$", self.text):
            if len(lines[-1]) + len(chunk.rstrip(" ")) > width and lines[-1]:
                lines.append("")
            while len(chunk.rstrip(" ")) > width:
                room = width - len(lines[-1])
                lines[-1] += chunk[:room]
                chunk = chunk[room:]
                lines.append("")
            lines[-1] += chunk
        return [line.rstrip(" ") for line in lines]

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        yield Text("\n".join(self.lines(options.max_width)))

    def __rich_measure__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        longest = max((len(chunk) for chunk in self.text.replace("/", "/ ").split()),
                      default=1)
        return Measurement(min(longest, options.max_width), len(self.text))
