"""User themes: YAML files turned into Textual themes, and remembering the chosen one.

A theme file names Textual's base colours, the status colours (`status-running`, ...,
theme variables that CSS reads as `$status-running`), a `boolean` colour for true/false
values, and any other Textual variable under `variables:`. Files are read from the themes
shipped with Traindeck and from `<config dir>/themes/`; a later file of the same name wins,
so users can restyle a shipped theme. A bad file never stops the app: it is skipped and
reported in one line naming the file and the field.

Loading (`load_user_themes`) touches only files, so it can run in a thread worker;
`install_themes` and `apply_theme` must run on the UI thread.
"""

from __future__ import annotations

import os
import re
import site
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from textual.color import Color, ColorParseError
from textual.theme import BUILTIN_THEMES, Theme

from app.config import APP_NAME, config_dir, config_file
from app.errors import ConfigError

if TYPE_CHECKING:
    from textual.app import App

THEME_SUFFIXES = (".yaml", ".yml")
STATUS_NAMES = ("initializing", "queued", "running", "succeeded", "failed", "stopped")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
VARIABLE_PATTERN = re.compile(r"[a-z][a-z0-9-]*")
TEXT_STYLE_WORDS = frozenset({
    "none", "not", "bold", "b", "italic", "i", "underline", "u", "strike", "s", "reverse", "r",
    "dim", "d", "blink", "overline", "o",
})


