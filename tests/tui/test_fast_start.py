"""The stdlib-only first page (`app.store.quicklist`), the change marker, and the app using them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tui_data import T0, DataBuilder, sample_job, settle

from app import queries
from app.store import quicklist
from app.store.models import Job, Status
from app.tui.app import TraindeckApp
from app.tui.screens.jobs import JobsScreen
from app.tui.widgets.key_table import KeyTable

SIZE = (120, 40)
SORTS = ("updated", "created", "name", "status")


def _data(build: DataBuilder) -> Path:
    """Sample jobs, one job without any version, one matching only by description."""
    sample_job(build)
    build.job("queued-one", Status.QUEUED, "waiting for 1 GPU(s) in pool public: 0 free",
              description="Digits again, with capitals")
    with build.ctx.db.write() as s:
        s.add(Job(name="empty-job", description="no versions yet",
                  created_at=T0 + timedelta(hours=5), updated_at=T0 + timedelta(hours=5)))
    path = quicklist.default_db_path()
    assert path is not None
    return path


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("descending", [True, False])
def test_fast_rows_equal_core_rows(build: DataBuilder, sort: str, descending: bool) -> None:
    path = _data(build)
    for search, status in [("", None), ("digits", None), ("DIGITS", None), ("", "failed"),
                           ("mnist", "failed"), ("no-such", None), ("empty", None)]:
        for offset, limit in [(0, 100), (1, 2), (3, 100)]:
            fast = quicklist.list_jobs_fast(path, search, status, sort, descending, offset,
                                            limit)
            core = queries.list_jobs(build.ctx.db, search, status, sort,  # type: ignore[arg-type]
                                     descending, offset, limit)
            assert fast == core, (search, status, offset, limit)
        assert (quicklist.count_jobs_fast(path, search, status)
                == queries.count_jobs(build.ctx.db, search, status))


def test_the_change_marker_moves_with_jobs_and_statuses(build: DataBuilder) -> None:
    _data(build)
    before = queries.jobs_change_marker(build.ctx.db)
    assert before[0] == 5
    ref = build.job("one-more", Status.RUNNING)
    assert queries.jobs_change_marker(build.ctx.db) != before
    from app.jobs import set_status

    moved = queries.jobs_change_marker(build.ctx.db)
    set_status(build.ctx, ref.version_id, Status.SUCCEEDED, exit_code=0)
    assert queries.jobs_change_marker(build.ctx.db) != moved


def test_db_path_follows_home_and_configured_urls(ctx: Any, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    from app.config import data_dir

    config = tmp_path / "home" / "config.yaml"
    assert quicklist.default_db_path() == data_dir() / "traindeck.db"
    for text in ("# database_url: sqlite:////elsewhere.db\n", "database_url:\n",
                 "database_url: null  # the default\n", "gpus: [0]\n"):
        config.write_text(text)
        assert quicklist.default_db_path() is not None, text
    for text in ("database_url: sqlite:////elsewhere.db\n",
                 "database_url: 'postgresql://db/traindeck'  # shared\n",
                 "database_url:\n  sqlite:////elsewhere.db\n", "{database_url: x}\n"):
        config.write_text(text)
        assert quicklist.default_db_path() is None, text
    config.write_text("gpus: [0]\n")
    monkeypatch.setenv("traindeck_database_url", "sqlite:////elsewhere.db")
    assert quicklist.default_db_path() is None
    monkeypatch.delenv("traindeck_database_url")
    monkeypatch.setenv("TRAINDECK_HOME", str(tmp_path / "nowhere"))
    assert quicklist.default_db_path() is None  # no database there yet


def test_unreadable_file_raises_quick_list_error(tmp_path: Path) -> None:
    bad = tmp_path / "traindeck.db"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(quicklist.QuickListError):
        quicklist.list_jobs_fast(bad)


class HeldApp(TraindeckApp):
    """Opens its core only when the test lets it (to look at the screen before that)."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = True
        self.asked = 0

    def open_context(self) -> None:
        self.asked += 1
        if not self.hold:
            super().open_context()



def names(app: TraindeckApp) -> list[str]:
    table = app.screen.query_one("#jobs-table", KeyTable)
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


async def test_job_list_shows_before_the_core_opens(build: DataBuilder) -> None:
    _data(build)
    expected = [row.name for row in queries.list_jobs(build.ctx.db)]
    app = HeldApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        assert app.ctx is None and app.asked >= 1
        assert names(app) == expected
        assert isinstance(app.focused, KeyTable)
        assert "5 jobs" in str(screen.query_one("#jobs-status").render())
        await pilot.press("enter")  # remembered until the core is open
        await settle(pilot)
        assert app.screen is screen
        app.hold = False
        app.open_context()
        await settle(pilot)
        assert app.ctx is not None
        from app.tui.screens.job_detail import JobDetailScreen

        assert isinstance(app.screen, JobDetailScreen)
        assert app.screen.job == expected[0]
        # Opening the core reconciled the runs: the orphaned queued version got a new
        # supervisor, which ends it (its data is made up) and so moves its job up the
        # list. Back on the list, the rows are the database's, in its order.
        from app.runtime.control import wait_final

        await asyncio.to_thread(wait_final, build.ctx, "queued-one", None, 60)
        await pilot.press("escape")
        # Other orphaned versions end too, each moving its job up: poll until the
        # rows are the database's, in its order (as a user sees them settle).
        for _ in range(100):
            app.screen._poll()  # type: ignore[attr-defined]
            await settle(pilot)
            shown, stored = names(app), [row.name for row in queries.list_jobs(build.ctx.db)]
            if shown == stored:
                break
            await asyncio.sleep(0.1)
        assert shown == stored


async def test_idle_poll_reads_no_rows_while_the_marker_stands(build: DataBuilder,
                                                              monkeypatch: Any) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobsScreen)
        screen._poll()
        await settle(pilot)  # learns the marker
        reads: list[Any] = []
        real = queries.list_jobs

        def counting(*args: Any, **kwargs: Any) -> Any:
            reads.append(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(queries, "list_jobs", counting)
        for _ in range(3):
            screen._poll()
            await settle(pilot)
        assert reads == []
        build.job("late-arrival")
        screen._poll()
        await settle(pilot)
        assert reads and "late-arrival" in names(app)


HEAVY = ("sqlmodel", "sqlalchemy", "pydantic", "pydantic_settings", "yaml", "alembic")


@pytest.mark.parametrize("module", ["app.store.quicklist", "app.tui.app"])
def test_first_frame_modules_import_nothing_heavy(module: str) -> None:
    """The job list's first page must not wait for the ORM, pydantic or the settings."""
    import subprocess
    import sys

    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == ""
    if module == "app.store.quicklist":
        check = subprocess.run([sys.executable, "-c", "import sys, app.store.quicklist; "
                                "print('textual' in sys.modules)"],
                               capture_output=True, text=True, check=True)
        assert check.stdout.strip() == "False"
