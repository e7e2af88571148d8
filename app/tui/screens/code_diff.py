"""The code of two versions side by side: which files of their snapshots differ and how.

The list names each added, removed or modified file; the selected file's unified diff is
shown beside it (below it on a narrow terminal; `z` gives the diff the whole screen).
Snapshots are read from the store by workers: the list once, then each file's diff
as it is selected. A binary file, or one too large to diff, is said to differ instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Header, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from app.tui.screens.first_show import FirstShow
from app.tui.themes import theme_colour
from app.tui.widgets.footer import KeyFooter

if TYPE_CHECKING:
    from app.context import Context
    from app.store.snapshot import Snapshot

MARKS = {"added": ("A", "success", "green"), "removed": ("D", "error", "red"),
         "modified": ("M", "warning", "yellow")}
"""How a change is marked in the list: letter, theme variable, fallback colour."""
MAX_DIFF_LINES = 5000
"""Lines of one file's diff drawn at most (laying out more would stall the screen)."""


@dataclass(frozen=True)
class ChangedFile:
    """One file that differs: its path in the snapshots, that path fit to print, how."""

    path: str
    shown: str
    change: str


class CodeDiffScreen(FirstShow, Screen[None]):
    """The files that differ between two versions' code snapshots, and their diffs."""

    CSS_PATH = "code_diff.tcss"
    AUTO_FOCUS = "#diff-files"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    """Below 100 columns the list goes above the diff."""
    BINDINGS = [
        Binding("escape", "back", "Back", id="code-diff.back"),
        Binding("z", "toggle_zoom", "Full diff", id="code-diff.zoom"),
        Binding("tab", "switch_focus", "Files/diff", id="code-diff.switch"),
        Binding("j", "cursor_down", "Down", show=False, id="code-diff.down"),
        Binding("k", "cursor_up", "Up", show=False, id="code-diff.up"),
    ]

    zoomed: reactive[bool] = reactive(False, init=False)
    """The diff takes the whole screen (the file list is hidden)."""

    class Listed(Message):
        """The changed files of the two snapshots, read by a worker (or why not)."""

        def __init__(self, files: list[ChangedFile], snapshots: tuple[Snapshot, Snapshot]
                     | None, note: str = "") -> None:
            super().__init__()
            self.files = files
            self.snapshots = snapshots
            self.note = note

    class DiffRead(Message):
        """One file's unified diff, read by a worker."""

        def __init__(self, path: str, diff: str) -> None:
            super().__init__()
            self.path = path
            self.diff = diff

    def __init__(self, ctx: Context, job: str, old: str, new: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.job = job
        self.old = old
        self.new = new
        self._files: list[ChangedFile] = []
        self._snapshots: tuple[Snapshot, Snapshot] | None = None
        self._shown_path: str | None = None

    def compose(self) -> ComposeResult:
        self.take_width_class()
        yield Header()
        yield Static(f"Reading the code of {self.job} {self.old} and {self.new}…",
                     id="diff-summary", markup=False)
        with Horizontal(id="diff-body"):
            yield OptionList(id="diff-files")
            with VerticalScroll(id="diff-scroll", can_focus=True):
                yield Static("", id="diff-text", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = f"code {self.job} {self.old} → {self.new}"
        self._list()

    # -- reading ---------------------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="code-diff-list")
    def _list(self) -> None:
        """Read both snapshots and what differs between them."""
        from app.errors import TraindeckError
        from app.jobs import version_snapshots
        from app.store.snapshot import changed_files, shown_path

        try:
            found = version_snapshots(self.ctx, self.job, [self.old, self.new])
        except TraindeckError as exc:
            self.post_message(self.Listed([], None, str(exc)))
            return
        missing = [label for label in (self.old, self.new) if label not in found]
        if missing:
            self.post_message(self.Listed([], None, f"{' and '.join(missing)} of {self.job} "
                                          "ran without a code snapshot: nothing to compare"))
            return
        pair = (found[self.old], found[self.new])
        files = [ChangedFile(path, shown_path(path), change)
                 for path, change in changed_files(*pair)]
        self.post_message(self.Listed(files, pair))

    @work(thread=True, exclusive=True, exit_on_error=False, group="code-diff-file")
    def _read_diff(self, pair: tuple[Snapshot, Snapshot], path: str) -> None:
        """Read one file of both snapshots and diff it."""
        from app.store.snapshot import file_diff

        try:
            diff = file_diff(*pair, path)
        except OSError as exc:
            diff = f"cannot read the stored copy: {exc.strerror or exc}"
        if not get_current_worker().is_cancelled:
            self.post_message(self.DiffRead(path, diff))

    @on(Listed)
    def _listed(self, message: Listed) -> None:
        self._files, self._snapshots = message.files, message.snapshots
        summary = self.query_one("#diff-summary", Static)
        files = self.query_one("#diff-files", OptionList)
        files.clear_options()
        if message.snapshots is None or not message.files:
            note = message.note or (f"The code of {self.old} and {self.new} is the same "
                                     "snapshot.")
            summary.update(Text(f"{self.job} {self.old} → {self.new}: {note}"))
            self.query_one("#diff-text", Static).update("")
            return
        counts = {change: sum(f.change == change for f in message.files) for change in MARKS}
        text = Text()
        text.append(f"{self.job} {self.old} → {self.new}", style="bold")
        text.append(f" · {len(message.files)} file{'s' if len(message.files) != 1 else ''}"
                    " differ: " + ", ".join(f"{n} {change}" for change, n in counts.items()
                                            if n))
        summary.update(text)
        files.add_options([Option(self._file_label(f), id=str(i))
                           for i, f in enumerate(message.files)])
        files.highlighted = 0

    def _file_label(self, changed: ChangedFile) -> Text:
        letter, variable, fallback = MARKS[changed.change]
        text = Text()
        text.append(f"{letter} ", style=f"bold {theme_colour(self.app, variable, fallback)}")
        text.append(changed.shown)
        return text

    @on(OptionList.OptionHighlighted, "#diff-files")
    def _file_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if self._snapshots is None or event.option_index >= len(self._files):
            return
        path = self._files[event.option_index].path
        if path != self._shown_path:
            self._shown_path = path
            self._read_diff(self._snapshots, path)

    @on(DiffRead)
    def _diff_read(self, message: DiffRead) -> None:
        if message.path != self._shown_path:
            return  # read for a file since left; the current one's worker follows
        self.query_one("#diff-text", Static).update(self.coloured(message.diff))
        self.query_one("#diff-scroll", VerticalScroll).scroll_home(animate=False)

    def coloured(self, diff: str) -> Text:
        """The diff with added lines in the theme's success colour, removed ones in its
        error colour and hunk headers in its accent."""
        added = theme_colour(self.app, "success", "green")
        removed = theme_colour(self.app, "error", "red")
        hunk = theme_colour(self.app, "accent", "cyan")
        text = Text(no_wrap=False)
        if not diff:
            return Text("(only the file's permission bits differ)", style="dim")
        lines = diff.splitlines(keepends=True)
        for line in lines[:MAX_DIFF_LINES]:
            if line.startswith(("+++", "---")):
                style = "bold"
            elif line.startswith("+"):
                style = added
            elif line.startswith("-"):
                style = removed
            elif line.startswith("@@"):
                style = hunk
            elif line.startswith(" "):
                style = ""
            else:
                style = "italic"  # binary, too large, mode changes, "\ No newline"
            text.append(line, style=style)
        if len(lines) > MAX_DIFF_LINES:
            more = len(lines) - MAX_DIFF_LINES
            text.append(f"… {more} more line{'s' if more != 1 else ''} not shown",
                        style="italic")
        text.rstrip()
        return text

    # -- actions ---------------------------------------------------------------------------

    def watch_zoomed(self, zoomed: bool) -> None:
        files = self.query_one("#diff-files", OptionList)
        files.display = not zoomed
        if zoomed:
            self.query_one("#diff-scroll").focus()
        else:
            files.focus()

    def action_back(self) -> None:
        """Back to where the diff was opened."""
        self.app.pop_screen()

    def action_toggle_zoom(self) -> None:
        """Give the diff the whole screen, or show the file list again."""
        self.zoomed = not self.zoomed

    def action_switch_focus(self) -> None:
        """Put the keys on the file list or on the diff."""
        files = self.query_one("#diff-files", OptionList)
        if files.has_focus or not files.display:
            self.query_one("#diff-scroll").focus()
        else:
            files.focus()

    def action_cursor_down(self) -> None:
        """Next file (or scroll the diff down)."""
        self._move(1)

    def action_cursor_up(self) -> None:
        """Previous file (or scroll the diff up)."""
        self._move(-1)

    def _move(self, step: int) -> None:
        files = self.query_one("#diff-files", OptionList)
        if files.has_focus:
            files.action_cursor_down() if step > 0 else files.action_cursor_up()
        else:
            scroll = self.query_one("#diff-scroll", VerticalScroll)
            scroll.scroll_relative(y=step, animate=False)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("code diff: full diff", "Hide or show the file list",
                            self.action_toggle_zoom)
        yield SystemCommand("code diff: back", "Close the code diff", self.action_back)
