""""Since you left": the core summary, first start and quiet starts, and the modal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from textual import work
from textual.app import App, ComposeResult
from textual.message import Message
from textual.widgets import Footer, Static
from tui_data import NOW, T0, DataBuilder, settle

from app.context import Context
from app.models import Status
from app.overview import Summary, last_seen, mark_seen, since_last_seen, since_summary
from app.tui import clock
from app.tui.screens.since import SinceScreen, ago
from app.tui.widgets.status import theme_variable_defaults

SIZE = (120, 40)
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


def test_summary_counts_and_order(build: DataBuilder) -> None:
    make_changes(build)
    summary = since_summary(build.ctx.db, SEEN)
    assert summary.counts == {"succeeded": 1, "failed": 2, "stopped": 1, "started": 1}
    assert summary.total == 5 and not summary.empty
    assert [(i.label, i.status) for i in summary.items] == [
        ("long-eval/V001", "stopped"), ("resnet-sweep/V001", "running"),
        ("bert-tiny/V001", "failed"), ("mnist-cnn/V001", "failed"),
        ("digits/V001", "succeeded")]
    assert summary.items[3].reason.endswith("CUDA out of memory")
    assert summary.items[0].when == T0 + timedelta(hours=7, seconds=5)


def test_summary_limit_keeps_counts(build: DataBuilder) -> None:
    make_changes(build)
    summary = since_summary(build.ctx.db, SEEN, limit=2)
    assert summary.total == 5
    assert len(summary.items) == 2


def test_nothing_changed_is_empty(build: DataBuilder) -> None:
    make_changes(build)
    assert since_summary(build.ctx.db, NOW).empty


def test_first_start_then_quiet_then_changes(build: DataBuilder) -> None:
    db = build.ctx.db
    assert last_seen(db) is None
    assert since_last_seen(db, NOW) is None  # very first start: nothing to compare with
    assert last_seen(db) == NOW
    assert since_last_seen(db, NOW + timedelta(minutes=5)) is None  # nothing happened
    build.job("late", Status.FAILED, "boot file not found",
              created=NOW + timedelta(minutes=10), ran=timedelta(seconds=1))
    summary = since_last_seen(db, NOW + timedelta(hours=1))
    assert summary is not None
    assert summary.counts["failed"] == 1
    assert summary.since == NOW + timedelta(minutes=5)
    assert last_seen(db) == NOW + timedelta(hours=1)


def test_mark_seen_overwrites(ctx: Context) -> None:
    mark_seen(ctx.db, T0)
    mark_seen(ctx.db, NOW)
    assert last_seen(ctx.db) == NOW


def test_ago() -> None:
    assert ago(NOW - timedelta(minutes=5), NOW) == "5m ago"
    assert ago(NOW - timedelta(hours=9), NOW) == "9h ago"
    assert ago(NOW - timedelta(days=3), NOW) == "3d ago"


class HostApp(App[None]):
    """A bare app doing at start-up what the Traindeck app does: greet with the summary."""

    class SinceReady(Message):
        """The start-up summary (None: nothing to show)."""

        def __init__(self, summary: Summary | None) -> None:
            super().__init__()
            self.summary = summary

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults()

    def compose(self) -> ComposeResult:
        yield Static("job list", id="behind")
        yield Footer()

    def on_mount(self) -> None:
        self._since(self.ctx)

    @work(thread=True, exclusive=True, exit_on_error=False, group="since")
    def _since(self, ctx: Context) -> None:
        self.post_message(self.SinceReady(since_last_seen(ctx.db, clock.now())))

    def on_host_app_since_ready(self, message: SinceReady) -> None:
        if message.summary is not None:
            self.push_screen(SinceScreen(message.summary))



def test_snapshot_since_with_failures(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_changes(snap_build)
    mark_seen(snap_build.ctx.db, SEEN)
    assert snap_compare(HostApp(snap_build.ctx), terminal_size=SIZE,
                        run_before=lambda pilot: settle(pilot, rounds=2))


async def test_shown_at_start_and_closed_by_enter(build: DataBuilder) -> None:
    make_changes(build)
    mark_seen(build.ctx.db, SEEN)
    app = HostApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        assert isinstance(app.screen, SinceScreen)
        assert app.screen.summary.counts["failed"] == 2
        await pilot.press("enter")
        await settle(pilot, rounds=2)
        assert not isinstance(app.screen, SinceScreen)
    assert last_seen(build.ctx.db) == NOW


async def test_esc_closes(build: DataBuilder) -> None:
    make_changes(build)
    mark_seen(build.ctx.db, SEEN)
    app = HostApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("j", "escape")
        await settle(pilot, rounds=2)
        assert not isinstance(app.screen, SinceScreen)


async def test_not_shown_on_first_start(build: DataBuilder) -> None:
    make_changes(build)
    app = HostApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        assert not isinstance(app.screen, SinceScreen)
    assert last_seen(build.ctx.db) == NOW


async def test_not_shown_when_nothing_changed(build: DataBuilder) -> None:
    make_changes(build)
    mark_seen(build.ctx.db, NOW - timedelta(minutes=1))
    app = HostApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        assert not isinstance(app.screen, SinceScreen)
