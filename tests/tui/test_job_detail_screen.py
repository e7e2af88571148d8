"""The job screen: version tree, quick actions and why some are not allowed, logs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlmodel import select
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from tui_data import DataBuilder, sample_job, settle

from app.queries import job_versions, version_info
from app.store.models import Status, Template
from app.tui.app import TraindeckApp
from app.tui.screens.compare import CompareScreen
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.widgets.events_table import EventsTable
from app.tui.widgets.log_panel import LogPanel
from app.tui.widgets.metrics_view import MetricsView
from app.tui.widgets.tab_strip import TabStrip
from app.tui.widgets.version_tree import VersionTree

SIZE = (120, 40)



async def open_detail(pilot: Pilot[Any], job: str) -> JobDetailScreen:
    """Push the job screen of `job` and wait for it to fill."""
    app = pilot.app
    await settle(pilot, rounds=2)
    screen = JobDetailScreen(app.ctx, job)  # type: ignore[attr-defined]
    await app.push_screen(screen)
    await settle(pilot, rounds=2)
    return screen


def messages(app: TraindeckApp) -> list[str]:
    """Texts of the notifications shown so far."""
    return [n.message for n in app._notifications]


async def test_stop_is_dimmed_on_a_finished_version_and_says_why(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        assert screen.selected == "V003"
        assert screen.active_bindings["x"].enabled is False
        await pilot.press("x")
        await settle(pilot, rounds=2)
        assert app.screen is screen  # no confirmation: nothing to stop
        assert "stop: V003 already failed" in messages(app)


async def test_stop_a_running_version(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "resnet-sweep")
        assert screen.active_bindings["x"].enabled is True
        await pilot.press("x")
        await settle(pilot, rounds=2)
        assert "SIGTERM" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("y")
        await settle(pilot, rounds=2)
        assert version_info(build.ctx.db, "resnet-sweep", "V001").status == Status.STOPPED
        assert screen.current is not None and screen.current.status == "stopped"


async def test_delete_removes_a_finished_version(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        await pilot.press("k", "k")
        await settle(pilot, rounds=2)
        assert screen.selected == "V001"
        await pilot.press("d")
        await settle(pilot, rounds=2)
        question = str(app.screen.query_one("#confirm-question").render())
        assert "Delete version V001 of digits-baseline" in question
        await pilot.press("y")
        await settle(pilot, rounds=2)
        labels = [v.version for v in job_versions(build.ctx.db, "digits-baseline")]
        assert labels == ["V002", "V003"]
        assert screen.selected in ("V002", "V003")
        assert "Deleted digits-baseline V001" in messages(app)


async def test_cancelled_delete_keeps_the_version(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, "digits-baseline")
        await pilot.press("d")
        await settle(pilot, rounds=2)
        await pilot.press("escape")
        await settle(pilot, rounds=2)
        assert len(job_versions(build.ctx.db, "digits-baseline")) == 3


async def test_dimmed_action_says_why_and_allowed_one_opens(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        await pilot.press("M")
        await settle(pilot, rounds=2)
        assert "create model: only succeeded versions (V003 is failed)" in messages(app)
        assert app.screen is screen
        await pilot.press("k")
        await settle(pilot, rounds=2)
        assert screen.selected == "V002"
        await pilot.press("M")
        await settle(pilot, rounds=2)
        from app.tui.screens.create_model import CreateModelScreen

        assert isinstance(app.screen, CreateModelScreen)
        assert app.screen.label == "V002"


async def test_filter_versions_and_compare_the_marked_ones(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        screen.version_filter = "succeeded"
        await settle(pilot, rounds=2)
        assert [v.version for v in screen.visible_versions] == ["V001", "V002"]
        assert screen.compare_labels() == ["V001", "V002"]
        screen.version_filter = "failed"
        await settle(pilot, rounds=2)
        assert screen.disabled_reason("compare") == "compare: needs at least two versions"
        screen.version_filter = ""
        await settle(pilot, rounds=2)
        screen.query_one(VersionTree).select_label("V003")
        await settle(pilot, rounds=2)
        await pilot.press("space", "k", "k", "space")
        await settle(pilot, rounds=2)
        assert screen.marked == frozenset({"V001", "V003"})
        await pilot.press("C")
        await settle(pilot, rounds=2)
        assert isinstance(app.screen, CompareScreen)
        assert app.screen.labels == ["V001", "V003"]


async def test_save_job_parameters(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, "digits-baseline")
        await pilot.press("p")
        await settle(pilot, rounds=2)
        await pilot.press(*"lr-half", "enter", *"too high", "enter")
        await settle(pilot, rounds=2)
        with build.ctx.db.read() as s:
            row = s.exec(select(Template).where(Template.name == "lr-half")).one()
        assert row.description == "too high"
        assert '"lr": 0.5' in row.spec_json


async def test_logs_tab_shows_the_tail_then_follows(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        await pilot.press("2")
        await settle(pilot, rounds=2)
        panel = screen.query_one(LogPanel)
        assert panel.lines[-1].endswith("RuntimeError: CUDA out of memory")
        ref = next(v for v in job_versions(build.ctx.db, "digits-baseline") if v.version == "V003")
        from app.jobs import VersionRef

        build.log(VersionRef("digits-baseline", "V003", ref.id, ref.status),
                  ["retrying with batch 32", "epoch 1 loss 1.9"])
        await pilot.pause(0.6)
        await settle(pilot, rounds=2)
        assert panel.lines[-1].endswith("epoch 1 loss 1.9")
        # Pause: new lines wait; follow again: they arrive.
        await pilot.press("f")
        build.log(VersionRef("digits-baseline", "V003", ref.id, ref.status), ["held back"])
        await pilot.pause(0.6)
        await settle(pilot, rounds=2)
        assert not panel.lines[-1].endswith("held back")
        await pilot.press("f")
        await settle(pilot, rounds=2)
        assert panel.lines[-1].endswith("held back")
        # A progress bar that rewrote its line is one row: its last rewrite, stamped.
        rows = len(panel.lines)
        build.log(VersionRef("digits-baseline", "V003", ref.id, ref.status),
                  [" 10%|#         | 1/10\r 50%|#####     | 5/10\r100%|##########| 10/10"])
        await pilot.pause(0.6)
        await settle(pilot, rounds=2)
        assert len(panel.lines) == rows + 1
        assert panel.lines[-1].endswith(" 100%|##########| 10/10")
        assert panel.lines[-1][:2].isdigit()  # the time of day is kept


async def test_tabs_are_filled_when_first_shown_then_follow_the_selection(
        build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        assert screen.selected == "V003"
        for widget in (LogPanel, MetricsView, EventsTable):
            assert not screen.query(widget), f"{widget.__name__} mounted before its tab"
        await pilot.press("4")
        await settle(pilot, rounds=2)
        events = screen.query_one(EventsTable)
        assert app.focused is events
        assert "failed" in str(events.get_row_at(events.row_count - 1)[2])
        await pilot.press("3")
        await settle(pilot, rounds=2)
        metrics = screen.query_one("#metrics-table", DataTable)
        assert screen.query_one(MetricsView).display
        assert metrics.row_count == 1  # V003 reported only its loss
        screen.query_one(VersionTree).select_label("V002")
        await settle(pilot, rounds=2)
        assert screen.selected == "V002"
        assert metrics.row_count == 5
        assert "succeeded" in str(events.get_row_at(events.row_count - 1)[2])
        await pilot.press("2")
        await settle(pilot, rounds=2)
        panel = screen.query_one(LogPanel)
        assert not panel.lines  # V002 wrote no log
        screen.query_one(VersionTree).select_label("V003")
        await settle(pilot, rounds=2)
        assert panel.lines[-1].endswith("RuntimeError: CUDA out of memory")


async def test_a_failed_version_opens_under_an_ansi_theme(build: DataBuilder) -> None:
    sample_job(build)
    build.ctx.settings.theme = "traindeck-ansi"  # (its status colours are ANSI colours)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        assert app.theme == "traindeck-ansi" and screen.selected == "V003"
        reason = screen.query_one("#ov-reason", Static)
        assert reason.display and reason.border_title == "Why it failed"
        border, colour = reason.styles.border_top
        assert border == "round" and colour.ansi is not None


async def test_the_tab_strip_switches_on_number_keys_clicks_and_arrows(
        build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        strip = screen.query_one("#detail-tab-strip", TabStrip)

        def shown() -> list[str]:
            return [pane.id or "" for pane in screen.query_one("#detail-tabs").children
                    if pane.display and pane is not strip]

        assert (strip.active, shown()) == ("overview", ["overview-pane"])
        await pilot.press("3")
        await settle(pilot, rounds=2)
        assert (strip.active, shown()) == ("metrics", ["metrics"])
        # A click on a label (the strip reads " Overview  Logs  Metrics  Events ").
        events_x = len(" Overview  Logs  Metrics  ")
        assert strip.tab_at(events_x) == "events" and strip.tab_at(events_x - 2) == "metrics"
        await pilot.click(strip, offset=(events_x + 2, 0))
        await settle(pilot, rounds=2)
        assert (strip.active, shown()) == ("events", ["events"])
        assert screen.query_one(EventsTable).row_count > 0
        await pilot.click(strip, offset=(len(" Overview  Logs  Metrics  Events ") + 3, 1))
        await settle(pilot)
        assert strip.active == "events"  # (past the last label: nothing)
        await pilot.click(strip, offset=(2, 1))  # the underline, under "Overview"
        await settle(pilot)
        assert (strip.active, shown()) == ("overview", ["overview-pane"])
        # `tab` from the versions puts the keys on the strip; left and right walk the tabs.
        screen.query_one(VersionTree).focus()
        await pilot.press("tab")
        assert app.focused is strip
        await pilot.press("right")
        await settle(pilot, rounds=2)
        assert (strip.active, shown()) == ("logs", ["logs"])
        assert screen.query_one(LogPanel).lines[-1].endswith("RuntimeError: CUDA out of memory")
        await pilot.press("left", "left")
        await settle(pilot)
        assert (strip.active, shown()) == ("events", ["events"])
        await pilot.press("1")
        await settle(pilot)
        assert (strip.active, shown()) == ("overview", ["overview-pane"])
        assert app.focused is screen.query_one(VersionTree)


async def test_a_thousand_versions_get_their_labels_and_the_cursor_at_once(
        build: DataBuilder) -> None:
    import dataclasses

    from textual.app import App, ComposeResult

    sample_job(build)
    first = job_versions(build.ctx.db, "digits-baseline")[0]
    versions = [
        dataclasses.replace(first, number=n, version=f"V{n:03d}",
                            parent=f"V{n - 1:03d}" if n % 10 else None,
                            status="failed" if n % 7 == 0 else "succeeded")
        for n in range(1, 1001)
    ]

    class TreeApp(App[None]):
        def compose(self) -> ComposeResult:
            yield VersionTree(id="version-tree")

    tree_app = TreeApp()
    async with tree_app.run_test(size=SIZE) as pilot:
        tree = tree_app.query_one(VersionTree)
        tree.show(versions, {"V007"}, "V1000")
        assert tree.cursor_node is not None and tree.cursor_node.data == "V1000"
        assert tree.last_line == 999
        await pilot.pause()

        def labels() -> dict[str | None, str]:
            nodes = [tree.get_node_at_line(line) for line in range(tree.last_line + 1)]
            return {node.data: str(node.label) for node in nodes if node is not None}

        assert labels()["V014"] == "V014  ✖ failed"
        assert labels()["V007"] == "V007  ✖ failed  ✓ compare"
        assert labels()["V999"] == "V999  ✔ succeeded"
        first_node = tree.get_node_at_line(0)
        tree.show(versions, set(), "V500")  # same lineage: only labels change
        assert tree.get_node_at_line(0) is first_node
        assert labels()["V007"] == "V007  ✖ failed"
        assert tree.cursor_node is not None and tree.cursor_node.data == "V500"


def test_versions_name_their_parent_even_when_it_is_filtered_out(build: DataBuilder) -> None:
    sample_job(build)
    [failed] = job_versions(build.ctx.db, "digits-baseline", status="failed")
    assert (failed.version, failed.parent) == ("V003", "V002")
    assert failed.metrics == {"loss": 2.3}
    assert failed.duration == 187.0
    assert [v.parent for v in job_versions(build.ctx.db, "digits-baseline")] == [
        None, "V001", "V002"]


def test_job_versions_read_by_position_match_the_versions_read_whole(
        build: DataBuilder) -> None:
    sample_job(build)
    versions = job_versions(build.ctx.db, "digits-baseline")
    for info in versions:
        whole = version_info(build.ctx.db, "digits-baseline", info.version)
        assert info == whole
        assert info.spec == whole.spec and info.parameters == whole.spec["parameters"]
        assert info.to_dict() == whole.to_dict()
        assert list(info.to_dict())[-3:] == ["parameters", "metrics", "spec"]
    assert [v.metrics for v in job_versions(build.ctx.db, "digits-baseline",
                                            labels=["V003", "V001"])] == [
        versions[0].metrics, versions[2].metrics]


async def test_s_cycles_the_log_stamps_between_time_of_day_utc_and_none(
        build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        await pilot.press("2")
        await settle(pilot, rounds=2)
        panel = screen.query_one(LogPanel)
        last = panel.lines[-1]
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} RuntimeError: CUDA out of memory", last)
        await pilot.press("s")
        await settle(pilot, rounds=2)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z RuntimeError: "
                            "CUDA out of memory", panel.lines[-1])
        utc = datetime.fromisoformat(panel.lines[-1][:19] + "+00:00")
        assert last.startswith(utc.astimezone().strftime("%H:%M:%S") + panel.lines[-1][19:23])
        await pilot.press("s")
        await settle(pilot, rounds=2)
        assert panel.lines[-1] == "RuntimeError: CUDA out of memory"
        assert "Log timestamps: hidden" in messages(app)
        await pilot.press("s")
        await settle(pilot, rounds=2)
        assert panel.lines[-1] == last
        assert screen.active_bindings["t"].binding.action == "tensorboard"  # as elsewhere


async def test_log_search_finds_lines(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        await pilot.press("2")
        await settle(pilot, rounds=2)
        screen.query_one("#log-view").focus()
        await pilot.press("slash", *"loss", "enter")
        await settle(pilot, rounds=2)
        panel = screen.query_one(LogPanel)
        assert panel.search_text == "loss"
        assert panel.following is False
        assert "1/1" in str(panel.query_one("#log-state").render())
        await pilot.press("escape")
        await settle(pilot, rounds=2)
        assert panel.search_text == ""
        assert app.screen is screen


async def test_modify_opens_the_wizard_or_says_it_is_missing(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, "digits-baseline")
        await pilot.press("m")
        await settle(pilot, rounds=2)
        opened = type(app.screen).__name__ == "WizardScreen"
        assert opened or any("not available" in m for m in messages(app))
        assert app.screen is not screen or not opened


def test_overview_names_an_s3_log_folder_and_its_local_copy(build: DataBuilder) -> None:
    import dataclasses
    import json

    from app.tui.widgets.version_overview import _logs_location

    sample_job(build)
    info = job_versions(build.ctx.db, "digits-baseline")[0]
    assert _logs_location(info) == info.log_dir
    remote = dataclasses.replace(
        info, spec_json=json.dumps({**info.spec, "log_dir": "s3://team/logs/x/"}))
    assert _logs_location(remote) == (f"s3://team/logs/x/{info.version}  "
                                      f"(written locally to {info.log_dir})")
