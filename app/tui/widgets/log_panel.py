"""A version's log: the tail of a rank's file at once, then new lines as they are written.

A timer starts a short thread worker a few times a second that reads what was appended
(`app.logs.LogFollower`, a bounded number of bytes); the lines go through a bounded queue
into a `Log` widget in one batch, so a job printing 100k lines a second costs a few
writes a second and memory never grows past `MAX_LINES`. While paused, only the newest
`MAX_LINES` wait.

Each line's stamp shows as the local time of day by default (`t` cycles: time of day,
the stored UTC stamp, none), so that on a narrow terminal the text keeps the width.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Log, Select, Static
from textual.worker import get_current_worker

from app.logs import STAMP_STYLES, StampFormatter

if TYPE_CHECKING:
    from app.logs import LogFollower

MAX_LINES = 10_000
"""Lines kept on screen (and at most waiting in the queue)."""
TAIL_LINES = 5_000
"""Lines read from the end of the file when it is opened."""
TICK_SECONDS = 0.25
"""How often new lines are read and moved into the view."""
READ_BYTES = 4 * 1024 * 1024
"""Bytes read per call of the follower."""
TICK_BYTES = 32 * 1024 * 1024
"""Bytes read at most per tick (a job writing faster than 128 MB/s falls behind)."""
STAMP_NAMES = {"time": "local time of day", "full": "UTC, as stored", "off": "hidden"}
"""What each stamp style is called when `t` switches to it."""
RANK_RESCAN_TICKS = 20
"""Every this many ticks, look for rank files that appeared since opening."""


class LogPanel(Vertical):
    """The Logs tab: rank picker, follow/pause, search, and the lines."""

    HELP_GROUP = "Logs"
    BINDINGS = [
        Binding("f", "toggle_follow", "Follow/pause", id="logs.follow"),
        # (`t` is TensorBoard on the whole job screen: one key, one meaning)
        Binding("s", "cycle_stamps", "Stamps", id="logs.stamps"),
        Binding("slash", "search", "Search log", id="logs.search"),
        Binding("n", "next_match", "Next match", show=False, id="logs.next-match"),
        Binding("N", "previous_match", "Previous match", show=False, id="logs.previous-match"),
        Binding("escape", "end_search", "End search", show=False, id="logs.end-search"),
        Binding("right_square_bracket", "next_rank", "Next rank", show=False,
                id="logs.next-rank"),
        Binding("left_square_bracket", "previous_rank", "Previous rank", show=False,
                id="logs.previous-rank"),
    ]

    following: reactive[bool] = reactive(True, init=False)
    """New lines scroll into view; False holds the view still (lines wait in the queue)."""
    search_text: reactive[str] = reactive("", init=False)
    """What `/` looks for in the lines on screen (empty: no search)."""
    stamps: reactive[str] = reactive("time", init=False)
    """How line stamps show: `time` (local time of day), `full` (UTC, as stored), `off`."""

    class Opened(Message):
        """The tail of a rank's log was read."""

        def __init__(self, generation: int, ranks: list[int], rank: int | None,
                     path: Path | None, lines: list[str], offset: int) -> None:
            super().__init__()
            self.generation = generation
            self.ranks = ranks
            self.rank = rank
            self.path = path
            self.lines = lines
            self.offset = offset

    class LinesRead(Message):
        """New lines of the followed file (and the rank files, when looked for)."""

        def __init__(self, generation: int, lines: list[str], skipped: int,
                     ranks: list[int] | None) -> None:
            super().__init__()
            self.generation = generation
            self.lines = lines
            self.skipped = skipped
            self.ranks = ranks

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._generation = 0
        self._log_dir: str | None = None
        self._ranks: list[int] = []
        self._rank: int | None = None
        self._path: Path | None = None
        self._queue: deque[str] = deque(maxlen=MAX_LINES)
        self._skipped = 0
        self._follower: LogFollower | None = None
        self._reading = False
        self._ticks = 0
        self._matches: list[int] = []
        self._match_index = -1
        self._format = StampFormatter(self.stamps)

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-bar"):
            yield Static("", id="log-state")
            yield Select[int]([], id="log-rank", allow_blank=True, prompt="rank",
                              compact=True)
        yield Input(placeholder="search the lines on screen; enter: find, esc: done",
                    id="log-search")
        yield Static("", id="log-empty", classes="empty-state")
        yield Log(id="log-view", max_lines=MAX_LINES, highlight=False, auto_scroll=True)

    def on_mount(self) -> None:
        self.query_one("#log-search").display = False
        self.query_one("#log-rank").display = False
        self.query_one("#log-empty").display = False
        self.set_interval(TICK_SECONDS, self._tick)

    # -- opening ---------------------------------------------------------------------------

    def open(self, log_dir: str | None, rank: int | None = None, *, again: bool = False) -> None:
        """Show the log of the version whose rank files live in `log_dir` (`again`: read
        it anew even when it is the one shown)."""
        if log_dir == self._log_dir and rank == self._rank and self._generation and not again:
            return
        self._log_dir = log_dir
        self._generation += 1
        self._queue.clear()
        self._skipped = 0
        self._follower = None
        self._matches, self._match_index = [], -1
        self.query_one("#log-view", Log).clear()
        self._update_state()
        if log_dir:
            self._read_tail(self._generation, log_dir, rank)
        else:
            self._show_empty("This version has no log folder.")

    @work(thread=True, exclusive=True, exit_on_error=False, group="log-open")
    def _read_tail(self, generation: int, log_dir: str, rank: int | None) -> None:
        """List rank files and read the chosen one's tail (cost bounded by TAIL_LINES)."""
        from app.logs import list_rank_logs, rank_log_path, tail

        ranks = [r for r, _ in list_rank_logs(Path(log_dir))]
        if rank is None or rank not in ranks:
            rank = ranks[0] if ranks else 0
        path = rank_log_path(Path(log_dir), rank)
        lines, offset = tail(path, TAIL_LINES)
        if not get_current_worker().is_cancelled:
            self.post_message(self.Opened(generation, ranks, rank, path, lines, offset))

    @on(Opened)
    def _opened(self, message: Opened) -> None:
        if message.generation != self._generation:
            return
        self._rank, self._path = message.rank, message.path
        self._set_ranks(message.ranks)
        log = self.query_one("#log-view", Log)
        log.clear()
        if message.lines:
            log.write_lines(self._format.lines(message.lines))
        if message.ranks or message.lines:
            self.query_one("#log-empty").display = False
        else:
            self._show_empty("No log lines yet: they appear here as soon as the run writes.")
        self._update_state()
        if message.path is not None:
            from app.logs import LogFollower

            self._follower = LogFollower(message.path, message.offset)

    def _show_empty(self, text: str) -> None:
        empty = self.query_one("#log-empty", Static)
        empty.update(text)
        empty.display = True

    def _set_ranks(self, ranks: list[int]) -> None:
        self._ranks = ranks
        select = self.query_one("#log-rank", Select)
        select.set_options([(f"rank {r}", r) for r in ranks])
        if self._rank in ranks:
            with select.prevent(Select.Changed):
                select.value = self._rank
        select.display = len(ranks) > 1

    def _tick(self) -> None:
        """Start one bounded read of new lines, unless one is still under way or another
        screen (a dialog) is over this one."""
        if self._follower is None or self._reading or not self.screen.is_active:
            return
        self._reading = True
        self._ticks += 1
        rescan = self._ticks % RANK_RESCAN_TICKS == 0
        self._read_new(self._generation, self._follower, rescan)

    @work(thread=True, exclusive=True, exit_on_error=False, group="log-follow")
    def _read_new(self, generation: int, follower: LogFollower, rescan: bool) -> None:
        """Read what was appended since the last tick (at most TICK_BYTES)."""
        from app.logs import list_rank_logs

        lines: list[str] = []
        skipped = 0
        for _ in range(TICK_BYTES // READ_BYTES):
            chunk = follower.read_new(READ_BYTES)
            if not chunk:
                break
            lines.extend(chunk)
            if len(lines) > MAX_LINES:
                skipped += len(lines) - MAX_LINES
                del lines[:-MAX_LINES]
        ranks = [r for r, _ in list_rank_logs(follower.path.parent)] if rescan else None
        self.post_message(self.LinesRead(generation, lines, skipped, ranks))

    @on(LinesRead)
    def _lines_read(self, message: LinesRead) -> None:
        self._reading = False
        if message.generation != self._generation:
            return
        if message.ranks is not None and message.ranks != self._ranks:
            self.query_one("#log-empty").display = False
            self._set_ranks(message.ranks)
        overflow = len(self._queue) + len(message.lines) - MAX_LINES
        self._skipped += message.skipped + max(0, overflow)
        self._queue.extend(message.lines)
        self._drain()

    def _drain(self) -> None:
        """Move waiting lines into the view, in one write."""
        if not self.following or not self._queue:
            return
        batch = list(self._queue)
        self._queue.clear()
        log = self.query_one("#log-view", Log)
        if self._skipped > 0:
            batch.insert(0, f"… {self._skipped:,} lines skipped: they came faster than the "
                            "screen shows them (the file has them all)")
            self._skipped = 0
        if len(batch) >= MAX_LINES:
            log.clear()
        self.query_one("#log-empty").display = False
        log.write_lines(self._format.lines(batch))
        self._update_state()

    # -- state -----------------------------------------------------------------------------

    def _update_state(self) -> None:
        log = self.query_one("#log-view", Log)
        parts: list[str] = []
        parts.append("● following" if self.following else "❚❚ paused — f follows")
        if self._path is not None:
            parts.append(self._path.name)
        parts.append(f"{log.line_count:,} lines")
        waiting = len(self._queue)
        if not self.following and waiting:
            parts.append(f"{waiting:,} new waiting")
        if self.search_text:
            found = len(self._matches)
            where = f"{self._match_index + 1}/{found}" if found else "no match"
            parts.append(f"“{self.search_text}” {where} — n/N")
        text = "   ·   ".join(parts)
        state = self.query_one("#log-state", Static)
        if str(state.content) != text:
            state.update(text)

    def watch_following(self, following: bool) -> None:
        log = self.query_one("#log-view", Log)
        log.auto_scroll = following
        if following:
            self._drain()
            log.scroll_end(animate=False)
        self._update_state()

    # -- actions ---------------------------------------------------------------------------

    def action_cycle_stamps(self) -> None:
        """Show line stamps as local time of day, then as stored (UTC), then not at all."""
        self.stamps = STAMP_STYLES[(STAMP_STYLES.index(self.stamps) + 1) % len(STAMP_STYLES)]

    def watch_stamps(self, style: str) -> None:
        self._format = StampFormatter(style)
        self.notify(f"Log timestamps: {STAMP_NAMES[style]}", timeout=2)
        self.open(self._log_dir, self._rank, again=True)

    def action_toggle_follow(self) -> None:
        """Follow new lines, or hold the view still."""
        self.following = not self.following

    def action_search(self) -> None:
        """Search the lines on screen."""
        field = self.query_one("#log-search", Input)
        field.display = True
        field.focus()

    @on(Input.Submitted, "#log-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.search_text = event.value.strip()
        self.query_one("#log-view", Log).focus()

    def watch_search_text(self, text: str) -> None:
        log = self.query_one("#log-view", Log)
        if not text:
            self._matches, self._match_index = [], -1
            self._update_state()
            return
        self.following = False  # hold the lines still while jumping between matches
        needle = text.lower()
        self._matches = [i for i, line in enumerate(log.lines) if needle in line.lower()]
        self._match_index = len(self._matches) - 1
        self._show_match()

    def _show_match(self) -> None:
        if 0 <= self._match_index < len(self._matches):
            line = self._matches[self._match_index]
            log = self.query_one("#log-view", Log)
            log.scroll_to(y=max(0, line - log.size.height // 2), animate=False)
        self._update_state()

    def action_next_match(self) -> None:
        """Go to the next (later) match."""
        if self._matches:
            self._match_index = (self._match_index + 1) % len(self._matches)
            self._show_match()

    def action_previous_match(self) -> None:
        """Go to the previous (earlier) match."""
        if self._matches:
            self._match_index = (self._match_index - 1) % len(self._matches)
            self._show_match()

    def action_end_search(self) -> None:
        """Close the search."""
        field = self.query_one("#log-search", Input)
        field.value = ""
        field.display = False
        self.search_text = ""
        self.query_one("#log-view", Log).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "end_search":
            # Not searching: let esc reach the screen (back).
            return bool(self.search_text) or self.query_one("#log-search").display
        if action in ("next_match", "previous_match"):
            return bool(self.search_text)
        if action in ("next_rank", "previous_rank"):
            return len(self._ranks) > 1
        return True

    def action_next_rank(self) -> None:
        """Show the next rank's log."""
        self._step_rank(1)

    def action_previous_rank(self) -> None:
        """Show the previous rank's log."""
        self._step_rank(-1)

    def _step_rank(self, step: int) -> None:
        if len(self._ranks) < 2 or self._rank not in self._ranks:
            return
        index = (self._ranks.index(self._rank) + step) % len(self._ranks)
        self._switch_rank(self._ranks[index])

    @on(Select.Changed, "#log-rank")
    def _rank_chosen(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, int) and event.value != self._rank:
            self._switch_rank(event.value)

    def _switch_rank(self, rank: int) -> None:
        log_dir, self._log_dir = self._log_dir, None
        self.open(log_dir, rank)

    @property
    def lines(self) -> list[str]:
        """The lines on screen (for tests and copy)."""
        return list(self.query_one("#log-view", Log).lines)
