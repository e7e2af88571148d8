"""User themes: the shipped files, bad files named with their field, fallback, remembering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Footer, Label
from tui_data import DataBuilder, sample_job, settle
from tui_helpers import GpusHost, make_board

from app.config import Settings, load_settings
from app.errors import ConfigError
from app.tui.app import TraindeckApp
from app.tui.themes import (
    apply_theme,
    install_themes,
    load_theme_file,
    load_user_themes,
    remember_theme,
    rich_colour,
    shipped_theme_dirs,
    theme_dirs,
    user_theme_dir,
)
from app.tui.widgets.status import theme_variable_defaults

SIZE = (120, 40)
SHIPPED = ("traindeck-ansi", "traindeck-night", "traindeck-paper")
GOOD = {"name": "lab-green", "dark": True, "primary": "#3fae6a", "background": "#101510",
        "status-running": "#3fae6a"}



def register_themes(app: App[Any], settings: Settings, dirs: list[Path]) -> list[str]:
    """Install the themes in `dirs` and apply `settings.theme`, as the app does once it has
    read its theme files; returns the errors it would show."""
    themes, errors = load_user_themes(dirs)
    install_themes(app, themes)
    error = apply_theme(app, settings.theme)
    return [*errors, error] if error else errors


def write_theme(folder: Path, file_name: str, data: Any) -> Path:
    """Write a theme file (YAML text as given when `data` is a str)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path



class HostApp(App[None]):
    """A bare app with the status colour defaults, as the Traindeck app declares them."""

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return theme_variable_defaults()

    def compose(self) -> ComposeResult:
        yield Label("hello")
        yield Footer()


# ---------------------------------------------------------------- loading


def test_shipped_themes_load_cleanly() -> None:
    themes, errors = load_user_themes(shipped_theme_dirs())
    assert errors == []
    by_name = {t.name: t for t in themes}
    assert set(SHIPPED) <= set(by_name)
    assert by_name["traindeck-night"].dark and not by_name["traindeck-night"].ansi
    assert not by_name["traindeck-paper"].dark
    ansi = by_name["traindeck-ansi"]
    assert ansi.ansi
    colours = [ansi.primary, ansi.background, *(
        value for key, value in ansi.variables.items() if not key.endswith("text-style"))]
    assert all(c.startswith("ansi_") for c in colours if c is not None)
    for theme in themes:
        assert {f"status-{s}" for s in ("queued", "running", "failed")} <= set(theme.variables)


def test_theme_file_becomes_a_textual_theme(tmp_path: Path) -> None:
    path = write_theme(tmp_path, "green.yaml", {**GOOD, "boolean": "#ff00ff",
                                                "variables": {"footer-key-foreground": "red"}})
    theme = load_theme_file(path)
    assert theme.name == "lab-green" and theme.primary == "#3fae6a" and not theme.ansi
    assert theme.variables == {"status-running": "#3fae6a", "boolean": "#ff00ff",
                               "footer-key-foreground": "red"}


@pytest.mark.parametrize(("data", "expected"), [
    ({**GOOD, "primary": "greenish"}, "primary: 'greenish' is not a colour"),
    ({k: v for k, v in GOOD.items() if k != "primary"}, "primary: required"),
    ({**GOOD, "status-failed": "#12345"}, "status-failed: '#12345' is not a colour"),
    ({**GOOD, "primery": "#fff"}, "primery: unknown field"),
    ({**GOOD, "name": "Lab Green"}, "name: 'Lab Green' must be lower-case"),
    ({**GOOD, "name": "nord"}, "name: 'nord' is a built-in theme"),
    ({**GOOD, "dark": "sometimes"}, "dark: Input should be a valid boolean"),
    ({**GOOD, "variables": {"border": "blurple"}}, "variables: border: 'blurple' is not"),
    ({**GOOD, "variables": {"block-cursor-text-style": "shiny"}},
     "variables: block-cursor-text-style: 'shiny' is not a text style"),
    ("name: x\nprimary: [1, 2\n", "line 3: "),
    ("- just\n- a list\n", "a theme file must be a YAML mapping"),
])
def test_bad_theme_file_names_file_and_field(tmp_path: Path, data: Any, expected: str) -> None:
    path = write_theme(tmp_path, "broken.yaml", data)
    themes, errors = load_user_themes([tmp_path])
    assert themes == []
    assert len(errors) == 1
    assert errors[0].startswith(f"{path}: ")
    assert expected in errors[0]


def test_bad_file_does_not_hide_good_ones(tmp_path: Path) -> None:
    write_theme(tmp_path, "a-broken.yaml", {**GOOD, "name": "other", "primary": "nope"})
    write_theme(tmp_path, "b-good.yaml", GOOD)
    themes, errors = load_user_themes([tmp_path, tmp_path / "missing"])
    assert [t.name for t in themes] == ["lab-green"]
    assert len(errors) == 1 and "a-broken.yaml: primary:" in errors[0]


