"""The cold read path (`app.store.quicklist`) of `list`, `show`, `logs`, `wait` and `compare`:
the same output as the core's, no heavy module imported, and the core (with its reconciliation)
taking over when a shown version's supervisor is gone or a version is still to wait for.

The core's answer is had by configuring `TRAINDECK_DATABASE_URL` to the same file: the
cold path then steps aside, as it must for any configured database.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import build_project, new_version, noop_launcher, run_cli

import app
from app.cli.commands import reads as read_commands
from app.context import Context
from app.jobs import create_version, modified_spec, set_status, submit
from app.queries import job_versions, version_events, version_info
from app.runtime.control import delete
from app.store import quicklist
from app.store.models import ACTIVE_STATUSES, MetricPointRow, MetricSummary, Status

HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "docker", "boto3", "alembic", "yaml")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FEWER = [("compare", "alpha", "--status", "queued"), ("compare", "beta")]
"""Comparisons of fewer than two versions: an error, the same on either path."""
COMMANDS = [
    ("list",), ("list", "--json"), ("list", "--sort", "name", "--reverse"),
    ("list", "--status", "queued"), ("list", "--filter", "ALP"),
    ("show", "alpha"), ("show", "alpha", "--json"), ("show", "alpha", "-v", "v3", "--events"),
    ("show", "alpha", "--events"), ("show", "beta"), ("show", "beta", "-v", "V001", "--json"),
    ("logs", "alpha", "-v", "V003"), ("logs", "alpha", "-v", "1", "--tail", "3"),
    ("logs", "alpha", "-v", "V001"),
    ("logs", "beta", "--tail", "2"), ("logs", "beta", "--rank", "1"),
    ("logs", "beta", "--raw"), ("wait", "alpha", "-v", "V001"),
    ("wait", "alpha", "-v", "1", "--json", "--timeout", "5"),
    ("compare", "alpha"), ("compare", "alpha", "--json"), ("compare", "alpha", "v1", "4", "--all"),
    ("compare", "alpha", "V003", "V001", "--json"), *FEWER,
]


def _stand_in_supervisor(version_id: int) -> subprocess.Popen[bytes]:
    """A live process that `app.procs.supervisor_alive` takes for the supervisor
    of `version_id` (its command line names the module and the version)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)",
                             "app.runtime.supervisor", str(version_id)])


def _patch(home: Path, version_id: int, **values: Any) -> None:
    """Set columns of a version straight in the file (times as SQLAlchemy stores them)."""
    for key, value in values.items():
        if isinstance(value, datetime):
            values[key] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(home / "traindeck.db") as conn:
        conn.execute(f"UPDATE versions SET {', '.join(f'{k} = ?' for k in values)} "
                     "WHERE id = ?", [*values.values(), version_id])


def _log(ctx: Context, job: str, label: str, rank: int, lines: list[str], end: str = "") -> None:
    folder = Path(version_info(ctx.db, job, label).log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"rank-{rank}.log", "w", encoding="utf-8") as f:
        for i, line in enumerate(lines):
            f.write(f"{(T0 + timedelta(seconds=i)).strftime('%Y-%m-%dT%H:%M:%S')}.000Z {line}\n")
        f.write(end)


