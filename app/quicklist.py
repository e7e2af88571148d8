"""The job list straight from the SQLite file, for the first frame of the TUI.

Opening the full core (settings, SQLModel, migrations, catalog sync) costs far more than
drawing a window, so the TUI shows its first page of jobs from here — the standard
library's `sqlite3` and nothing else — while the core opens in a worker. The queries mirror
`app.queries.list_jobs` and `count_jobs` row for row; a test holds them to it.

Only the default database qualifies: when a `database_url` is configured (environment or
config file) `default_db_path` returns None and the caller takes the normal path.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from app.readmodels import JobRow

APP_NAME = "traindeck"
DB_FILE_NAME = "traindeck.db"
URL_SETTING = "TRAINDECK_DATABASE_URL"

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
_SETTING_LINE = re.compile(r"""["']?database_url["']?[ \t]*:(.*)""")
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
    lines = [line.split("#", 1)[0].rstrip() for line in text.splitlines()]
    for index, line in enumerate(lines):
        if "database_url" not in line:
            continue
        match = _SETTING_LINE.fullmatch(line)
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
        conn = sqlite3.connect(f"file:{quote(str(db_path))}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise QuickListError(f"{db_path}: {exc}") from exc
    try:
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
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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


def jobs_change_marker_fast(db_path: Path) -> tuple[int, datetime | None]:
    """`app.queries.jobs_change_marker` from the file: (job count, newest `updated_at`)."""
    with _connect(db_path) as conn:
        count, newest = conn.execute("SELECT count(*), max(updated_at) FROM jobs").fetchone()
    return int(count), _time(newest)
