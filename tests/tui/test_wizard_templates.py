"""The wizard and saved job parameters: editing them in place (the wizard's edit mode), and
the picker that marks saved ones whose engine or dataset is gone.

The wizard runs in the same tiny host app as in test_wizard.py (`tui_helpers.WizardHost`);
nothing is launched.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlmodel import select
from textual.pilot import Pilot
from textual.widgets import Button, Input, OptionList, Select, Static
from tui_helpers import (
    SIZE,
    freeze,
    host,
    next_step,
    note,
    put,
    sync,
    wizard,
)
from tui_helpers import settle_wizard as settle

from app.context import Context
from app.jobs import save_template
from app.specs.rules import validate_spec
from app.specs.spec import JobSpec
from app.store.models import Job, Template
from app.templates import TemplateInfo, get_template
from app.tui.wizard.choices import TemplateChoice
from app.tui.wizard.rows import DatasetRows, ParamRows

pytestmark = pytest.mark.usefixtures("quick_wizard_checks")


def save_valid(build: Any, name: str, description: str = "", **changes: Any) -> TemplateInfo:
    """Save job parameters from a valid spec of the builder's project (absolute paths)."""
    spec = validate_spec(build.spec("digits", **changes), build.base, build.ctx.catalog)
    save_template(build.ctx, name, description, spec)
    return get_template(build.ctx, name)


def save_broken(build: Any) -> None:
    """Two saved job parameters whose engine version, or dataset, no longer exists."""
    old_engine = build.spec("resnet", algorithm={"framework": {
        "engine": "pytorch", "engine_version": "1.13", "code_dir": str(build.base / "code"),
        "boot_file": "train.py"}})
    old_engine["data"] = {"paths": [str(build.base / "data")]}
    save_template(build.ctx, "resnet-old", "from last year", JobSpec.model_validate(old_engine))
    gone = build.spec("digits", data={"datasets": [{"name": "mnist-gone", "version": "V002"}]})
    gone["algorithm"]["framework"]["code_dir"] = str(build.base / "code")
    save_template(build.ctx, "mnist-gone", "", JobSpec.model_validate(gone))


def edit_host(build: Any, info: TemplateInfo) -> Any:
    choice = TemplateChoice(info.name, info.description, info.spec)
    return host(build.ctx, build.base, edit_template=choice)


def stored(ctx: Context) -> dict[str, tuple[str, dict[str, Any]]]:
    with ctx.db.read() as session:
        return {row.name: (row.description, json.loads(row.spec_json))
                for row in session.exec(select(Template))}


async def open_picker(pilot: Pilot[Any]) -> OptionList:
    """Step 2's picker of saved job parameters, opened."""
    screen = wizard(pilot)
    screen.query_one("#template", Select).focus()
    await pilot.press("enter")
    await pilot.pause()
    return screen.query_one("#template OptionList", OptionList)


# ---------------------------------------------------------------- edit mode


@sync
async def test_edit_mode_saves_the_changes_under_a_new_name(build: Any) -> None:
    info = save_valid(build, "digits-defaults", "the usual")
    save_valid(build, "taken")
    app = edit_host(build, info)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = wizard(pilot)
        assert "Edit job parameters digits-defaults" in str(
            screen.query_one("#wizard-title", Static).render())
        assert str(screen.query_one("#version", Static).render()) == "—"
        assert screen.query_one("#name", Input).value == "digits"
        await next_step(pilot)
        assert not screen.query_one("#template-field").display  # no picker of others
        rows = screen.query_one(ParamRows)
        rows.rows[1].query_one(".param-value", Input).value = "0.05"
        await settle(pilot)
        await next_step(pilot)
        await next_step(pilot)
        assert screen.step == 4
        assert not screen.query_one("#save-template-field").display
        assert screen.query_one("#template-name", Input).value == "digits-defaults"
        assert screen.query_one("#template-description", Input).value == "the usual"
        put(pilot, "#template-name", "taken")
        await next_step(pilot)
        assert screen.step == 4
        assert note(pilot, "template-name") == "job parameters 'taken' already exist"
        put(pilot, "#template-name", "digits-tuned")
        put(pilot, "#template-description", "higher lr")
        await next_step(pilot)
        assert screen.step == 5
        intro = str(screen.query_one("#confirm-intro", Static).render())
        assert intro.startswith("Save job parameters digits-tuned (renamed from "
                                "digits-defaults)")
        assert str(screen.query_one("#create", Button).label) == "Save"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.closed
    assert isinstance(app.result, TemplateInfo) and app.result.name == "digits-tuned"
    saved = stored(build.ctx)
    assert set(saved) == {"digits-tuned", "taken"}
    description, spec = saved["digits-tuned"]
    assert description == "higher lr"
    assert spec == {**info.spec, "parameters": {"train_steps": 10000, "lr": 0.05}}
    with build.ctx.db.read() as session:
        assert session.exec(select(Job)).all() == []  # editing creates no job


@sync
async def test_edit_mode_keeps_a_bad_field_beside_its_error(build: Any) -> None:
    info = save_valid(build, "digits-defaults")
    before = stored(build.ctx)
    app = edit_host(build, info)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await next_step(pilot)
        screen = wizard(pilot)
        put(pilot, "#code-dir", "./no-such-code")
        await next_step(pilot)
        assert screen.step == 2
        assert "is not an existing directory" in note(pilot, "code-dir")
        for _ in range(3):
            await next_step(pilot)
        assert screen.step == 2 and not app.closed
    assert stored(build.ctx) == before


