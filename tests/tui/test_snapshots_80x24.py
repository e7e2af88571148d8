"""Every screen and modal at 80 by 24, the terminal of an SSH session: keys, buttons and
text stay in view. The same data and steps as the 120 by 40 snapshots beside them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from tui_data import DataBuilder, sample_job
from tui_helpers import (
    SEEN,
    GpusHost,
    SinceHost,
    TemplatesHost,
    fill_without_clicks,
    freeze,
    host,
    make_board,
    make_changes,
    make_dataset_folders,
    make_datasets,
    make_models,
    make_templates,
    next_step,
    open_datasets,
    tensorboard_info,
    type_into,
    type_path,
    with_topics,
    write_specs,
)
from tui_helpers import settle_workers as settle

from app.tui.app import TraindeckApp

SIZE = (80, 24)
RunBefore = Callable[[Pilot[Any]], Awaitable[None]]
Scene = Callable[[DataBuilder, pytest.MonkeyPatch], tuple[App[Any], RunBefore]]

pytestmark = pytest.mark.usefixtures("quick_wizard_checks")


def keys(*pressed: str, job: bool = True) -> RunBefore:
    """Open the first job (unless `job` is False), then press `pressed` one by one."""
    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in (("enter",) if job else ()) + pressed:
            await pilot.press(key)
            await settle(pilot)
        freeze(pilot)
    return run


def jobs_app(build: DataBuilder, run: RunBefore, data: bool = True) -> tuple[App[Any], RunBefore]:
    if data:
        sample_job(build)
    return TraindeckApp(build.ctx), run


def scene(make: Callable[[DataBuilder], Any], host: Callable[[Any], App[Any]],
          run: RunBefore) -> Scene:
    """Data made by `make`, shown in the app `host` makes, after `run`."""
    def made(build: DataBuilder, _mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
        make(build)
        return host(build.ctx), run
    return made


def tensorboard(build: DataBuilder, _mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
    from app.tui.screens.tensorboard import TensorBoardScreen

    async def run(pilot: Pilot[Any]) -> None:
        await keys()(pilot)
        await pilot.app.push_screen(TensorBoardScreen(build.ctx, tensorboard_info(label="V003")))
        await settle(pilot)

    return jobs_app(build, run)


def new_dataset(build: DataBuilder, _mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
    async def run(pilot: Pilot[Any]) -> None:
        await open_datasets(pilot)
        await pilot.press("n")
        await settle(pilot)
        await type_into(pilot, "#dataset-name", "mnist-train")
        await type_into(pilot, "#dataset-description", "MNIST, the train split")
        await type_into(pilot, "#dataset-path", "s3://lake/mnist/train")
        await settle(pilot)
        freeze(pilot)

    return TraindeckApp(build.ctx), run


def add_dataset_version(build: DataBuilder,
                        _mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
    make_dataset_folders(build)

    async def run(pilot: Pilot[Any]) -> None:
        await open_datasets(pilot)
        await pilot.press("down", "a")
        await settle(pilot)
        await type_into(pilot, "#dataset-description", "cleaned labels")
        freeze(pilot)

    return TraindeckApp(build.ctx), run


def spec_file(build: DataBuilder, mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
    write_specs(build)
    mp.chdir(build.base)

    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await type_path(pilot, "specs/broken.yaml")
        freeze(pilot)

    return TraindeckApp(build.ctx), run


def compare_gpus(build: DataBuilder, _mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
    """The comparison with the GPU figures sampled while V001 and V002 ran (V003 has
    none), its cursor on the last row."""
    from app.jobs import VersionRef
    from app.queries import version_info

    sample_job(build)
    samples = {"V001": {"sys/gpu0/util": [40.0, 60.0], "sys/gpu0/memory_mb": [900.0, 1200.0]},
               "V002": {"sys/gpu0/util": [0.0, 0.0], "sys/gpu0/memory_mb": [10.0, 10.0]}}
    for label, curves in samples.items():
        info = version_info(build.ctx.db, "digits-baseline", label)
        build.metrics(VersionRef("digits-baseline", label, info.id, info.status), {}, curves)
    return jobs_app(build, keys("C", "end"), data=False)


def since(build: DataBuilder, _mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
    from app.since import mark_seen

    make_changes(build)
    mark_seen(build.ctx.db, SEEN)
    return SinceHost(build.ctx), settle


def wizard_step(step: int, topics: bool = False) -> Scene:
    """The create wizard filled as in test_wizard, on `step` (2 to 5)."""
    def scene(build: DataBuilder, _mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
        async def run(pilot: Pilot[Any]) -> None:
            await fill_without_clicks(pilot)
            for _ in range(step - 2):
                await next_step(pilot)
            freeze(pilot)

        ctx = with_topics(build.ctx) if topics else build.ctx
        return host(ctx, build.base), run
    return scene


def wizard_basic(build: DataBuilder, _mp: pytest.MonkeyPatch) -> tuple[App[Any], RunBefore]:
    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*"digits-baseline")
        await settle(pilot)
        freeze(pilot)

    return host(build.ctx, build.base), run


SCENES: dict[str, Scene] = {
    "jobs-empty": lambda b, _m: jobs_app(b, keys(job=False), data=False),
    "jobs": lambda b, _m: jobs_app(b, keys(job=False)),
    "jobs-filter": lambda b, _m: jobs_app(b, keys("slash", "d", "i", job=False)),
    "help": lambda b, _m: jobs_app(b, keys("question_mark", job=False)),
    "confirm-delete-job": lambda b, _m: jobs_app(b, keys("d", job=False)),
    "palette": lambda b, _m: jobs_app(b, keys("ctrl+p", "v", "i", "e", "w", job=False)),
    "job-overview": lambda b, _m: jobs_app(b, keys()),
    "job-logs": lambda b, _m: jobs_app(b, keys("2")),
    "job-metrics": lambda b, _m: jobs_app(b, keys("up", "3")),
    "job-events": lambda b, _m: jobs_app(b, keys("4")),
    "job-filter": lambda b, _m: jobs_app(b, keys("slash")),
    "job-help": lambda b, _m: jobs_app(b, keys("question_mark")),
    "compare": lambda b, _m: jobs_app(b, keys("C")),
    "compare-all": lambda b, _m: jobs_app(b, keys("C", "a")),
    "compare-gpus": compare_gpus,
    "confirm-delete-version": lambda b, _m: jobs_app(b, keys("d")),
    "save-parameters": lambda b, _m: jobs_app(b, keys("p")),
    "create-model": lambda b, _m: jobs_app(b, keys("up", "M")),
    "tensorboard": tensorboard,
    "models": scene(make_models, TraindeckApp, keys("O", job=False)),
    "datasets": scene(make_datasets, TraindeckApp, keys("D", "down", job=False)),
    "dataset-new": new_dataset,
    "dataset-add-version": add_dataset_version,
    "spec-file": spec_file,
    "since": since,
    "gpus": scene(make_board, GpusHost, settle),
    "templates": scene(make_templates, TemplatesHost, settle),
    "templates-spec": scene(make_templates, TemplatesHost, keys("j", "enter", job=False)),
    "wizard-basic": wizard_basic,
    "wizard-parameters": wizard_step(2),
    "wizard-resources": wizard_step(3),
    "wizard-subscriptions": wizard_step(4, topics=True),
    "wizard-confirm": wizard_step(5),
}
"""What each snapshot shows: the app and what to do before it is taken."""


@pytest.mark.parametrize("scene", list(SCENES))
def test_small_terminal(scene: str, snap_compare: Any, snap_build: DataBuilder,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    app, run_before = SCENES[scene](snap_build, monkeypatch)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
