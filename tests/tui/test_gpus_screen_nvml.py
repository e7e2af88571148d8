"""The GPUs screen on an NVIDIA machine (the fake NVML): utilisation, memory, temperature,
and a process outside Traindeck on a GPU no version holds; refreshed live and quietly."""

from __future__ import annotations

import os
import pwd
import subprocess
from datetime import timedelta
from typing import Any

import pytest
from fake_nvml import FakeNvml, FakeProcess, install, two_gpus
from tui_data import T0, DataBuilder, settle
from tui_helpers import GpusHost

from app.store.models import GpuAllocation, Status
from app.tui.screens.gpus import GpusScreen
from app.tui.widgets.gpu_table import GpuTable

HIDDEN_PID = 4_194_305
"""Above Linux's largest pid: a process NVML reports but this machine cannot show (as
one in another PID namespace), so the pictures are the same everywhere."""
FOREIGN_REASON = (f"waiting for 1 GPU(s) in pool public: 0 free; GPU0 held by demo/V001; "
                  f"GPU1: 71 GB used by pid {HIDDEN_PID} outside Traindeck")


def nvidia_board(build: DataBuilder, monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """GPU0 busy with demo/V001; GPU1 filled by someone else's process; sweep waits."""
    nvml = install(monkeypatch, two_gpus())
    nvml.devices[0].used_mb, nvml.devices[0].utilization = 30_720, 87
    nvml.devices[0].temperature = 64
    nvml.devices[1].used_mb, nvml.devices[1].utilization = 73_000, 100
    nvml.devices[1].processes = [FakeProcess(HIDDEN_PID, 72_704)]
    build.ctx.settings.gpus = None  # read the GPUs from NVML
    holder = build.job("demo", Status.RUNNING, created=T0 + timedelta(hours=8),
                       resources={"pool": "public", "gpus": 1, "nodes": 1, "runtime": "local"})
    with build.ctx.db.write() as session:
        session.add(GpuAllocation(gpu=0, version_id=holder.version_id,
                                  allocated_at=T0 + timedelta(hours=8, seconds=5)))
    build.job("sweep", Status.QUEUED, FOREIGN_REASON,
              created=T0 + timedelta(hours=8, minutes=30),
              resources={"pool": "public", "gpus": 1, "nodes": 1, "runtime": "local"})
    return nvml


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_snapshot_nvidia_gpus(size: tuple[int, int], snap_compare: Any,
                              snap_build: DataBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    nvidia_board(snap_build, monkeypatch)
    assert snap_compare(GpusHost(snap_build.ctx), terminal_size=size,
                        run_before=lambda pilot: settle(pilot, rounds=2))


def cells(table: GpuTable, key: str, *columns: str) -> list[str]:
    return [str(table.get_cell(key, column)) for column in columns]


async def test_refresh_shows_changes_and_redraws_nothing_else(
        build: DataBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = nvidia_board(build, monkeypatch)
    app = GpusHost(build.ctx)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, GpusScreen)
        gpus = screen.query_one("#gpus-table", GpuTable)
        assert cells(gpus, "gpu-0", "holder", "memory", "util", "temp") == [
            "demo/V001", "30.0/80.0 GiB", "87%", "64°C"]
        assert cells(gpus, "gpu-1", "holder", "memory", "util", "temp") == [
            f"pid {HIDDEN_PID}", "71.3/80.0 GiB", "100%", "41°C"]
        assert "(1 with others' processes)" in str(
            screen.query_one("#gpus-title").render())
        board = screen.board
        assert board is not None
        from app.tui import clock

        now = clock.now()
        assert gpus.sync([screen._gpu_row(g, now) for g in board.gpus]) == 0
        # The other user's process ends and GPU0 warms up: a refresh shows just that.
        nvml.devices[1].processes, nvml.devices[1].used_mb = [], 512
        nvml.devices[1].utilization = 0
        nvml.devices[0].temperature = 66
        screen.action_refresh_now()
        await settle(pilot, rounds=2)
        assert cells(gpus, "gpu-1", "holder", "memory", "util") == [
            "free", "0.5/80.0 GiB", "0%"]
        assert cells(gpus, "gpu-0", "temp") == ["66°C"]
        assert gpus.sync([screen._gpu_row(g, now) for g in screen.board.gpus]) == 0  # type: ignore[union-attr]


async def test_a_visible_process_is_named_with_its_user(
        build: DataBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = nvidia_board(build, monkeypatch)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        nvml.devices[1].processes = [FakeProcess(sleeper.pid, 60_000),
                                     FakeProcess(HIDDEN_PID, 100)]
        app = GpusHost(build.ctx)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot, rounds=2)
            gpus = app.screen.query_one("#gpus-table", GpuTable)
            user = pwd.getpwuid(os.getuid()).pw_name
            assert cells(gpus, "gpu-1", "holder") == [f"sleep {sleeper.pid} ({user}) +1"]
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("keys", [["U"], ["U", "question_mark"], ["question_mark"]],
                         ids=["gpus-over-the-job-list", "help-over-the-gpus",
                              "help-over-the-job-list"])
async def test_nothing_is_redrawn_while_nothing_changes(
        build: DataBuilder, monkeypatch: pytest.MonkeyPatch, keys: list[str]) -> None:
    """The GPUs screen over the job list, or the help dialog over either: the screens
    below poll no longer (Textual repaints a screen that shows under a dialog whole on
    each of its messages), and the top one draws nothing while nothing changes."""
    import app.tui.screens.gpus as gpus_screen
    import app.tui.screens.jobs as jobs_screen
    from app.tui.app import TraindeckApp
    from app.tui.screens.help import HelpScreen

    nvidia_board(build, monkeypatch)
    # Both screens poll ten times a second, so a short wait holds many of their polls.
    monkeypatch.setattr(gpus_screen, "POLL_SECONDS", 0.1)
    monkeypatch.setattr(jobs_screen, "POLL_SECONDS", 0.1)
    app = TraindeckApp(build.ctx)
    frames: list[str] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot, rounds=2)
        assert isinstance(app.screen, HelpScreen if keys[-1] == "question_mark" else GpusScreen)
        shown = app._display

        def display(screen: Any, update: Any) -> None:
            if update is not None:
                frames.append(type(screen).__name__)
            shown(screen, update)

        monkeypatch.setattr(app, "_display", display)
        await pilot.pause(1.0)
        gpus = [screen for screen in app.screen_stack if isinstance(screen, GpusScreen)]
        assert all(screen.board is not None for screen in gpus)  # it has polled
    assert frames == []
