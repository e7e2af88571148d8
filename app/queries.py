"""Reading jobs and versions: plain read models for the CLI and the TUI.

Nothing here returns live ORM objects, and the job list reads one window of rows at
a time so that 10,000 jobs cost what 100 do.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, func, or_, text
from sqlalchemy import select as core_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app.lifecycle import load_version, parse_version_label
from app.metrics import compare_versions
from app.readmodels import (
    DELETED_PARENT,
    Comparison,
    EventInfo,
    JobRow,
    VersionInfo,
    duration_seconds,
    version_from_row,
)
from app.store.db import Database
from app.store.models import (
    ACTIVE_STATUSES,
    Event,
    Job,
    MetricPointRow,
    MetricSummary,
    Version,
    utcnow,
    version_label,
)

SortKey = Literal["updated", "created", "name", "status"]




def _job_filter(search: str, status: str | None) -> list[Any]:
    clauses: list[Any] = []
    if search:
        like = f"%{search}%"
        clauses.append(or_(col(Job.name).ilike(like), col(Job.description).ilike(like)))
    if status:
        clauses.append(Version.status == status)
    return clauses


def list_jobs(
    db: Database, search: str = "", status: str | None = None, sort: SortKey = "updated",
    descending: bool = True, offset: int = 0, limit: int = 200,
) -> list[JobRow]:
    """One window of the job list, each job with its latest version."""
    order = {
        "updated": col(Job.updated_at), "created": col(Job.created_at),
        "name": col(Job.name), "status": col(Version.status),
    }[sort]
    # Versions that still exist (the job's numbering goes on past deleted ones).
    kept = aliased(Version, name="kept")
    count = (core_select(func.count()).select_from(kept)
             .where(col(kept.job_id) == col(Job.id)).correlate(Job).scalar_subquery())
    query = (
        select(Job, Version, count)
        .join(Version, col(Version.id) == col(Job.latest_version_id), isouter=True)
        .where(*_job_filter(search, status))
        .order_by(order.desc() if descending else order.asc(), col(Job.id).desc())
        .offset(offset).limit(limit)
    )
    with db.read() as session:
        rows = session.exec(query).all()
    return [
        JobRow(
            id=job.id or 0, name=job.name, description=job.description,
            version=version_label(v.number) if v else "", versions=versions,
            status=v.status if v else "", reason=v.reason if v else "",
            engine=v.engine if v else "", runtime=v.runtime if v else "",
            gpus=v.gpus_requested if v else 0, nodes=v.nodes if v else 0,
            created=job.created_at, updated=job.updated_at,
            started=v.started_at if v else None, finished=v.finished_at if v else None,
        )
        for job, v, versions in rows
    ]


def jobs_change_marker(db: Database) -> tuple[int, datetime | None]:
    """(job count, newest `updated_at`): it moves whenever a job is added, removed or
    changes status, so a list can poll this instead of re-reading its rows."""
    query = select(func.count(), func.max(col(Job.updated_at))).select_from(Job)
    with db.read() as session:
        count, newest = session.exec(query).one()
    return int(count), newest


def count_jobs(db: Database, search: str = "", status: str | None = None) -> int:
    """How many jobs match the filter."""
    query = (
        select(func.count()).select_from(Job)
        .join(Version, col(Version.id) == col(Job.latest_version_id), isouter=True)
        .where(*_job_filter(search, status))
    )
    with db.read() as session:
        return int(session.exec(query).one())


def latest_metrics(connection: Any, version_ids: list[int]) -> dict[int, dict[str, float]]:
    """The value each metric of running versions had last (they have no final values
    yet): version id → name → value."""
    out: dict[int, dict[str, float]] = {vid: {} for vid in version_ids}
    if not version_ids:
        return out
    last = (core_select(func.max(col(MetricPointRow.id)))
            .where(col(MetricPointRow.version_id).in_(version_ids))
            .group_by(col(MetricPointRow.version_id), col(MetricPointRow.name)))
    rows = connection.execute(
        core_select(col(MetricPointRow.version_id), col(MetricPointRow.name),
                    col(MetricPointRow.value)).where(col(MetricPointRow.id).in_(last)))
    for version_id, name, value in rows:
        out[version_id][name] = value
    return out


def final_metrics(session: Session, version_ids: list[int]) -> dict[int, dict[str, float]]:
    """Final metric values of each version (plain rows: no ORM object per value)."""
    out: dict[int, dict[str, float]] = {vid: {} for vid in version_ids}
    if not version_ids:
        return out
    rows = session.connection().execute(
        core_select(col(MetricSummary.version_id), col(MetricSummary.name),
                    col(MetricSummary.value))
        .where(col(MetricSummary.version_id).in_(version_ids))
    )
    for version_id, name, value in rows:
        out[version_id][name] = value
    return out


_ACTIVE = frozenset(status.value for status in ACTIVE_STATUSES)

_VERSION_COLUMNS: tuple[Any, ...] = (
    Version.id, Version.number, Version.status, Version.reason, Version.exit_code,
    Version.engine, Version.runtime, Version.pool, Version.gpus_requested, Version.nodes,
    Version.allocated_gpus, Version.output, Version.log_dir, Version.created_at,
    Version.queued_at, Version.started_at, Version.finished_at, Version.spec_json,
    Version.code_info, Version.allocated_uuids,
)
"""What a `VersionInfo` is made of, in `_row_info`'s order: read as plain rows, they cost
a fraction of a `Version` object each (a job screen reads every version of the job)."""


def _info(job_name: str, version: Version, parent_number: int | None,
          metrics: dict[str, float]) -> VersionInfo:
    """A `Version` read whole (one version: its cost does not matter)."""
    return VersionInfo(
        id=version.id or 0, job=job_name, number=version.number,
        version=version_label(version.number),
        parent=version_label(parent_number) if parent_number else None,
        status=version.status, reason=version.reason, exit_code=version.exit_code,
        engine=version.engine, runtime=version.runtime, pool=version.pool,
        gpus=version.gpus_requested, nodes=version.nodes,
        allocated_gpus=version.allocated_gpus, allocated_uuids=version.allocated_uuids,
        output=version.output, log_dir=version.log_dir,
        created=version.created_at, queued=version.queued_at, started=version.started_at,
        finished=version.finished_at,
        duration=duration_seconds(version.started_at, version.finished_at),
        metrics=metrics, spec_json=version.spec_json, code_info=version.code_info,
    )


def deleted_parents(connection: Any, version_ids: list[int]) -> dict[int, str]:
    """The deleted parent of each of these versions that had one, as `DELETED_PARENT`.

    Deleting a version clears its children's `parent_id` (a foreign key); the child's own
    creation event ("V003 created from V002") still names the parent, and stays.
    """
    if not version_ids:
        return {}
    rows = connection.execute(
        core_select(col(Event.version_id), col(Event.message))
        .where(col(Event.version_id).in_(version_ids), col(Event.kind) == "status",
               col(Event.message).like("V% created from V%"))
    )
    return {version_id: DELETED_PARENT.format(label=message.rsplit(" ", 1)[1])
            for version_id, message in rows}


def job_versions(
    db: Database, job_name: str, status: str | None = None, labels: list[str] | None = None,
) -> list[VersionInfo]:
    """Every version of a job (oldest first), optionally filtered."""
    from app.errors import NotFoundError

    parent = aliased(Version, name="parent")
    with db.read() as session:
        job_id = session.exec(select(Job.id).where(Job.name == job_name)).first()
        if job_id is None:
            raise NotFoundError(f"job {job_name!r} not found")
        chosen: list[Any] = [col(Version.job_id) == job_id]
        if status:
            chosen.append(col(Version.status) == status)
        if labels:
            numbers = [parse_version_label(label) for label in labels]
            chosen.append(col(Version.number).in_(numbers))
        query = (
            core_select(*_VERSION_COLUMNS, col(parent.number))
            .outerjoin(parent, col(parent.id) == col(Version.parent_id))
            .where(*chosen)
            .order_by(col(Version.number))
        )
        connection = session.connection()
        rows = connection.execute(query).all()
        if labels:
            found = {row[1] for row in rows}
            missing = [label for label, n in zip(labels, numbers, strict=True) if n not in found]
            if missing:
                raise NotFoundError(f"job {job_name!r} has no version {', '.join(missing)}")
        # The final values of the same versions, found by the job (a thousand ids as
        # bound parameters cost more than the rows).
        metrics: dict[int, dict[str, float]] = {row[0]: {} for row in rows}
        summaries = connection.execute(
            core_select(col(MetricSummary.version_id), col(MetricSummary.name),
                        col(MetricSummary.value))
            .where(col(MetricSummary.version_id).in_(core_select(col(Version.id))
                                                     .where(*chosen)))
        ).all()
        orphans = deleted_parents(connection, [row[0] for row in rows if row[-1] is None])
    for version_id, name, value in summaries:
        metrics[version_id][name] = value
    running = [row[0] for row in rows if row[2] in _ACTIVE and not metrics[row[0]]]
    if running:
        with db.read() as session:
            metrics.update(latest_metrics(session.connection(), running))
    now = utcnow()
    infos = [version_from_row(job_name, row, metrics[row[0]], now) for row in rows]
    return [replace(info, parent=orphans[info.id]) if info.id in orphans else info
            for info in infos]


def version_info(db: Database, job_name: str, label: str | None = None) -> VersionInfo:
    """One version (the latest when `label` is None)."""
    with db.read() as session:
        job, version = load_version(session, job_name, label)
        parent_number = (
            session.exec(select(Version.number).where(Version.id == version.parent_id)).first()
            if version.parent_id else None
        )
        metrics = final_metrics(session, [version.id or 0])[version.id or 0]
        if not metrics and version.status in _ACTIVE:  # running: the latest values so far
            metrics = latest_metrics(session.connection(), [version.id or 0])[version.id or 0]
        orphan = (deleted_parents(session.connection(), [version.id or 0])
                  if parent_number is None else {})
    info = _info(job.name, version, parent_number, metrics)
    return replace(info, parent=orphan[info.id]) if orphan else info


def version_events(db: Database, version_id: int, limit: int = 500) -> list[EventInfo]:
    """A version's events, oldest first."""
    with db.read() as session:
        rows = session.exec(
            select(Event).where(Event.version_id == version_id)
            .order_by(col(Event.id)).limit(limit)
        ).all()
    return [EventInfo(e.time, e.kind, e.status, e.message) for e in rows]


