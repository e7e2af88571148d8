"""Read models that need nothing but the standard library.

The fast start-up path (`app.quicklist`) builds these without importing SQLModel,
SQLAlchemy or pydantic; `app.queries` builds the same ones from the ORM and re-exports them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


def format_resources(gpus: int, nodes: int, runtime: str) -> str:
    """Accelerators per node, times the node count, then the runtime (`2 GPUs · local`,
    two CPU nodes in Docker): the one way the TUI and the CLI write a version's resources."""
    text = (f"{gpus} GPU" + ("s" if gpus > 1 else "")) if gpus else "CPU"
    if nodes > 1:
        text += f" × {nodes}"
    if runtime:
        text += f" · {runtime}"
    return text


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of `value` (None stays None)."""
    return value.isoformat() if value else None


@dataclass(frozen=True)
class JobRow:
    """One line of the job list: a job and its latest version."""

    id: int
    name: str
    description: str
    version: str
    versions: int
    """How many versions the job has now (deleted ones do not count)."""
    status: str
    reason: str
    engine: str
    runtime: str
    gpus: int
    nodes: int
    created: datetime
    updated: datetime
    started: datetime | None
    finished: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        data = asdict(self)
        for key in ("created", "updated", "started", "finished"):
            data[key] = iso(data[key])
        return data
