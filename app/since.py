"""The "since you left" read model: what finished, failed, stopped or started while the
TUI was closed, and when it was last open (the TUI's since screen shows it).

Core code: plain dataclasses out, no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import col, select

from app.store.db import Database
from app.store.models import AppState, Job, Status, Version, version_label

LAST_SEEN_KEY = "tui_last_seen"
"""`AppState` key holding when the TUI was last open (ISO 8601, UTC)."""


@dataclass(frozen=True)
class SinceItem:
    """One version that finished, failed, stopped or started while the TUI was closed."""

    version_id: int
    job: str
    version: str
    status: str
    reason: str
    when: datetime
    """When it finished (final statuses) or started (running ones)."""

    @property
    def label(self) -> str:
        """`job/V003`."""
        return f"{self.job}/{self.version}"


SINCE_KINDS = ("succeeded", "failed", "stopped", "started")
"""The counts a summary keeps, in the order they are shown."""


@dataclass(frozen=True)
class Summary:
    """What changed since a moment: counts per kind and the newest changes."""

    since: datetime
    counts: dict[str, int] = field(default_factory=dict)
    """`succeeded`, `failed`, `stopped` and `started` (started and still going) → number."""
    items: list[SinceItem] = field(default_factory=list)
    """The newest changes first, at most the `limit` asked for."""

    @property
    def total(self) -> int:
        """Every change counted (the list may hold fewer)."""
        return sum(self.counts.values())

    @property
    def empty(self) -> bool:
        """True when nothing happened."""
        return self.total == 0


def since_summary(db: Database, since: datetime, limit: int = 200) -> Summary:
    """Versions that ended after `since`, and those that started after it and still run."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    final = [s.value for s in Status if s.is_final]
    ended = (col(Version.finished_at) > since) & col(Version.status).in_(final)
    started = (col(Version.started_at) > since) & ~col(Version.status).in_(final)
    counts = dict.fromkeys(SINCE_KINDS, 0)
    with db.read() as session:
        for status, number in session.exec(
            select(Version.status, func.count()).where(ended).group_by(col(Version.status))
        ):
            counts[status] = int(number)
        counts["started"] = int(session.exec(
            select(func.count()).select_from(Version).where(started)).one())
        finished_rows = session.exec(
            select(Job.name, Version).join(Job, col(Job.id) == col(Version.job_id))
            .where(ended).order_by(col(Version.finished_at).desc()).limit(limit)
        ).all()
        started_rows = session.exec(
            select(Job.name, Version).join(Job, col(Job.id) == col(Version.job_id))
            .where(started).order_by(col(Version.started_at).desc()).limit(limit)
        ).all()
    items = [
        SinceItem(v.id or 0, name, version_label(v.number), v.status, v.reason,
                  v.finished_at or since)
        for name, v in finished_rows
    ] + [
        SinceItem(v.id or 0, name, version_label(v.number), v.status, v.reason,
                  v.started_at or since)
        for name, v in started_rows
    ]
    items.sort(key=lambda item: (item.when, item.version_id), reverse=True)
    return Summary(since=since, counts=counts, items=items[:limit])


def last_seen(db: Database) -> datetime | None:
    """When the TUI was last open, or None on its very first start."""
    with db.read() as session:
        row = session.get(AppState, LAST_SEEN_KEY)
    if row is None or not row.value:
        return None
    try:
        moment = datetime.fromisoformat(row.value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def mark_seen(db: Database, when: datetime) -> None:
    """Remember that the TUI was open at `when`."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    with db.write() as session:
        row = session.get(AppState, LAST_SEEN_KEY) or AppState(key=LAST_SEEN_KEY)
        row.value = when.astimezone(UTC).isoformat()
        session.add(row)


def since_last_seen(db: Database, now: datetime) -> Summary | None:
    """The summary to greet the TUI with, then mark `now` as seen.

    None on the very first start and when nothing changed: then nothing is shown.
    """
    seen = last_seen(db)
    summary = since_summary(db, seen) if seen is not None else None
    mark_seen(db, now)
    return None if summary is None or summary.empty else summary