def test_later_folder_wins_same_folder_twice_is_an_error(tmp_path: Path) -> None:
    write_theme(tmp_path / "shipped", "green.yaml", GOOD)
    write_theme(tmp_path / "user", "a-green.yaml", {**GOOD, "primary": "#000000"})
    copy = write_theme(tmp_path / "user", "b-green.yaml", {**GOOD, "primary": "#ffffff"})
    themes, errors = load_user_themes([tmp_path / "shipped", tmp_path / "user"])
    assert [(t.name, t.primary) for t in themes] == [("lab-green", "#000000")]
    assert errors == [f"{copy}: name: 'lab-green' is also declared by a-green.yaml"]


def test_search_dirs_are_shipped_then_config(home: Path) -> None:
    dirs = theme_dirs()
    assert dirs[-1] == home / "themes" == user_theme_dir()
    assert any((d / "traindeck-ansi.yaml").is_file() for d in dirs[:-1])


def test_rich_colour() -> None:
    assert rich_colour("ansi_blue") == "color(4)"
    assert rich_colour("ansi_bright_red") == "color(9)"
    assert rich_colour("ansi_default") == "default"
    assert rich_colour("#3d9be9").lower() == "#3d9be9"
    assert rich_colour("red 50%").lower() == "#ff0000"
    assert rich_colour("bogus", "green") == "green"
    assert rich_colour(None, "green") == "green"


# ---------------------------------------------------------------- registering, falling back


async def test_register_applies_configured_theme(tmp_path: Path) -> None:
    write_theme(tmp_path, "green.yaml", GOOD)
    app = HostApp()
    async with app.run_test(size=SIZE) as pilot:
        errors = register_themes(app, Settings(theme="lab-green"),
                                 [*shipped_theme_dirs(), tmp_path])
        await pilot.pause()
        assert errors == []
        assert app.theme == "lab-green"
        assert app.theme_variables["status-running"] == "#3fae6a"
        assert {"traindeck-night", "traindeck-paper", "traindeck-ansi"} <= set(
            app.available_themes)


async def test_bad_configured_theme_falls_back_with_errors(tmp_path: Path) -> None:
    path = write_theme(tmp_path, "green.yaml", {**GOOD, "primary": "greenish"})
    app = HostApp()
    async with app.run_test(size=SIZE) as pilot:
        errors = register_themes(app, Settings(theme="lab-green"), [tmp_path])
        await pilot.pause()
        assert app.theme == "textual-dark"
        assert len(errors) == 2
        assert errors[0].startswith(f"{path}: primary: ")
        assert errors[1].startswith("theme 'lab-green' not found")
        assert errors[1].endswith("using textual-dark")


@pytest.mark.parametrize("name", SHIPPED)
async def test_every_shipped_theme_applies(name: str) -> None:
    app = HostApp()
    async with app.run_test(size=SIZE) as pilot:
        assert register_themes(app, Settings(theme=name), shipped_theme_dirs()) == []
        await pilot.pause()
        assert app.theme == name
        assert app.query_one(Label).styles.color is not None


def test_snapshot_gpus_under_ansi_theme(snap_compare: Any, snap_build: DataBuilder) -> None:
    make_board(snap_build)

    async def ansi(pilot: Pilot[Any]) -> None:
        assert register_themes(pilot.app, Settings(theme="traindeck-ansi"),
                               shipped_theme_dirs()) == []
        await settle(pilot)

    assert snap_compare(GpusHost(snap_build.ctx), terminal_size=SIZE, run_before=ansi)


def test_snapshot_app_under_ansi_theme(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)
    snap_build.ctx.settings.theme = "traindeck-ansi"  # as `theme:` in config.yaml does

    async def ansi(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        assert pilot.app.theme == "traindeck-ansi"
        # Rows read before the theme files were in keep their colours until redrawn.
        await pilot.press("ctrl+r")
        await settle(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=ansi)


# ---------------------------------------------------------------- remembering


def test_remember_theme_keeps_other_keys_and_comments(home: Path) -> None:
    config = home / "config.yaml"
    config.write_text("# my lab\ngpus: [0, 1]\ntheme: nord  # was\ndefault_runtime: local\n")
    assert remember_theme("traindeck-paper") == config
    assert config.read_text() == ("# my lab\ngpus: [0, 1]\ntheme: traindeck-paper\n"
                                  "default_runtime: local\n")
    settings = load_settings()
    assert settings.theme == "traindeck-paper"
    assert settings.gpus == [0, 1] and settings.default_runtime == "local"
    assert [p.name for p in home.iterdir() if p.name.startswith(".config")] == []


def test_remember_theme_adds_the_key_or_the_file(home: Path) -> None:
    config = home / "config.yaml"
    remember_theme("traindeck-night")
    assert config.read_text() == "theme: traindeck-night\n"
    config.write_text("gpus: [0]")
    remember_theme("traindeck-ansi")
    assert yaml.safe_load(config.read_text()) == {"gpus": [0], "theme": "traindeck-ansi"}


def test_remember_theme_refuses_to_damage_a_config(home: Path) -> None:
    config = home / "config.yaml"
    config.write_text("gpus: [0, 1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        remember_theme("traindeck-night")
    assert config.read_text() == "gpus: [0, 1\n"
    with pytest.raises(ConfigError, match="plain YAML value"):
        remember_theme("a: b")
