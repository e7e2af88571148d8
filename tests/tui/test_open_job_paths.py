"""Opening a job: versions read before the screen, a footer that rebuilds only on change,
a tree that keeps its lines across resizes and focus changes, and a real resize still
laid out."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input
from tui_data import DataBuilder, sample_job, settle

from app.tui.app import TraindeckApp
from app.tui.messages import OpenJob
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.version_overview import VersionOverview
from app.tui.widgets.version_tree import VersionTree

SIZE = (120, 40)


async def open_digits(pilot: Pilot[Any]) -> JobDetailScreen:
    """Filter the job list to the sample job and open it with `enter`, as a user does."""
    await settle(pilot)
    await pilot.press("slash", *"digits", "enter", "enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, JobDetailScreen) and screen.job == "digits-baseline"
    return screen


class CountingApp(TraindeckApp):
    """Counts how often the job screen's own read runs and what each screen first shows."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.first_frames: list[tuple[int, str | None]] = []

    def on_traindeck_app_job_read(self, message: TraindeckApp.JobRead) -> None:
        super().on_traindeck_app_job_read(message)
        screen = self.screen
        assert isinstance(screen, JobDetailScreen)
        # What the screen will show when its first frame is drawn.
        screen.call_after_refresh(lambda: self.first_frames.append(
            (len(screen.query_one(VersionTree).root.children), screen.selected)))


async def test_enter_opens_the_job_drawn_with_its_versions_at_once(
        build: DataBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    sample_job(build)
    own_reads: list[str] = []
    monkeypatch.setattr(JobDetailScreen, "_load_versions",
                        lambda screen: own_reads.append(screen.job))
    app = CountingApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_digits(pilot)
        # The app read the versions and handed them over: the screen read nothing, and
        # its first frame already had the tree and the latest version.
        assert own_reads == []
        assert app.first_frames[0] == (1, "V003")
        assert screen.query_one(VersionTree).highlighted_label == "V003"
        assert "digits-baseline V003" in str(
            screen.query_one("#ov-headline").render())
        # The filter field is made when `/` is first pressed, not before.
        assert not screen.query("#version-filter")
        await pilot.press("slash", *"V002")
        await settle(pilot)
        assert screen.query_one("#version-filter", Input).value == "V002"


async def test_open_job_selects_the_version_asked_for(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.post_message(OpenJob("digits-baseline", select="V001"))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobDetailScreen)
        assert screen.selected == "V001"
        assert screen.query_one(VersionTree).highlighted_label == "V001"


async def test_a_job_that_is_gone_says_so(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.post_message(OpenJob("no-such-job"))
        await settle(pilot)
        assert isinstance(app.screen, JobDetailScreen)
        assert any("no-such-job" in n.message for n in app._notifications)
        assert "No version selected" in str(
            app.screen.query_one(VersionOverview).query_one("#ov-headline").render())


async def test_the_footer_rebuilds_only_when_its_keys_change(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_digits(pilot)
        footer = screen.query_one(KeyFooter)
        keys = list(footer.children)
        assert any("Stop" in str(key.render()) for key in keys)
        screen.refresh_bindings()  # nothing changed: the same key widgets stay
        await settle(pilot)
        assert list(footer.children) == keys
        # Moving to a version that allows other actions changes the keys: rebuilt.
        await pilot.press("up")
        await settle(pilot)
        assert screen.selected == "V002"
        assert list(footer.children) != keys


async def test_the_tree_keeps_its_lines_through_resizes_and_focus(
        build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_digits(pilot)
        tree = screen.query_one(VersionTree)
        lines = tree._tree_lines
        await pilot.press("tab")  # the tree loses the focus: its style changes
        await settle(pilot)
        await pilot.press("shift+tab")
        await settle(pilot)
        await pilot.resize_terminal(110, 30)
        await settle(pilot)
        assert tree._tree_lines is lines  # not rebuilt
        assert tree.highlighted_label == "V003"
        shown = "\n".join(str(tree.render_line(y).text) for y in range(3))
        assert "V001" in shown and "V002" in shown


async def test_a_real_resize_is_still_laid_out(build: DataBuilder) -> None:
    sample_job(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_digits(pilot)
        left = screen.query_one("#detail-left")
        assert screen.has_class("-wide") and left.outer_size.width == 34
        await pilot.resize_terminal(90, 30)
        await settle(pilot)
        assert screen.has_class("-narrow") and left.outer_size.width == 28
        assert screen.size.width == 90
