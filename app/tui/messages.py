"""Messages that travel between screens (widget-specific ones live in their widget).

Workers post these to the app; handlers on the UI thread own every change they cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from app.context import Context
    from app.jobs import VersionRef


class ContextReady(Message):
    """The settings and the database are open: screens may start reading."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx


class ContextFailed(Message):
    """The settings or the database could not be opened; `error` says why, in one line."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class VersionCreated(Message):
    """A new job or a new version exists (from the wizard or a modify).

    It bubbles to the app, which tells every screen on the stack (`version_created`).
    """

    def __init__(self, ref: VersionRef) -> None:
        super().__init__()
        self.ref = ref


class OpenJob(Message):
    """Open the job screen of `job`, on version `select` (None: the latest).

    It bubbles to the app, which reads the versions first and then shows the screen.
    """

    def __init__(self, job: str, select: str | None = None) -> None:
        super().__init__()
        self.job = job
        self.select = select


class JobsChanged(Message):
    """Versions or jobs were removed or changed by an action: lists should reload.

    It bubbles to the app, which tells every screen on the stack (`data_changed`).
    """

    def __init__(self, job: str | None = None) -> None:
        super().__init__()
        self.job = job


class ActionDone(Message):
    """A write the user asked for is done; `text` says what happened."""

    def __init__(self, text: str, job: str | None = None) -> None:
        super().__init__()
        self.text = text
        self.job = job


class ActionFailed(Message):
    """A write the user asked for was refused or failed; `error` is the core's message."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__()
        self.what = what
        self.error = error
