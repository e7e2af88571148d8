"""The jobs screen's blocking calls, each in a thread worker: read the first page
straight from the SQLite file, read a window of rows, re-read the rows on screen when the
change marker moves, delete a job.

`JobsWorkers` is held by `JobsScreen` and runs each call as a worker of that screen (so a
new read cancels the one before it in its group, as `@work(exclusive=True)` does). Every
call only reads (or deletes) and posts one of the messages below to the screen; none
touches a widget or a reactive. The screen handles the messages and owns everything on
screen.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.screen import Screen
from textual.worker import get_current_worker

from app.tui.joblist import Marker, fetch_rows
from app.tui.messages import ActionDone, ActionFailed, JobsChanged

if TYPE_CHECKING:
    from app.context import Context
    from app.readmodels import JobRow


class WindowLoaded(Message):
    """A page of rows (or a whole reload) read by a worker; `fast_db` names the file
    the first page was read from before the core opened."""

    def __init__(self, generation: int, offset: int, rows: list[JobRow], total: int,
                 reset: bool, fast_db: Path | None = None) -> None:
        super().__init__()
        self.generation = generation
        self.offset = offset
        self.rows = rows
        self.total = total
        self.reset = reset
        self.fast_db = fast_db


class Polled(Message):
    """A fresh read of the rows that were on screen (sent only when the data moved)."""

    def __init__(self, generation: int, offset: int, rows: list[JobRow],
                 total: int, marker: Marker) -> None:
        super().__init__()
        self.generation = generation
        self.offset = offset
        self.rows = rows
        self.total = total
        self.marker = marker


class FastUnavailable(Message):
    """No fast first page (another database is configured, none exists yet, ...)."""


class Failed(Message):
    """A read failed (database locked, gone, ...)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class JobsWorkers:
    """The jobs screen's reads and its delete, each in a thread worker of `screen`."""

    def __init__(self, screen: Screen[Any]) -> None:
        self._screen = screen
        self._post = screen.post_message

    def _run(self, group: str, work: Callable[[], None]) -> None:
        self._screen.run_worker(work, name=group, group=group, thread=True, exclusive=True,
                                exit_on_error=False)

    def read_first_page(self, generation: int, sort: Any, descending: bool,
                        limit: int) -> None:
        """Before the core opens: the first page straight from the SQLite file, if it can."""
        def work() -> None:
            from app.store import quicklist

            try:
                path = quicklist.default_db_path()
                if path is not None:
                    rows, total = fetch_rows(path, "", None, sort, descending, 0, limit)
                    self._post(WindowLoaded(generation, 0, rows, total, True, path))
                    return
            except Exception:  # best effort only: the core reads it properly a moment later
                pass
            self._post(FastUnavailable())

        self._run("jobs-window", work)

    def read_window(self, source: Context | Path, generation: int, search: str,
                    status: str | None, sort: Any, descending: bool, offset: int, limit: int,
                    reset: bool) -> None:
        """Read one window of rows (and the count) off the UI thread."""
        def work() -> None:
            from app.errors import TraindeckError
            from app.store.quicklist import QuickListError

            try:
                rows, total = fetch_rows(source, search, status, sort, descending, offset,
                                         limit)
            except QuickListError:
                self._post(FastUnavailable())  # the core, once open, reads it again
                return
            except TraindeckError as exc:
                self._post(Failed(str(exc)))
                return
            if not get_current_worker().is_cancelled:
                self._post(WindowLoaded(generation, offset, rows, total, reset))

        self._run("jobs-window", work)

    def read_visible(self, ctx: Context, generation: int, known: Marker | None, search: str,
                     status: str | None, sort: Any, descending: bool, offset: int,
                     limit: int) -> None:
        """When the change marker moved, re-read the rows on screen and the count."""
        def work() -> None:
            from app import queries
            from app.errors import TraindeckError

            try:
                # The marker first: a change that lands after it is caught by the next poll.
                marker = queries.jobs_change_marker(ctx.db)
                if marker == known:
                    return
                rows = (queries.list_jobs(ctx.db, search, status, sort, descending, offset,
                                          limit) if limit else [])
                total = queries.count_jobs(ctx.db, search, status)
            except TraindeckError:
                return  # the next poll tries again; a locked database is not worth a popup
            if not get_current_worker().is_cancelled:
                self._post(Polled(generation, offset, rows, total, marker))

        self._run("jobs-poll", work)

    def delete_job(self, ctx: Context, name: str) -> None:
        """Stop what still runs, then remove the job's rows (as `traindeck delete`)."""
        def work() -> None:
            from app.errors import TraindeckError
            from app.runtime.control import delete

            try:
                delete(ctx, name, None)
            except TraindeckError as exc:
                self._post(ActionFailed("Not deleted", str(exc)))
                return
            self._post(ActionDone(f"Deleted job {name}"))
            self._post(JobsChanged(name))

        self._run("jobs-write", work)