@sync
async def test_edit_mode_save_refused_at_the_last_moment_stays_open(build: Any) -> None:
    info = save_valid(build, "digits-defaults")
    app = edit_host(build, info)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for _ in range(3):
            await next_step(pilot)
        put(pilot, "#template-name", "late")
        for _ in range(1):
            await next_step(pilot)
        screen = wizard(pilot)
        assert screen.step == 5
        save_valid(build, "late")  # someone saves that name meanwhile
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not app.closed
        assert screen.step == 4
        assert "'late' already exist" in note(pilot, "template-name")
    assert stored(build.ctx)["digits-defaults"][1] == info.spec


@sync
async def test_edit_mode_escape_after_a_change_asks_first(build: Any) -> None:
    info = save_valid(build, "digits-defaults")
    app = edit_host(build, info)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        put(pilot, "#description", "changed")
        await settle(pilot)
        await pilot.press("escape")
        await pilot.pause()
        question = str(app.screen.query_one("#confirm-question", Static).render())
        assert "job parameters digits-defaults" in question


def test_snapshot_edit_mode_names(snap_compare: Any, snap_build: Any) -> None:
    info = save_valid(snap_build, "digits-defaults", "the usual")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for _ in range(3):
            await next_step(pilot)
        put(pilot, "#template-name", "bad name")
        await next_step(pilot)
        freeze(pilot)

    assert snap_compare(edit_host(snap_build, info), terminal_size=SIZE, run_before=run_before)


def test_snapshot_edit_mode_confirm(snap_compare: Any, snap_build: Any) -> None:
    info = save_valid(snap_build, "digits-defaults", "the usual")

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

    assert snap_compare(edit_host(snap_build, info), terminal_size=SIZE, run_before=run_before)


# ---------------------------------------------------------------- the picker


@sync
async def test_picker_says_why_saved_parameters_are_broken(build: Any) -> None:
    save_valid(build, "digits-small", "lr 0.01")
    save_broken(build)
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"picked")
        await next_step(pilot)
        options = await open_picker(pilot)
        prompts = [str(options.get_option_at_index(i).prompt)
                   for i in range(options.option_count)]
        assert prompts == [
            "(none)",
            "digits-small — lr 0.01",
            "⚠ mnist-gone  (dataset mnist-gone not found)",
            "⚠ resnet-old — from last year  (engine pytorch 1.13 not in the catalog)",
        ]


@sync
async def test_picking_a_template_without_its_engine_marks_the_engine(build: Any) -> None:
    save_broken(build)
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"picked")
        await next_step(pilot)
        put(pilot, "#template", "resnet-old")
        await settle(pilot)
        screen = wizard(pilot)
        # What could be filled is filled ...
        assert screen.query_one("#engine", Select).value == "pytorch"
        assert screen.query_one("#engine-version", Select).value == "1.13"
        assert screen.query_one("#boot-file", Input).value == "train.py"
        assert screen.query_one("#name", Input).value == "picked"
        # ... and the broken field says why.
        assert "engine 'pytorch' has no version '1.13'" in note(pilot, "engine-version")
        await next_step(pilot)
        assert screen.step == 2
        put(pilot, "#engine-version", "2.4")
        await next_step(pilot)
        assert screen.step == 3


@sync
async def test_picking_a_template_without_its_dataset_marks_the_row(build: Any) -> None:
    save_broken(build)
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"picked")
        await next_step(pilot)
        put(pilot, "#template", "mnist-gone")
        await settle(pilot)
        rows = wizard(pilot).query_one(DatasetRows)
        assert rows.refs() == [("mnist-gone", "V002")]
        error = rows.rows[0].query_one(".row-error", Static)
        assert str(error.render()) == "no dataset 'mnist-gone'"


def test_snapshot_picker_with_a_broken_template(snap_compare: Any, snap_build: Any) -> None:
    save_valid(snap_build, "digits-small", "lr 0.01")
    save_broken(snap_build)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*"picked")
        await next_step(pilot)
        await open_picker(pilot)
        await pilot.press("down", "down")
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SIZE,
                        run_before=run_before)


def test_check_as_a_template_body(build: Any) -> None:
    """Edited job parameters: the job name may be taken, their own name is theirs, another
    saved name is not; a full check fills no defaults."""
    from app.tui.wizard.checks import check_raw_spec

    build.job("digits")
    save_valid(build, "mine")
    save_valid(build, "theirs")
    raw = build.spec("digits")
    raw.pop("output")
    raw.pop("log_dir")
    raw["save_as_template"] = {"name": "mine", "description": ""}
    result = check_raw_spec(build.ctx, raw, build.base, template="mine", full=True)
    assert result.errors == [] and result.spec is not None
    assert result.spec.output is None and result.spec.resources.runtime == "local"
    raw["save_as_template"]["name"] = "theirs"
    result = check_raw_spec(build.ctx, raw, build.base, template="mine", full=True)
    assert [(e.field, e.message) for e in result.errors] == [
        ("save_as_template.name", "job parameters 'theirs' already exist")]
