"""The templates screen: the list with catalog checks, the spec panel, use and delete."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Footer
from tui_data import T0, DataBuilder, settle

from app.context import Context
from app.jobs import save_template
from app.models import Template
from app.spec import JobSpec
from app.templates import list_templates
from app.tui.screens.templates import TemplatesScreen, read_templates
from app.tui.widgets.gpu_table import GpuTable
from app.tui.widgets.status import theme_variable_defaults
from app.tui.widgets.template_spec import TemplateSpec

SIZE = (120, 40)



class HostApp(App[None]):
    """A bare app that opens the templates screen and records what it asks for."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.used: list[TemplatesScreen.UseTemplate] = []
        self.edited: list[TemplatesScreen.EditTemplate] = []

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults()

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


def test_broken_template_is_marked(build: DataBuilder) -> None:
    make_templates(build)
    rows = {row.name: row for row in read_templates(build.ctx)}
    assert rows["resnet-old"].problem == "engine pytorch 1.13 not in the catalog"
    assert rows["digits-small"].problem == ""
    assert rows["digits-sweep"].engine == "python 3.11"


def test_snapshot_list_with_broken_template(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_templates(snap_build)
    assert snap_compare(HostApp(snap_build.ctx), terminal_size=SIZE,
                        run_before=lambda pilot: settle(pilot, rounds=2))


def test_snapshot_spec_panel(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_templates(snap_build)

    async def open_spec(pilot: Pilot[Any]) -> None:
        await settle(pilot, rounds=2)
        await pilot.press("j", "enter")
        await settle(pilot, rounds=2)

    assert snap_compare(HostApp(snap_build.ctx), terminal_size=SIZE, run_before=open_spec)


async def test_enter_shows_spec_then_uses_it(build: DataBuilder) -> None:
    make_templates(build)
    app = HostApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        panel = app.screen.query_one(TemplateSpec)
        assert not panel.display
        await pilot.press("enter")
        await settle(pilot, rounds=2)
        assert panel.display and panel.template is not None
        assert panel.template.name == "digits-small"
        assert "train_steps: 10000" in panel.template.yaml
        await pilot.press("enter")
        await settle(pilot, rounds=2)
        assert [m.name for m in app.used] == ["digits-small"]
        assert app.used[0].spec["parameters"] == {"train_steps": 10000, "lr": 0.01}
        await pilot.press("escape")
        assert not panel.display


async def test_use_key_on_broken_template_passes_the_problem(build: DataBuilder) -> None:
    make_templates(build)
    app = HostApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("G", "u")
        await settle(pilot, rounds=2)
        assert [(m.name, m.problem) for m in app.used] == [
            ("resnet-old", "engine pytorch 1.13 not in the catalog")]


async def test_edit_key_asks_for_the_wizard_with_the_template(build: DataBuilder) -> None:
    make_templates(build)
    app = HostApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("G", "e")
        await settle(pilot, rounds=2)
        (edit,) = app.edited
        assert (edit.name, edit.description, edit.problem) == (
            "resnet-old", "from last year's runs", "engine pytorch 1.13 not in the catalog")
        assert edit.spec["algorithm"]["framework"]["engine_version"] == "1.13"
        commands = {c.title for c in app.screen.palette_commands()}
        assert "template: edit" in commands


async def test_delete_asks_then_removes(build: DataBuilder) -> None:
    make_templates(build)
    app = HostApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("j", "d")
        await settle(pilot, rounds=2)
        await pilot.press("n")
        await settle(pilot, rounds=2)
        assert len(list_templates(build.ctx)) == 3
        await pilot.press("d")
        await settle(pilot, rounds=2)
        await pilot.press("y")
        await settle(pilot, rounds=2)
        assert [t.name for t in list_templates(build.ctx)] == ["digits-small", "resnet-old"]
        table = app.screen.query_one(GpuTable)
        assert table.row_keys == ["digits-small", "resnet-old"]


async def test_empty_state(ctx: Context) -> None:
    app = HostApp(ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        empty = app.screen.query_one("#templates-empty")
        assert empty.display
        assert "No saved job parameters yet" in str(empty.render())
