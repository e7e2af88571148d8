"""The benchmark's own parts on a tiny scale: its data builders, its GPU double-booking
check and its table, fed with figures really measured here. Nothing about speed is
asserted (`scripts/bench` reports speed; the suite does not judge it)."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `benchmarks` is not an installed package
    sys.path.insert(0, str(ROOT))

import app.store.db  # noqa: E402
from app.config import get_settings  # noqa: E402
from app.context import Context  # noqa: E402
from benchmarks.cases import double_booked, queue_home, serve_queue  # noqa: E402
from benchmarks.data import (  # noqa: E402
    BIG_LOG_END,
    COMPARE_JOB,
    DETAIL_JOB,
    Sizes,
    Workspace,
    build,
)
from benchmarks.table import Row, Target, fmt, median, percentile, render  # noqa: E402

TINY = Sizes(jobs=30, versions_per_job=2, detail_versions=40, detail_steps=5,
             compare_versions=6, compare_metrics=5, compare_steps=20, log_bytes=64 * 1024)


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TRAINDECK_DATABASE_URL", raising=False)
        patch.delenv("TRAINDECK_CONFIG", raising=False)
        return build(tmp_path_factory.mktemp("bench"), TINY)


def open_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setenv("TRAINDECK_HOME", str(home))
    app.store.db.reset_cache()
    get_settings.cache_clear()
    return Context.open()


def count(database: Path, sql: str, *args: object) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def test_the_builders_make_what_the_cases_open(space: Workspace,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    base = space.base / "traindeck.db"
    assert count(base, "SELECT COUNT(*) FROM jobs") == 30
    assert count(base, "SELECT COUNT(*) FROM versions") == 60
    assert count(base, "SELECT COUNT(*) FROM metric_summaries") == 300
    scenes = space.scenes / "traindeck.db"
    points = count(scenes, "SELECT COUNT(*) FROM metric_points p JOIN versions v "
                           "ON v.id = p.version_id JOIN jobs j ON j.id = v.job_id "
                           "WHERE j.name = ?", COMPARE_JOB)
    assert points == 6 * 5 * 20
    assert space.big_log.read_bytes().endswith(f" {BIG_LOG_END}\n".encode())
    assert space.is_built()

    from app import queries

    ctx = open_home(space.scenes, monkeypatch)
    versions = queries.job_versions(ctx.db, DETAIL_JOB)
    assert [v.version for v in versions][-1] == "V040"
    assert versions[8].parent == "V003"  # V009 was made from V003: a tree, not a chain
    comparison = queries.compare(ctx.db, COMPARE_JOB)
    assert len(comparison.metric_names) == 5
    assert "lr" in comparison.differing


def test_the_queue_check_sees_no_double_booking_of_real_decisions(
        space: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    home, queued = queue_home(space, 12)
    ctx = open_home(home, monkeypatch)
    times, cpu, problems = serve_queue(ctx, home / "traindeck.db", queued)
    assert problems == 0
    assert len(times) == len(cpu) >= 12  # every version admitted once, some refused first
    with sqlite3.connect(home / "traindeck.db") as conn:
        assert double_booked(conn, set(range(8))) == 0
        conn.execute("INSERT INTO gpu_allocations (gpu, version_id, allocated_at) "
                     "VALUES (9, ?, '2026-03-01 00:00:00')", (queued[0],))
        assert double_booked(conn, set(range(8))) == 1  # not a declared GPU


def test_the_table_reads_real_figures(space: Workspace) -> None:
    ours, base = [], []
    for _ in range(3):
        started = time.perf_counter()
        space.big_log.read_bytes()
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        space.big_log.stat()
        base.append(time.perf_counter() - started)
    ratio = Row("read vs stat", "s", ours, base, Target("ratio", 1.5))
    over = Row("read over stat", "s", ours, base, Target("over", 0.3))
    worst = Row("read, worst", "s", ours, target=Target("below", 0.02, "max"))
    clean = Row("double bookings", "", [0.0, 0.0], target=Target("equal", 0))
    info = Row("stat (info)", "s", base)
    broken = Row("3 launch, docker", "s", [], error="the Docker engine does not answer")

    assert ratio.figure() == f"{median(ours) / median(base):.2f}×"
    assert ratio.met is (median(ours) / median(base) <= 1.5)
    assert over.figure() == "+" + fmt(median(ours) - median(base), "s")
    assert worst.figure() == f"p95 {fmt(percentile(ours, 95), 's')}, max {fmt(max(ours), 's')}"
    assert worst.met is (max(ours) < 0.02)
    assert clean.met is True and info.met is None and broken.met is None
    assert Row.from_dict(ratio.to_dict()) == ratio

    lines = render([ratio, over, worst, clean, info, broken]).splitlines()
    def split(line: str) -> list[str]:
        return [cell.strip() for cell in line.split(" | ")]

    assert split(lines[0]) == ["case", "ours (median)", "baseline (median)",
                               "ratio or figure", "target", "met"]
    cells = {split(line)[0]: split(line) for line in lines[2:8]}
    assert cells["read vs stat"][4] == "≤ 1.5×"
    assert cells["read vs stat"][5] == ("met" if ratio.met else "NOT MET")
    assert cells["read vs stat"][1] == fmt(median(ours), "s")
    assert cells["read, worst"][4] == "max < 20 ms"
    assert cells["double bookings"][5] == "met"
    assert cells["stat (info)"][4:] == ["(info)", "—"]
    assert cells["3 launch, docker"][5] == "not measured"
    assert lines[-1].strip() == "3 launch, docker: the Docker engine does not answer"


def test_percentile_and_units() -> None:
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 95) == 5.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert fmt(0.0042, "s") == "4.2 ms" and fmt(0.25, "s") == "250 ms"
    assert fmt(1.5, "s") == "1.50 s" and fmt(99_948.2, "lines/s") == "99,948 lines/s"


def test_launch_rounds_give_every_scenario_every_place() -> None:
    from benchmarks.bench_launch import round_order

    names = ["base", "helper", "no helper", "in process"]
    orders = [round_order(names, n) for n in range(len(names))]
    assert all(sorted(order) == sorted(names) for order in orders)
    for place in range(len(names)):
        assert sorted(order[place] for order in orders) == sorted(names)
    assert round_order(names, len(names)) == names
