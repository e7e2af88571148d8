"""Plain-text formatting shared by the screens: times, durations, resources, values."""

from __future__ import annotations

import json
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


def format_duration(seconds: float | None) -> str:
    """`45s`, `12m 03s`, `3h 04m`, `2d 05h` (coarser as it grows: fewer redraws)."""
    if seconds is None:
        return "—"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


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


def format_resources(gpus: int, nodes: int, runtime: str) -> str:
    """Accelerators per node, times the node count, then the runtime (`2 GPUs · local`)."""
    text = (f"{gpus} GPU" + ("s" if gpus > 1 else "")) if gpus else "CPU"
    if nodes > 1:
        text += f" × {nodes}"
    if runtime:
        text += f" · {runtime}"
    return text


def format_value(value: Any) -> str:
    """A parameter or metric value as a person reads it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str | int):
        return str(value)
    return json.dumps(value)
