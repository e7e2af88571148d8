"""Starting the create wizard from a spec file: the path prompt (completion, errors naming
the file and line), the jobs screen key, the palette command and `traindeck create --from`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static
from tui_data import DataBuilder
from tui_helpers import settle_checks as settle
from tui_helpers import type_path, write_specs

from app.context import Context
from app.tui.app import TraindeckApp
from app.tui.screens.jobs import JobsScreen
from app.tui.screens.spec_file import SpecFileScreen, complete_path
from app.tui.wizard.screen import WizardScreen

SIZE = (120, 40)


pytestmark = pytest.mark.usefixtures("quick_wizard_checks")


class RecordingApp(TraindeckApp):
    """Keeps the text of every toast."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.toasts: list[str] = []

    def notify(self, message: str, **kwargs: Any) -> None:
        self.toasts.append(str(message))
        super().notify(message, **kwargs)


def error_text(app: Any) -> str:
    note = app.screen.query_one("#spec-file-error", Static)
    return str(note.render()) if note.display else ""


# ---------------------------------------------------------------- completion


def test_complete_path(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "digits.yaml").write_text("")
    (tmp_path / "specs" / "digits-big.yaml").write_text("")
    (tmp_path / "specs" / "digits.txt").write_text("")
    (tmp_path / "specs" / ".hidden.yaml").write_text("")
    (tmp_path / "sample.yaml").write_text("")
    assert complete_path("sp", tmp_path) == "specs/"
    assert complete_path("specs/d", tmp_path) == "specs/digits"  # common start
    assert complete_path("specs/digits-", tmp_path) == "specs/digits-big.yaml"
    assert complete_path("specs/.h", tmp_path) == "specs/.hidden.yaml"
    assert complete_path("specs/x", tmp_path) is None
    assert complete_path(f"{tmp_path}/sa", Path("/")) == f"{tmp_path}/sample.yaml"
    assert complete_path("nowhere/a", tmp_path) is None
    assert complete_path("~", tmp_path) is None
    assert complete_path("", tmp_path) is None


# ---------------------------------------------------------------- the prompt, from the jobs screen


async def test_jobs_key_prompts_then_errors_name_the_file(build: DataBuilder,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_specs(build)
    monkeypatch.chdir(build.base)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, SpecFileScreen)
        assert error_text(app) == ""
        await pilot.press("enter")
        await settle(pilot)
        assert error_text(app) == "Type the path of a spec file."
        await type_path(pilot, "specs/missing.yaml")
        assert error_text(app) == "specs/missing.yaml: No such file or directory"
        await type_path(pilot, "specs")
        assert error_text(app) == "specs: is a folder, not a spec file"
        await type_path(pilot, str(folder / "broken.yaml"))
        assert error_text(app) == (f"{folder / 'broken.yaml'}: line 3: did not find "
                                   "expected ',' or '}'")
        assert isinstance(app.screen, SpecFileScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, JobsScreen)


async def test_tab_completes_the_path(build: DataBuilder,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write_specs(build)
    monkeypatch.chdir(build.base)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await pilot.press(*"spe")
        await settle(pilot)
        await pilot.press("tab")
        await pilot.press(*"go")
        await settle(pilot)
        await pilot.press("tab")
        path = app.screen.query_one("#spec-file-path", Input)
        assert path.value == "specs/good.yaml"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, WizardScreen)


async def test_a_spec_with_errors_opens_the_wizard_with_them_beside_the_fields(
    build: DataBuilder, monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = write_specs(build)
    monkeypatch.chdir(build.base)
    app = RecordingApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await type_path(pilot, "specs/bad.yaml")
        wizard = app.screen
        assert isinstance(wizard, WizardScreen)
        assert wizard.base_dir == folder  # relative paths resolve against the file
        assert "from specs/bad.yaml" in str(wizard.query_one("#wizard-title", Static).render())
        assert "must be 1-64 letters" in str(wizard.query_one("#name-note", Static).render())
        # The field with no place in the wizard is named, not silently dropped.
        assert any(text.startswith("Left out") and "colour" in text for text in app.toasts)
        wizard.query_one("#name", Input).value = "fixed"
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wizard.step == 2
        code_note = str(wizard.query_one("#code-dir-note", Static).render())
        assert code_note == f"'{build.base / 'no-such-code'}' is not an existing directory"
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert wizard.step == 2


async def test_palette_has_the_command(build: DataBuilder) -> None:
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        command = commands["job: create from spec file…"]
        command.callback()
        await settle(pilot)
        assert isinstance(app.screen, SpecFileScreen)


# ---------------------------------------------------------------- traindeck create --from


async def test_create_from_opens_the_wizard_at_once(build: DataBuilder) -> None:
    folder = write_specs(build)
    app = TraindeckApp(build.ctx, create=str(folder / "good.yaml"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        wizard = app.screen
        assert isinstance(wizard, WizardScreen)
        assert wizard.query_one("#name", Input).value == "from-file"
        for _ in range(4):
            await pilot.press("ctrl+n")
            await settle(pilot)
        assert wizard.step == 5


async def test_create_from_a_missing_file_shows_the_prompt_with_the_error(
    build: DataBuilder, tmp_path: Path,
) -> None:
    missing = tmp_path / "missing.yaml"
    app = TraindeckApp(build.ctx, create=str(missing))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, SpecFileScreen)
        assert error_text(app) == f"{missing}: No such file or directory"
        assert app.screen.query_one("#spec-file-path", Input).value == str(missing)


async def test_create_without_a_file_opens_an_empty_wizard(ctx: Context) -> None:
    app = TraindeckApp(ctx, create="")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, WizardScreen)
        assert app.screen.query_one("#name", Input).value == ""


# ---------------------------------------------------------------- snapshot


def test_snapshot_prompt_with_a_yaml_error(snap_compare: Any, snap_build: DataBuilder,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_specs(snap_build)
    monkeypatch.chdir(snap_build.base)

    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        await type_path(pilot, "specs/broken.yaml")
        pilot.app.screen.query_one(Input).cursor_blink = False

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=run_before)


def test_create_command_line_reaches_the_tui_with_the_file() -> None:
    from app.cli.commands.runs import cmd_create
    from app.cli.main import build_parser

    args = build_parser().parse_args(["create", "--from", "spec.yaml"])
    assert (args.handler, args.from_file) == (cmd_create, "spec.yaml")
    assert build_parser().parse_args(["create"]).from_file is None