def metric_series(
    db: Database, version_ids: list[int],
) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """Metric curves: version id → metric name → [(step, value), ...] in step order."""
    out: dict[int, dict[str, list[tuple[int, float]]]] = {vid: {} for vid in version_ids}
    if not version_ids:
        return out
    query = select(MetricPointRow.version_id, MetricPointRow.name, MetricPointRow.step,
                   MetricPointRow.value).where(col(MetricPointRow.version_id).in_(version_ids))
    with db.read() as session:
        rows = session.exec(query.order_by(col(MetricPointRow.version_id),
                                           col(MetricPointRow.name),
                                           col(MetricPointRow.step))).all()
    for vid, name, step, value in rows:
        out[vid].setdefault(name, []).append((step, value))
    return out


# Walks the (version_id, name, step) index from one name to the next ("skip scan"): one
# index seek per version and name instead of reading every point, as DISTINCT would.
_CURVE_NAMES = text("""
    WITH RECURSIVE seen(version_id, name) AS (
        SELECT v.id, (SELECT p.name FROM metric_points AS p WHERE p.version_id = v.id
                      ORDER BY p.name LIMIT 1)
        FROM versions AS v WHERE v.id IN :ids
        UNION ALL
        SELECT s.version_id, (SELECT p.name FROM metric_points AS p
                              WHERE p.version_id = s.version_id AND p.name > s.name
                              ORDER BY p.name LIMIT 1)
        FROM seen AS s WHERE s.name IS NOT NULL
    )
    SELECT DISTINCT name FROM seen WHERE name IS NOT NULL
""").bindparams(bindparam("ids", expanding=True))


