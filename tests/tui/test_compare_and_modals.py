"""Compare (best values, all/differing, metric choice), confirm and help."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from tui_data import DataBuilder, sample_job

from app.tui.app import TraindeckApp
from app.tui.screens.compare import CompareScreen
from app.tui.screens.confirm import ConfirmScreen
from app.tui.screens.help import HelpScreen
from app.tui.widgets.key_table import KeyTable

SIZE = (120, 40)


async def settle(pilot: Pilot[Any]) -> None:
    """Let workers finish and the screen catch up."""
    for _ in range(2):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_compare(pilot: Pilot[Any], labels: list[str] | None = None) -> CompareScreen:
    """Push the compare screen of digits-baseline."""
    await settle(pilot)
    screen = CompareScreen(pilot.app.ctx, "digits-baseline", labels)  # type: ignore[attr-defined]
    await pilot.app.push_screen(screen)
    await settle(pilot)
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
        assert "bold" in str(f1[2].style)
        loss = table.get_row("metric-loss")
        assert "★" in str(loss[2])  # lowest loss wins
        await pilot.press("a")
        await settle(pilot)
        assert "param-train_steps" in row_keys(table)
        await pilot.press("a")
        await settle(pilot)
        assert "param-train_steps" not in row_keys(table)


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
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        groups = app.screen.groups
        assert next(iter(groups)) == "Jobs screen"
        assert list(groups)[-1] == "Everywhere"
        descriptions = {e.description for e in groups["Jobs screen"]}
        assert {"Create", "Filter", "Sort", "Delete"} <= descriptions
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
