"""The create wizard (and modify with a diff): snapshots of every step, and behaviour.

The wizard runs inside a tiny host app that pushes it and keeps what it dismisses with
(`WizardHost`, in `tui_helpers.py` with the steps that fill the wizard).
Nothing is ever launched: the wizard gets a no-op launcher.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input, Select, Static
from tui_helpers import (
    SIZE,
    fill_basic_and_framework,
    freeze,
    host,
    next_step,
    note,
    put,
    sync,
    version_spec,
    with_topics,
    wizard,
)
from tui_helpers import settle_wizard as settle

from app.context import Context
from app.errors import FieldError
from app.jobs import prepare_spec, save_template
from app.store.models import Dataset, DatasetVersion, Template, Version
from app.tui.screens.confirm import ConfirmScreen
from app.tui.wizard.checks import check_raw_spec, locate
from app.tui.wizard.form import JobForm
from app.tui.wizard.rows import DatasetRows, ParamRows, PathRows

pytestmark = pytest.mark.usefixtures("quick_wizard_checks")


def add_dataset(ctx: Context, name: str, uris: list[Path]) -> None:
    with ctx.db.write() as session:
        dataset = Dataset(name=name, last_version_number=len(uris))
        session.add(dataset)
        session.flush()
        for number, uri in enumerate(uris, 1):
            session.add(DatasetVersion(dataset_id=dataset.id or 0, number=number, uri=str(uri)))


# ---------------------------------------------------------------- snapshots


def test_snapshot_basic_info(snap_compare: Any, snap_build: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*"digits-baseline")
        await settle(pilot)
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SIZE,
                        run_before=run_before)


def test_snapshot_invalid_name(snap_compare: Any, snap_build: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*"1digits")
        await next_step(pilot)
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SIZE,
                        run_before=run_before)


def test_snapshot_job_parameters(snap_compare: Any, snap_build: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await fill_basic_and_framework(pilot)
        put(pilot, "#output", "./runs/out")
        await settle(pilot)
        wizard(pilot).query_one("#code-dir").focus()
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SIZE,
                        run_before=run_before)


def test_snapshot_missing_boot_file(snap_compare: Any, snap_build: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await fill_basic_and_framework(pilot)
        put(pilot, "#boot-file", "nope.py")
        await next_step(pilot)
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SIZE,
                        run_before=run_before)


def test_snapshot_resources_single_node(snap_compare: Any, snap_build: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await fill_basic_and_framework(pilot)
        put(pilot, "#engine", "caffe")
        await settle(pilot)
        await next_step(pilot)
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SIZE,
                        run_before=run_before)


def test_snapshot_subscriptions(snap_compare: Any, snap_build: Any) -> None:
    ctx = with_topics(snap_build.ctx)

    async def run_before(pilot: Pilot[Any]) -> None:
        await fill_basic_and_framework(pilot)
        await next_step(pilot)
        await next_step(pilot)
        put(pilot, "#topic", "me")
        put(pilot, "#event-OnJobFailed", True)
        put(pilot, "#event-OnJobSucceeded", True)
        put(pilot, "#save-template", True)
        await pilot.pause()
        put(pilot, "#template-name", "digits-defaults")
        await settle(pilot)
        freeze(pilot)

    assert snap_compare(host(ctx, snap_build.base), terminal_size=SIZE, run_before=run_before)


def test_snapshot_subscriptions_without_topics(snap_compare: Any, snap_build: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await fill_basic_and_framework(pilot)
        await next_step(pilot)
        await next_step(pilot)
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SIZE,
                        run_before=run_before)


def test_snapshot_confirm(snap_compare: Any, snap_build: Any) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await fill_basic_and_framework(pilot)
        for _ in range(3):
            await next_step(pilot)
        assert wizard(pilot).step == 5
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SIZE,
                        run_before=run_before)


def test_snapshot_modify_confirm_with_diff(snap_compare: Any, snap_build: Any) -> None:
    snap_build.job("digits-baseline")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await next_step(pilot)
        rows = wizard(pilot).query_one(ParamRows)
        rows.rows[1].query_one(".param-value", Input).value = "0.05"
        await settle(pilot)
        for _ in range(3):
            await next_step(pilot)
        assert wizard(pilot).step == 5
        freeze(pilot)

    app = host(snap_build.ctx, snap_build.base, modify_from=("digits-baseline", "V001"))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


# ---------------------------------------------------------------- behaviour


async def test_create_full_spec_through_the_ui(build: Any) -> None:
    ctx = with_topics(build.ctx)
    base = build.base
    app = host(ctx, base)
    async with app.run_test(size=SIZE) as pilot:
        await fill_basic_and_framework(pilot)
        put(pilot, "#output", "./runs/out")
        put(pilot, "#log-dir", "./runs/logs")
        await next_step(pilot)
        assert wizard(pilot).step == 3
        put(pilot, "#pool", "team-a")
        put(pilot, "#gpus", "1")
        put(pilot, "#runtime-local", True)
        await next_step(pilot)
        assert wizard(pilot).step == 4
        put(pilot, "#topic", "me")
        put(pilot, "#event-OnJobFailed", True)
        put(pilot, "#event-OnJobSucceeded", True)
        put(pilot, "#save-template", True)
        await pilot.pause()
        put(pilot, "#template-name", "digits-defaults")
        await next_step(pilot)
        assert wizard(pilot).step == 5
        await pilot.click("#create")
        await settle(pilot)
        assert app.closed
    assert app.result is not None and app.result.version == "V001"
    spec, version = version_spec(ctx, "digits-baseline", 1)
    assert spec == {
        "name": "digits-baseline",
        "description": "first try",
        "data": {"paths": [str(base / "data")]},
        "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                    "code_dir": str(base / "code"), "boot_file": "train.py"}},
        "parameters": {"train_steps": 10000, "lr": 0.01},
        "output": str(base / "runs" / "out"),
        "log_dir": str(base / "runs" / "logs"),
        "resources": {"pool": "team-a", "gpus": 1, "nodes": 1, "runtime": "local"},
        "subscriptions": [{"topic": "me", "events": ["OnJobSucceeded", "OnJobFailed"]}],
    }  # the version keeps what it runs; the save request made the template below
    assert version.parent_id is None and version.status == "initializing"
    with ctx.db.read() as session:
        assert session.exec(select(Template.name, Template.description)).all() == [
            ("digits-defaults", "")]


@sync
async def test_fill_from_saved_job_parameters(build: Any) -> None:
    ctx = with_topics(build.ctx)
    saved = prepare_spec(ctx, build.spec(
        "tpl-source", description="saved", parameters={"epochs": 3, "tag": "10", "lr": 1e-05},
        resources={"pool": "public", "gpus": 1, "nodes": 2, "runtime": "local"},
        subscriptions=[{"topic": "me", "events": ["OnJobRunning"]}],
        algorithm={"framework": {"engine": "pytorch", "engine_version": "2.4",
                                 "code_dir": "./code", "boot_file": "train.py"}},
    ), build.base)
    save_template(ctx, "digits-defaults", "two nodes", saved)
    app = host(ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"from-template")
        await next_step(pilot)
        put(pilot, "#template", "digits-defaults")
        await settle(pilot)
        screen = wizard(pilot)
        assert screen.query_one("#engine", Select).value == "pytorch"
        assert screen.query_one("#engine-version", Select).value == "2.4"
        assert screen.query_one("#code-dir", Input).value == str(build.base / "code")
        assert screen.query_one("#boot-file", Input).value == "train.py"
        assert screen.query_one(PathRows).paths() == [str(build.base / "data")]
        assert screen.query_one(ParamRows).items() == [
            ("epochs", "3"), ("tag", "10"), ("lr", "1e-05")]
        assert screen.query_one("#output", Input).value == saved.output
        assert screen.query_one("#log-dir", Input).value == saved.log_dir
        assert screen.query_one("#pool", Select).value == "public"
        assert screen.query_one("#gpus", Input).value == "1"
        assert screen.query_one("#nodes", Input).value == "2"
        assert screen.query_one("#topic", Select).value == "me"
        assert screen.query_one("#event-OnJobRunning", Checkbox).value
        assert screen.query_one("#name", Input).value == "from-template"
        assert screen.query_one("#description", Input).value == "saved"
        for _ in range(3):
            await next_step(pilot)
        assert screen.step == 5
        await pilot.press("ctrl+s")
        await settle(pilot)
    spec, _ = version_spec(ctx, "from-template", 1)
    assert spec == {**saved.to_dict(), "name": "from-template"}
    assert spec["parameters"] == {"epochs": 3, "tag": "10", "lr": 1e-05}


@sync
async def test_invalid_fields_block_next(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"1digits")
        await next_step(pilot)
        screen = wizard(pilot)
        assert screen.step == 1
        assert "must be 1-64 letters" in note(pilot, "name")
        assert "Fix the 1 marked field" in str(screen.query_one("#wizard-error", Static).render())
        put(pilot, "#name", "digits")
        await next_step(pilot)
        assert screen.step == 2
        await screen.query_one(PathRows).set_rows(["./data"])
        put(pilot, "#algo-kind-framework", True)
        await pilot.pause()
        put(pilot, "#engine", "python")
        put(pilot, "#code-dir", "./code")
        put(pilot, "#boot-file", "nope.py")
        await next_step(pilot)
        assert screen.step == 2
        assert "'nope.py' not found in" in note(pilot, "boot-file")
        put(pilot, "#boot-file", "train.py")
        put(pilot, "#output", "./data/out")
        await next_step(pilot)
        assert screen.step == 2
        assert "must not be, contain or lie inside the data path" in note(pilot, "output")
        put(pilot, "#output", "")
        await next_step(pilot)
        assert screen.step == 3
        put(pilot, "#gpus", "-1")
        await next_step(pilot)
        assert screen.step == 3
        assert "greater than or equal to 0" in note(pilot, "gpus")


@sync
async def test_name_taken_is_shown_before_create(build: Any) -> None:
    build.job("digits")
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"digits")
        await next_step(pilot)
        assert wizard(pilot).step == 1
        assert "already exists" in note(pilot, "name")


@sync
async def test_create_conflict_keeps_every_field(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await fill_basic_and_framework(pilot, "late")
        for _ in range(3):
            await next_step(pilot)
        assert wizard(pilot).step == 5
        build.job("late")  # someone else takes the name meanwhile
        await pilot.press("ctrl+s")
        await settle(pilot)
        screen = wizard(pilot)
        assert not app.closed
        assert screen.step == 1
        assert "already exists" in note(pilot, "name")
        assert screen.query_one(ParamRows).items() == [("train_steps", "10000"),
                                                       ("lr", "0.01")]


@sync
async def test_modify_prefills_and_creates_a_child_version(build: Any) -> None:
    build.job("digits-baseline")
    ctx = build.ctx
    app = host(ctx, build.base, modify_from=("digits-baseline", "V001"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = wizard(pilot)
        assert screen.query_one("#name", Input).disabled
        assert str(screen.query_one("#version", Static).render()) == "V002"
        await next_step(pilot)
        rows = screen.query_one(ParamRows)
        assert rows.items() == [("train_steps", "10000"), ("lr", "0.01")]
        assert screen.query_one("#engine", Select).value == "python"
        rows.rows[1].query_one(".param-value", Input).value = "0.05"
        await settle(pilot)
        for _ in range(3):
            await next_step(pilot)
        assert screen.step == 5
        assert screen.result is not None
        assert screen.result.diff == [("parameters.lr", 0.01, 0.05)]
        # The confirm page shows the change; launching asks nothing more.
        diff = screen.query_one("#confirm-diff", Static)
        shown = "\n".join(diff.render_line(y).text for y in range(diff.size.height))
        assert "Changes from V001" in shown and "0.05" in shown
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert app.result is not None and app.result.version == "V002"
    parent, parent_row = version_spec(ctx, "digits-baseline", 1)
    child, child_row = version_spec(ctx, "digits-baseline", 2)
    assert child_row.parent_id == parent_row.id
    assert child == {**parent, "parameters": {"train_steps": 10000, "lr": 0.05}}


@sync
async def test_modify_back_from_confirm_launches_nothing(build: Any) -> None:
    build.job("digits-baseline")
    app = host(build.ctx, build.base, modify_from=("digits-baseline", "V001"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(4):
            await next_step(pilot)
        assert wizard(pilot).step == 5
        await pilot.click("#back")
        await settle(pilot)
        assert app.screen is wizard(pilot) and wizard(pilot).step == 4
        await pilot.click("#next")  # the buttons do what their keys do
        await settle(pilot)
        assert wizard(pilot).step == 5
        await pilot.click("#cancel")  # nothing typed: it leaves without asking
        await settle(pilot)
        assert app.closed and app.result is None
    with build.ctx.db.read() as session:
        assert len(session.exec(select(Version)).all()) == 1


@sync
async def test_single_node_engine_forces_one_node(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await fill_basic_and_framework(pilot)
        await next_step(pilot)
        put(pilot, "#nodes", "4")
        await pilot.press("ctrl+p")
        await settle(pilot)
        screen = wizard(pilot)
        assert screen.step == 2
        put(pilot, "#engine", "caffe")
        await settle(pilot)
        nodes = screen.query_one("#nodes", Input)
        assert nodes.value == "1" and nodes.disabled
        assert "caffe 1.0 runs on one node only" in note(pilot, "nodes")
        for _ in range(3):
            await next_step(pilot)
        assert screen.step == 5
        await pilot.press("ctrl+s")
        await settle(pilot)
    spec, _ = version_spec(build.ctx, "digits-baseline", 1)
    assert spec["resources"]["nodes"] == 1
    assert spec["algorithm"]["framework"]["engine"] == "caffe"


@sync
async def test_datasets_preset_and_parameter_errors(build: Any) -> None:
    from app.presets import sync_presets

    ctx = build.ctx
    sync_presets(ctx.db)
    add_dataset(ctx, "digits", [build.base / "data", build.base / "data"])
    add_dataset(ctx, "extra", [build.base / "data"])
    app = host(ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"preset-job")
        await next_step(pilot)
        screen = wizard(pilot)
        form = screen.query_one(JobForm)
        assert form.data_kind == "datasets"
        datasets = screen.query_one(DatasetRows)
        await datasets.set_rows([("digits", None), ("extra", "V001")])
        put(pilot, "#algo-kind-preset", True)
        await pilot.pause()
        put(pilot, "#preset", "logistic-regression")
        await settle(pilot)
        rows = screen.query_one(ParamRows)
        assert dict(rows.items())["train_steps"] == "200"
        rows.rows[0].query_one(".param-value", Input).value = "0"
        await next_step(pilot)
        assert screen.step == 2
        errors = [str(r.query_one(".row-error", Static).render()) for r in rows.rows]
        assert errors[0] == "must be at least 1"
        rows.rows[0].query_one(".param-value", Input).value = "50"
        for _ in range(4):
            await next_step(pilot)
        assert screen.step == 5
        await pilot.press("ctrl+s")
        await settle(pilot)
    spec, _ = version_spec(ctx, "preset-job", 1)
    assert spec["data"] == {"datasets": [{"name": "digits", "version": "V002"},
                                         {"name": "extra", "version": "V001"}]}
    assert spec["algorithm"] == {"preset": {"name": "logistic-regression"}}
    assert spec["parameters"]["train_steps"] == 50
    assert spec["parameters"]["lr"] == 0.5


@sync
async def test_custom_image_command_and_runtime(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"img-job")
        await next_step(pilot)
        screen = wizard(pilot)
        await screen.query_one(PathRows).set_rows(["./data"])
        put(pilot, "#algo-kind-image", True)
        await pilot.pause()
        put(pilot, "#image-name", "registry/trainer:1.2")
        put(pilot, "#image-command", "python /app/train.py --note 'two words")
        await settle(pilot)
        await pilot.click("#params .add-row")
        await pilot.press(*"junk")
        await next_step(pilot)
        assert screen.step == 2
        assert "cannot split it" in note(pilot, "image-command")
        put(pilot, "#image-command", "python /app/train.py --note 'two words'")
        await settle(pilot)
        await pilot.click("#params .remove-row")
        await settle(pilot)
        assert screen.query_one(ParamRows).rows == []
        await next_step(pilot)
        put(pilot, "#runtime-local", True)
        await next_step(pilot)
        assert screen.step == 3
        assert note(pilot, "runtime") == "a custom image needs runtime docker"
        put(pilot, "#runtime-docker", True)
        for _ in range(3):
            await next_step(pilot)
        assert screen.step == 5
        await pilot.press("ctrl+s")
        await settle(pilot)
    spec, _ = version_spec(build.ctx, "img-job", 1)
    assert spec["algorithm"] == {"image": {"name": "registry/trainer:1.2", "command": [
        "python", "/app/train.py", "--note", "two words"]}}
    assert spec["parameters"] == {} and spec["resources"]["runtime"] == "docker"


@sync
async def test_start_from_a_spec_file(build: Any) -> None:
    raw = build.spec("from-file", parameters={"lr": 0.1})
    raw["algorithm"]["framework"]["boot_file"] = "missing.py"
    app = host(build.ctx, build.base, initial=raw)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = wizard(pilot)
        assert screen.query_one("#name", Input).value == "from-file"
        await next_step(pilot)
        assert "not found" in note(pilot, "boot-file")  # loaded fields show errors at once
        put(pilot, "#boot-file", "train.py")
        for _ in range(4):
            await next_step(pilot)
        assert screen.step == 5


@sync
async def test_escape_asks_before_discarding(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"half-typed")
        await settle(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is wizard(pilot) and not app.closed
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert app.closed and app.result is None


@sync
async def test_escape_on_an_untouched_wizard_leaves_at_once(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert app.closed and app.result is None


@pytest.mark.parametrize(("field", "step", "target", "row"), [
    ("name", 1, "name", None),
    ("algorithm.framework.boot_file", 2, "boot-file", None),
    ("data.paths[2]", 2, "paths", 2),
    ("data.datasets[1].version", 2, "datasets", 1),
    ("parameters.lr", 2, "params", "lr"),
    ("parameters.model.lr", 2, "params", "model.lr"),
    ("parameters#3", 2, "params", 3),
    ("resources.nodes", 3, "nodes", None),
    ("subscriptions[0].events", 4, "events", None),
    ("save_as_template.name", 4, "template-name", None),
    ("line 3", 0, "general", None),
])
def test_locate_maps_fields_to_widgets(field: str, step: int, target: str,
                                       row: int | str | None) -> None:
    loc = locate(field)
    assert (loc.step, loc.target, loc.row) == (step, target, row)


def test_check_reports_every_bad_field_at_once(build: Any) -> None:
    raw = build.spec("1bad", data={"paths": []}, resources={"pool": "public", "gpus": -1})
    raw["algorithm"]["framework"]["boot_file"] = "nope.py"
    result = check_raw_spec(build.ctx, raw, build.base,
                            local_errors=[FieldError("data.paths", "add a data path")])
    fields = [e.field for e in result.errors]
    assert fields == ["data.paths", "name", "resources.gpus",
                      "algorithm.framework.boot_file"]
    assert result.spec is None


@sync
async def test_a_field_refused_at_create_has_the_cursor_on_return(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await fill_basic_and_framework(pilot, "late")
        put(pilot, "#output", "./runs/shared/out")
        for _ in range(3):
            await next_step(pilot)
        assert wizard(pilot).step == 5
        # Another job takes the output folder meanwhile: only the create finds out.
        build.job("early", output="./runs/shared/out")
        await pilot.press("ctrl+s")
        await settle(pilot)
        screen = wizard(pilot)
        assert screen.step == 2
        assert "already used by early/V001" in note(pilot, "output")
        assert app.focused is screen.query_one("#output", Input)