@pytest.fixture
def populated(ctx: Context, home: Path, tmp_path: Path) -> Iterator[Context]:
    """alpha: V001 succeeded (metrics, two GPUs sampled), V002 failed and deleted, V003
    from it running (curves only), V004 queued (code changed); beta: V001 of two ranks
    running; a live stand-in supervisor for each active version."""
    project = build_project(tmp_path / "alpha", "alpha",
                            parameters={"lr": 0.1, "tag": "010", "deep": True, "n": 3})
    v1 = submit(ctx, project.raw(), project.base, launcher=noop_launcher)
    set_status(ctx, v1.version_id, Status.RUNNING)
    set_status(ctx, v1.version_id, Status.SUCCEEDED, exit_code=0)
    v2 = new_version(ctx, "alpha", "V001", {"lr": 0.2})
    set_status(ctx, v2.version_id, Status.FAILED, "exit code 1", exit_code=1)
    v3 = new_version(ctx, "alpha", "V002", {"lr": 0.3})
    (project.base / "code" / "helper.py").write_text("X = 1\n", encoding="utf-8")
    _, spec, parent = modified_spec(ctx, "alpha", "V003", {"n": 4})
    v4 = create_version(ctx, "alpha", spec, parent, launcher=noop_launcher, fresh_code=True)
    set_status(ctx, v3.version_id, Status.RUNNING)
    set_status(ctx, v4.version_id, Status.QUEUED, "waiting for 1 GPU(s) in pool public")
    with ctx.db.write() as s:
        for name, value in {"accuracy": 0.91, "loss": 0.25, "f1": 1 / 3}.items():
            s.add(MetricSummary(version_id=v1.version_id, name=name, value=value))
        for step, (loss, acc) in enumerate([(1.5, 0.4), (0.9, 0.7), (0.7, 0.75)]):
            s.add(MetricPointRow(version_id=v3.version_id, name="loss", step=step, value=loss))
            s.add(MetricPointRow(version_id=v3.version_id, name="acc", step=step, value=acc))
        for step, (util, memory) in enumerate([(50, 1000.0), (70, 1200.0), (65, 900.0)]):
            for gpu in (0, 1):
                s.add_all([MetricPointRow(version_id=v1.version_id, name=name, step=step,
                                          value=value)
                           for name, value in ((f"sys/gpu{gpu}/util", util / (gpu + 1)),
                                               (f"sys/gpu{gpu}/memory_mb", memory + gpu))])
    beta = build_project(tmp_path / "beta", "beta")
    two = submit(ctx, beta.raw(resources={"pool": "public", "gpus": 0, "nodes": 2,
                                          "runtime": "local"}),
                 beta.base, launcher=noop_launcher)
    set_status(ctx, two.version_id, Status.RUNNING)
    delete(ctx, "alpha", "V002")
    _patch(home, v1.version_id, created_at=T0, started_at=T0 + timedelta(seconds=5),
           finished_at=T0 + timedelta(minutes=12, seconds=5))
    # Running for hours: the two reads of a test fall in the same minute of its duration.
    for ref in (v3, two):
        _patch(home, ref.version_id, started_at=datetime.now(UTC) - timedelta(hours=5))
    _log(ctx, "alpha", "V001", 0, [f"step {i}" for i in range(150)])
    _log(ctx, "alpha", "V003", 0, ["loading", "step 1 \x1b[31mred\x1b[0m"], end="no newline")
    _log(ctx, "beta", "V001", 0, ["rank zero", "done"])
    _log(ctx, "beta", "V001", 1, ["rank one \x1b]0;title\x07", "done"])
    supervisors = []
    for ref in (v3, v4, two):
        proc = _stand_in_supervisor(ref.version_id)
        supervisors.append(proc)
        _patch(home, ref.version_id, supervisor_pid=proc.pid,
               supervisor_host=socket.gethostname())
    yield ctx
    for proc in supervisors:
        proc.kill()
        proc.wait()


def _minutes(text: str) -> str:
    """`--json` durations to the minute (a running version's grows between two reads)."""
    return re.sub(r'"duration": ([0-9.]+)',
                  lambda m: f'"duration": "{float(m.group(1)) // 60:.0f} min"', text)


def _core(monkeypatch: pytest.MonkeyPatch, home: Path, *argv: str) -> tuple[int, str]:
    """What the core path prints for `argv` (the cold path steps aside for a URL)."""
    with monkeypatch.context() as m:
        m.setenv("TRAINDECK_DATABASE_URL", f"sqlite:///{home / 'traindeck.db'}")
        return run_cli(*argv)


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_cold_output_equals_core_output(populated: Context, home: Path,
                                        monkeypatch: pytest.MonkeyPatch,
                                        argv: tuple[str, ...]) -> None:
    with monkeypatch.context() as m:
        m.setattr(read_commands, "open_core", lambda: pytest.fail("the core was opened"))
        cold = run_cli(*argv)
    assert cold[0] == (argv in FEWER), cold
    core = _core(monkeypatch, home, *argv)
    assert _minutes(cold[1]) == _minutes(core[1]) and cold[0] == core[0]
    one_line = argv[0] == "wait" or argv in FEWER
    assert len(cold[1].splitlines()) >= (1 if one_line else 2), cold  # not a header only


