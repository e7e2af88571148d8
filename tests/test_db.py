"""The database: migrations, SQLite settings, write locking, atomic version numbers, errors."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from helpers import Project, count_rows, noop_launcher, traindeck_executable
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel, col, select

import app.store.db
from app.context import Context
from app.errors import DatabaseError
from app.jobs import submit
from app.store.db import HEAD_REVISION, Database, alembic_config, open_database
from app.store.models import AppState, Event, Job, Version

# ------------------------------------------------------------------ migrations


def test_fresh_database_is_created_by_the_migrations(home: Path) -> None:
    db = open_database()
    assert (home / "traindeck.db").is_file()
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert stored == [HEAD_REVISION]
    assert db.current_revision() == HEAD_REVISION


def test_head_revision_constant_is_the_head_of_the_migration_scripts(home: Path) -> None:
    scripts = ScriptDirectory.from_config(alembic_config(open_database().engine))
    assert scripts.get_heads() == [HEAD_REVISION]


def test_migrated_schema_matches_the_models(home: Path) -> None:
    db = open_database()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_every_table_exists_after_migration(home: Path) -> None:
    counts = count_rows(open_database())
    assert set(counts) == set(SQLModel.metadata.tables)
    assert all(n == 0 for n in counts.values())


def test_opening_again_keeps_the_data(home: Path) -> None:
    db = open_database()
    with db.write() as session:
        session.add(AppState(key="k", value="v"))
    db.dispose()
    app.store.db.reset_cache()
    again = open_database()
    assert again is not db
    with again.read() as session:
        assert session.get(AppState, "k") is not None
    assert again.current_revision() == HEAD_REVISION


def test_sqlite_file_of_a_url() -> None:
    assert app.store.db.sqlite_file("sqlite:////var/td/traindeck.db") == Path(
        "/var/td/traindeck.db")
    assert app.store.db.sqlite_file("sqlite:///rel.db?mode=ro") == Path("rel.db")
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql://u@h/db"):
        assert app.store.db.sqlite_file(url) is None


# ------------------------------------------------------------------ SQLite settings


def test_wal_mode_and_busy_timeout_are_on(home: Path) -> None:
    db = open_database()
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    # WAL is a property of the file: a plain connection sees it too.
    with sqlite3.connect(home / "traindeck.db") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_write_session_takes_the_write_lock_at_its_start(home: Path) -> None:
    db = open_database()
    other = sqlite3.connect(home / "traindeck.db", timeout=0, isolation_level=None)
    try:
        with db.write() as session:
            session.exec(select(Job.id)).all()  # a read only: the lock is still held
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_read_session_does_not_block_writers(home: Path) -> None:
    db = open_database()
    other = sqlite3.connect(home / "traindeck.db", timeout=0, isolation_level=None)
    try:
        with db.read() as session:
            session.exec(select(Job.id)).all()
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO app_state (key, value) VALUES ('a', 'b')")
            other.execute("COMMIT")
    finally:
        other.close()


def test_failed_write_session_rolls_back(home: Path) -> None:
    db = open_database()
    with pytest.raises(RuntimeError), db.write() as session:
        session.add(AppState(key="half", value="done"))
        session.flush()
        raise RuntimeError("boom")
    with db.read() as session:
        assert session.get(AppState, "half") is None


# ------------------------------------------------------------------ atomic version numbers

RACER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from sqlmodel import select
    from app.context import Context
    from app.jobs import create_version
    from app.store.models import Version
    from app.specs.spec import JobSpec

    go, ready, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    ctx = Context.open(sync=False)
    with ctx.db.read() as session:
        first = session.exec(select(Version).where(Version.number == 1)).one()
    spec = JobSpec.model_validate(json.loads(first.spec_json))
    ready.touch()
    while not go.exists():
        time.sleep(0.002)
    for _ in range(count):
        create_version(ctx, "race", spec, None, launcher=lambda c, v: None)
    """
)


@pytest.mark.slow
def test_version_numbers_are_atomic_across_processes(
    home: Path, make_project: Callable[..., Project], tmp_path: Path,
) -> None:
    project = make_project("race")
    ctx = Context.open()
    submit(ctx, project.raw(), project.base, launcher=noop_launcher)
    racers, per_racer = 3, 100
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(racers)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(go), str(flag), str(per_racer)],
            env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for flag in ready
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(flag.exists() for flag in ready):
            assert time.monotonic() < deadline, "racers did not start"
            assert all(p.poll() is None for p in procs), "a racer died before the start"
            time.sleep(0.01)
        go.touch()  # all three start creating versions at once
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]

    total = 1 + racers * per_racer
    with ctx.db.read() as session:
        job = session.exec(select(Job).where(Job.name == "race")).one()
        numbers = sorted(session.exec(select(Version.number).where(Version.job_id == job.id)))
        latest = session.get(Version, job.latest_version_id)
        created_events = session.exec(
            select(Event).where(col(Event.message).endswith("created"))).all()
    assert numbers == list(range(1, total + 1))
    assert job.last_version_number == total
    assert latest is not None and latest.number == total
    assert len(created_events) == total


