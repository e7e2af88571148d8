"""One metric's curves read from a real SQLite file, and thinned to what a plot can show."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from helpers import Project, new_version, noop_launcher

from app.context import Context
from app.jobs import submit
from app.queries import metric_curve_names, metric_curves, metric_series
from app.store.models import MetricPointRow
from app.tui.widgets.metric_plot import downsample

# -- reading -----------------------------------------------------------------------------


def add_points(ctx: Context, version_id: int, name: str, points: list[tuple[int, float]]) -> None:
    with ctx.db.write() as session:
        for step, value in points:
            session.add(MetricPointRow(version_id=version_id, name=name, step=step, value=value))


@pytest.fixture
def versions(ctx: Context, make_project: Callable[..., Project]) -> list[int]:
    """Three versions of `demo`: V001 and V002 with curves (added out of step order),
    V003 without any."""
    project = make_project()
    first = submit(ctx, project.raw(), project.base, launcher=noop_launcher)
    ids = [first.version_id]
    for parent in ("V001", "V002"):
        ids.append(new_version(ctx, "demo", parent, {}, project.base).version_id)
    add_points(ctx, ids[0], "loss", [(200, 0.5), (0, 1.0), (100, 0.7)])
    add_points(ctx, ids[0], "accuracy", [(0, 0.1), (100, 0.6)])
    add_points(ctx, ids[1], "loss", [(100, 0.9), (0, 1.1)])
    add_points(ctx, ids[1], "val/loss", [(0, 1.3)])
    return ids


def test_curves_of_one_metric_per_version_in_step_order(ctx: Context,
                                                          versions: list[int]) -> None:
    v1, v2, v3 = versions
    assert metric_curves(ctx.db, versions, "loss") == {
        v1: [(0, 1.0), (100, 0.7), (200, 0.5)],
        v2: [(0, 1.1), (100, 0.9)],
        v3: [],
    }
    assert metric_curves(ctx.db, [v2], "accuracy") == {v2: []}
    assert metric_curves(ctx.db, [], "loss") == {}


def test_curves_are_what_every_series_holds_for_that_metric(ctx: Context,
                                                            versions: list[int]) -> None:
    every = metric_series(ctx.db, versions)
    for name in ("loss", "accuracy", "val/loss"):
        curves = metric_curves(ctx.db, versions, name)
        assert curves == {vid: every[vid].get(name, []) for vid in versions}


def test_curve_names_of_any_version(ctx: Context, versions: list[int]) -> None:
    _, v2, v3 = versions
    assert metric_curve_names(ctx.db, versions) == {"loss", "accuracy", "val/loss"}
    assert metric_curve_names(ctx.db, [v2]) == {"loss", "val/loss"}
    assert metric_curve_names(ctx.db, [v3]) == set()
    assert metric_curve_names(ctx.db, []) == set()


# -- thinning ----------------------------------------------------------------------------


def noisy(count: int, every: int = 10) -> list[tuple[int, float]]:
    """A falling curve with a little wobble."""
    return [(i * every, 1.0 / (1 + i) + 0.01 * math.sin(i)) for i in range(count)]


@pytest.mark.parametrize("points", [[], [(0, 1.0)], noisy(5), noisy(20)])
def test_a_series_that_fits_comes_back_unchanged(points: list[tuple[int, float]]) -> None:
    assert downsample(points, 10) == points
    assert downsample(points, 0) == points


@pytest.mark.parametrize(("count", "columns"), [(21, 10), (1_000, 118), (1_000, 1),
                                                (5_000, 37), (100_000, 300)])
def test_at_most_two_points_per_column_plus_the_ends(count: int, columns: int) -> None:
    points = noisy(count)
    thinned = downsample(points, columns)
    assert len(thinned) <= 2 * columns + 2
    assert thinned[0] == points[0] and thinned[-1] == points[-1]
    assert all(point in points for point in thinned)
    assert [step for step, _ in thinned] == sorted({step for step, _ in thinned})


def test_spikes_and_dips_stay() -> None:
    points: list[tuple[int, Any]] = noisy(1_000)
    points[333] = (3330, 50.0)
    points[667] = (6670, -50.0)
    thinned = downsample(points, 20)
    assert (3330, 50.0) in thinned and (6670, -50.0) in thinned
    assert max(v for _, v in thinned) == 50.0 and min(v for _, v in thinned) == -50.0


def test_each_column_keeps_its_lowest_and_highest() -> None:
    points = noisy(1_000)
    columns = 25
    thinned = set(downsample(points, columns))
    first, span = points[0][0], points[-1][0] - points[0][0]
    for column in range(columns):
        low, high = first + span * column / columns, first + span * (column + 1) / columns
        last = column == columns - 1
        inside = [p for p in points if low <= p[0] < high or (last and p[0] == high)]
        assert min(inside, key=lambda p: p[1]) in thinned
        assert max(inside, key=lambda p: p[1]) in thinned


def test_columns_follow_steps_not_indices() -> None:
    """Dense logging early and sparse later: columns are spans of steps."""
    dense = [(step, 1.0) for step in range(0, 1_000)]  # a flat first half ...
    sparse = [(1_000 + 100 * i, float(i % 2)) for i in range(10)]  # ... then zig-zags
    thinned = downsample(dense + sparse, 20)
    assert all(point in thinned for point in sparse)
    assert len([p for p in thinned if p[0] < 1_000]) <= 2 * 10 + 1