def test_cold_models_equal_core_models(populated: Context) -> None:
    path = quicklist.default_db_path()
    assert path is not None

    def same(fast: list[Any], core: list[Any]) -> None:
        assert len(fast) == len(core)
        for f, c in zip(fast, core, strict=True):
            assert abs((f.duration or 0) - (c.duration or 0)) < 5
            assert replace(f, duration=None) == replace(c, duration=None)

    for job in ("alpha", "beta"):
        same(quicklist.job_versions_fast(path, job), job_versions(populated.db, job))
    for label in ("V001", "v3", "4"):
        same(quicklist.job_versions_fast(path, "alpha", label),
             [version_info(populated.db, "alpha", label)])
    shown = job_versions(populated.db, "alpha")
    assert [v.parent for v in shown] == [None, "V002 (deleted)", "V003"]
    assert shown[1].metrics == {"acc": 0.75, "loss": 0.7}  # running: the latest values
    for v in shown:
        assert quicklist.version_events_fast(path, v.id) == version_events(populated.db, v.id)
    cases: list[tuple[str, str | None, int]] = [("alpha", None, 1), ("beta", "V001", 2)]
    for job, pick, count in cases:
        log_dir, ranks = quicklist.rank_logs_fast(path, job, pick)
        assert (log_dir, ranks) == (Path(version_info(populated.db, job, pick).log_dir), count)


@pytest.mark.parametrize("question", [("ghost",), ("alpha", "V042"), ("alpha", "latest")])
def test_what_the_cold_path_cannot_answer_goes_to_the_core(populated: Context,
                                                           question: tuple[str, ...]) -> None:
    path = quicklist.default_db_path()
    assert path is not None
    with pytest.raises(quicklist.QuickListError):
        quicklist.job_versions_fast(path, *question)
    with pytest.raises(quicklist.QuickListError):
        quicklist.rank_logs_fast(path, question[0], question[1] if question[1:] else None)
    code, out = run_cli("show", *question[:1], *(("-v", question[1]) if question[1:] else ()))
    assert code == 1 and out.startswith("error: ") and question[-1] in out


