"""The keys of the screen below, grouped by where they act (`?` or F1)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Static

from app.tui.widgets.footer import KeyFooter


@dataclass(frozen=True)
class HelpEntry:
    """One key and what it does."""

    key: str
    description: str
    enabled: bool


def _group_name(node: object, screen: Screen[object]) -> str:
    if node is screen.app:
        return "Everywhere"
    if node is screen:
        return screen.__class__.__name__.removesuffix("Screen").replace("JobDetail", "Job") + \
            " screen"
    name = getattr(node, "HELP_GROUP", None) or node.__class__.__name__
    return str(name)


GENERIC_KEYS = frozenset({
    "up", "down", "left", "right", "home", "end", "pageup", "pagedown", "ctrl+pageup",
    "ctrl+pagedown", "ctrl+home", "ctrl+end", "tab", "shift+tab", "ctrl+c", "super+c",
    "shift+up", "shift+down", "shift+left", "shift+right", "ctrl+q",
})
"""Keys every terminal user knows; the help says so in one line instead of listing them."""
CHROME = 10
"""Rows of the screen that are not the list of keys: the border, title, hint, footer."""
GENERIC_ACTIONS = frozenset({"select_cursor", "toggle_node", "select"})


def collect_help(screen: Screen[object]) -> dict[str, list[HelpEntry]]:
    """The bindings active on `screen`, grouped by owner: the screen, widgets, everywhere."""
    groups: dict[str, list[HelpEntry]] = {}
    seen: set[tuple[str, str]] = set()
    screen_group = _group_name(screen, screen)
    groups[screen_group] = []
    for active in screen.active_bindings.values():
        binding = active.binding
        if (not binding.description or binding.key in GENERIC_KEYS
                or binding.action in GENERIC_ACTIONS):
            continue
        group = _group_name(active.node, screen)
        display = screen.app.get_key_display(binding)
        if (group, binding.description) in seen:
            # One line per action: fold aliases (`?` and F1) into the first one.
            for i, entry in enumerate(groups[group]):
                if entry.description == binding.description and display not in entry.key:
                    groups[group][i] = HelpEntry(f"{entry.key}, {display}", entry.description,
                                                 entry.enabled)
            continue
        seen.add((group, binding.description))
        groups.setdefault(group, []).append(HelpEntry(display, binding.description,
                                                      active.enabled))
    # The app's own keys read best last.
    if "Everywhere" in groups:
        groups["Everywhere"] = groups.pop("Everywhere")
    return {name: entries for name, entries in groups.items() if entries}


class HelpScreen(ModalScreen[None]):
    """Lists the keys of the screen it was opened from."""

    CSS_PATH = "help.tcss"
    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help.close"),
        Binding("question_mark", "dismiss", "Close", show=False, id="help.close-question"),
        Binding("q", "dismiss", "Close", show=False, id="help.close-q"),
    ]

    def __init__(self, groups: dict[str, list[HelpEntry]], title: str = "Keys") -> None:
        super().__init__()
        self.groups = groups
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Label(self.title_text, id="help-title")
            with VerticalScroll(id="help-body"):
                for group, entries in self.groups.items():
                    yield Label(group, classes="help-group")
                    yield Static(self._render_entries(entries), classes="help-entries")
            yield Label("Arrows, PgUp/PgDn and Home/End move; tab moves between panes. "
                        "Dimmed keys are not available now: pressing one says why.",
                        id="help-hint")
        yield KeyFooter()

    def on_resize(self, event: events.Resize) -> None:
        """The keys scroll between the title and the hint, which stay in view."""
        self.query_one("#help-body").styles.max_height = max(3, event.size.height - CHROME)

    @staticmethod
    def _render_entries(entries: list[HelpEntry]) -> Text:
        text = Text()
        width = max((len(e.key) for e in entries), default=4) + 2
        for i, entry in enumerate(entries):
            if i:
                text.append("\n")
            style = "" if entry.enabled else "dim"
            text.append(entry.key.ljust(width), style=f"bold {style}".strip())
            text.append(entry.description, style=style)
        return text
