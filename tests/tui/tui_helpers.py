"""Helpers shared by the TUI test modules: small host apps for one screen, the data each
screen's tests show, and the steps that fill the create wizard.

Import as `from tui_helpers import ...` (this folder is on the test path). The host apps
keep the title `HostApp` their snapshots were taken with.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from helpers import noop_launcher
from sqlalchemy import update
from sqlmodel import col, select
from textual import work
from textual.app import App, ComposeResult
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Checkbox, Footer, Input, RadioButton, Select, Static
from tui_data import T0, DataBuilder, sample_job

import app.tui.wizard.screen as wizard_module
from app.config import get_settings
from app.context import Context
from app.datasets import add_version, create_dataset
from app.jobs import VersionRef, save_template
from app.queries import version_info
from app.registry import create_model
from app.since import Summary, since_last_seen
from app.specs.spec import JobSpec
from app.store.models import (
    Dataset,
    DatasetVersion,
    GpuAllocation,
    Job,
    Model,
    ModelVersion,
    Status,
    Template,
    Version,
)
from app.tensorboard import TensorBoardInfo
from app.tui import clock
from app.tui.screens.datasets import DatasetsScreen
from app.tui.screens.gpus import GpusScreen
from app.tui.screens.since import SinceScreen
from app.tui.screens.templates import TemplatesScreen
from app.tui.widgets.status import theme_variable_defaults
from app.tui.wizard.rows import ParamRows, PathRows
from app.tui.wizard.screen import WizardScreen

# ---------------------------------------------------------------- settling


async def settle_workers(pilot: Pilot[Any]) -> None:
    """Let workers finish and the screen catch up (no animations: no half-drawn frames)."""
    pilot.app.animation_level = "none"
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def settle_checks(pilot: Pilot[Any]) -> None:
    """Let workers (and the wizard's debounced check) finish and the screen catch up."""
    pilot.app.animation_level = "none"
    for _ in range(3):
        await pilot.pause(0.05)
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def settle_wizard(pilot: Pilot[Any]) -> None:
    """Let the debounced check run and its result arrive."""
    for _ in range(2):
        await pilot.pause(wizard_module.CHECK_DELAY_S + 0.03)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


# ---------------------------------------------------------------- the create wizard


SIZE = (120, 40)
TOPICS_CONFIG = """\
default_runtime: local
gpus: [0, 1, 2]
pools:
  - {name: public, kind: public, description: every GPU of this machine}
  - {name: team-a, gpus: [1], description: GPU 1, kept for team A}
topics:
  - {name: me, urls: ["json://127.0.0.1:9/"], description: my phone}
"""


class WizardHost(App[None]):
    """Pushes one wizard and keeps what it dismisses with."""

    ENABLE_COMMAND_PALETTE = False

    def __init__(self, wizard: WizardScreen) -> None:
        super().__init__()
        self.wizard = wizard
        self.result: VersionRef | None = None
        self.closed = False

    def on_mount(self) -> None:
        self.push_screen(self.wizard, self._wizard_closed)

    def _wizard_closed(self, ref: VersionRef | None) -> None:
        self.result = ref
        self.closed = True


def host(ctx: Context, base: Path, **kwargs: Any) -> WizardHost:
    """A host app with a create (or modify, by `kwargs`) wizard that launches nothing."""
    return WizardHost(WizardScreen(ctx, base_dir=base, launcher=noop_launcher, **kwargs))


def with_topics(ctx: Context) -> Context:
    """The same home reopened with two pools and a notification topic configured."""
    from app.config import config_file

    config_file().write_text(TOPICS_CONFIG)
    get_settings.cache_clear()
    return Context.open()


def wizard(pilot: Pilot[Any]) -> WizardScreen:
    """The wizard of the `WizardHost` under test."""
    app = pilot.app
    assert isinstance(app, WizardHost)
    return app.wizard


def put(pilot: Pilot[Any], selector: str, value: Any) -> None:
    """Set a field as the user would (each change posts the widget's own Changed)."""
    widget = wizard(pilot).query_one(selector)
    if isinstance(widget, Input | Select | Checkbox | RadioButton):
        widget.value = value
    else:
        raise TypeError(selector)


def note(pilot: Pilot[Any], target: str) -> str:
    """The text of the note under a wizard field."""
    return str(wizard(pilot).query_one(f"#{target}-note", Static).render())


async def next_step(pilot: Pilot[Any]) -> None:
    """Press ctrl+n and wait until the wizard has moved on (or refused to)."""
    screen = wizard(pilot)
    step = screen.step
    await pilot.press("ctrl+n")
    await settle_wizard(pilot)
    for _ in range(40):  # a loaded machine: the step's check may still be on its way
        if screen._pending_step is None:
            break
        await settle_wizard(pilot)
    if screen.step != step:
        # The new step's first field takes the focus after a refresh, which a loaded
        # machine may not have made yet: as the screen does then, so pictures agree.
        screen._focus_step()
        await pilot.pause()


async def press_next_until(pilot: Pilot[Any], step: int) -> None:
    """One Ctrl+N per step, as a person presses it, until `step` is shown."""
    screen = wizard(pilot)
    while screen.step < step:
        before = screen.step
        await next_step(pilot)
        assert screen.step == before + 1, str(screen.query_one("#wizard-error", Static).render())


async def fill_basic_and_framework(pilot: Pilot[Any], name: str = "digits-baseline") -> None:
    """Step 1 and 2 with a framework algorithm on the `data` folder; ends on step 2."""
    await settle_wizard(pilot)
    await pilot.press(*name)
    put(pilot, "#description", "first try")
    await next_step(pilot)
    assert wizard(pilot).step == 2
    await wizard(pilot).query_one(PathRows).set_rows(["./data"])
    put(pilot, "#algo-kind-framework", True)  # (a new job starts from a preset)
    await pilot.pause()
    put(pilot, "#engine", "python")
    await pilot.pause()
    put(pilot, "#code-dir", "./code")
    put(pilot, "#boot-file", "train.py")
    await wizard(pilot).query_one(ParamRows).set_params({})
    await settle_wizard(pilot)
    for name, value in (("train_steps", "10000"), ("lr", "0.01")):
        add = wizard(pilot).query_one("#params .add-row")
        add.scroll_visible(animate=False, immediate=True)  # as a user scrolls to it
        await pilot.pause()
        await pilot.click(add)
        await pilot.press(*name, "tab", *value)
    await settle_wizard(pilot)


def freeze(pilot: Pilot[Any]) -> None:
    """No blinking cursor in snapshots."""
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False


async def fill_without_clicks(pilot: Pilot[Any]) -> None:
    """test_wizard's steps 1 and 2, with the parameters set rather than clicked in (their
    add button is below the fold at 80 by 24)."""
    await settle_workers(pilot)
    await pilot.press(*"digits-baseline")
    put(pilot, "#description", "first try")
    await next_step(pilot)
    await wizard(pilot).query_one(PathRows).set_rows(["./data"])
    put(pilot, "#algo-kind-framework", True)  # (a new job starts from a preset)
    await pilot.pause()
    put(pilot, "#engine", "python")
    await pilot.pause()
    put(pilot, "#code-dir", "./code")
    put(pilot, "#boot-file", "train.py")
    await wizard(pilot).query_one(ParamRows).set_params({"train_steps": 10000, "lr": 0.01})
    await settle_workers(pilot)


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test with asyncio (the suite has no async pytest plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def version_spec(ctx: Context, job: str, number: int) -> tuple[dict[str, Any], Version]:
    """The stored spec of version `number` of `job`, and the version."""
    with ctx.db.read() as session:
        job_row = session.exec(select(Job).where(Job.name == job)).one()
        version = session.exec(select(Version).where(Version.job_id == job_row.id,
                                                     Version.number == number)).one()
    return json.loads(version.spec_json), version


# ---------------------------------------------------------------- GPUs


WAIT_REASON = ("waiting for 2 GPU(s) in pool public: 1 free; GPU0 held by demo/V001")
SECOND_REASON = ("waiting for 1 GPU(s) in pool public: 1 free; GPU0 held by demo/V001; "
                 "1 earlier version(s) first (sweep/V001)")


class ContextHost(App[None]):
    """A bare app on a context, with the project's theme variables: the screens' hosts."""

    TITLE = "HostApp"  # the title their snapshots show

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults()


class GpusHost(ContextHost):
    """A bare app that opens the GPUs screen."""

    def compose(self) -> ComposeResult:
        yield Footer()

    def on_mount(self) -> None:
        self.push_screen(GpusScreen(self.ctx))


def with_slurm_pools(ctx: Context, **partitions: str) -> Context:
    """`ctx` with Slurm pools added: pool name → partition."""
    from app.config import PoolSettings

    pools = [PoolSettings(name=name, kind="slurm", partition=partition)
             for name, partition in partitions.items()]
    return Context(ctx.settings.model_copy(update={"pools": [*ctx.settings.pools, *pools]}),
                   ctx.db)


def make_board(build: DataBuilder) -> None:
    """GPU0 held by demo/V001 (running); sweep/V001 and tiny/V001 queued behind it."""
    ctx = build.ctx
    holder = build.job("demo", Status.RUNNING, created=T0 + timedelta(hours=8),
                       resources={"pool": "public", "gpus": 1, "nodes": 1, "runtime": "local"})
    with ctx.db.write() as session:
        session.add(GpuAllocation(gpu=0, version_id=holder.version_id,
                                  allocated_at=T0 + timedelta(hours=8, seconds=5)))
    build.job("sweep", Status.QUEUED, WAIT_REASON, created=T0 + timedelta(hours=8, minutes=30),
              resources={"pool": "public", "gpus": 2, "nodes": 1, "runtime": "local"})
    build.job("tiny", Status.QUEUED, SECOND_REASON,
              created=T0 + timedelta(hours=8, minutes=45),
              resources={"pool": "public", "gpus": 1, "nodes": 1, "runtime": "local"})


# ---------------------------------------------------------------- since you left


SEEN = T0 + timedelta(hours=1)
"""When the TUI was last open in the test data."""


def make_changes(build: DataBuilder) -> None:
    """One run before SEEN; after it: a success, two failures, a stop, a start, a queue."""
    gpu = {"pool": "public", "gpus": 1, "nodes": 1, "runtime": "local"}
    build.job("old-run", Status.SUCCEEDED, created=T0, ran=timedelta(minutes=20))
    build.job("digits", Status.SUCCEEDED, created=T0 + timedelta(hours=2),
              ran=timedelta(minutes=30))
    build.job("mnist-cnn", Status.FAILED,
              "training script exited with code 1: CUDA out of memory",
              created=T0 + timedelta(hours=3), ran=timedelta(minutes=3), exit_code=1,
              resources=gpu)
    build.job("bert-tiny", Status.FAILED,
              "data: no usable file (3 names longer than 255 characters were skipped)",
              created=T0 + timedelta(hours=4), ran=timedelta(seconds=2))
    build.job("resnet-sweep", Status.RUNNING, created=T0 + timedelta(hours=5), resources=gpu)
    build.job("long-eval", Status.STOPPED, "stopped by the user",
              created=T0 + timedelta(hours=6), ran=timedelta(hours=1))
    build.job("waiting", Status.QUEUED, "waiting for 1 GPU(s) in pool public: 0 free",
              created=T0 + timedelta(hours=7), resources=gpu)


class SinceHost(ContextHost):
    """A bare app doing at start-up what the Traindeck app does: greet with the summary."""


    class SinceReady(Message):
        """The start-up summary (None: nothing to show)."""

        def __init__(self, summary: Summary | None) -> None:
            super().__init__()
            self.summary = summary


    def compose(self) -> ComposeResult:
        yield Static("job list", id="behind")
        yield Footer()

    def on_mount(self) -> None:
        self._since(self.ctx)

    @work(thread=True, exclusive=True, exit_on_error=False, group="since")
    def _since(self, ctx: Context) -> None:
        self.post_message(self.SinceReady(since_last_seen(ctx.db, clock.now())))

    def on_since_host_since_ready(self, message: SinceReady) -> None:
        if message.summary is not None:
            self.push_screen(SinceScreen(message.summary))


# ---------------------------------------------------------------- templates


class TemplatesHost(ContextHost):
    """A bare app that opens the templates screen and records what it asks for."""


    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.used: list[TemplatesScreen.UseTemplate] = []
        self.edited: list[TemplatesScreen.EditTemplate] = []

    def compose(self) -> ComposeResult:
        yield Footer()

    def on_mount(self) -> None:
        self.push_screen(TemplatesScreen(self.ctx))

    def on_templates_screen_use_template(self, message: TemplatesScreen.UseTemplate) -> None:
        self.used.append(message)

    def on_templates_screen_edit_template(self, message: TemplatesScreen.EditTemplate) -> None:
        self.edited.append(message)


def make_templates(build: DataBuilder) -> None:
    """Three templates, one naming an engine version the catalog no longer has."""
    ctx = build.ctx
    base = build.spec("digits", description="digits baseline")
    base["data"] = {"paths": [str(build.base / "data")]}
    base["algorithm"]["framework"]["code_dir"] = str(build.base / "code")
    save_template(ctx, "digits-small", "lr 0.01, 10k steps", JobSpec.model_validate(base))
    sweep = {**base, "parameters": {"lr": 0.1, "train_steps": 20000, "shuffle": True}}
    save_template(ctx, "digits-sweep", "wider sweep", JobSpec.model_validate(sweep))
    old = {**base, "algorithm": {"framework": {
        "engine": "pytorch", "engine_version": "1.13", "code_dir": str(build.base / "code"),
        "boot_file": "train.py"}}}
    save_template(ctx, "resnet-old", "from last year's runs", JobSpec.model_validate(old))
    with ctx.db.write() as session:
        for i, name in enumerate(("digits-small", "digits-sweep", "resnet-old")):
            moment = T0 + timedelta(hours=i)
            session.exec(update(Template).where(col(Template.name) == name)
                         .values(created_at=moment, updated_at=moment))


# ---------------------------------------------------------------- models and datasets


async def open_datasets(pilot: Pilot[Any]) -> DatasetsScreen:
    """Open the datasets screen from the jobs screen."""
    await settle_workers(pilot)
    await pilot.press("D")
    await settle_workers(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, DatasetsScreen)
    return screen


async def type_into(pilot: Pilot[Any], selector: str, text: str) -> None:
    """Focus a field and replace its text (the field hears the change as when typed;
    `test_create_a_dataset_from_a_local_folder` types key by key)."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    field.value = text
    field.cursor_position = len(text)
    await pilot.pause()


def folder(base: Path, name: str, files: dict[str, str]) -> Path:
    """A new folder `base/name` holding `files` (relative path → text)."""
    path = base / name
    path.mkdir(parents=True)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return path


def make_dataset_folders(build: DataBuilder) -> None:
    """Two datasets with fixed times, one in a folder of its own (for the snapshot too)."""
    create_dataset(build.ctx, "digits-train", str(build.base / "data"),
                   "handwritten digits, train split")
    create_dataset(build.ctx, "blobs", str(folder(build.base, "blobs", {"b.csv": "1\n"})))
    with build.ctx.db.write() as s:
        s.exec(update(Dataset).values(created_at=T0 + timedelta(hours=1)))
        s.exec(update(DatasetVersion).values(created_at=T0 + timedelta(hours=2)))


def make_models(build: DataBuilder) -> None:
    """Two models from the sample job: one with two versions (one copied), with fixed times."""
    sample_job(build)
    for label in ("V001", "V002"):
        Path(version_info(build.ctx.db, "digits-baseline", label).output).mkdir(parents=True)
        (Path(version_info(build.ctx.db, "digits-baseline", label).output) / "model.pt"
         ).write_text("weights")
    create_model(build.ctx, "digits", "digits-baseline", "V001", description="baseline digits")
    create_model(build.ctx, "digits", "digits-baseline", "V002", copy=True)
    create_model(build.ctx, "digits-lr", "digits-baseline", "V002",
                 description="the better learning rate")
    with build.ctx.db.write() as s:
        s.exec(update(Model).values(created_at=T0 + timedelta(hours=3)))
        s.exec(update(ModelVersion).values(created_at=T0 + timedelta(hours=3, minutes=5)))


def make_datasets(build: DataBuilder) -> None:
    """Two datasets, one with two versions, with fixed times."""
    data = build.base / "data"
    (data / "more.csv").write_text("x,y\n3,4\n5,6\n")
    create_dataset(build.ctx, "digits-train", str(data), "handwritten digits, train split")
    extra = build.base / "data-v2"
    extra.mkdir()
    (extra / "train.csv").write_text("x,y\n" + "1,2\n" * 500)
    add_version(build.ctx, "digits-train", str(extra), "cleaned")
    create_dataset(build.ctx, "blobs", str(extra))
    with build.ctx.db.write() as s:
        s.exec(update(Dataset).values(created_at=T0 + timedelta(hours=1)))
        s.exec(update(DatasetVersion).values(created_at=T0 + timedelta(hours=2)))


# ---------------------------------------------------------------- spec files, TensorBoard


def write_specs(build: DataBuilder) -> Path:
    """`specs/` beside the builder's code and data: a valid spec, a spec with a bad name
    and a missing code dir, and one that is not YAML. Returns the folder."""
    folder = build.base / "specs"
    folder.mkdir(exist_ok=True)
    good = build.spec("from-file")
    good["data"] = {"paths": ["../data"]}
    good["algorithm"]["framework"]["code_dir"] = "../code"
    good.pop("output")
    good.pop("log_dir")
    (folder / "good.yaml").write_text(yaml.safe_dump(good, sort_keys=False))
    bad = {**good, "name": "1 bad", "colour": "red"}
    bad["algorithm"] = {"framework": {**good["algorithm"]["framework"],
                                      "code_dir": "../no-such-code"}}
    (folder / "bad.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    (folder / "broken.yaml").write_text("name: x\ndata: {paths: [a]\nfoo: 1\n")
    return folder


async def type_path(pilot: Pilot[Any], text: str) -> None:
    """Enter `text` in the spec-file prompt and wait for the answer."""
    path = pilot.app.screen.query_one("#spec-file-path", Input)
    path.value = text
    path.cursor_position = len(text)
    await pilot.press("enter")
    await settle_checks(pilot)


def tensorboard_info(job: str = "digits-baseline", label: str = "V002") -> TensorBoardInfo:
    """A TensorBoard session as the core reports it (fixed, for the screen)."""
    return TensorBoardInfo(
        id=3, job=job, versions=[label], version_ids=[2], url="http://127.0.0.1:6123/",
        ssh="ssh -L 6123:127.0.0.1:6123 alice@gpu-box", port=6123, pid=None,
        logdir=f"{label}:/data/runs/out/{label}", started=T0, stopped=None, idle_timeout=3600)
