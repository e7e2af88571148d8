"""Cold reads straight from the SQLite file: the TUI's first frame, `list`, `show`, `logs`.

Opening the full core (settings, SQLModel, migrations, catalog sync, reconciliation) costs
far more than printing a table, so these read with the standard library's `sqlite3` and
nothing else. The queries mirror `app.queries` (`list_jobs`, `count_jobs`, `job_versions`,
`version_info`, `version_events`) and `app.runtime.sampler.gpu_summary` row for row;
tests hold them to it.

Only the default database at the schema revision known here qualifies: when a
`database_url` is configured (environment or config file) `default_db_path` returns None,
and any other reason not to answer from here (an older or newer schema, a locked or
corrupt file, a name that is not found, a version whose supervisor is gone) is a
`QuickListError`: the caller takes the normal path, which reconciles and says why.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.readmodels import (
    ACTIVE_STATUS_VALUES,
    DELETED_PARENT,
    EventInfo,
    JobRow,
    VersionInfo,
    gpu_summary_of,
    version_from_row,
)

if TYPE_CHECKING:
    from app.store.snapshot import Snapshot

APP_NAME = "traindeck"
DB_FILE_NAME = "traindeck.db"
URL_SETTING = "TRAINDECK_DATABASE_URL"
SCHEMA_REVISION = "0005"
"""The schema these queries are written for (`app.store.db.HEAD_REVISION`; a test holds them
equal): another revision is read by the core, which migrates or refuses it."""
LAUNCH_GRACE_SECONDS = 30.0
"""`app.runtime.reconcile.LAUNCH_GRACE_SECONDS`: a version this young with no supervisor
pid yet is still being launched."""

SORT_COLUMNS = {
    "updated": "jobs.updated_at", "created": "jobs.created_at", "name": "jobs.name",
    "status": "versions.status",
}
"""Sort keys of `app.queries.list_jobs` and the columns they order by."""

_COLUMNS = (
    "jobs.id, jobs.name, jobs.description, jobs.created_at, jobs.updated_at, "
    "(SELECT count(*) FROM versions AS kept WHERE kept.job_id = jobs.id), versions.id, "
    "versions.number, versions.status, "
    "versions.reason, versions.engine, versions.runtime, versions.gpus_requested, "
    "versions.nodes, versions.started_at, versions.finished_at"
)
_FROM = "FROM jobs LEFT OUTER JOIN versions ON versions.id = jobs.latest_version_id"
_SETTING_LINE = r"""["']?database_url["']?[ \t]*:(.*)"""
_EMPTY_VALUES = frozenset({"", "null", "~", "''", '""', "Null", "NULL"})


class QuickListError(Exception):
    """The file could not be read this way (locked, older schema, corrupt): use the core."""


# ---------------------------------------------------------------- where the database is


def _home() -> Path | None:
    value = os.environ.get("TRAINDECK_HOME")
    return Path(value).expanduser().resolve() if value else None


def _config_file() -> Path:
    explicit = os.environ.get("TRAINDECK_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = _home()
    if home is not None:
        return home / "config.yaml"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.yaml"


def _data_dir() -> Path:
    home = _home()
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def database_url_configured() -> bool:
    """True when the environment or the config file names a `database_url`.

    A cheap look at the config file (no YAML parser): anything that might set it counts,
    so an unusual file sends the caller down the normal path rather than the wrong file.
    """
    # The settings read environment variables without regard to case.
    if any(key.upper() == URL_SETTING and value for key, value in os.environ.items()):
        return True
    try:
        text = _config_file().read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True  # let the normal path report it
    if "database_url" not in text:
        return False
    import re  # (only here: a cold command does not pay for it otherwise)

    lines = [line.split("#", 1)[0].rstrip() for line in text.splitlines()]
    for index, line in enumerate(lines):
        if "database_url" not in line:
            continue
        match = re.fullmatch(_SETTING_LINE, line)
        if match is None or match.group(1).strip() not in _EMPTY_VALUES:
            return True  # set, or written in a way this quick look does not read
        following = next((rest for rest in lines[index + 1:] if rest.strip()), "")
        if match.group(1).strip() == "" and following[:1].isspace():
            return True  # the value continues on the next, indented line
    return False


def default_db_path() -> Path | None:
    """The SQLite file the core would open by default, when that is what it will open.

    None when a `database_url` is configured or the file does not exist yet.
    """
    if database_url_configured():
        return None
    path = _data_dir() / DB_FILE_NAME
    return path if path.is_file() else None


# ---------------------------------------------------------------- reading


@contextmanager
def _connect(db_path: Path) -> Iterator[sqlite3.Connection]:
    try:
        # What a URI file name must escape (urllib's quote costs a cold command an import).
        name = str(db_path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
        conn = sqlite3.connect(f"file:{name}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise QuickListError(f"{db_path}: {exc}") from exc
    try:
        (revision,) = (conn.execute("SELECT version_num FROM alembic_version").fetchone()
                       or (None,))
        if revision != SCHEMA_REVISION:
            raise QuickListError(f"{db_path}: schema revision {revision}, not "
                                 f"{SCHEMA_REVISION}")
        yield conn
    except sqlite3.Error as exc:
        raise QuickListError(f"{db_path}: {exc}") from exc
    finally:
        conn.close()


def _where(search: str, status: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if search:
        # What SQLAlchemy's ilike() renders on SQLite.
        clauses.append("(lower(jobs.name) LIKE lower(?) OR lower(jobs.description) LIKE lower(?))")
        params += [f"%{search}%", f"%{search}%"]
    if status:
        clauses.append("versions.status = ?")
        params.append(status)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _time(value: str | None) -> datetime | None:
    """A stored time (UTC text without an offset) as an aware datetime."""
    if value is None:
        return None
    try:  # (naming the offset is several times cheaper than replacing it afterwards)
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # written with an offset of its own
        return datetime.fromisoformat(value).astimezone(UTC)


def _label(number: int) -> str:
    return f"V{number:03d}"


def _row(values: tuple[Any, ...]) -> JobRow:
    (job_id, name, description, created, updated, versions, version_id, number, status,
     reason, engine, runtime, gpus, nodes, started, finished) = values
    has = version_id is not None
    created_at = _time(created)
    updated_at = _time(updated)
    assert created_at is not None and updated_at is not None
    return JobRow(
        id=job_id, name=name, description=description,
        version=_label(number) if has else "", versions=versions,
        status=status if has else "", reason=reason if has else "",
        engine=engine if has else "", runtime=runtime if has else "",
        gpus=gpus if has else 0, nodes=nodes if has else 0,
        created=created_at, updated=updated_at,
        started=_time(started) if has else None, finished=_time(finished) if has else None,
    )


def list_jobs_fast(
    db_path: Path, search: str = "", status: str | None = None, sort: str = "updated",
    descending: bool = True, offset: int = 0, limit: int = 200,
) -> list[JobRow]:
    """One window of the job list, as `app.queries.list_jobs` returns it."""
    column = SORT_COLUMNS.get(sort)
    if column is None:
        raise ValueError(f"sort: {sort!r} is not one of {', '.join(SORT_COLUMNS)}")
    where, params = _where(search, status)
    order = "DESC" if descending else "ASC"
    sql = (f"SELECT {_COLUMNS} {_FROM}{where} ORDER BY {column} {order}, jobs.id DESC "
           "LIMIT ? OFFSET ?")
    with _connect(db_path) as conn:
        rows = conn.execute(sql, [*params, limit, offset]).fetchall()
    return [_row(values) for values in rows]


def count_jobs_fast(db_path: Path, search: str = "", status: str | None = None) -> int:
    """How many jobs match the filter, as `app.queries.count_jobs` says."""
    where, params = _where(search, status)
    # The outer join on the version's primary key neither adds nor drops a job, so
    # without a status filter it can go (SQLite would otherwise visit every version).
    source = _FROM if status else "FROM jobs"
    with _connect(db_path) as conn:
        (count,) = conn.execute(f"SELECT count(*) {source}{where}", params).fetchone()
    return int(count)




# ---------------------------------------------------------------- versions, for the CLI


_VERSION_COLUMNS = (
    "v.id, v.number, v.status, v.reason, v.exit_code, v.engine, v.runtime, v.pool, "
    "v.gpus_requested, v.nodes, v.allocated_gpus, v.output, v.log_dir, v.created_at, "
    "v.queued_at, v.started_at, v.finished_at, v.spec_json, v.code_info, v.allocated_uuids, "
    "parent.number"
)
_TIMES = range(13, 17)
"""Positions of the times in `_VERSION_COLUMNS`."""
_ACTIVE_SQL = ", ".join(f"'{status}'" for status in sorted(ACTIVE_STATUS_VALUES))


def _number(label: str) -> int:
    """`app.jobs.parse_version_label`, without its error (the core reports it)."""
    text = label.strip().upper().removeprefix("V")
    if not text.isdigit() or int(text) < 1:
        raise QuickListError(f"version: {label!r}")
    return int(text)


def _pick(job_name: str, labels: Sequence[str] = (), status: str | None = None
          ) -> tuple[str, list[Any]]:
    """The condition on `versions AS v` joined to `jobs` that picks a job's versions:
    all, those `labels` name, those with `status`."""
    numbers = [_number(label) for label in labels]
    where = "jobs.name = ?" + (f" AND v.number IN ({_marks(numbers)})" if numbers else "")
    return where + (" AND v.status = ?" if status else ""), [
        job_name, *numbers, *([status] if status else [])]


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _require_supervisors(conn: sqlite3.Connection, where: str, params: list[Any]) -> None:
    """Raise when an active version picked by `where` has lost its supervisor: the
    core's reconciliation must settle it before it is shown (`app.runtime.reconcile`)."""
    now = datetime.now(UTC)
    for version_id, pid, host, created in conn.execute(
            "SELECT id, supervisor_pid, supervisor_host, created_at FROM versions "
            f"WHERE status IN ({_ACTIVE_SQL}) AND {where}", params):
        from app.procs import supervisor_alive  # (only with a version to check)

        if supervisor_alive(pid, version_id, host):
            continue
        made = _time(created)
        if pid is None and made and (now - made).total_seconds() < LAUNCH_GRACE_SECONDS:
            continue
        raise QuickListError(f"version {version_id}: its supervisor is gone")


def require_supervisors_of_jobs(db_path: Path, job_ids: list[int]) -> None:
    """Raise `QuickListError` when the latest version of one of these jobs is active and
    its supervisor is gone (the job list shows latest versions)."""
    if not job_ids:
        return
    with _connect(db_path) as conn:
        _require_supervisors(
            conn, f"id IN (SELECT latest_version_id FROM jobs WHERE id IN ({_marks(job_ids)}))",
            job_ids)


def _metrics(conn: sqlite3.Connection, rows: list[Any], chosen: str, params: list[Any]
             ) -> dict[int, dict[str, float]]:
    """Final metric values of each version; the latest so far of an active one without."""
    metrics: dict[int, dict[str, float]] = {row[0]: {} for row in rows}
    for version_id, name, value in conn.execute(
            f"SELECT version_id, name, value FROM metric_summaries WHERE version_id IN ({chosen})",
            params):
        metrics[version_id][name] = value
    running = [row[0] for row in rows if row[2] in ACTIVE_STATUS_VALUES and not metrics[row[0]]]
    if running:
        for version_id, name, value in conn.execute(
                "SELECT version_id, name, value FROM metric_points WHERE id IN ("
                "SELECT max(id) FROM metric_points "
                f"WHERE version_id IN ({_marks(running)}) GROUP BY version_id, name)",
                running):
            metrics[version_id][name] = value
    return metrics


def job_versions_fast(db_path: Path, job_name: str, label: str | None = None, *,
                      labels: Sequence[str] = (), status: str | None = None
                      ) -> list[VersionInfo]:
    """Every version of a job (oldest first), the one `label` names, or those `labels`
    name and with `status`: what `app.queries.job_versions` and `version_info` return.
    Raises `QuickListError` when the core must answer (no such job, no version found or
    one of `labels` missing, a lost supervisor)."""
    labels = [label] if label else labels
    where, params = _pick(job_name, labels, status)
    # The same versions again, found by the job (a thousand ids as parameters cost more).
    chosen = f"SELECT v.id FROM versions AS v JOIN jobs ON jobs.id = v.job_id WHERE {where}"
    with _connect(db_path) as conn:
        rows = [list(row) for row in conn.execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions AS v JOIN jobs ON jobs.id = v.job_id "
            "LEFT OUTER JOIN versions AS parent ON parent.id = v.parent_id "
            f"WHERE {where} ORDER BY v.number", params)]
        if not rows or len(rows) < len(set(map(_number, labels))):
            raise QuickListError(f"job {job_name!r}: not every version is here")
        _require_supervisors(conn, f"id IN ({chosen})", params)
        metrics = _metrics(conn, rows, chosen, params)
        orphans = [row[0] for row in rows if row[-1] is None]
        deleted = dict(conn.execute(
            "SELECT version_id, message FROM events WHERE kind = 'status' AND message "
            f"LIKE 'V% created from V%' AND version_id IN ({_marks(orphans)})", orphans))
    now = datetime.now(UTC)
    infos = []
    for row in rows:
        for index in _TIMES:
            row[index] = _time(row[index])
        info = version_from_row(job_name, row, metrics[row[0]], now)
        if info.id in deleted:
            info = replace(info, parent=DELETED_PARENT.format(
                label=deleted[info.id].rsplit(" ", 1)[1]))
        infos.append(info)
    return infos


def version_events_fast(db_path: Path, version_id: int, limit: int = 500) -> list[EventInfo]:
    """A version's events, oldest first: `app.queries.version_events`."""
    with _connect(db_path) as conn:
        rows = conn.execute("SELECT time, kind, status, message FROM events "
                            "WHERE version_id = ? ORDER BY id LIMIT ?", [version_id, limit])
        return [EventInfo(_time(time), kind, status, message)  # type: ignore[arg-type]
                for time, kind, status, message in rows]


def rank_logs_fast(db_path: Path, job_name: str, label: str | None) -> tuple[Path, int]:
    """The log folder of a version (the latest when `label` is None) and its rank count,
    as `traindeck logs` reads them (`app.runtime.plan.rank_count`)."""
    where, params = _pick(job_name, [label] if label else [])
    with _connect(db_path) as conn:
        found = conn.execute(
            "SELECT v.id, v.log_dir, v.nodes, v.gpus_requested, v.spec_json FROM versions "
            f"AS v JOIN jobs ON jobs.id = v.job_id WHERE {where} ORDER BY v.number DESC "
            "LIMIT 1", params).fetchone()
        if found is None:
            raise QuickListError(f"job {job_name!r}: no version here")
        version_id, log_dir, nodes, gpus, spec_json = found
        _require_supervisors(conn, "id = ?", [version_id])
    wanted = (json.loads(spec_json or "{}").get("resources") or {}).get(
        "processes_per_node", 1)
    per_node = max(1, gpus) if wanted == "gpus" else max(1, int(wanted))
    return Path(log_dir), max(1, nodes) * per_node


def gpu_summary_fast(db_path: Path, version_ids: list[int]) -> dict[int, dict[str, float]]:
    """`app.runtime.sampler.gpu_summary`: each version's GPU memory peak and mean use."""
    with _connect(db_path) as conn:
        return gpu_summary_of(conn.execute(
            "SELECT version_id, name, max(value), avg(value), count(*) FROM metric_points "
            f"WHERE version_id IN ({_marks(version_ids)}) AND name LIKE 'sys/gpu' || '%' "
            "GROUP BY version_id, name", version_ids))


def code_snapshots_fast(db_path: Path, versions: list[VersionInfo]) -> dict[str, Snapshot]:
    """`app.jobs.version_snapshots` of `versions`: their code snapshots by label."""
    ids = [v.id for v in versions]
    with _connect(db_path) as conn:
        stored = dict(conn.execute("SELECT id, code_snapshot FROM versions WHERE id IN "
                                   f"({_marks(ids)}) AND code_snapshot != ''", ids))
    if not stored:
        return {}
    from app.store.snapshot import load_snapshot

    return {v.version: load_snapshot(db_path.parent / "snapshots", stored[v.id])
            for v in versions if v.id in stored}
