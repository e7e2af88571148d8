"""An 80 by 24 terminal: keys, columns and panes that fit; and what a user sees stays true."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets._footer import FooterKey
from tui_data import DataBuilder, sample_job, settle

from app.lifecycle import delete_rows
from app.queries import job_versions, list_jobs, version_info
from app.tui.app import TraindeckApp
from app.tui.joblist import columns_for
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.screens.jobs import JobsScreen
from app.tui.widgets.events_table import EventsTable
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.key_table import KeyTable
from app.tui.widgets.version_overview import headline

SMALL = (80, 24)


def footer_keys(app: TraindeckApp) -> list[tuple[str, str]]:
    """(key, description) of each key the screen's footer shows, palette last."""
    footer = app.screen.query_one(KeyFooter)
    return [(key.key_display, key.description) for key in footer.query(FooterKey)]


async def open_detail(pilot: Pilot[Any], job: str) -> JobDetailScreen:
    """Push the job screen of `job` and wait for it to fill."""
    app = pilot.app
    await settle(pilot)
    screen = JobDetailScreen(app.ctx, job)  # type: ignore[attr-defined]
    await app.push_screen(screen)
    await settle(pilot)
    return screen


async def test_footer_drops_whole_keys_that_do_not_fit_and_keeps_help(
        build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_detail(pilot, "digits-baseline")
        wide = footer_keys(app)
        await pilot.resize_terminal(*SMALL)
        await settle(pilot)
        narrow = footer_keys(app)
        footer = app.screen.query_one(KeyFooter)
        shown = sum(key.size.width + key.styles.margin.right for key in footer.query(FooterKey))
        assert shown <= SMALL[0]
        assert len(narrow) < len(wide)
        assert narrow == [key for key in wide if key in narrow]  # the last ones went
        assert ("?", "Help") in narrow and narrow[-1][0] == "^p"
        await pilot.resize_terminal(120, 40)
        await settle(pilot)
        assert footer_keys(app) == wide


def test_job_list_columns_leave_by_priority() -> None:
    keys = {width: [key for key, _label, _size in columns_for(width)]
            for width in (120, 100, 80, 60)}
    assert keys[120] == ["name", "version", "status", "engine", "resources", "created",
                         "duration"]
    assert "resources" not in keys[100] and "engine" in keys[100]
    assert keys[80] == ["name", "version", "status", "created", "duration"]
    assert keys[60] == ["name", "version", "status", "duration"]
    for width in (120, 100, 80, 60):
        used = sum(size + 2 for _key, _label, size in columns_for(width))
        assert used < width


async def test_home_and_end_move_to_the_first_and_last_job(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#jobs-table", KeyTable)
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1 == 2
        await pilot.press("home")
        assert table.cursor_row == 0


async def test_events_of_a_version_show_after_the_wizard_was_open(build: DataBuilder) -> None:
    """The wizard's style sheet once sized every `#events` node (the job screen's pane too)
    to one line: versions launched from the TUI showed no events until a restart."""
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.open_wizard()
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)
        await open_detail(pilot, "digits-baseline")
        await pilot.press("4")
        await settle(pilot)
        table = app.screen.query_one("#events-table", EventsTable)
        assert table.row_count == 3
        assert table.size.height >= 4


async def test_deletes_keep_counts_and_lineage_true(build: DataBuilder) -> None:
    sample_job(build)
    delete_rows(build.ctx, "digits-baseline", "V001")
    row = next(r for r in list_jobs(build.ctx.db) if r.name == "digits-baseline")
    assert (row.version, row.versions) == ("V003", 2)
    assert [v.parent for v in job_versions(build.ctx.db, "digits-baseline")] == [
        "V001 (deleted)", "V002"]
    assert version_info(build.ctx.db, "digits-baseline", "V002").parent == "V001 (deleted)"
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.screen.query_one("#jobs-table", KeyTable).move_cursor(row=0)
        await settle(pilot)
        summary = str(app.screen.query_one("#jobs-summary").render())
        assert "V003 · 2 versions" in summary
        screen = await open_detail(pilot, "digits-baseline")
        info = screen._by_label["V002"]
        assert "from V001 (deleted)" in headline(info).plain


async def test_deleting_a_running_version_says_it_stops_it_and_does(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await open_detail(pilot, "resnet-sweep")
        await pilot.press("d")
        await settle(pilot)
        question = str(app.screen.query_one("#confirm-question").render())
        assert "It is running: Traindeck stops it first." in question
        assert app.screen.query_one("#confirm-yes").region.bottom <= SMALL[1] - 1
        await pilot.press("y")
        await settle(pilot)
        await app.workers.wait_for_complete()
        assert [r.name for r in list_jobs(build.ctx.db)].count("resnet-sweep") == 1
        assert job_versions(build.ctx.db, "resnet-sweep") == []


async def test_save_parameters_refusal_keeps_the_dialog_and_the_typed_name(
        build: DataBuilder) -> None:
    from textual.widgets import Input

    from app.templates import list_templates
    from app.tui.screens.save_params import NAME_HELP, SaveParamsScreen

    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await open_detail(pilot, "digits-baseline")
        await pilot.press("p")
        await settle(pilot)
        assert isinstance(app.screen, SaveParamsScreen)
        assert "'.'" not in NAME_HELP  # the rule of check_name: no dots
        await pilot.press(*"sweep.v1", "ctrl+s")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, SaveParamsScreen)
        assert dialog.query_one("#save-name", Input).value == "sweep.v1"
        assert "does not fit" in str(dialog.query_one("#save-name-help").render())
        assert dialog.query_one("#save-ok").region.bottom <= SMALL[1] - 1
        name = dialog.query_one("#save-name", Input)
        name.value = "sweep"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, SaveParamsScreen)
        await pilot.press("p")
        await settle(pilot)
        await pilot.press(*"sweep", "ctrl+s")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, SaveParamsScreen)  # taken: the core refused, still open
        assert dialog.query_one("#save-name", Input).value == "sweep"
        assert "already exist" in str(dialog.query_one("#save-name-help").render())
    assert [t.name for t in list_templates(build.ctx)] == ["sweep"]


