"""The code diff screen (from compare and from the job screen) and the overview's limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from helpers import noop_launcher
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import OptionList, Static
from tui_data import T0, DataBuilder, settle

from app.jobs import create_version, modified_spec
from app.queries import version_info
from app.store.models import Status
from app.tui.app import TraindeckApp
from app.tui.screens.code_diff import CodeDiffScreen
from app.tui.screens.compare import CompareScreen
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.widgets.version_overview import VersionOverview, limits_text

SIZE = (120, 40)
JOB = "digits-code"


def code_versions(build: DataBuilder, job: str = JOB) -> None:
    """V001 and V002 of `job`, V002 run from a fresh snapshot of the changed code folder:
    train.py modified, helper.py added, old.py removed, weights.bin (binary) changed."""
    code = build.base / "code"
    (code / "old.py").write_text("LEGACY = True\n")
    (code / "weights.bin").write_bytes(b"\0\1\2\3" * 8)
    build.job(job, Status.SUCCEEDED)
    (code / "train.py").write_text("print('training')\nprint('twice as fast')\n")
    (code / "helper.py").write_text("STEPS = 3\n")
    (code / "old.py").unlink()
    (code / "weights.bin").write_bytes(b"\0\x09\x08\x07" * 8)
    _, spec, parent_id = modified_spec(build.ctx, job, "V001", {"lr": 0.1},
                                       base_dir=build.base)
    ref = create_version(build.ctx, job, spec, parent_id, fresh_code=True, launcher=noop_launcher)
    build.finish(ref, Status.SUCCEEDED, created=T0 + timedelta(hours=1), ran=timedelta(minutes=9))


def listed(screen: CodeDiffScreen) -> list[str]:
    """The file list as shown: `M train.py`, …"""
    files = screen.query_one("#diff-files", OptionList)
    return [str(files.get_option_at_index(i).prompt) for i in range(files.option_count)]


def diff_text(screen: CodeDiffScreen) -> Text:
    """What the diff pane shows."""
    content = screen.query_one("#diff-text", Static).content
    assert isinstance(content, Text)
    return content


async def open_from_compare(pilot: Pilot[Any]) -> CodeDiffScreen:
    """Compare the job's versions, then press `c`."""
    await settle(pilot)
    await pilot.app.push_screen(CompareScreen(pilot.app.ctx, JOB))  # type: ignore[attr-defined]
    await settle(pilot)
    await pilot.press("c")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, CodeDiffScreen)
    return screen


async def test_compare_opens_the_diff_of_a_modified_added_removed_and_binary_file(
        build: DataBuilder) -> None:
    code_versions(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_from_compare(pilot)
        assert (screen.old, screen.new) == ("V001", "V002")
        assert listed(screen) == ["A helper.py", "D old.py", "M train.py", "M weights.bin"]
        summary = str(screen.query_one("#diff-summary", Static).content)
        assert "4 files differ: 1 added, 1 removed, 2 modified" in summary
        assert diff_text(screen).plain.startswith("--- a/helper.py\n+++ b/helper.py\n")

        await pilot.press("j", "j")
        await settle(pilot)
        assert "+print('twice as fast')" in diff_text(screen).plain
        await pilot.press("j")
        await settle(pilot)
        assert diff_text(screen).plain == "Binary files a/weights.bin and b/weights.bin differ"

        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)


