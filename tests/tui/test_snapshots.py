"""What each screen looks like at 120 by 40 cells, with fixed data and a frozen clock."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from tui_data import DataBuilder, sample_job

from app.context import Context
from app.tui.app import TraindeckApp

SIZE = (120, 40)


async def settle(pilot: Pilot[Any]) -> None:
    """Let workers finish and the screen catch up (no animations: no half-drawn frames)."""
    pilot.app.animation_level = "none"
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_job(pilot: Pilot[Any], *keys: str) -> None:
    """Open the highlighted job (the first row) and press `keys` there."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def test_jobs_empty(snap_compare: Any, snap_ctx: Context) -> None:
    assert snap_compare(TraindeckApp(snap_ctx), terminal_size=SIZE, run_before=settle)


def test_jobs_with_rows(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)
    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=settle)


def test_job_detail_failed_overview(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)
    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=open_job)


def test_job_detail_logs(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def logs(pilot: Pilot[Any]) -> None:
        await open_job(pilot, "2")

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=logs)


def test_job_detail_logs_on_a_small_terminal(snap_compare: Any,
                                             snap_build: DataBuilder) -> None:
    """80 by 24: the version tree narrows and the log keeps its width for the text."""
    sample_job(snap_build)

    async def logs(pilot: Pilot[Any]) -> None:
        await open_job(pilot, "2")

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=(80, 24), run_before=logs)


def test_job_detail_metrics(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def metrics(pilot: Pilot[Any]) -> None:
        await open_job(pilot, "up", "3")

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=metrics)


def test_compare_differing(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def compare(pilot: Pilot[Any]) -> None:
        await open_job(pilot, "C")

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=compare)


def test_compare_all_parameters(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def compare_all(pilot: Pilot[Any]) -> None:
        await open_job(pilot, "C", "a", "n")

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE,
                        run_before=compare_all)


def test_confirm_delete(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def confirm(pilot: Pilot[Any]) -> None:
        await open_job(pilot, "d")

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=confirm)


def test_help_on_jobs(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def help_screen(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE,
                        run_before=help_screen)


def test_save_parameters_modal(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def save(pilot: Pilot[Any]) -> None:
        await open_job(pilot, "p")
        pilot.app.screen.query_one("#save-name").cursor_blink = False

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=save)