async def test_help_scrolls_with_its_hint_in_view(build: DataBuilder) -> None:
    from textual.containers import VerticalScroll

    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        body = app.screen.query_one("#help-body", VerticalScroll)
        hint = app.screen.query_one("#help-hint")
        assert body.max_scroll_y > 0  # more keys than rows: it scrolls
        assert hint.region.bottom <= SMALL[1] - 1
        await pilot.press("end")
        await settle(pilot)
        assert body.scroll_y == body.max_scroll_y


async def test_parameters_echoed_as_metrics_are_not_metrics_and_finals_say_their_source(
        build: DataBuilder) -> None:
    from app.queries import compare
    from app.tui.widgets.metric_plot import MetricPlot

    ref = build.job("echo", parameters={"train_steps": 200, "lr": 0.1})
    # The script's summary: held-out accuracy, and the steps it was given.
    build.metrics(ref, {"accuracy": 0.96, "train_steps": 200.0},
                  {"accuracy": [0.5, 0.9925]})
    build.version("echo", "V001", {"lr": 0.2})
    assert "train_steps" not in compare(build.ctx.db, "echo").metric_names
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_detail(pilot, "echo")
        screen.selected = "V001"
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        table = screen.query_one("#metrics-table", KeyTable)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        assert rows == [["accuracy", "0.96", "summary", "higher"]]
        title = screen.query_one("#metrics-plot", MetricPlot).plot_title
        assert title == "accuracy by logged step"


async def test_palette_commands_are_each_listed_once(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        for screen in ("jobs", "job"):
            if screen == "job":
                await open_detail(pilot, "digits-baseline")
            titles = [command.title for command in app.get_system_commands(app.screen)]
            assert len(titles) == len(set(titles)), titles
            assert {"Theme", "Quit", "Keys"}.isdisjoint(titles)
            assert {"app: theme …", "app: quit", "app: help"} <= set(titles)


async def test_keys_typed_while_a_job_opens_go_to_its_screen(
        build: DataBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from app import queries
    from app.tui.widgets.tab_strip import TabStrip

    real = queries.job_versions

    def slow_read(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # a busy disk: the real read, late
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "job_versions", slow_read)
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("enter", "2")  # at typing speed: the screen is not there yet
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobDetailScreen)
        assert screen.query_one(TabStrip).active == "logs"
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("enter", "d")  # the version's delete, never the job list's
        await settle(pilot)
        assert "Delete version" in str(app.screen.query_one("#confirm-title").render())


def test_toggles_show_their_state_without_colour() -> None:
    from textual.app import App, ComposeResult

    from app.tui.widgets.toggles import Check, Radio

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield Check("on", True, id="on")
            yield Check("off", False, id="off")
            yield Radio("chosen", True, id="chosen")
            yield Radio("other", False, id="other")

    async def marks() -> dict[str, str]:
        app = Host()
        async with app.run_test():
            return {name: app.query_one(f"#{name}")._button.plain
                    for name in ("on", "off", "chosen", "other")}

    import asyncio

    shown = asyncio.run(marks())
    assert shown["on"] != shown["off"] and shown["chosen"] != shown["other"]
    assert shown["off"] == shown["other"] == "▐ ▌"


async def test_dialog_buttons_stay_in_view_at_80x24(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        await open_detail(pilot, "digits-baseline")
        screen = app.screen
        assert isinstance(screen, JobDetailScreen)
        screen.selected = "V002"
        await settle(pilot)
        await pilot.press("M")
        await settle(pilot)
        button = app.screen.query_one("#model-ok")
        assert button.region.bottom <= SMALL[1] - 1  # above the footer
        assert app.screen.query_one("#model-fields").max_scroll_y > 0  # the fields scroll


async def test_the_log_pane_keys_are_in_the_footer_and_t_is_tensorboard(
        build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SMALL) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        await pilot.press("2")
        await settle(pilot)
        shown = footer_keys(app)
        assert shown[:3] == [("f", "Follow/pause"), ("s", "Stamps"), ("/", "Search log")]
        assert screen.active_bindings["t"].binding.action == "tensorboard"