# ------------------------------------------------------------------ unusable database files

PROBE = textwrap.dedent(
    """
    import ctypes, json, sys

    # Root ignores file modes: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH first.
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        header, data = Header(0x20080522, 0), (Data * 2)()
        if libc.capget(ctypes.byref(header), data) == 0:
            data[0].effective &= ~((1 << 1) | (1 << 2))
            libc.capset(ctypes.byref(header), data)
    except (OSError, AttributeError):
        pass

    from app.context import Context
    from app.errors import TraindeckError
    from app.store.models import AppState

    try:
        ctx = Context.open()
        with ctx.db.write() as session:
            session.add(AppState(key="probe", value="1"))
    except TraindeckError as exc:
        print(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
    else:
        print(json.dumps({"type": None, "message": "written"}))
    """
)


def test_read_only_database_file_gives_a_one_line_database_error(home: Path) -> None:
    Context.open().db.dispose()
    app.store.db.reset_cache()
    path = home / "traindeck.db"
    assert not (home / "traindeck.db-wal").exists()
    path.chmod(0o444)
    try:
        proc = subprocess.run([sys.executable, "-c", PROBE], env=dict(os.environ),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads(proc.stdout)
        assert result["type"] == "DatabaseError"
        assert "\n" not in result["message"]
        assert str(path) in result["message"]
        assert "readonly" in result["message"] or "read-only" in result["message"]
    finally:
        path.chmod(0o644)


CORRUPT_CONTENTS = [
    pytest.param(b"this is not a database\n" * 50, id="text"),
    pytest.param(b"SQLite format 3\x00" + b"\xff" * 4000, id="bad-header"),
]


@pytest.mark.parametrize("contents", CORRUPT_CONTENTS)
def test_corrupt_database_file_gives_a_one_line_database_error(
    home: Path, contents: bytes,
) -> None:
    path = home / "traindeck.db"
    path.write_bytes(contents)
    with pytest.raises(DatabaseError) as info:
        Context.open()
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_cli_on_a_corrupt_database_prints_one_error_line(home: Path) -> None:
    path = home / "traindeck.db"
    path.write_bytes(b"this is not a database\n" * 50)
    proc = subprocess.run([traindeck_executable(), "list"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0]


def test_database_folder_that_cannot_be_created_names_the_file(
    home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = home / "blocker"
    blocker.write_text("a file where a folder should be")
    url = f"sqlite:///{blocker}/sub/traindeck.db"
    monkeypatch.setenv("TRAINDECK_DATABASE_URL", url)
    with pytest.raises(DatabaseError) as info:
        Context.open()
    assert "\n" not in str(info.value)
    assert f"{blocker}/sub/traindeck.db" in str(info.value)


def test_database_url_from_the_settings_is_used(home: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere" / "jobs.db"
    monkeypatch.setenv("TRAINDECK_DATABASE_URL", f"sqlite:///{target}")
    ctx = Context.open()
    assert ctx.db.url == f"sqlite:///{target}"
    assert target.is_file()
    assert not (home / "traindeck.db").exists()


@pytest.mark.parametrize(
    "folder",
    [
        pytest.param("with space", id="space"),
        pytest.param("jos\u00e9", id="non-ascii"),
        pytest.param("a:b", id="colon"),
        pytest.param("100%", id="percent"),
    ],
)
def test_database_in_a_folder_with_unusual_characters_migrates(
    tmp_path: Path, folder: str,
) -> None:
    db = Database(f"sqlite:///{tmp_path / folder / 'traindeck.db'}")
    db.migrate()
    assert db.current_revision() == HEAD_REVISION


def test_in_memory_database_migrates() -> None:  # its URL renders with '%' escapes
    db = Database("sqlite:///:memory:")
    db.migrate()
    assert db.current_revision() == HEAD_REVISION


def test_a_database_made_by_the_first_schema_is_upgraded_with_its_rows_kept(
        tmp_path: Path) -> None:
    from alembic import command

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(db.engine), "0001")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO jobs (id, name, description, created_at, updated_at, "
                          "last_version_number) VALUES (1, 'kept', '', '2026-01-01', "
                          "'2026-01-01', 0)"))
    assert db.current_revision() == "0001"
    db.migrate()
    assert db.current_revision() == HEAD_REVISION
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM jobs")).scalars().all() == ["kept"]
        indexes = {row[1] for row in conn.execute(text("PRAGMA index_list('versions')"))}
    assert {"ix_versions_output", "ix_versions_log_dir"} <= indexes


def test_gpu_allocations_made_before_uuids_upgrade_to_whole_gpus(tmp_path: Path) -> None:
    from alembic import command

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(db.engine), "0004")
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO jobs (id, name, description, created_at, updated_at, "
                          "last_version_number) VALUES (1, 'held', '', '2026-01-01', "
                          "'2026-01-01', 1)"))
        columns = list(conn.execute(text("PRAGMA table_info('versions')")))
        # Every required column gets a value of its type, then those the test reads.
        values = {name: 0 if kind in ("INTEGER", "BOOLEAN") else ""
                  for _, name, kind, required, _, _ in columns if required}
        values |= {"id": 1, "job_id": 1, "number": 1, "status": "running",
                   "spec_json": "{}", "created_at": "2026-01-01", "allocated_gpus": "1"}
        conn.execute(text(f"INSERT INTO versions ({', '.join(values)}) "
                          f"VALUES ({', '.join(':' + k for k in values)})"), values)
        conn.execute(text("INSERT INTO gpu_allocations (gpu, version_id, allocated_at) "
                          "VALUES (1, 1, '2026-01-01')"))
    assert "allocated_uuids" not in {column[1] for column in columns}
    db.migrate()
    assert db.current_revision() == HEAD_REVISION
    with db.engine.begin() as conn:
        assert conn.execute(text("SELECT gpu, mig_index, uuid, version_id FROM "
                                 "gpu_allocations")).all() == [(1, -1, "", 1)]
        assert conn.execute(text("SELECT allocated_gpus, allocated_uuids FROM versions")
                            ).all() == [("1", "")]
        # Two MIG instances of one GPU are booked apart; the same device only once.
        conn.execute(text("INSERT INTO gpu_allocations (gpu, mig_index, uuid, version_id, "
                          "allocated_at) VALUES (0, 1, 'MIG-a', 1, '2026-01-01'), "
                          "(0, 2, 'MIG-b', 1, '2026-01-01')"))
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO gpu_allocations (gpu, mig_index, uuid, version_id, "
                          "allocated_at) VALUES (0, 2, 'MIG-b', 1, '2026-01-01')"))


