"""The wizard with a Slurm pool, against the real single-host Slurm
(`scripts/ensure-slurm`: partition `debug`, one node with 2 GPUs): the pool picker shows
the partition's free GPUs, and nodes and GPUs per node the partition can never give are
refused beside their fields, in the core's words."""

from __future__ import annotations

import re
from typing import Any

from helpers import SLURM_PARTITION
from textual.widgets import Select
from tui_helpers import host, next_step, note, press_next_until, put, sync, with_slurm_pools, wizard
from tui_helpers import settle_wizard as settle

from app.tui.wizard.checks import check_raw_spec

NODES = f"partition {SLURM_PARTITION} has 1 node(s); 2 asked for"
GPUS = f"partition {SLURM_PARTITION} has at most 2 GPU(s) on a node; 4 per node asked for"


def test_the_core_check_refuses_what_the_partition_cannot_give(slurm: None, build: Any) -> None:
    ctx = with_slurm_pools(build.ctx, cluster=SLURM_PARTITION)
    raw = build.spec("on-slurm", resources={"pool": "cluster", "gpus": 4, "nodes": 2})
    errors = check_raw_spec(ctx, raw, build.base).errors
    assert [(e.field, e.message) for e in errors] == [
        ("resources.nodes", NODES), ("resources.gpus", GPUS)]
    raw["resources"] |= {"gpus": 2, "nodes": 1}
    assert check_raw_spec(ctx, raw, build.base).errors == []


@sync
async def test_the_picker_shows_free_gpus_and_the_fields_the_limits(slurm: None,
                                                                    build: Any) -> None:
    app = host(with_slurm_pools(build.ctx, cluster=SLURM_PARTITION), build.base)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press_next_until(pilot, 3)
        screen = wizard(pilot)
        labels = [str(label) for label, _ in screen.query_one("#pool", Select)._options]
        # Others' jobs may hold some of the partition's 2 GPUs while this runs.
        assert any(re.fullmatch(r"cluster \(slurm, [0-2] GPU\(s\) free\)", label)
                   for label in labels), labels
        put(pilot, "#pool", "cluster")
        put(pilot, "#nodes", "2")
        put(pilot, "#gpus", "4")
        await settle(pilot)
        assert re.match(rf"partition {SLURM_PARTITION}: [0-2] of 2 GPU\(s\) free on 1 node",
                        note(pilot, "pool")), note(pilot, "pool")
        # Neither Pyxis nor Apptainer here: the note says so.
        assert note(pilot, "pool").endswith(
            "; no container runtime: the engine's interpreter runs on the nodes")
        assert note(pilot, "nodes") == NODES
        assert note(pilot, "gpus") == GPUS
        await next_step(pilot)
        assert screen.step == 3  # refused
        put(pilot, "#nodes", "1")
        put(pilot, "#gpus", "2")
        await next_step(pilot)
        assert screen.step == 4