def _colour(value: str) -> str:
    """A colour as Textual reads it (`#1e2030`, `ansi_blue`, `rgb(1,2,3)`, `red`)."""
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{value!r} is not a colour (try #rrggbb or ansi_blue)") from None
    return value


def _variable_value(name: str, value: str) -> str:
    """Check one extra variable: a text style, or a colour with an optional `NN%` alpha."""
    if name.endswith("text-style"):
        if not value.split() or not set(value.split()) <= TEXT_STYLE_WORDS:
            raise ValueError(f"{name}: {value!r} is not a text style (e.g. bold, reverse)")
        return value
    colour, _, alpha = value.strip().partition(" ")
    if alpha and not re.fullmatch(r"\d{1,3}%", alpha.strip()):
        raise ValueError(f"{name}: {value!r} is not a colour with an optional NN% alpha")
    try:
        Color.parse(colour)
    except ColorParseError:
        raise ValueError(f"{name}: {value!r} is not a colour") from None
    return value


def _variables(values: dict[str, str]) -> dict[str, str]:
    for name, value in values.items():
        if not VARIABLE_PATTERN.fullmatch(name):
            raise ValueError(f"{name!r} is not a variable name (lower-case words and '-')")
        _variable_value(name, value)
    return values


def _theme_name(value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} must be lower-case letters, digits, '-' or '_'")
    if value in BUILTIN_THEMES:
        raise ValueError(f"{value!r} is a built-in theme; choose another name")
    return value


Colour = Annotated[str, AfterValidator(_colour)]


class ThemeFile(BaseModel):
    """The contents of one theme YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: Annotated[str, AfterValidator(_theme_name)]
    """How the theme is picked (palette, `theme:` in config.yaml)."""
    dark: bool = True
    """True for a dark background."""
    ansi: bool | None = None
    """Use the terminal's own 16 colours; default: true when `primary` is an `ansi_` colour."""
    primary: Colour
    """Main accent: focus, selection, titles."""
    secondary: Colour | None = None
    accent: Colour | None = None
    background: Colour | None = None
    surface: Colour | None = None
    panel: Colour | None = None
    foreground: Colour | None = None
    success: Colour | None = None
    warning: Colour | None = None
    error: Colour | None = None
    boolean: Colour | None = None
    """Colour of true/false values in specs and parameters (variable `boolean`)."""
    status_initializing: Colour | None = Field(None, alias="status-initializing")
    status_queued: Colour | None = Field(None, alias="status-queued")
    status_running: Colour | None = Field(None, alias="status-running")
    status_succeeded: Colour | None = Field(None, alias="status-succeeded")
    status_failed: Colour | None = Field(None, alias="status-failed")
    status_stopped: Colour | None = Field(None, alias="status-stopped")
    variables: Annotated[dict[str, str], AfterValidator(_variables)] = Field(
        default_factory=dict)
    """Any other Textual theme variable (`block-cursor-background`, `footer-key-foreground`)."""

    def to_theme(self) -> Theme:
        """The Textual theme this file describes."""
        variables: dict[str, str] = {}
        for status in STATUS_NAMES:
            colour = getattr(self, f"status_{status}")
            if colour is not None:
                variables[f"status-{status}"] = colour
        if self.boolean is not None:
            variables["boolean"] = self.boolean
        ansi = self.ansi if self.ansi is not None else self.primary.startswith("ansi_")
        if ansi:
            # Textual's own CSS reads these under ANSI themes; a theme without them breaks.
            variables["ansi-background"] = "ansi_default"
            variables["ansi-foreground"] = "ansi_default"
        variables.update(self.variables)
        return Theme(
            name=self.name, primary=self.primary, secondary=self.secondary,
            accent=self.accent, background=self.background, surface=self.surface,
            panel=self.panel, foreground=self.foreground, success=self.success,
            warning=self.warning, error=self.error, dark=self.dark, ansi=ansi,
            variables=variables,
        )


def shipped_theme_dirs() -> list[Path]:
    """Folders of the themes that come with Traindeck (checkout, or installed data files)."""
    candidates = [
        Path(__file__).resolve().parents[2] / "themes",
        Path(sys.prefix) / "share" / APP_NAME / "themes",
        Path(site.getuserbase()) / "share" / APP_NAME / "themes",
    ]
    return [d for d in dict.fromkeys(candidates) if d.is_dir()]


def user_theme_dir() -> Path:
    """Where users put their own themes."""
    return config_dir() / "themes"


def theme_dirs() -> list[Path]:
    """Every folder themes are read from, shipped first (a user's file of the same name wins)."""
    return [*shipped_theme_dirs(), user_theme_dir()]


def _field_name(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "theme"


def load_theme_file(path: Path) -> Theme:
    """Read and check one theme file; ConfigError names the file and the field at fault."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else "YAML"
        raise ConfigError(f"{path}: {where}: {exc.problem or 'invalid YAML'}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a theme file must be a YAML mapping")
    try:
        return ThemeFile.model_validate(data).to_theme()
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown field (put extra Textual variables under `variables:`)"
        elif first["type"] == "missing":
            message = "required"
        raise ConfigError(f"{path}: {_field_name(first['loc'])}: {message}") from exc


def load_user_themes(dirs: Iterable[Path]) -> tuple[list[Theme], list[str]]:
    """Every valid theme under `dirs`, and one line per bad file (naming file and field).

    Missing folders are fine. When two files declare one name, the later folder wins; two
    files of one name in the same folder are an error for the second.
    """
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for folder in dirs:
        try:
            files = sorted(p for p in folder.iterdir()
                           if p.suffix in THEME_SUFFIXES and p.is_file())
        except FileNotFoundError:
            continue
        except OSError as exc:
            errors.append(f"{folder}: {exc.strerror or exc}")
            continue
        seen_here: dict[str, Path] = {}
        for path in files:
            try:
                theme = load_theme_file(path)
            except ConfigError as exc:
                errors.append(str(exc))
                continue
            if theme.name in seen_here:
                errors.append(f"{path}: name: {theme.name!r} is also declared by "
                              f"{seen_here[theme.name].name}")
                continue
            seen_here[theme.name] = path
            themes[theme.name] = theme
    return list(themes.values()), errors


def install_themes(app: App[Any], themes: Sequence[Theme]) -> None:
    """Register `themes` with the app (UI thread)."""
    for theme in themes:
        app.register_theme(theme)


def apply_theme(app: App[Any], name: str) -> str | None:
    """Switch to theme `name`; when it is unknown keep the current one and say so."""
    if not name or name == app.theme:
        return None
    if name not in app.available_themes:
        return (f"theme {name!r} not found (built-in themes, or YAML files in "
                f"{user_theme_dir()}); using {app.theme}")
    app.theme = name
    return None


def rich_colour(value: str | None, default: str = "default") -> str:
    """A theme colour (`ansi_blue`, `#3d9be9`, `red 50%`) as a Rich style colour.

    Textual names the terminal's own colours `ansi_*`; Rich does not read those, so text
    drawn with Rich styles (tables, badges) goes through here.
    """
    if not value:
        return default
    try:
        colour = Color.parse(value.split()[0])
    except ColorParseError:
        return default
    if colour.ansi is not None:
        return "default" if colour.ansi < 0 else f"color({colour.ansi})"
    return colour.hex


def theme_colour(app: App[Any] | None, variable: str, default: str) -> str:
    """The current theme's `variable` as a Rich colour (`default` when it has none)."""
    if app is None:
        return default
    return rich_colour(app.theme_variables.get(variable), default)


_THEME_LINE = re.compile(r"^theme[ \t]*:.*$", re.MULTILINE)


def remember_theme(name: str) -> Path:
    """Write `theme: <name>` into the config file, keeping every other line as it is.

    The file is replaced atomically (a temporary file renamed over it), so a crash never
    leaves half a config. Returns the file written. Raises ConfigError on failure.
    """
    target = config_file()
    line = f"theme: {name}"
    try:
        plain = yaml.safe_load(line) == {"theme": name}
    except yaml.YAMLError:
        plain = False
    if not plain:
        raise ConfigError(f"theme: {name!r} cannot be written as a plain YAML value")
    try:
        text = target.read_text(encoding="utf-8") if target.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: {exc}") from exc
    if _THEME_LINE.search(text):
        new_text = _THEME_LINE.sub(line, text, count=1)
    else:
        new_text = text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"
    try:
        data = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{target}: not valid YAML, theme not saved") from exc
    if not isinstance(data, dict) or data.get("theme") != name:
        raise ConfigError(f"{target}: could not set `theme:` in this file; edit it by hand")
    _atomic_write(target, new_text)
    return target


def _atomic_write(target: Path, text: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o7777 if target.exists() else None
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if mode is not None:
                os.chmod(temp, mode)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"{target}: {exc.strerror or exc}") from exc
