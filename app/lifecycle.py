"""The life of a version, shared by the write side (`app.jobs`) and the runtime: its label,
loading it, its status changes and events, where it writes, and removing its rows. It
builds on the store alone; only a subscribed status change reaches up, to `app.notify`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, delete, select

from app.context import Context
from app.errors import ConflictError, NotFoundError
from app.specs.spec import JobSpec, is_remote
from app.store.db import Database
from app.store.models import (
    STATUS_EVENTS,
    Event,
    GpuAllocation,
    Job,
    MetricPointRow,
    MetricSummary,
    ModelVersion,
    Status,
    Template,
    Version,
    parse_version_label,
    utcnow,
    version_label,
)

RUNTIME_EVENT = "runtime"
"""Kind of the event that says why `auto` runs a version as local processes."""

def load_version(session: Session, job_name: str, label: str | None) -> tuple[Job, Version]:
    """A job and one of its versions (the latest when `label` is None)."""
    job = session.exec(select(Job).where(Job.name == job_name)).first()
    if job is None:
        raise NotFoundError(f"job {job_name!r} not found")
    query = select(Version).where(Version.job_id == job.id)
    if label is None:
        query = query.order_by(col(Version.number).desc())
    else:
        query = query.where(Version.number == parse_version_label(label))
    version = session.exec(query).first()
    if version is None:
        raise NotFoundError(f"job {job_name!r} has no version {label or '(none)'}")
    return job, version


def active_versions(db: Database) -> list[tuple[str, Version]]:
    """Every version not yet final, with its job name (for reconciliation)."""
    with db.read() as session:
        rows = session.exec(
            select(Job.name, Version).join(Version, col(Version.job_id) == col(Job.id))
            .where(col(Version.status).in_([s.value for s in Status if not s.is_final]))
        ).all()
    return [(name, version) for name, version in rows]


def record_event(
    session: Session, version_id: int, message: str, kind: str = "info",
    status: str | None = None,
) -> None:
    """Add an event to a version's history (in the caller's transaction)."""
    session.add(Event(version_id=version_id, message=message, kind=kind, status=status))


def runtime_note(session: Session, version_id: int) -> str | None:
    """Why `auto` runs this version as local processes, if it said so (for its log)."""
    return session.exec(select(Event.message).where(
        Event.version_id == version_id, Event.kind == RUNTIME_EVENT)).first()


def set_status(
    ctx: Context, version_id: int, status: Status, reason: str = "", *, notify: bool = True,
    **fields: Any,
) -> bool:
    """Move a version to `status`, with an event. A final status is never left again.

    Returns False (and changes nothing) when the version is already final or gone.
    A change the version's spec subscribes to (OnJobRunning, OnJobSucceeded,
    OnJobFailed) sends its notification from this process, in the background.
    """
    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if version is None or Status(version.status).is_final:
            return False
        changed = version.status != status.value
        subscribed = notify and changed and _subscribes(version.spec_json, status)
        now = utcnow()
        version.status = status.value
        version.reason = reason
        if status == Status.QUEUED and version.queued_at is None:
            version.queued_at = now
        if status == Status.RUNNING and version.started_at is None:
            version.started_at = now
        if status.is_final:
            version.finished_at = now
        for key, value in fields.items():
            setattr(version, key, value)
        session.add(version)
        session.exec(update(Job).where(col(Job.id) == version.job_id).values(updated_at=now))
        message = status.value + (f": {reason}" if reason else "")
        record_event(session, version_id, message, "status", status.value)
    if subscribed:
        from app.notify import notify_status_in_background  # listed in pyproject.toml

        notify_status_in_background(ctx, version_id, status)
    return True


def _subscribes(spec_json: str, status: Status) -> bool:
    event = STATUS_EVENTS.get(status)
    if event is None:
        return False
    try:
        subscriptions = json.loads(spec_json).get("subscriptions") or []
    except (ValueError, AttributeError):
        return False
    return any(event in (sub.get("events") or []) for sub in subscriptions)


def version_paths(ctx: Context, spec: JobSpec, label: str) -> tuple[str, str]:
    """The version's own output location and its local log folder.

    Each version writes under `<output>/<V00n>` and `<log_dir>/<V00n>`, so a new version
    never overwrites an earlier one's files. Remote log paths are staged locally.
    """
    output = f"{spec.output.rstrip('/')}/{label}" if spec.output else ""
    log_base = spec.log_dir or ""
    if is_remote(log_base):
        log_base = str(ctx.settings.resolved_runs_dir / spec.name / "logs-stage")
    return output, str(Path(log_base) / label)


def code_folder(spec: JobSpec) -> str | None:
    """The spec's code folder (framework, or custom image with code), if any."""
    algorithm = spec.algorithm
    owner = algorithm.framework or algorithm.image
    return (owner.code_dir or None) if owner is not None else None


def _delete_version_rows(session: Session, version_ids: list[int]) -> None:
    if not version_ids:
        return
    for table in (Event, MetricPointRow, MetricSummary, GpuAllocation):
        session.exec(delete(table).where(col(table.version_id).in_(version_ids)))  # type: ignore[attr-defined]
    session.exec(update(Version).where(col(Version.parent_id).in_(version_ids))
                 .values(parent_id=None))
    session.exec(update(Template).where(col(Template.source_version_id).in_(version_ids))
                 .values(source_version_id=None))
    session.exec(update(ModelVersion).where(col(ModelVersion.source_version_id).in_(version_ids))
                 .values(source_version_id=None))
    session.exec(delete(Version).where(col(Version.id).in_(version_ids)))


def delete_rows(ctx: Context, job_name: str, label: str | None) -> list[Version]:
    """Remove a version (or, with no label, the whole job) from the database.

    Refuses while any of them is still active: stop it first. Returns the removed rows.
    """
    with ctx.db.write() as session:
        job = session.exec(select(Job).where(Job.name == job_name)).first()
        if job is None:
            raise NotFoundError(f"job {job_name!r} not found")
        if label is None:
            versions = list(session.exec(select(Version).where(Version.job_id == job.id)))
        else:
            versions = [load_version(session, job_name, label)[1]]
        active = [v for v in versions if not Status(v.status).is_final]
        if active:
            labels = ", ".join(version_label(v.number) for v in active)
            raise ConflictError(f"{job_name} {labels} still active: stop it first")
        _delete_version_rows(session, [v.id for v in versions if v.id is not None])
        job.updated_at = utcnow()  # open job lists notice the change
        if label is None:
            session.delete(job)
        else:
            latest = session.exec(
                select(Version.id).where(Version.job_id == job.id)
                .order_by(col(Version.number).desc())
            ).first()
            job.latest_version_id = latest
            session.add(job)
    return versions
