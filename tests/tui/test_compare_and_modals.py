"""Compare (best values, all/differing, metric choice), confirm and help."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import noop_launcher
from rich.text import Text
from textual.pilot import Pilot
from tui_data import DataBuilder, sample_job, settle

import app.queries
from app.jobs import create_version, modified_spec
from app.tui.app import TraindeckApp
from app.tui.screens.compare import CompareScreen
from app.tui.screens.confirm import ConfirmScreen
from app.tui.screens.help import HelpScreen
from app.tui.widgets.key_table import KeyTable
from app.tui.widgets.metric_plot import MetricPlot

SIZE = (120, 40)



async def open_compare(pilot: Pilot[Any], labels: list[str] | None = None) -> CompareScreen:
    """Push the compare screen of digits-baseline."""
    await settle(pilot, rounds=2)
    screen = CompareScreen(pilot.app.ctx, "digits-baseline", labels)  # type: ignore[attr-defined]
    await pilot.app.push_screen(screen)
    await settle(pilot, rounds=2)
    return screen


def row_keys(table: KeyTable) -> list[str]:
    """Row keys top to bottom."""
    return [str(row.key.value) for row in table.ordered_rows]


async def test_compare_marks_best_and_toggles_parameters(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot)
        table = screen.query_one("#compare-table", KeyTable)
        assert [str(c.label) for c in table.ordered_columns] == ["", "V001", "V002", "V003"]
        keys = row_keys(table)
        assert "param-lr" in keys and "param-train_steps" not in keys
        metric_rows = [k for k in keys if k.startswith("metric-")]
        assert metric_rows[:4] == ["metric-f1", "metric-recall", "metric-precision",
                                   "metric-accuracy"]
        f1 = table.get_row("metric-f1")
        assert "★" in str(f1[2]) and "★" not in str(f1[1])
        assert isinstance(f1[2], Text) and "bold" in str(f1[2].style)
        loss = table.get_row("metric-loss")
        assert "★" in str(loss[2])  # lowest loss wins
        await pilot.press("a")
        await settle(pilot, rounds=2)
        assert "param-train_steps" in row_keys(table)
        await pilot.press("a")
        await settle(pilot, rounds=2)
        assert "param-train_steps" not in row_keys(table)


async def test_compare_shows_the_other_spec_fields_that_differ(build: DataBuilder) -> None:
    """V002 changed its parameters only; V004 changes its command's environment and
    resources, which show below the parameters (equal fields do not)."""
    sample_job(build)
    raw = build.spec("digits-baseline", description="first try", env={"OMP_NUM_THREADS": "2"},
                     resources={"pool": "public", "gpus": 0, "nodes": 1, "runtime": "local",
                                "cpus": 2})
    _, spec, parent = modified_spec(build.ctx, "digits-baseline", "V002", raw=raw,
                                    base_dir=build.base)
    create_version(build.ctx, "digits-baseline", spec, parent, launcher=noop_launcher)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, ["V001", "V002", "V004"])
        table = screen.query_one("#compare-table", KeyTable)
        spec_rows = [k for k in row_keys(table) if k.startswith("spec-")]
        assert spec_rows == ["spec-env.OMP_NUM_THREADS", "spec-resources.cpus"]
        assert [str(cell) for cell in table.get_row("spec-env.OMP_NUM_THREADS")] == [
            "  env.OMP_NUM_THREADS", "—", "—", "2"]
        assert row_keys(table).index("section-spec") < row_keys(table).index("section-metrics")


async def test_compare_picks_metrics_with_n_and_p(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot)
        assert screen.metric == "accuracy"  # the first metric with curves
        await pilot.press("n")
        assert screen.metric == "loss"
        await pilot.press("n")
        assert screen.metric == "f1"
        await pilot.press("p")
        assert screen.metric == "loss"


async def test_switching_metric_reads_only_its_curves(
    build: DataBuilder, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sample_job(build)
    read: list[str] = []
    real_curves = app.queries.metric_curves

    def curves(db: Any, version_ids: list[int], name: str) -> Any:
        read.append(name)
        return real_curves(db, version_ids, name)

    def every_series(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the compare screen reads one metric's curves at a time")

    monkeypatch.setattr(app.queries, "metric_curves", curves)
    monkeypatch.setattr(app.queries, "metric_series", every_series)
    tui = TraindeckApp(build.ctx)
    async with tui.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot)
        plot = screen.query_one(MetricPlot)
        assert read == ["accuracy"]
        assert plot.plot_title.split()[0] == "accuracy"
        assert dict(plot.curves) == {
            "V001": [(0, 0.5), (100, 0.7), (200, 0.82), (300, 0.88), (400, 0.912)],
            "V002": [(0, 0.55), (100, 0.75), (200, 0.86), (300, 0.91), (400, 0.934)],
            "V003": [],
        }
        await pilot.press("n")
        await settle(pilot, rounds=2)
        assert read == ["accuracy", "loss"]
        assert plot.plot_title.split()[0] == "loss"
        assert dict(plot.curves)["V003"] == [(0, 2.3), (100, 2.4)]
        await pilot.press("n")  # f1 has a final value and no curve: nothing to read
        await settle(pilot, rounds=2)
        assert read == ["accuracy", "loss"]
        assert plot.plot_title.split()[0] == "f1"
        assert all(points == [] for _, points in plot.curves)
        await pilot.press("p", "p")  # the curves of a metric left before they came are dropped
        await settle(pilot, rounds=2)
        assert screen.metric == "accuracy" and plot.plot_title.split()[0] == "accuracy"
        assert dict(plot.curves)["V002"][-1] == (400, 0.934)
        screen.post_message(CompareScreen.CurvesLoaded("loss", {}))  # late, from a worker
        await settle(pilot, rounds=2)
        assert plot.plot_title.split()[0] == "accuracy" and dict(plot.curves)["V001"]


async def test_version_columns_out_of_view_are_drawn_once_scrolled_to(
    build: DataBuilder,
) -> None:
    """Only the columns in view are rendered; scrolling renders the others."""
    ref = build.job("wide", parameters={"lr": 0.0})
    build.metrics(ref, {"accuracy": 0.5})
    for number in range(2, 13):
        ref = build.version("wide", "V001", {"lr": number / 100})
        build.metrics(ref, {"accuracy": 0.5 + number / 100})
    tui = TraindeckApp(build.ctx)
    async with tui.run_test(size=(70, 30)) as pilot:
        await settle(pilot, rounds=2)
        screen = CompareScreen(build.ctx, "wide")
        await tui.push_screen(screen)
        await settle(pilot, rounds=2)
        table = screen.query_one("#compare-table", KeyTable)
        assert table.max_scroll_x > 0

        def header() -> str:
            return table.render_line(0).text

        def accuracy() -> str:
            row = next(i for i, row in enumerate(table.ordered_rows)
                       if row.key.value == "metric-accuracy")
            return table.render_line(row + 1).text  # below the header

        assert "V001" in header() and "V012" not in header()
        table.scroll_to(x=table.max_scroll_x, animate=False)
        await pilot.pause()
        assert "V012" in header() and "V001" not in header()
        assert "0.62 ★" in accuracy()
        table.scroll_to(x=0, animate=False)
        await pilot.pause()
        assert "V001" in header() and "0.5" in accuracy()


async def test_compare_only_given_versions(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_compare(pilot, ["V001", "V003"])
        table = screen.query_one("#compare-table", KeyTable)
        assert [str(c.label) for c in table.ordered_columns] == ["", "V001", "V003"]


async def test_confirm_answers(ctx: Any) -> None:
    results: list[bool | None] = []
    app = TraindeckApp(ctx)
    async with app.run_test(size=SIZE) as pilot:
        for key, expected in (("y", True), ("n", False), ("escape", False), ("enter", True)):
            await app.push_screen(ConfirmScreen("Delete everything?"), results.append)
            await pilot.pause()
            await pilot.press(key)
            await pilot.pause()
            assert results[-1] is expected


async def test_help_lists_the_screen_keys_grouped(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("question_mark")
        await settle(pilot, rounds=2)
        assert isinstance(app.screen, HelpScreen)
        groups = app.screen.groups
        assert next(iter(groups)) == "Jobs screen"
        assert list(groups)[-1] == "Everywhere"
        descriptions = {e.description for e in groups["Jobs screen"]}
        assert {"Create", "Filter", "Sort", "Delete"} <= descriptions
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