async def test_diff_lines_take_the_theme_colours(build: DataBuilder) -> None:
    code_versions(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_from_compare(pilot)
        text = screen.coloured("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n same\n")
        styles = {text.plain[s.start:s.end].strip(): str(s.style) for s in text.spans}
        from app.tui.themes import theme_colour

        assert styles["+new"] == theme_colour(app, "success", "green")
        assert styles["-old"] == theme_colour(app, "error", "red")
        assert styles["@@ -1 +1 @@"] == theme_colour(app, "accent", "cyan")


async def test_job_screen_diffs_a_version_against_its_parent(build: DataBuilder) -> None:
    code_versions(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(JobDetailScreen(build.ctx, JOB))
        await settle(pilot)
        detail = app.screen
        assert isinstance(detail, JobDetailScreen) and detail.selected == "V002"
        titles = {c.title for c in app.get_system_commands(detail)}
        assert "view: code diff" in titles
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CodeDiffScreen)
        assert (screen.old, screen.new) == ("V001", "V002")
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is detail
        await pilot.press("up")  # V001: no parent, nothing marked
        await settle(pilot)
        assert detail.selected == "V001"
        assert detail.disabled_reason("code_diff") == (
            "code diff: V001 has no parent; mark two versions with space")
        await pilot.press("c")
        await settle(pilot)
        assert app.screen is detail


async def test_the_same_snapshot_says_so(build: DataBuilder) -> None:
    build.job(JOB, Status.SUCCEEDED)
    build.version(JOB, "V001", {"lr": 0.2})  # the parent's snapshot again
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(CodeDiffScreen(build.ctx, JOB, "V001", "V002"))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CodeDiffScreen)
        assert listed(screen) == []
        assert "is the same snapshot" in str(screen.query_one("#diff-summary", Static).content)