def _fill_wal(db: Database, megabytes: int) -> None:
    """Commit `megabytes` of rows, one write transaction per 100 KB."""
    with db.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS filler (data BLOB)"))
    for _ in range(megabytes * 10):
        with db.write() as session:
            session.execute(text("INSERT INTO filler VALUES (randomblob(100000))"))


def test_a_background_checkpointer_keeps_checkpoints_out_of_the_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Long enough that the six commits below are done before the thread's first look,
    # even on a loaded machine (at 0.2 s it sometimes looked mid-way).
    monkeypatch.setattr(app.store.db, "CHECKPOINT_SECONDS", 2.0)
    # SQLite's way, for comparison: a commit that takes the log past ~4 MB checkpoints.
    plain = Database(f"sqlite:///{tmp_path / 'plain.db'}")
    _fill_wal(plain, 6)
    assert (tmp_path / "plain.db").stat().st_size > 3_000_000
    plain.dispose()

    path = tmp_path / "background.db"
    db = Database(f"sqlite:///{path}")
    db.checkpoint_in_background()
    _fill_wal(db, 6)
    # The commits left the pages in the log: none was copied into the file by a write.
    assert path.stat().st_size < 1_000_000
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    deadline = time.monotonic() + 15
    while path.stat().st_size < 6_000_000:  # the checkpointer's thread copies them
        assert time.monotonic() < deadline, "no checkpoint in the background"
        time.sleep(0.05)

    with db.write() as session:  # written just before the end...
        session.execute(text("INSERT INTO filler VALUES (randomblob(1000000))"))
    size = path.stat().st_size
    db.dispose()  # ...is checkpointed by it before it ends
    assert not db._checkpointer.is_alive()  # type: ignore[union-attr]
    assert path.stat().st_size > size


def test_the_checkpointer_is_for_sqlite_files_only(tmp_path: Path) -> None:
    db = Database("sqlite://")
    db.checkpoint_in_background()
    assert db._checkpointer is None
    db.dispose()


def test_a_database_from_a_newer_traindeck_gives_one_line(home: Path) -> None:
    Context.open()
    path = home / "traindeck.db"
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0999'")
    app.store.db.reset_cache()
    proc = subprocess.run([traindeck_executable(), "list"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: database sqlite:///{path} was made by a newer Traindeck (revision 0999); "
        "upgrade Traindeck"]
    with sqlite3.connect(path) as conn:  # and it was left as it was
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0999",)


def test_an_emptied_database_file_is_refused_not_replaced(
        home: Path, make_project: Callable[..., Project]) -> None:
    ctx = Context.open()
    project = make_project("emptied")
    submit(ctx, project.raw(), project.base, launcher=noop_launcher)
    ctx.db.dispose()
    app.store.db.reset_cache()
    path = home / "traindeck.db"
    for extra in ("-wal", "-shm"):
        path.with_name(path.name + extra).unlink(missing_ok=True)
    path.write_bytes(b"")  # `> traindeck.db` by accident
    with pytest.raises(DatabaseError, match=r"is empty \(0 bytes\) but not new"):
        Context.open()
    assert path.stat().st_size == 0  # nothing was created in its place
