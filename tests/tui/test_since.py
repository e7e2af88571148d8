""""Since you left": the core summary, first start and quiet starts, and the modal."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tui_data import NOW, T0, DataBuilder, settle
from tui_helpers import SEEN, SinceHost, make_changes

from app.context import Context
from app.since import last_seen, mark_seen, since_last_seen, since_summary
from app.store.models import Status
from app.tui.screens.since import SinceScreen, ago

SIZE = (120, 40)


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


def test_snapshot_since_with_failures(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_changes(snap_build)
    mark_seen(snap_build.ctx.db, SEEN)
    assert snap_compare(SinceHost(snap_build.ctx), terminal_size=SIZE,
                        run_before=lambda pilot: settle(pilot, rounds=2))


async def test_shown_at_start_and_closed_by_enter(build: DataBuilder) -> None:
    make_changes(build)
    mark_seen(build.ctx.db, SEEN)
    app = SinceHost(build.ctx)
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
    app = SinceHost(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        await pilot.press("j", "escape")
        await settle(pilot, rounds=2)
        assert not isinstance(app.screen, SinceScreen)


async def test_not_shown_on_first_start(build: DataBuilder) -> None:
    make_changes(build)
    app = SinceHost(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        assert not isinstance(app.screen, SinceScreen)
    assert last_seen(build.ctx.db) == NOW


async def test_not_shown_when_nothing_changed(build: DataBuilder) -> None:
    make_changes(build)
    mark_seen(build.ctx.db, NOW - timedelta(minutes=1))
    app = SinceHost(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=2)
        assert not isinstance(app.screen, SinceScreen)