async def test_zoom_hides_the_file_list_and_tab_moves_the_keys(build: DataBuilder) -> None:
    code_versions(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_from_compare(pilot)
        files = screen.query_one("#diff-files", OptionList)
        assert files.has_focus
        await pilot.press("tab")
        assert screen.query_one("#diff-scroll").has_focus
        await pilot.press("tab")
        assert files.has_focus
        await pilot.press("z")
        await settle(pilot)
        assert not files.display and screen.query_one("#diff-scroll").has_focus
        await pilot.press("z")
        await settle(pilot)
        assert files.display and files.has_focus


# ---------------------------------------------------------------- snapshots


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_snapshot_code_diff(snap_compare: Any, snap_build: DataBuilder,
                            size: tuple[int, int]) -> None:
    code_versions(snap_build)

    async def run_before(pilot: Pilot[Any]) -> None:
        pilot.app.animation_level = "none"
        await settle(pilot)
        await pilot.app.push_screen(CodeDiffScreen(snap_build.ctx, JOB, "V001", "V002"))
        await settle(pilot)
        await pilot.press("j", "j")  # train.py
        await settle(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=size,
                        run_before=run_before)


# ---------------------------------------------------------------- overview limits


@pytest.mark.parametrize(("runtime", "expected"), [
    ("docker", "per node: 2 CPU(s), 512.0 MiB memory  ·  one process per GPU  ·  network none"),
    ("local", "per node: 2 CPU(s) (CPU affinity), 512.0 MiB memory (address space of each "
              "process; not applied to GPU ranks)  ·  one process per GPU  ·  network none"),
])
def test_limits_text_says_every_limit(build: DataBuilder, runtime: str, expected: str) -> None:
    ref = build.job(JOB, resources={"pool": "public", "gpus": 2, "nodes": 1, "runtime": runtime,
                                    "cpus": 2, "memory": "512m", "network": "none",
                                    "processes_per_node": "gpus"})
    assert limits_text(version_info(build.ctx.db, JOB, ref.version)) == expected


async def test_overview_shows_the_limits_and_none_when_unset(build: DataBuilder) -> None:
    build.job(JOB, resources={"pool": "public", "gpus": 0, "nodes": 1, "runtime": "local",
                              "cpus": 1.5, "memory": "1g", "processes_per_node": 2})
    build.job("plain")
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(JobDetailScreen(build.ctx, JOB))
        await settle(pilot)
        details = app.screen.query_one(VersionOverview).query_one("#ov-details", Static)
        assert "Limits" in _grid_text(details)
        assert "1.5 CPU(s)" in _grid_text(details)
        assert "2 processes per node" in _grid_text(details)
        await app.push_screen(JobDetailScreen(build.ctx, "plain"))
        await settle(pilot)
        details = app.screen.query_one(VersionOverview).query_one("#ov-details", Static)
        assert "Limits" not in _grid_text(details)


def _grid_text(static: Static) -> str:
    """The cells of the details grid, as text."""
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(static.content)
    return console.export_text()


# ---------------------------------------------------------------- bytes that are not UTF-8

BAD_BYTES_SCRIPT = """\
import sys
sys.stdout.buffer.write(b"bad bytes: \\xff\\xfe caf\\xe9 end\\n")
sys.stdout.buffer.write(b"half a character: \\xe2\\x82\\n")
sys.stdout.flush()
"""


def screen_text(pilot: Pilot[Any]) -> str:
    """What the terminal would show, checked to be writable as UTF-8 (a lone surrogate from
    a name that is not UTF-8 would make the real terminal's write fail)."""
    import html

    svg = pilot.app.export_screenshot()
    svg.encode("utf-8")
    return html.unescape(svg).replace("\xa0", " ")


async def test_bytes_that_are_not_utf8_are_shown_replaced_or_escaped(
        build: DataBuilder) -> None:
    import asyncio
    import os

    from app.jobs import submit
    from app.runtime.control import wait_final

    code = build.base / "code"
    (code / "train.py").write_text(BAD_BYTES_SCRIPT)
    with open(os.fsencode(code) + b"/caf\xe9.py", "wb") as handle:
        handle.write(b"NAME = 'caf\xe9'\n")
    spec = build.spec(JOB)
    submit(build.ctx, spec, build.base)  # a real local run
    v1 = await asyncio.to_thread(wait_final, build.ctx, JOB, "V001", 60)
    assert v1.status == "succeeded", v1.reason
    with open(os.fsencode(code) + b"/caf\xe9.py", "wb") as handle:
        handle.write(b"NAME = 'na\xefve'\n")
    with open(os.fsencode(code) + b"/r\xe9sum\xe9.txt", "wb") as handle:
        handle.write(b"\xff\xfe latin-1 text\n")
    _, changed, parent_id = modified_spec(build.ctx, JOB, "V001", {"lr": 0.1},
                                          base_dir=build.base)
    create_version(build.ctx, JOB, changed, parent_id, fresh_code=True, launcher=noop_launcher)

    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await app.push_screen(JobDetailScreen(build.ctx, JOB, select="V001"))
        await settle(pilot)
        screen_text(pilot)  # the overview
        await pilot.press("2")  # the log panel
        await settle(pilot)
        from textual.widgets import Log

        log_lines = app.screen.query_one("#log-view", Log).lines
        assert any("bad bytes: \ufffd\ufffd caf\ufffd end" in line for line in log_lines)
        screen_text(pilot)
        await pilot.press("1", "down")
        await settle(pilot)
        screen_text(pilot)
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CodeDiffScreen)
        assert listed(screen) == ["M caf\\xe9.py", "A r\\xe9sum\\xe9.txt"]
        assert diff_text(screen).plain == (
            "--- a/caf\\xe9.py\n+++ b/caf\\xe9.py\n@@ -1 +1 @@\n-NAME = 'caf\ufffd'\n"
            "+NAME = 'na\ufffdve'")
        await pilot.press("j")
        await settle(pilot)
        assert "+\ufffd\ufffd latin-1 text" in diff_text(screen).plain
        assert "r\\xe9sum\\xe9.txt" in screen_text(pilot)


async def test_a_long_diff_is_cut_with_a_note(build: DataBuilder, monkeypatch: Any) -> None:
    import app.tui.screens.code_diff as code_diff

    monkeypatch.setattr(code_diff, "MAX_DIFF_LINES", 3)
    code_versions(build)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_from_compare(pilot)
        assert diff_text(screen).plain == (
            "--- a/helper.py\n+++ b/helper.py\n@@ -0,0 +1 @@\n… 1 more line not shown")


async def test_a_version_without_a_snapshot_says_so(build: DataBuilder) -> None:
    from sqlalchemy import update

    from app.store.models import Version

    code_versions(build)
    with build.ctx.db.write() as session:  # as a version made before snapshots existed
        session.exec(update(Version).where(Version.number == 1).values(code_snapshot=""))
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_from_compare(pilot)
        assert listed(screen) == []
        assert str(screen.query_one("#diff-summary", Static).content) == (
            f"{JOB} V001 → V002: V001 of {JOB} ran without a code snapshot: nothing to compare")
