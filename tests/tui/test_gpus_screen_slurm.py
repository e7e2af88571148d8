"""The GPUs screen's Slurm pools: each pool's partition as its controller reports it.

The snapshot takes the controller's answer from a stand-in for `partition_usage`; the
last test asks the real single-host Slurm (`scripts/ensure-slurm`)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import SLURM_PARTITION
from tui_data import DataBuilder, settle
from tui_helpers import GpusHost, make_board, with_slurm_pools

import app.runtime.executors.slurm as slurm_executor
from app.runtime.executors import ExecutorError
from app.runtime.executors.slurm import PartitionUsage
from app.tui.screens.gpus import GpusScreen
from app.tui.widgets.gpu_table import GpuTable

FAKE = {"gpu": PartitionUsage(4, 16, 12, 3, gpus_per_node=4), "typo": PartitionUsage(0, 0, 0, 0)}


def fake_usage(partition: str) -> PartitionUsage:
    """The controller's answer for the fake partitions; `down`'s controller is away."""
    if partition == "down":
        raise ExecutorError("slurm: sinfo did not answer in 30s")
    return FAKE[partition]


def cells(screen: GpusScreen, key: str) -> list[str]:
    table = screen.query_one("#slurm-table", GpuTable)
    return [str(cell) for cell in table.get_row(key)]


def test_snapshot_slurm_pools_at_80x24(snap_compare: Any, snap_build: DataBuilder,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    make_board(snap_build)
    monkeypatch.setattr(slurm_executor, "partition_usage", fake_usage)
    ctx = with_slurm_pools(snap_build.ctx, cluster="gpu", typo="typo", offline="down")
    assert snap_compare(GpusHost(ctx), terminal_size=(80, 24),
                        run_before=lambda pilot: settle(pilot, rounds=2))


async def test_slurm_rows_title_and_tab_order(build: DataBuilder,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm_executor, "partition_usage", fake_usage)
    app = GpusHost(with_slurm_pools(build.ctx, cluster="gpu", offline="down"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, GpusScreen)
        assert cells(screen, "slurm-cluster") == ["cluster", "gpu", "4", "16", "12", "4", "3",
                                                  "—"]
        assert cells(screen, "slurm-offline")[2:] == ["—"] * 5 + [
            "slurm: sinfo did not answer in 30s"]
        assert str(screen.query_one("#slurm-title").render()) == (
            "Slurm pools — 4 GPU(s) free, 3 job(s) pending")
        order = []
        for _ in range(3):
            await pilot.press("tab")
            order.append(screen.focused.id if screen.focused else None)
        assert order == ["slurm-table", "queue-table", "gpus-table"]


async def test_no_slurm_section_without_slurm_pools(build: DataBuilder) -> None:
    app = GpusHost(build.ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert not app.screen.query("#slurm-table")


async def test_the_real_controllers_partition(slurm: None, build: DataBuilder) -> None:
    app = GpusHost(with_slurm_pools(build.ctx, cluster=SLURM_PARTITION))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, GpusScreen)
        row = cells(screen, "slurm-cluster")
        # ensure-slurm's one node with 2 GPUs (others' jobs may hold some of them now)
        assert row[:4] == ["cluster", SLURM_PARTITION, "1", "2"] and row[-1] == "—"
