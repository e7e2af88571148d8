"""The overview shows a progress bar while a version stages data or uploads its results.

The supervisor (another process) keeps the progress in a small file in the version's
state dir; these tests write that file with the same writer (`TransferFile`) or with a
fixed snapshot, and watch the overview follow it — and stop looking when it is gone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import ProgressBar, Static
from tui_data import DataBuilder

from app.runtime.plan import state_dir
from app.storage import TransferFile, TransferSnapshot, transfer_path, write_transfer
from app.store.models import Status
from app.tui.app import TraindeckApp
from app.tui.widgets.version_overview import VersionOverview

SIZE = (120, 40)
GiB = 1024 ** 3
MiB = 1024 ** 2


async def settle(pilot: Pilot[Any]) -> None:
    """Let workers finish and the screen catch up (no animations)."""
    pilot.app.animation_level = "none"
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def staging_job(build: DataBuilder, status: Status = Status.INITIALIZING) -> Path:
    """A job reading object storage whose V001 is `status`; its progress file's path."""
    ref = build.job("imagenet-resnet", status, data={"paths": ["s3://lake/imagenet/train"]},
                    output="s3://results/imagenet-resnet/out")
    return transfer_path(state_dir(build.ctx.settings, ref.version_id))


async def open_overview(pilot: Pilot[Any]) -> VersionOverview:
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    return pilot.app.screen.query_one(VersionOverview)


def shown(overview: VersionOverview) -> tuple[bool, float | None, str]:
    """Whether the bar is shown, its progress, and the figures beside it (the box is
    mounted with the first transfer the overview sees)."""
    if not overview.query("#ov-transfer"):
        return False, None, ""
    bar = overview.query_one("#ov-transfer-bar", ProgressBar)
    stats = str(overview.query_one("#ov-transfer-stats", Static).render())
    return overview.query_one("#ov-transfer").display, bar.progress, stats


async def test_the_bar_follows_a_transfer_and_goes_when_it_ends(build: DataBuilder) -> None:
    path = staging_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        overview = await open_overview(pilot)
        assert shown(overview)[0] is False  # no transfer yet
        assert overview._tick is None  # nothing read twice a second while none runs
        writer = TransferFile(path, "staging", "s3://lake/imagenet/train", files=4,
                              interval=0)
        with writer:
            writer(1 * MiB, 4 * MiB)
            writer.on_files(1, 4)
            await pilot.pause(2.5)  # the initializing version is looked at every 2 s
            await settle(pilot)
            display, progress, stats = shown(overview)
            assert display is True and progress == 1 * MiB
            assert stats == "1.0 MiB of 4.0 MiB"
            title = str(overview.query_one("#ov-transfer-title", Static).render())
            assert title.startswith("Staging s3://lake/imagenet/train  ·  1 of 4 files")
            assert overview._tick is not None
            writer(3 * MiB, 4 * MiB)
            writer.on_files(3, 4)
            await pilot.pause(0.8)
            await settle(pilot)
            assert shown(overview)[1:] == (3 * MiB, "3.0 MiB of 4.0 MiB")
            assert "3 of 4 files" in str(
                overview.query_one("#ov-transfer-title", Static).render())
        await pilot.pause(0.8)  # the file is gone: so is the bar, and the fast timer
        await settle(pilot)
        assert shown(overview)[0] is False
        assert overview._tick is None
        assert not path.exists()


async def test_a_file_left_by_a_dead_process_shows_nothing(build: DataBuilder) -> None:
    path = staging_job(build, Status.FAILED)
    write_transfer(path, TransferSnapshot("uploading output", "s3://results/x", 10, 20, 1, 2,
                                          5.0, time.time(), time.time(), 2 ** 22 + 1))
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        overview = await open_overview(pilot)
        assert shown(overview)[0] is False
        assert overview._tick is None and overview._probe is None  # idle stays idle


def test_snapshot_overview_while_staging(snap_compare: Any, snap_build: DataBuilder) -> None:
    path = staging_job(snap_build)
    now = time.time()
    write_transfer(path, TransferSnapshot(
        "staging", "s3://lake/imagenet/train", int(1.2 * GiB), int(2.7 * GiB), 12, 40,
        35.2 * MiB, now - 35, now, os.getpid()))

    async def show(pilot: Pilot[Any]) -> None:
        await open_overview(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=show)
