"""The jobs screen's blocking calls, each in a thread worker: read the first page
straight from the SQLite file, read a window of rows, re-read the rows on screen when the
change marker moves, delete a job.

Every one of them only reads (or deletes) and posts a message; none touches a widget or a
reactive. `JobsScreen` handles those messages and owns everything on screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import work
from textual.screen import Screen
from textual.worker import get_current_worker

from app.tui.joblist import Marker, fetch_rows
from app.tui.messages import ActionDone, ActionFailed, JobsChanged

if TYPE_CHECKING:
    from app.context import Context
    from app.tui.screens.jobs import JobsScreen

    _ScreenBase = Screen[None]
else:
    _ScreenBase = object  # a plain mixin at run time; typed as the Screen it is mixed into


class JobsWorkers(_ScreenBase):
    """Mixin for `JobsScreen` (put it before `Screen` among the bases): its workers."""

    if TYPE_CHECKING:  # the messages they send, defined (and handled) on JobsScreen
        WindowLoaded: type[JobsScreen.WindowLoaded]
        Polled: type[JobsScreen.Polled]
        FastUnavailable: type[JobsScreen.FastUnavailable]
        Failed: type[JobsScreen.Failed]

    @work(thread=True, exclusive=True, exit_on_error=False, group="jobs-window")
    def _read_first_page(self, generation: int, sort: Any, descending: bool,
                         limit: int) -> None:
        """Before the core opens: the first page straight from the SQLite file, if it can."""
        from app import quicklist

        try:
            path = quicklist.default_db_path()
            if path is not None:
                rows, total = fetch_rows(path, "", None, sort, descending, 0, limit)
                self.post_message(self.WindowLoaded(generation, 0, rows, total, True, path))
                return
        except Exception:  # best effort only: the core reads it properly a moment later
            pass
        self.post_message(self.FastUnavailable())

    @work(thread=True, exclusive=True, exit_on_error=False, group="jobs-window")
    def _read_window(self, source: Context | Path, generation: int, search: str,
                     status: str | None, sort: Any, descending: bool, offset: int, limit: int,
                     reset: bool) -> None:
        """Read one window of rows (and the count) off the UI thread."""
        from app.errors import TraindeckError
        from app.quicklist import QuickListError

        try:
            rows, total = fetch_rows(source, search, status, sort, descending, offset, limit)
        except QuickListError:
            self.post_message(self.FastUnavailable())  # the core, once open, reads it again
            return
        except TraindeckError as exc:
            self.post_message(self.Failed(str(exc)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.WindowLoaded(generation, offset, rows, total, reset))

    @work(thread=True, exclusive=True, exit_on_error=False, group="jobs-poll")
    def _read_visible(self, ctx: Context, generation: int, known: Marker | None, search: str,
                      status: str | None, sort: Any, descending: bool, offset: int,
                      limit: int) -> None:
        """When the change marker moved, re-read the rows on screen and the count."""
        from app import queries
        from app.errors import TraindeckError

        try:
            # The marker first: a change that lands after it is caught by the next poll.
            marker = queries.jobs_change_marker(ctx.db)
            if marker == known:
                return
            rows = (queries.list_jobs(ctx.db, search, status, sort, descending, offset, limit)
                    if limit else [])
            total = queries.count_jobs(ctx.db, search, status)
        except TraindeckError:
            return  # the next poll tries again; a locked database is not worth a popup
        if not get_current_worker().is_cancelled:
            self.post_message(self.Polled(generation, offset, rows, total, marker))

    @work(thread=True, exclusive=True, exit_on_error=False, group="jobs-write")
    def _delete_job(self, ctx: Context, name: str) -> None:
        """Stop what still runs, then remove the job's rows (as `traindeck delete`)."""
        from app.errors import TraindeckError
        from app.runtime.control import delete

        try:
            delete(ctx, name, None)
        except TraindeckError as exc:
            self.post_message(ActionFailed("Not deleted", str(exc)))
            return
        self.post_message(ActionDone(f"Deleted job {name}"))
        self.post_message(JobsChanged(name))
