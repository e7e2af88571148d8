"""The GPUs and queue screen: holders, the FIFO queue with reasons, quiet polling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fake_nvml import NVML_ERROR_DRIVER_NOT_LOADED, FakeNvml, install
from sqlmodel import col, delete
from textual.widgets import Static
from tui_data import NOW, T0, DataBuilder, settle
from tui_helpers import SECOND_REASON, WAIT_REASON, GpusHost, make_board

from app.context import Context
from app.machine import gpu_board
from app.runtime.gpus import GpuInfo, inventory
from app.store.models import GpuAllocation
from app.tui.screens.gpus import GpusScreen, coarse_age, memory_text
from app.tui.widgets.gpu_table import GpuTable

SIZE = (120, 40)


def test_board_reads_holders_and_fifo_queue(build: DataBuilder) -> None:
    make_board(build)
    ctx = build.ctx
    board = gpu_board(ctx.settings, ctx.db, inventory(ctx.settings))
    assert board.source == "config"
    assert [(g.index, g.pools, g.holder) for g in board.gpus] == [
        (0, ("public",), "demo/V001"), (1, ("public",), None)]
    assert board.gpus[0].held_since == T0 + timedelta(hours=8, seconds=5)
    assert [(q.position, q.label, q.gpus, q.reason) for q in board.queue] == [
        (1, "sweep/V001", 2, WAIT_REASON), (2, "tiny/V001", 1, SECOND_REASON)]


def test_board_shows_allocations_outside_the_inventory(build: DataBuilder) -> None:
    make_board(build)
    ctx = build.ctx
    board = gpu_board(ctx.settings, ctx.db, [GpuInfo(index=1, name="declared GPU 1")])
    assert [(g.index, g.present, g.holder) for g in board.gpus] == [
        (1, True, None), (0, False, "demo/V001")]


def test_formatting() -> None:
    assert coarse_age(NOW - timedelta(seconds=30), NOW) == "<1m"
    assert coarse_age(NOW - timedelta(minutes=47, seconds=59), NOW) == "47m"
    assert coarse_age(NOW - timedelta(hours=3, minutes=4), NOW) == "3h 04m"
    assert coarse_age(NOW - timedelta(days=2, hours=5), NOW) == "2d 05h"
    assert coarse_age(None, NOW) == "—"
    assert memory_text(12595, 81920) == "12.3/80.0 GiB"
    assert memory_text(None, 81920) == "—"


def test_snapshot_holder_and_two_queued(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_board(snap_build)
    assert snap_compare(GpusHost(snap_build.ctx), terminal_size=SIZE,
                        run_before=lambda pilot: settle(pilot, rounds=2))


async def test_polls_redraw_only_what_changed(build: DataBuilder) -> None:
    make_board(build)
    app = GpusHost(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, GpusScreen)
        gpus = screen.query_one("#gpus-table", GpuTable)
        queue = screen.query_one("#queue-table", GpuTable)
        assert gpus.row_keys == ["gpu-0", "gpu-1"]
        assert queue.row_keys == [str(q.version_id) for q in screen.board.queue]  # type: ignore[union-attr]
        board = screen.board
        assert board is not None
        # Nothing changed: the same snapshot again redraws no cell.
        now = NOW
        assert gpus.sync([screen._gpu_row(g, now) for g in board.gpus]) == 0
        assert queue.sync([screen._queue_row(q, now) for q in board.queue]) == 0
        # GPU0 is released: only its row's cells change.
        with build.ctx.db.write() as session:
            session.exec(delete(GpuAllocation).where(col(GpuAllocation.gpu) == 0))
        fresh = gpu_board(build.ctx.settings, build.ctx.db, inventory(build.ctx.settings))
        assert gpus.sync([screen._gpu_row(g, now) for g in fresh.gpus]) == 3
        assert str(gpus.get_cell("gpu-0", "holder")) == "free"


async def test_enter_on_queue_opens_that_job(build: DataBuilder) -> None:
    make_board(build)
    app = GpusHost(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("tab", "j")
        screen = app.screen
        assert isinstance(screen, GpusScreen)
        assert screen._target() == ("tiny", "V001")
        assert "1 earlier version(s) first" in str(
            screen.query_one("#queue-reason").render())
        await pilot.press("tab")
        assert screen._target() == ("demo", "V001")
        await pilot.press("j")
        assert screen._target() is None  # a free GPU has no job to open


async def test_a_machine_without_gpus_says_none_were_found(
        build: DataBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED))
    ctx = Context(build.ctx.settings.model_copy(update={"gpus": None}), build.ctx.db)
    app = GpusHost(ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        assert str(app.screen.query_one("#gpus-title", Static).render()) == "GPUs — none found"