def metric_curve_names(db: Database, version_ids: list[int]) -> set[str]:
    """Names of the metrics with at least one curve point in any of these versions."""
    if not version_ids:
        return set()
    with db.read() as session:
        rows = session.connection().execute(_CURVE_NAMES, {"ids": version_ids})
        return {name for (name,) in rows}


def metric_curves(
    db: Database, version_ids: list[int], name: str,
) -> dict[int, list[tuple[int, float]]]:
    """One metric's curves: version id → [(step, value), ...] in step order.

    A Core query of three columns that the (version_id, name, step) index serves in
    order: no ORM object per point, so a curve per version costs what the rows do.
    """
    out: dict[int, list[tuple[int, float]]] = {vid: [] for vid in version_ids}
    if not version_ids:
        return out
    query = (
        core_select(col(MetricPointRow.version_id), col(MetricPointRow.step),
                    col(MetricPointRow.value))
        .where(col(MetricPointRow.version_id).in_(version_ids),
               col(MetricPointRow.name) == name)
        .order_by(col(MetricPointRow.version_id), col(MetricPointRow.step))
    )
    with db.read() as session:
        for vid, step, value in session.connection().execute(query):
            out[vid].append((step, value))
    return out


def compare(
    db: Database, job_name: str, labels: list[str] | None = None, status: str | None = None,
) -> Comparison:
    """Compare the given versions (or all, or those with `status`) of a job."""
    return compare_versions(job_name, job_versions(db, job_name, status=status, labels=labels))
