"""The data every case runs against, built from nothing in a work folder.

* `base/` — a Traindeck home with 10,000 jobs and 50,000 versions, their final metrics
  and events (`bench_startup.build_database`): start-up runs on it as it is; the idle,
  queue and launch cases each start from a fresh copy of it (`copy_home`), since they
  add versions of their own.
* `scenes/` — a copy of `base/` plus four jobs the in-app cases open:
  `detail-1000` (1,000 versions in a lineage tree, final metrics and events, the latest
  with curves), `compare-100` (100 versions x 50 metrics x 1,000 steps of curves),
  `big-log` (one version whose rank log is 1 GB) and `follow` (one version whose
  rank log a writer appends to while the log panel follows it).

Rows go in with the standard library's sqlite3 in the schema the app itself created
(the app opens the home once first), so building takes seconds, not minutes.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.bench_logs import BIG_FILE_BYTES, make_big_log
from benchmarks.bench_startup import JOBS, VERSIONS_PER_JOB, build_database

DETAIL_JOB = "detail-1000"
COMPARE_JOB = "compare-100"
BIG_LOG_JOB = "big-log"
FOLLOW_JOB = "follow"
BIG_LOG_END = "end of the big log"
"""Text of the last line of the big log (the log panel is ready once it shows it)."""
SUMMARY_METRICS = ("accuracy", "f1", "recall", "precision", "loss")
BUILT_FILE = "built.json"


@dataclass(frozen=True)
class Sizes:
    """How much data to build; the defaults are those of the quality bars."""

    jobs: int = JOBS
    versions_per_job: int = VERSIONS_PER_JOB
    detail_versions: int = 1_000
    detail_steps: int = 1_000
    compare_versions: int = 100
    compare_metrics: int = 50
    compare_steps: int = 1_000
    log_bytes: int = BIG_FILE_BYTES


@dataclass(frozen=True)
class Workspace:
    """Where the built data lives."""

    root: Path
    sizes: Sizes

    @property
    def base(self) -> Path:
        """The 10k-job home (start-up; copied by the cases that add versions)."""
        return self.root / "base"

    @property
    def scenes(self) -> Path:
        """The home with the jobs the in-app cases open."""
        return self.root / "scenes"

    @property
    def big_log(self) -> Path:
        """The 1 GB rank log of `big-log` V001."""
        return self.scenes / "runs" / BIG_LOG_JOB / "logs" / "V001" / "rank-0.log"

    @property
    def follow_log(self) -> Path:
        """The rank log of `follow` V001, written to while the case runs."""
        return self.scenes / "runs" / FOLLOW_JOB / "logs" / "V001" / "rank-0.log"

    @property
    def pycache(self) -> Path:
        """Compiled modules of the children, as an installed copy has them."""
        return self.root / "pycache"

    def is_built(self) -> bool:
        """True when this folder holds data of the same sizes (a `--keep` folder)."""
        try:
            built = json.loads((self.root / BUILT_FILE).read_text())
        except (OSError, ValueError):
            return False
        return bool(built == asdict(self.sizes))


def build(root: Path, sizes: Sizes | None = None) -> Workspace:
    """Build every home under `root` (or reuse them when a previous `--keep` built them)."""
    space = Workspace(root, sizes or Sizes())
    if space.is_built():
        return space
    for part in (space.base, space.scenes, root / BUILT_FILE):
        if part.is_dir():
            shutil.rmtree(part)
        else:
            part.unlink(missing_ok=True)
    build_database(space.base, space.sizes.jobs, space.sizes.versions_per_job)
    copy_home(space.base, space.scenes)
    db = space.scenes / "traindeck.db"
    with _connect(db) as conn:
        add_detail_job(conn, space)
        add_compare_job(conn, space)
        add_log_job(conn, space, BIG_LOG_JOB)
        add_log_job(conn, space, FOLLOW_JOB)
    _checkpoint(db)
    space.big_log.parent.mkdir(parents=True, exist_ok=True)
    make_big_log(space.big_log, space.sizes.log_bytes)
    with open(space.big_log, "ab") as handle:
        handle.write(f"2026-02-01T00:00:00.000Z {BIG_LOG_END}\n".encode())
    space.follow_log.parent.mkdir(parents=True, exist_ok=True)
    space.follow_log.write_text("2026-02-01T00:00:00.000Z waiting for the writer\n")
    (root / BUILT_FILE).write_text(json.dumps(asdict(space.sizes)))
    return space


def copy_home(source: Path, target: Path, config: str | None = None) -> Path:
    """A fresh copy of the home `source` at `target` (replacing it), optionally with
    another config file."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in ("config.yaml", "traindeck.db"):
        shutil.copyfile(source / name, target / name)
    if config is not None:
        (target / "config.yaml").write_text(config)
    return target


# ---------------------------------------------------------------- rows


def _stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0])


def _spec(home: Path, name: str, parameters: dict[str, object]) -> str:
    return json.dumps({
        "name": name, "description": "", "data": {"paths": [str(home / "data")]},
        "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                    "code_dir": str(home / "code"), "boot_file": "train.py"}},
        "parameters": parameters,
        "output": str(home / "runs" / name / "out"), "log_dir": str(home / "runs" / name / "logs"),
        "resources": {"pool": "public", "gpus": 0, "nodes": 1, "runtime": "local"},
    })


