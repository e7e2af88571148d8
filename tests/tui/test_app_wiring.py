"""The app shell: secondary screens, templates into the wizard, "since you left", alerts,
remembered themes, and the palette."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from textual.widgets import Input
from tui_data import T0, DataBuilder, sample_job, settle

from app.context import Context
from app.jobs import save_template, set_status
from app.since import last_seen, mark_seen
from app.specs.spec import JobSpec
from app.store.models import Status, Version
from app.tui.app import TraindeckApp
from app.tui.screens.jobs import JobsScreen

SIZE = (120, 40)



class RecordingApp(TraindeckApp):
    """Keeps what would reach the terminal: bells, raw escapes and toasts."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.bells = 0
        self.escapes: list[str] = []
        self.toasts: list[tuple[str, str]] = []

    def bell(self) -> None:
        self.bells += 1

    def write_escape(self, sequence: str) -> None:
        self.escapes.append(sequence)

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        self.toasts.append((str(message), str(severity)))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)


@pytest.mark.parametrize(("key", "screen_name"), [
    ("T", "TemplatesScreen"), ("U", "GpusScreen"), ("D", "DatasetsScreen"),
    ("O", "ModelsScreen"),
])
async def test_global_keys_open_each_screen_and_esc_returns(build: DataBuilder, key: str,
                                                            screen_name: str) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(key)
        await settle(pilot)
        assert type(app.screen).__name__ == screen_name
        await pilot.press(key)  # already there: not stacked twice
        await settle(pilot)
        assert len(app.screen_stack) == 2
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)


async def test_palette_names_every_view_and_the_theme_picker(build: DataBuilder) -> None:
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"view: templates (saved job parameters)", "view: GPUs and queue",
                "view: datasets", "view: models", "view: jobs", "app: theme …",
                "app: help", "app: quit"} <= titles


async def test_templates_use_opens_the_wizard_filled(build: DataBuilder) -> None:
    ref = build.job("digits-baseline", parameters={"train_steps": 500, "lr": 0.05})
    from app.queries import version_info

    info = version_info(build.ctx.db, ref.job, ref.version)
    save_template(build.ctx, "digits-small", "a small run", JobSpec.model_validate(info.spec),
                  info.id)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("T")
        await settle(pilot)
        from app.tui.screens.templates import TemplatesScreen

        assert isinstance(app.screen, TemplatesScreen)
        await pilot.press("u")
        await settle(pilot)
        from app.tui.wizard.screen import WizardScreen

        wizard = app.screen
        assert isinstance(wizard, WizardScreen)
        assert wizard.initial is not None
        assert wizard.initial["parameters"] == {"train_steps": 500, "lr": 0.05}
        raw, _errors = wizard.form.collect()
        assert raw["name"] == "digits-baseline"
        assert raw["parameters"] == {"train_steps": 500, "lr": 0.05}


async def test_templates_edit_saves_in_place_and_the_list_shows_it(build: DataBuilder) -> None:
    ref = build.job("digits-baseline", parameters={"train_steps": 500, "lr": 0.05})
    from app.queries import version_info
    from app.templates import get_template
    from app.tui.screens.templates import TemplatesScreen
    from app.tui.widgets.gpu_table import GpuTable
    from app.tui.wizard.screen import WizardScreen

    info = version_info(build.ctx.db, ref.job, ref.version)
    save_template(build.ctx, "digits-small", "a small run", JobSpec.model_validate(info.spec),
                  info.id)
    save_template(build.ctx, "a-first", "", JobSpec.model_validate(info.spec), info.id)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("T")
        await settle(pilot)
        await pilot.press("j", "e")
        await settle(pilot)
        wizard = app.screen
        assert isinstance(wizard, WizardScreen) and wizard.edit_template is not None
        for _ in range(3):
            await pilot.press("ctrl+n")
            await settle(pilot)
        assert wizard.step == 4
        wizard.query_one("#template-name", Input).value = "z-small"
        wizard.query_one("#template-description", Input).value = "the small one"
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wizard.step == 5
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, TemplatesScreen)
        table = app.screen.query_one(GpuTable)
        assert table.row_keys == ["a-first", "z-small"]
        assert table.highlighted_key() == "z-small"  # the cursor follows the renamed row
        assert "the small one" in str(app.screen.query_one("#templates-summary").render())
    assert get_template(build.ctx, "z-small").description == "the small one"


async def test_since_you_left_shows_at_start_and_marks_seen(build: DataBuilder) -> None:
    mark_seen(build.ctx.db, T0)
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        from app.tui.screens.since import SinceScreen

        assert isinstance(app.screen, SinceScreen)
        assert app.screen.summary.counts["failed"] == 2
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)
    seen = last_seen(build.ctx.db)
    assert seen is not None and seen > T0 + timedelta(hours=2)


async def test_quiet_start_shows_no_report(build: DataBuilder) -> None:
    sample_job(build)  # a first start: nothing to compare with
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)


async def test_leave_marks_seen(build: DataBuilder) -> None:
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
    mark_seen(build.ctx.db, T0)
    app.leave()
    seen = last_seen(build.ctx.db)
    assert seen is not None and seen > T0


def _subscribe(build: DataBuilder, version_id: int, events: list[str]) -> None:
    with build.ctx.db.write() as s:
        version = s.exec(select(Version).where(Version.id == version_id)).one()
        spec = json.loads(version.spec_json)
        spec["subscriptions"] = [{"topic": "lab", "events": events}]
        version.spec_json = json.dumps(spec)
        s.add(version)


async def test_subscribed_event_rings_the_bell_once(build: DataBuilder) -> None:
    watched = build.job("watched", Status.RUNNING)
    quiet = build.job("quiet", Status.RUNNING)
    _subscribe(build, watched.version_id, ["OnJobFailed"])
    app = RecordingApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # the watch starts after the newest event
        set_status(build.ctx, watched.version_id, Status.FAILED, "exit code 3", exit_code=3)
        set_status(build.ctx, quiet.version_id, Status.FAILED, "exit code 1", exit_code=1)
        app._poll_alerts()
        await settle(pilot)
        assert app.bells == 1
        assert app.escapes == ["\x1b]9;watched V001 failed: exit code 3\x07"]
        assert ("watched V001 failed: exit code 3", "error") in app.toasts
        app._poll_alerts()  # nothing new: no second ring
        await settle(pilot)
        assert app.bells == 1


async def test_theme_choice_is_written_to_the_config(build: DataBuilder, tmp_path: Path) -> None:
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.theme = "textual-light"
        await pilot.pause(1.3)  # the choice settles
        await settle(pilot)
    config = (tmp_path / "home" / "config.yaml").read_text()
    assert "theme: textual-light" in config
    assert "default_runtime: local" in config


async def test_keys_arriving_in_one_burst_land_in_the_field_they_were_typed_for(
        build: DataBuilder) -> None:
    """A paste, or a slow SSH link catching up: `dig<tab>xy` read at once must still put
    `xy` in the next field (tab moves the focus when read, not when handled)."""
    from textual import events

    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        for key in [*"dig", "tab", *"xy"]:
            app.post_message(events.Key(key, key if len(key) == 1 else None))
        await settle(pilot)
        assert app.screen.query_one("#name", Input).value == "dig"
        assert app.screen.query_one("#description", Input).value == "xy"
        app.post_message(events.Key("shift+tab", None))
        await settle(pilot)
        assert app.focused is app.screen.query_one("#name", Input)
