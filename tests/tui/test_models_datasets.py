"""The models and datasets screens: lists, versions, delete after asking, check changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from tui_data import DataBuilder
from tui_helpers import make_datasets, make_models
from tui_helpers import settle_workers as settle

from app.datasets import list_datasets
from app.registry import list_models
from app.tui.app import TraindeckApp
from app.tui.screens.datasets import DatasetsScreen
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.screens.models import ModelsScreen, metrics_text
from app.tui.widgets.gpu_table import GpuTable

SIZE = (120, 40)


def test_metrics_text_orders_and_counts() -> None:
    metrics = {"loss": 0.27, "accuracy": 0.934, "f1": 0.921, "recall": 0.93, "extra": 1.0}
    assert metrics_text(metrics) == "f1 0.921 · recall 0.93 · accuracy 0.934 · +2"
    assert metrics_text({}) == "—"


# ---------------------------------------------------------------- models


async def test_models_list_versions_and_open_source(build: DataBuilder) -> None:
    make_models(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("O")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        assert screen.query_one("#models-table", GpuTable).row_keys == ["digits", "digits-lr"]
        versions = screen.query_one("#model-versions-table", GpuTable)
        assert versions.row_keys == ["V002", "V001"]
        await pilot.press("enter")  # to the versions
        await pilot.press("enter")  # the newest version's source job
        await settle(pilot)
        assert isinstance(app.screen, JobDetailScreen)
        assert app.screen.selected == "V002"


async def test_delete_model_version_then_model_after_asking(build: DataBuilder) -> None:
    make_models(build)
    copied = Path(build.ctx.settings.data_dir) / "models" / "digits" / "V002"
    assert copied.is_dir()
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("O")
        await settle(pilot)
        await pilot.press("tab", "d")  # the newest version of `digits`
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert [m.version_count for m in list_models(build.ctx.db)] == [2, 1]
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert not copied.exists()
        assert [m.version_count for m in list_models(build.ctx.db)] == [1, 1]
        await pilot.press("tab", "down", "d")  # the whole of `digits-lr`
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert [m.name for m in list_models(build.ctx.db)] == ["digits"]
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        assert screen.query_one("#models-table", GpuTable).row_keys == ["digits"]


async def test_models_empty_state(build: DataBuilder) -> None:
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("O")
        await settle(pilot)
        assert "No models yet" in str(app.screen.query_one("#models-empty").render())


# ---------------------------------------------------------------- datasets


async def test_datasets_list_versions_check_and_delete(build: DataBuilder) -> None:
    make_datasets(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("D")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DatasetsScreen)
        table = screen.query_one("#datasets-table", GpuTable)
        assert table.row_keys == ["blobs", "digits-train"]
        await pilot.press("down")
        await settle(pilot)
        versions = screen.query_one("#dataset-versions-table", GpuTable)
        assert versions.row_keys == ["V002", "V001"]
        assert table.get_row_at(1)[3] == "1"  # the latest version's file count
        (build.base / "data-v2" / "new.csv").write_text("x,y\n")
        await pilot.press("c")
        await settle(pilot)
        detail = str(screen.query_one("#dataset-detail").render())
        assert "changed: 2 files (was 1)" in detail and "1 added: new.csv" in detail
        await pilot.press("tab", "down", "d")  # V001 of digits-train
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        assert [(d.name, d.versions) for d in list_datasets(build.ctx.db)] == [
            ("blobs", 1), ("digits-train", 1)]


async def test_datasets_empty_state(build: DataBuilder) -> None:
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("D")
        await settle(pilot)
        assert "No datasets yet" in str(app.screen.query_one("#datasets-empty").render())


# ---------------------------------------------------------------- snapshots


def test_snapshot_models(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_models(snap_build)

    async def show(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("O")
        await settle(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=show)


def test_snapshot_datasets(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_datasets(snap_build)

    async def show(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("D", "down")
        await settle(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=show)