def insert_job(
    conn: sqlite3.Connection, home: Path, name: str, count: int,
    parent_of: dict[int, int], parameters_of: dict[int, dict[str, object]] | None = None,
    status: str = "succeeded", started: datetime | None = None,
    summaries: tuple[str, ...] = SUMMARY_METRICS,
) -> list[int]:
    """A job with `count` finished versions (V00n's parent is V00`parent_of[n]`), each with
    its final metrics and two events; returns the version ids, V001 first."""
    job_id = _next_id(conn, "jobs")
    first = _next_id(conn, "versions")
    start = started or datetime(2026, 1, 20, tzinfo=UTC)
    ids = list(range(first, first + count))
    rows, metrics, events = [], [], []
    for n, vid in enumerate(ids, start=1):
        params = (parameters_of or {}).get(n, {"lr": 0.001 * n, "batch": 32 * (1 + n % 4)})
        made = start + timedelta(minutes=3 * n)
        done = made + timedelta(minutes=2, seconds=n % 60)
        parent = parent_of.get(n)
        rows.append((
            vid, job_id, n, ids[parent - 1] if parent else None, status, "",
            _spec(home, name, params), "python 3.11", "local", "public", 0, 1,
            f"{home}/runs/{name}/out/V{n:03d}", f"{home}/runs/{name}/logs/V{n:03d}",
            _stamp(made), None, _stamp(made + timedelta(seconds=4)), _stamp(done), 0, "",
            "local", "", None, "", 0,
        ))
        for k, metric in enumerate(summaries):
            metrics.append((vid, metric, 0.5 + ((n * 7 + k * 3) % 50) / 100))
        events.append((vid, _stamp(made + timedelta(seconds=4)), "status", "running",
                       "running"))
        events.append((vid, _stamp(done), "status", status, status))
    conn.execute("INSERT INTO jobs (id, name, description, created_at, updated_at, "
                 "last_version_number, latest_version_id) VALUES (?,?,?,?,?,?,?)",
                 (job_id, name, f"benchmark job {name}", _stamp(start),
                  _stamp(start + timedelta(minutes=3 * count + 3)), count, ids[-1]))
    conn.executemany(
        "INSERT INTO versions (id, job_id, number, parent_id, status, reason, spec_json, "
        "engine, runtime, pool, gpus_requested, nodes, output, log_dir, created_at, "
        "queued_at, started_at, finished_at, exit_code, allocated_gpus, executor, handle, "
        "supervisor_pid, supervisor_host, stop_requested) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO metric_summaries (version_id, name, value) VALUES (?,?,?)",
                     metrics)
    conn.executemany("INSERT INTO events (version_id, time, kind, status, message) "
                     "VALUES (?,?,?,?,?)", events)
    return ids


def insert_curves(conn: sqlite3.Connection, version_ids: list[int], names: list[str],
                  steps: int) -> None:
    """`steps` points of each metric in `names` for each version (step order)."""

    def points() -> Iterator[tuple[int, str, int, float, float]]:
        for i, vid in enumerate(version_ids):
            for k, name in enumerate(names):
                scale = 1.0 + (i * 13 + k * 7) % 17 / 10
                for step in range(steps):
                    yield vid, name, step * 10, scale / (1 + step / 50), 1.7e9 + step

    conn.executemany("INSERT INTO metric_points (version_id, name, step, value, wall_time) "
                     "VALUES (?,?,?,?,?)", points())


def detail_parents(count: int) -> dict[int, int]:
    """A lineage tree: V00n was made from V00(n//3) — a bushy tree about seven deep."""
    return {n: n // 3 for n in range(3, count + 1)}


def add_detail_job(conn: sqlite3.Connection, space: Workspace) -> None:
    """`detail-1000`: 1,000 versions in a tree; the latest has curves of 5 metrics."""
    count = space.sizes.detail_versions
    ids = insert_job(conn, space.scenes, DETAIL_JOB, count, detail_parents(count))
    insert_curves(conn, ids[-1:], list(SUMMARY_METRICS), space.sizes.detail_steps)


def compare_metric_names(count: int) -> list[str]:
    """`count` metric names, a fifth of them losses (lower is better)."""
    return [f"{'loss' if k % 5 == 0 else 'score'}_{k:02d}" for k in range(count)]


def add_compare_job(conn: sqlite3.Connection, space: Workspace) -> None:
    """`compare-100`: a sweep of 100 versions from V001, each with 50 metrics x 1,000 steps."""
    sizes = space.sizes
    count = sizes.compare_versions
    names = compare_metric_names(sizes.compare_metrics)
    params = {n: {"lr": round(0.0005 * n, 6), "batch": 64, "dropout": 0.1 * (n % 5),
                  "epochs": 30} for n in range(1, count + 1)}
    ids = insert_job(conn, space.scenes, COMPARE_JOB, count,
                     dict.fromkeys(range(2, count + 1), 1), params, summaries=())
    conn.executemany("INSERT INTO metric_summaries (version_id, name, value) "
                     "VALUES (?,?,?)",
                     [(vid, name, 0.4 + ((i * 11 + k * 5) % 60) / 100)
                      for i, vid in enumerate(ids) for k, name in enumerate(names)])
    insert_curves(conn, ids, names, sizes.compare_steps)


def add_log_job(conn: sqlite3.Connection, space: Workspace, name: str) -> None:
    """A job with one finished version whose log folder the log cases fill."""
    insert_job(conn, space.scenes, name, 1, {})