def test_waiting_for_an_active_version_is_the_cores(populated: Context,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[bool] = []
    core = read_commands.open_core

    def counted() -> Any:
        opened.append(True)
        return core()

    monkeypatch.setattr(read_commands, "open_core", counted)
    code, out = run_cli("wait", "alpha", "-v", "V003", "--timeout", "0.3")
    assert (code, out.strip(), opened) == (1, "error: alpha V003 still running after 0.3s",
                                           [True])


def test_a_lost_supervisor_is_reconciled_before_it_is_shown(populated: Context,
                                                           home: Path) -> None:
    """A running version whose supervisor died: the cold path refuses to show it, the
    core reconciles it (here: stopped, as its stop was asked for), and then it is shown."""
    path = quicklist.default_db_path()
    assert path is not None
    beta = version_info(populated.db, "beta")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    _patch(home, beta.id, supervisor_pid=int(gone.stdout), stop_requested=1, handle="")
    for read in (lambda: quicklist.job_versions_fast(path, "beta"),
                 lambda: quicklist.rank_logs_fast(path, "beta", None),
                 lambda: quicklist.require_supervisors_of_jobs(path, [1, 2])):
        with pytest.raises(quicklist.QuickListError, match="supervisor is gone"):
            read()
    quicklist.require_supervisors_of_jobs(path, [1])  # alpha's are alive
    code, out = run_cli("list")
    assert code == 0 and re.search(r"^beta +V001 +stopped ", out, re.M), out
    assert version_info(populated.db, "beta").status == Status.STOPPED
    assert quicklist.job_versions_fast(path, "beta")[0].status == "stopped"


def test_a_version_being_launched_counts_as_alive_for_a_while(populated: Context,
                                                               home: Path) -> None:
    path = quicklist.default_db_path()
    assert path is not None
    beta = version_info(populated.db, "beta")
    _patch(home, beta.id, supervisor_pid=None, created_at=datetime.now(UTC))
    assert quicklist.job_versions_fast(path, "beta")[0].status == "running"
    _patch(home, beta.id, created_at=datetime.now(UTC) - timedelta(
        seconds=quicklist.LAUNCH_GRACE_SECONDS + 1))
    with pytest.raises(quicklist.QuickListError):
        quicklist.job_versions_fast(path, "beta")


def test_another_schema_revision_is_left_to_the_core(populated: Context, home: Path) -> None:
    path = quicklist.default_db_path()
    assert path is not None
    with sqlite3.connect(home / "traindeck.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    for read in (lambda: quicklist.list_jobs_fast(path),
                 lambda: quicklist.job_versions_fast(path, "alpha")):
        with pytest.raises(quicklist.QuickListError, match="schema revision 9999"):
            read()


def test_the_cold_path_mirrors_the_core_constants() -> None:
    from app.readmodels import ACTIVE_STATUS_VALUES, DEFAULT_DESCENDING
    from app.runtime.reconcile import LAUNCH_GRACE_SECONDS
    from app.store.db import HEAD_REVISION

    assert quicklist.SCHEMA_REVISION == HEAD_REVISION
    assert quicklist.LAUNCH_GRACE_SECONDS == LAUNCH_GRACE_SECONDS
    assert {s.value for s in ACTIVE_STATUSES} == ACTIVE_STATUS_VALUES
    assert set(DEFAULT_DESCENDING) == set(quicklist.SORT_COLUMNS)


@pytest.mark.parametrize("argv", [("list",), ("show", "alpha", "--events"),
                                  ("logs", "beta", "--tail", "100"), ("wait", "alpha", "-v", "1"),
                                  ("compare", "alpha", "--json")],
                         ids=" ".join)
def test_a_cold_command_imports_no_heavy_module(populated: Context, home: Path,
                                                argv: tuple[str, ...]) -> None:
    """The command as users run it (`python -m app`), its imports listed by the
    interpreter itself (`-X importtime`)."""
    root = Path(app.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "TRAINDECK_HOME": str(home)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "app", *argv],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank zero" in done.stdout or "alpha" in done.stdout, done.stdout
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    assert "app.store.quicklist" in imported
    assert not {name for name in imported if name.split(".")[0] in HEAVY}


def test_registering_every_command_imports_no_core_module() -> None:
    """The command modules import the standard library and the CLI's plumbing only (the
    core inside their handlers), so that building the whole parser stays cheap."""
    root = Path(app.__file__).resolve().parents[1]
    code = ("import sys; from app.cli.main import build_parser; build_parser(); "
            "print(' '.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    assert "app.cli.commands.datasets" in loaded
    leaves = {"app", "app.errors", "app.formatting", "app.readmodels"}  # standard library only
    assert {n for n in loaded if n.split(".")[0] == "app" and n not in leaves
            and not n.startswith("app.cli")} == set()
    assert not {n for n in loaded if n.split(".")[0] in (*HEAVY, "textual")}


def test_the_cold_benchmark_runs_on_a_small_home(home: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`benchmarks/bench_cold.py` end to end on 40 jobs, one run: every command printed
    something and exited 0 (it stops otherwise); nothing about speed is asserted."""
    root = Path(app.__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root))  # `benchmarks` is not an installed package
    from benchmarks import bench_cold

    built = bench_cold.build(tmp_path / "bench", jobs=40)
    rows = bench_cold.measure(built, tmp_path / "bench", runs=1, core_runs=0, jobs=40)
    assert [row[0] for row in rows] == list(bench_cold.CASES)
    assert all(float(row[1]) > 0 and float(row[2]) > 0 for row in rows)


def test_a_cold_comparison_has_the_gpu_rows_and_code_changes(
        populated: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_commands, "open_core", lambda: pytest.fail("the core was opened"))
    code, out = run_cli("compare", "alpha")
    assert code == 0, out
    gpu_rows = [line.split() for line in out.splitlines() if line.startswith("GPU ")]
    assert gpu_rows == [["GPU", "memory", "peak", "(MiB)", "1201", "-", "-"],
                        ["GPU", "utilisation", "mean", "(%)", "46.2", "-", "-"]]
    assert "code of V004 differs from V001's: helper.py (added)" in out


@pytest.mark.parametrize("cold", [True, False], ids=["cold", "core"])
def test_the_tail_of_several_ranks_is_the_versions_last_lines_in_time_order(
        populated: Context, monkeypatch: pytest.MonkeyPatch, cold: bool) -> None:
    if not cold:
        monkeypatch.setattr(read_commands, "_cold", lambda read: None)
    _log(populated, "beta", "V001", 0, ["a0", "a1", "a2"])  # line i at T0 + i s in both
    _log(populated, "beta", "V001", 1, ["b0", "b1", "b2"])
    code, out = run_cli("logs", "beta", "--tail", "3")
    assert code == 0, out
    assert out.splitlines() == ["[rank 1] b1", "[rank 0] a2", "[rank 1] b2"]
    assert run_cli("logs", "beta", "--tail", "0")[1] == ""
