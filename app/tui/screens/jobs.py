"""The home screen: every job with its latest version, read one window at a time.

Rows come from `queries.list_jobs` in pages of `PAGE`; scrolling near the end loads the
next page, so 10,000 jobs cost what 100 do. Until the app's core has opened, pages come
from `app.store.quicklist` (stdlib sqlite3 only), so the first page is up before the core is.
Every `POLL_SECONDS` a worker reads `queries.jobs_change_marker`; only when it moves are
the rows on screen re-read, and only cells whose text changed are redrawn: an idle list
sends nothing to the terminal (running durations tick from the rows already held).
The thread workers that read (and delete) are `JobsWorkers`, in `jobs_workers.py`,
with the messages they answer by.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Header, Input, Static

from app.tui.joblist import (
    COLUMN_KEYS,
    COLUMNS,
    SORT_KEYS,
    SORT_LABELS,
    Marker,
    columns_for,
    parse_filter,
    row_texts,
)
from app.tui.messages import OpenJob
from app.tui.ready import report_ready
from app.tui.screens.first_show import FirstShow
from app.tui.screens.jobs_workers import (
    Failed,
    FastUnavailable,
    JobsWorkers,
    Polled,
    WindowLoaded,
)
from app.tui.widgets.footer import KeyFooter
from app.tui.widgets.key_table import KeyTable
from app.tui.widgets.status import status_text

if TYPE_CHECKING:
    from app.context import Context
    from app.jobs import VersionRef
    from app.readmodels import JobRow

PAGE = 100
"""Rows read per query."""
MARGIN = 20
"""Load the next page when the cursor or the view comes this close to the last loaded row."""
RELOAD_CAP = 2000
"""A reload after a change re-reads at most this many of the loaded rows."""
POLL_SECONDS = 2.0
"""How often the rows on screen are checked for changes."""

class JobsScreen(FirstShow, Screen[None]):
    """Jobs, newest change first: filter, sort, open, create."""

    # Its layout, jobs.tcss, is loaded with the app's CSS (see TraindeckApp.CSS_PATH).
    AUTO_FOCUS = ""
    BINDINGS = [
        Binding("enter", "open", "Open", id="jobs.open"),
        Binding("c", "create", "Create", id="jobs.create"),
        Binding("f", "app.create_from_file", "From file", id="jobs.create-from-file"),
        Binding("slash", "filter", "Filter", id="jobs.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="jobs.clear-filter"),
        Binding("s", "cycle_sort", "Sort", id="jobs.sort"),
        Binding("r", "reverse_sort", "Reverse sort", show=False, id="jobs.reverse-sort"),
        Binding("d", "delete", "Delete", id="jobs.delete"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="jobs.reload"),
    ]

    search: reactive[str] = reactive("", init=False)
    """The filter as typed: free text matches name or description, `status:X` a status."""
    sort_key: reactive[str] = reactive("updated", init=False)
    """Which column orders the list (`updated`, `created`, `name` or `status`)."""
    descending: reactive[bool] = reactive(True, init=False)
    """Newest / largest first."""
    total: reactive[int] = reactive(-1, init=False, always_update=True)
    """How many jobs match the filter; -1 until the first count arrives."""

    def __init__(self) -> None:
        super().__init__()
        self._workers = JobsWorkers(self)
        self._rows: list[JobRow] = []
        self._shown: list[tuple[str, ...]] = []
        self._columns: tuple[tuple[str, str, int], ...] = COLUMNS
        """The columns shown (fewer in a narrow terminal)."""
        self._generation = 0
        self._loading = False
        self._filter_timer: Timer | None = None
        self._poll_timer: Timer | None = None
        self._keep_cursor_on: str | None = None
        self._summary_shown = Text()
        self._fast_db: Path | None = None
        self._marker: Marker | None = None
        self._ready_reported = False
        self._open_when_ready: str | None = None

    # -- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        if self.ctx is None and getattr(self.app, "fast_start", False):
            # Read while the widgets mount, and just the rows that fit: the first frame
            # is what start-up waits for.
            self._loading = True
            first = max(self.app.size.height, MARGIN)
            self._workers.read_first_page(self._generation, self.sort_key, self.descending,
                                          first)
        yield Header()
        table = KeyTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        self._columns = columns_for(self.app.size.width)
        for key, label, width in self._columns:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static("Opening the database…", id="jobs-empty", classes="empty-state")
        yield Static("", id="jobs-summary")
        yield Static("", id="jobs-status", classes="status-bar")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "jobs"
        self.watch(self.app, "ctx", self._on_context, init=True)
        self.watch(self.app, "context_error", self._on_context_error, init=False)
        self.watch(self.query_one(KeyTable), "scroll_y", self._on_scroll, init=False)

    @property
    def ctx(self) -> Context | None:
        """The app's open context (None while it is being opened)."""
        return getattr(self.app, "ctx", None)

    def _source(self) -> Context | Path | None:
        """The open core, else the database file read directly, else nothing yet."""
        return self.ctx or self._fast_db

    def _on_context(self, ctx: Context | None) -> None:
        if ctx is None:
            return
        if self._fast_db is not None and (self._rows or self.total == 0):
            # The fast path already shows this window: check it against the core instead
            # of clearing and redrawing the same rows.
            self._poll()
        else:
            self._reload(limit=PAGE)
        if self._poll_timer is None:
            self._poll_timer = self.set_interval(POLL_SECONDS, self._poll)
        name, self._open_when_ready = self._open_when_ready, None
        if name is not None and self.is_current:
            self.post_message(OpenJob(name))

    def _on_context_error(self, error: str) -> None:
        if error:
            self.query_one("#jobs-empty", Static).update(f"Cannot open the database: {error}")

    # -- reading (the workers that read are in jobs_workers.py) ---------------------------

    @on(FastUnavailable)
    def _fast_unavailable(self) -> None:
        self._loading = False
        self._open_core()

    def _open_core(self) -> None:
        """Let the app open its core now that the first frame is out."""
        start = getattr(self.app, "open_context", None)
        if callable(start):
            self.call_after_refresh(start)

    def _reload(self, limit: int = PAGE, keep_cursor: bool = True) -> None:
        ctx = self._source()
        if ctx is None:
            return
        self._generation += 1
        if keep_cursor and self._rows:
            self._keep_cursor_on = self._highlighted_name()
        self._loading = True
        search, status = parse_filter(self.search)
        self._workers.read_window(ctx, self._generation, search, status, self.sort_key,
                                  self.descending, 0, limit, True)

    def _load_more(self) -> None:
        ctx = self._source()
        if ctx is None or self._loading or len(self._rows) >= self.total:
            return
        self._loading = True
        search, status = parse_filter(self.search)
        self._workers.read_window(ctx, self._generation, search, status, self.sort_key,
                                  self.descending, len(self._rows), PAGE, False)

    def _visible_window(self) -> tuple[int, int]:
        """(first row index, row count) of the loaded rows in view."""
        table = self.query_one(KeyTable)
        first = int(table.scroll_y)
        return first, min(max(table.size.height - 1, 1), max(len(self._rows) - first, 0))

    def _poll(self) -> None:
        ctx = self.ctx
        if ctx is None or self._loading or not self.is_active:
            return
        first, count = self._visible_window()
        for index in range(first, first + count):
            if self._rows[index].finished is None and self._rows[index].started is not None:
                self._update_row(index, self._rows[index])  # running: the duration ticks
        search, status = parse_filter(self.search)
        self._workers.read_visible(ctx, self._generation, self._marker, search, status,
                                   self.sort_key, self.descending, first, count)

    # -- showing ---------------------------------------------------------------------------

    @on(WindowLoaded)
    def _window_loaded(self, message: WindowLoaded) -> None:
        if message.generation != self._generation:
            return
        self._loading = False
        table = self.query_one(KeyTable)
        if message.reset:
            table.clear()
            self._rows, self._shown = [], []
        elif message.offset != len(self._rows):
            return
        for row in message.rows:
            texts = row_texts(row)
            table.add_row(*self._cells(row, texts), key=row.name)
            self._rows.append(row)
            self._shown.append(texts)
        self.total = message.total
        if message.reset:
            self._restore_cursor()
        self._update_status_bar()
        self._update_summary()
        if not self._ready_reported:
            self._ready_reported = True
            self.call_after_refresh(report_ready, self.app)
        if message.fast_db is not None and self.ctx is None:
            self._fast_db = message.fast_db
            self._open_core()
            self.call_after_refresh(self._load_more)  # the rest of the page, after the frame

    def _restore_cursor(self) -> None:
        name, self._keep_cursor_on = self._keep_cursor_on, None
        if name is None:
            return
        table = self.query_one(KeyTable)
        for index, row in enumerate(self._rows):
            if row.name == name:
                table.move_cursor(row=index, animate=False)
                return

    @on(Polled)
    def _polled(self, message: Polled) -> None:
        if message.generation != self._generation or self._loading:
            return
        self._marker = message.marker
        if message.total != self.total:
            self._reload(limit=min(max(PAGE, len(self._rows)), RELOAD_CAP))
            return
        for i, row in enumerate(message.rows):
            index = message.offset + i
            if index >= len(self._rows) or self._rows[index].id != row.id:
                # Rows moved (a job changed under a "last change" sort): re-read them all.
                self._reload(limit=min(max(PAGE, len(self._rows)), RELOAD_CAP))
                return
            self._update_row(index, row)
        self._update_summary()

    def _update_row(self, index: int, row: JobRow) -> None:
        """Redraw only the cells of row `index` whose text changed."""
        texts = row_texts(row)
        old = self._shown[index]
        self._rows[index] = row
        if texts == old:
            return
        cells = dict(zip(COLUMN_KEYS, self._all_cells(row, texts), strict=True))
        changed = {key for key, now, was in zip(COLUMN_KEYS, texts, old, strict=True)
                   if now != was}
        self.query_one(KeyTable).update_row_cells(row.name, {
            key: cells[key] for key, _label, _width in self._columns if key in changed})
        self._shown[index] = texts

    def _cells(self, row: JobRow, texts: tuple[str, ...]) -> tuple[Any, ...]:
        """The cells of the columns shown."""
        cells = dict(zip(COLUMN_KEYS, self._all_cells(row, texts), strict=True))
        return tuple(cells[key] for key, _label, _width in self._columns)

    def _all_cells(self, row: JobRow, texts: tuple[str, ...]) -> tuple[Any, ...]:
        # Text, not str: a str cell is parsed as markup on every measure and draw.
        name, version, _status, engine, resources, created, duration = texts
        return (Text(name, style="bold"), Text(version), status_text(self.app, row.status),
                Text(engine), Text(resources), Text(created), Text(duration))

    def on_resize(self, event: events.Resize) -> None:
        """A terminal that gets narrower (or wider) than 120 columns changes the columns."""
        columns = columns_for(event.size.width)
        if columns == self._columns:
            return
        self._columns = columns
        table = self.query_one(KeyTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        for key, label, width in columns:
            table.add_column(label, key=key, width=width)
        for row, texts in zip(self._rows, self._shown, strict=True):
            table.add_row(*self._cells(row, texts), key=row.name)
        if self._rows:
            table.move_cursor(row=min(cursor, len(self._rows) - 1), animate=False)

    def _highlighted_row(self) -> JobRow | None:
        table = self.query_one(KeyTable)
        if not self._rows or not 0 <= table.cursor_row < len(self._rows):
            return None
        return self._rows[table.cursor_row]

    def _highlighted_name(self) -> str | None:
        row = self._highlighted_row()
        return row.name if row else None

    def _update_status_bar(self) -> None:
        arrow = "↓" if self.descending else "↑"
        parts = [f"{self.total:,} job{'s' if self.total != 1 else ''}"]
        if self.search:
            parts.append(f"filter “{self.search}”")
        parts.append(f"sorted by {SORT_LABELS[self.sort_key]} {arrow}")
        if 0 <= len(self._rows) < self.total:
            parts.append(f"{len(self._rows):,} loaded")
        status = self.query_one("#jobs-status", Static)
        text = "  ·  ".join(parts)
        if str(status.content) != text:
            status.update(text)

    def _update_summary(self) -> None:
        """The highlighted job's description and status reason (redrawn only on change)."""
        row = self._highlighted_row()
        summary = self.query_one("#jobs-summary", Static)
        text = self._summary_text(row)
        if text != self._summary_shown:
            self._summary_shown = text
            summary.update(text)

    def _summary_text(self, row: JobRow | None) -> Text:
        text = Text()
        if row is None:
            return text
        text.append(row.name, style="bold")
        if row.description:
            text.append(f" — {row.description}")
        if row.version:
            count = f"{row.versions} version{'s' if row.versions != 1 else ''}"
            text.append(f"  ·  {row.version} · {count}  ")
            text.append_text(status_text(self.app, row.status))
        if row.reason:
            text.append(f": {row.reason}")
        return text

    def watch_total(self, total: int) -> None:
        table = self.query_one(KeyTable)
        empty = self.query_one("#jobs-empty", Static)
        if total == 0:
            if self.search:
                empty.update(f"No jobs match “{self.search}” — esc clears the filter")
            else:
                empty.update("No jobs yet — press c to create one, "
                             "or `traindeck submit SPEC.yaml`")
        empty.display = total <= 0
        table.display = total > 0
        if total > 0 and self.focused is None:
            table.focus()
        self.query_one("#jobs-summary").display = total > 0

    def watch_search(self) -> None:
        self._reload(limit=PAGE, keep_cursor=False)

    def watch_sort_key(self) -> None:
        self._reload(limit=PAGE)

    def watch_descending(self) -> None:
        self._reload(limit=PAGE)

    # -- events ---------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#jobs-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_summary()
        if event.cursor_row >= len(self._rows) - MARGIN:
            self._load_more()

    def _on_scroll(self, scroll_y: float) -> None:
        table = self.query_one(KeyTable)
        if scroll_y + table.size.height >= len(self._rows) - MARGIN:
            self._load_more()

    @on(DataTable.RowSelected, "#jobs-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    @on(Input.Changed, "#jobs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        value = event.value
        self._filter_timer = self.set_timer(0.15, lambda: setattr(self, "search", value))

    @on(Input.Submitted, "#jobs-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self.search = event.value
        self.query_one(KeyTable).focus()

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        self._loading = False
        self.notify(message.error, title="Cannot read jobs", severity="error")

    def on_screen_resume(self) -> None:
        self._poll()

    def version_created(self, ref: VersionRef) -> None:
        """A job or version was created: show it, with the cursor on its job."""
        self._keep_cursor_on = ref.job
        self._reload(limit=min(max(PAGE, len(self._rows)), RELOAD_CAP), keep_cursor=False)

    def data_changed(self, job: str | None) -> None:
        """Something was deleted or changed by an action: read the list again."""
        self._reload(limit=min(max(PAGE, len(self._rows)), RELOAD_CAP))

    # -- actions ---------------------------------------------------------------------------

    def action_open(self) -> None:
        """Open the highlighted job's versions (as soon as the core is open)."""
        row = self._highlighted_row()
        ctx = self.ctx
        if row is None:
            return
        if ctx is None:
            self._open_when_ready = row.name
            self.notify(f"Opening {row.name} once the database is open…", timeout=3)
            return
        self.post_message(OpenJob(row.name))

    def action_create(self) -> None:
        """Create a new job in the wizard."""
        open_wizard = getattr(self.app, "open_wizard", None)
        if callable(open_wizard):
            open_wizard()

    async def action_filter(self) -> None:
        """Show and focus the filter (made on first use: start-up does not wait for it)."""
        fields = self.query("#jobs-filter").results(Input)
        field = next(fields, None)
        if field is None:
            field = Input(placeholder="filter: name or description, status:failed …",
                          id="jobs-filter", classes="filter-input")
            await self.mount(field, before=self.query_one(KeyTable))
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        """Clear the filter and go back to the table."""
        field = next(self.query("#jobs-filter").results(Input), None)
        if field is not None:
            field.value = ""
            field.display = False
        self.search = ""
        self.query_one(KeyTable).focus()

    def action_cycle_sort(self) -> None:
        """Order by the next key: last change, created, name, status."""
        following = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.set_reactive(JobsScreen.descending, following in ("updated", "created"))
        self.sort_key = following

    def action_reverse_sort(self) -> None:
        """Flip the order."""
        self.descending = not self.descending

    def action_reload(self) -> None:
        """Read the list again."""
        self._reload(limit=PAGE)

    def action_delete(self) -> None:
        """Delete the highlighted job (every version's records; files stay)."""
        row = self._highlighted_row()
        ctx = self.ctx
        if row is None or ctx is None:
            return
        from app.tui.screens.confirm import ConfirmScreen

        versions = f"its {row.versions} version{'s' if row.versions != 1 else ''}"
        question = (f"Delete job {row.name} and {versions} from Traindeck? A version still "
                    "running or queued is stopped first. Their records, metrics and events "
                    "go; output and log files stay on disk.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._workers.delete_job(ctx, row.name)

        self.app.push_screen(ConfirmScreen(question, title="Delete job", yes="Delete"),
                             answered)

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This screen's actions for the command palette."""
        yield SystemCommand("job: create", "Create a new training job", self.action_create)
        yield SystemCommand("job: open", "Open the highlighted job", self.action_open)
        yield SystemCommand("job: delete", "Delete the highlighted job", self.action_delete)
        yield SystemCommand("view: filter jobs", "Filter by name, description or status:X",
                            self.action_filter)
        yield SystemCommand("view: sort jobs", "Order by the next column", self.action_cycle_sort)
        yield SystemCommand("view: reverse sort", "Flip the order", self.action_reverse_sort)
        yield SystemCommand("view: reload jobs", "Read the list again", self.action_reload)
