"""Status colours (theme variables) and the status badge text used in every list.

The colours are theme variables (`$status-running`, ...): the app declares the defaults
below through `App.get_theme_variable_defaults`, and a theme may override any of them.
Tables and trees draw Rich text, so they read the resolved values from the app.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import App
from textual.color import Color, ColorParseError

STATUS_COLOURS: dict[str, str] = {
    "initializing": "#8f96a3",
    "queued": "#d9a520",
    "running": "#3d9be9",
    "succeeded": "#4cb963",
    "failed": "#e5484d",
    "stopped": "#b080d8",
}
"""Default colour of each status; themes override `status-<name>`."""

STATUS_GLYPHS: dict[str, str] = {
    "initializing": "◌",
    "queued": "◷",
    "running": "●",
    "succeeded": "✔",
    "failed": "✖",
    "stopped": "■",
}
"""A shape per status, so status reads without colour too (ANSI themes, colour blindness)."""


def theme_variable_defaults() -> dict[str, str]:
    """`status-<name>` → colour, for `App.get_theme_variable_defaults`."""
    return {f"status-{name}": colour for name, colour in STATUS_COLOURS.items()}


def status_colour(app: App[object] | None, status: str) -> str:
    """The colour the current theme gives `status` (the default when no app is running)."""
    default = STATUS_COLOURS.get(status, "#8f96a3")
    if app is None:
        return default
    return _rich_colour(app.theme_variables.get(f"status-{status}"), default)


def _rich_colour(value: str | None, default: str) -> str:
    """A theme colour (`ansi_red`, `#3d9be9`, `red 50%`) as Rich reads it.

    The same conversion as `app.tui.themes.rich_colour`, kept here because that module
    pulls in pydantic and the settings, which the first frame of the job list must not
    wait for.
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


def status_text(app: App[object] | None, status: str, *, bold: bool = False) -> Text:
    """`● running` in the status colour."""
    if not status:
        return Text("—", style="dim")
    glyph = STATUS_GLYPHS.get(status, "·")
    style = status_colour(app, status) + (" bold" if bold else "")
    return Text(f"{glyph} {status}", style=style)
