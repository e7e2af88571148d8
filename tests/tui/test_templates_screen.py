"""The templates screen: the list with catalog checks, the spec panel, use and delete."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from tui_data import DataBuilder, settle
from tui_helpers import TemplatesHost, make_templates

from app.context import Context
from app.templates import list_templates
from app.tui.screens.templates import read_templates
from app.tui.widgets.gpu_table import GpuTable
from app.tui.widgets.template_spec import TemplateSpec

SIZE = (120, 40)


def test_broken_template_is_marked(build: DataBuilder) -> None:
    make_templates(build)
    rows = {row.name: row for row in read_templates(build.ctx)}
    assert rows["resnet-old"].problem == "engine pytorch 1.13 not in the catalog"
    assert rows["digits-small"].problem == ""
    assert rows["digits-sweep"].engine == "python 3.11"


def test_snapshot_list_with_broken_template(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_templates(snap_build)
    assert snap_compare(TemplatesHost(snap_build.ctx), terminal_size=SIZE,
                        run_before=lambda pilot: settle(pilot, rounds=2))


def test_snapshot_spec_panel(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_templates(snap_build)

    async def open_spec(pilot: Pilot[Any]) -> None:
        await settle(pilot, rounds=2)
        await pilot.press("j", "enter")
        await settle(pilot, rounds=2)

    assert snap_compare(TemplatesHost(snap_build.ctx), terminal_size=SIZE, run_before=open_spec)


async def test_enter_shows_spec_then_uses_it(build: DataBuilder) -> None:
    make_templates(build)
    app = TemplatesHost(build.ctx)
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
    app = TemplatesHost(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("G", "u")
        await settle(pilot, rounds=2)
        assert [(m.name, m.problem) for m in app.used] == [
            ("resnet-old", "engine pytorch 1.13 not in the catalog")]


async def test_edit_key_asks_for_the_wizard_with_the_template(build: DataBuilder) -> None:
    make_templates(build)
    app = TemplatesHost(build.ctx)
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
    app = TemplatesHost(build.ctx)
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
    app = TemplatesHost(ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        empty = app.screen.query_one("#templates-empty")
        assert empty.display
        assert "No saved job parameters yet" in str(empty.render())
