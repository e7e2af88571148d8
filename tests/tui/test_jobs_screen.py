"""The job list: filter, sort, open, windowing over thousands of jobs, live updates."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from sqlmodel import select
from tui_data import T0, DataBuilder, sample_job, settle

from app.jobs import set_status
from app.store.models import Job, Status, Version
from app.tui.app import TraindeckApp
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.screens.jobs import PAGE, JobsScreen, parse_filter
from app.tui.widgets.key_table import KeyTable

SIZE = (120, 40)



def job_names(app: TraindeckApp) -> list[str]:
    """Names in the table, top to bottom."""
    table = app.screen.query_one("#jobs-table", KeyTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


def test_parse_filter_splits_status_token() -> None:
    assert parse_filter("status:failed digits") == ("digits", "failed")
    assert parse_filter("mnist") == ("mnist", None)


def test_a_running_duration_ticks_in_minutes_a_finished_one_is_exact() -> None:
    from datetime import timedelta

    from app.readmodels import JobRow
    from app.tui import clock
    from app.tui.joblist import row_texts

    now = clock.now()
    started = now - timedelta(minutes=12, seconds=41)
    row = JobRow(id=1, name="a", description="", version="V001", versions=1,
                 status="running", reason="", engine="python 3.11", runtime="local", gpus=0,
                 nodes=1, created=started, updated=started, started=started, finished=None)
    assert row_texts(row)[-1] == "12m"
    assert row_texts(replace(row, started=now - timedelta(seconds=20)))[-1] == "<1m"
    assert row_texts(replace(row, status="succeeded", finished=now))[-1] == "12m 41s"


async def test_filter_narrows_rows_and_esc_clears(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        assert len(job_names(app)) == 3
        await pilot.press("slash")
        await pilot.press(*"mnist")
        await pilot.pause(0.3)
        await settle(pilot, rounds=2)
        assert job_names(app) == ["mnist-cnn"]
        await pilot.press("escape")
        await settle(pilot, rounds=2)
        assert len(job_names(app)) == 3
        assert isinstance(app.focused, KeyTable)


async def test_status_filter(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        screen.search = "status:failed"
        await settle(pilot, rounds=2)
        assert sorted(job_names(app)) == ["digits-baseline", "mnist-cnn"]


async def test_filter_without_match_says_so(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        app.screen.search = "nothing-like-this"  # type: ignore[attr-defined]
        await settle(pilot, rounds=2)
        empty = app.screen.query_one("#jobs-empty")
        assert empty.display
        assert "No jobs match" in str(empty.render())


async def test_sort_cycles_and_orders_by_name(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        await pilot.press("s")
        await settle(pilot, rounds=2)
        assert screen.sort_key == "created"
        assert job_names(app)[0] == "resnet-sweep"  # newest first
        await pilot.press("s")
        await settle(pilot, rounds=2)
        assert screen.sort_key == "name"
        assert job_names(app) == ["digits-baseline", "mnist-cnn", "resnet-sweep"]
        await pilot.press("r")
        await settle(pilot, rounds=2)
        assert job_names(app) == ["resnet-sweep", "mnist-cnn", "digits-baseline"]


async def test_enter_opens_detail_on_latest_version(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("enter")
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, JobDetailScreen)
        assert screen.job == "digits-baseline"
        assert screen.selected == "V003"
        tree = screen.query_one("#version-tree")
        assert tree.cursor_node is not None and tree.cursor_node.data == "V003"
        await pilot.press("escape")
        await settle(pilot, rounds=2)
        assert isinstance(app.screen, JobsScreen)


def _bulk_jobs(build: DataBuilder, count: int) -> None:
    """`count` jobs inserted in one transaction (submitting each would take minutes)."""
    from datetime import timedelta

    ref = build.job("bulk-template")
    with build.ctx.db.read() as s:
        template = s.get(Version, ref.version_id)
        assert template is not None
        spec = json.loads(template.spec_json)
    with build.ctx.db.write() as s:
        jobs = [Job(name=f"bulk-{i:05d}", created_at=T0 + timedelta(seconds=i),
                    updated_at=T0 + timedelta(seconds=i), last_version_number=1)
                for i in range(count)]
        s.add_all(jobs)
        s.flush()
        versions = [Version(job_id=job.id or 0, number=1, spec_json=json.dumps(spec),
                            status="succeeded", engine="python 3.11", runtime="local")
                    for job in jobs]
        s.add_all(versions)
        s.flush()
        for job, version in zip(jobs, versions, strict=True):
            job.latest_version_id = version.id
        s.add_all(jobs)


async def test_windowing_loads_pages_on_demand(build: DataBuilder) -> None:
    _bulk_jobs(build, 3000)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        table = screen.query_one("#jobs-table", KeyTable)
        assert screen.total == 3001
        assert table.row_count == PAGE
        assert "3,001 jobs" in str(screen.query_one("#jobs-status").render())
        await pilot.press("G")  # to the last loaded row: the next page follows
        await settle(pilot, rounds=2)
        assert table.row_count == 2 * PAGE
        for _ in range(3):
            await pilot.press("pagedown")
        await settle(pilot, rounds=2)
        assert 2 * PAGE <= table.row_count < 3001
        names = job_names(app)
        assert len(set(names)) == len(names)
        assert names[0] == "bulk-02999"


async def test_idle_poll_redraws_nothing_and_changes_update_cells(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        table = screen.query_one("#jobs-table", KeyTable)
        updates: list[dict[str, Any]] = []
        whole: list[tuple[Any, ...]] = []
        original_update, original_refresh = table.update_row_cells, table.refresh

        def counting(key: str, cells: dict[str, Any]) -> None:
            updates.append(cells)
            original_update(key, cells)

        def refresh(*regions: Any, **kwargs: Any) -> Any:
            if not regions:
                whole.append(regions)  # a repaint of the whole table
            return original_refresh(*regions, **kwargs)

        table.update_row_cells = counting  # type: ignore[method-assign]
        screen._poll()
        await settle(pilot, rounds=2)
        screen._poll()  # the change marker is known now: this one reads no rows at all
        await settle(pilot, rounds=2)
        assert updates == []
        # A status change of the running job; sorted by name its row stays where it is.
        screen.sort_key = "name"
        await settle(pilot, rounds=2)
        with build.ctx.db.read() as s:
            vid = s.exec(select(Job.latest_version_id).where(Job.name == "resnet-sweep")).one()
        set_status(build.ctx, vid or 0, Status.SUCCEEDED, exit_code=0)
        table.refresh = refresh  # type: ignore[method-assign]
        screen._poll()
        await settle(pilot, rounds=2)
        assert any("status" in cells for cells in updates)
        assert whole == []  # only the changed row was repainted
        row = job_names(app).index("resnet-sweep")
        assert "succeeded" in str(table.get_row_at(row)[2])


async def test_new_job_from_elsewhere_appears(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        build.job("late-arrival")
        app.screen._poll()  # type: ignore[attr-defined]
        await settle(pilot, rounds=2)
        assert "late-arrival" in job_names(app)


async def test_delete_job_from_list(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        table = app.screen.query_one("#jobs-table", KeyTable)
        table.move_cursor(row=job_names(app).index("mnist-cnn"))
        await pilot.press("d")
        await settle(pilot, rounds=2)
        await pilot.press("y")
        await settle(pilot, rounds=2)
        assert "mnist-cnn" not in job_names(app)


async def test_empty_state_and_palette_commands(ctx: Any) -> None:
    app = TraindeckApp(ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        empty = app.screen.query_one("#jobs-empty")
        assert "No jobs yet" in str(empty.render())
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"job: create", "view: filter jobs", "app: help"} <= set(titles)


async def test_a_narrow_terminal_leaves_out_engine_and_resources(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, rounds=2)
        table = app.screen.query_one(KeyTable)
        labels = [str(column.label) for column in table.columns.values()]
        assert labels == ["Name", "Version", "Status", "Created", "Duration"]
        assert table.virtual_size.width <= 80  # no sideways scrolling at 80 columns
        await pilot.press("down")
        highlighted = job_names(app)[table.cursor_row]
        await pilot.resize_terminal(120, 30)
        await settle(pilot, rounds=2)
        labels = [str(column.label) for column in table.columns.values()]
        assert labels == ["Name", "Version", "Status", "Engine", "Resources", "Created",
                          "Duration"]
        assert job_names(app)[table.cursor_row] == highlighted
        assert "python 3.11" in str(table.get_row_at(0)[3])
