"""Quick actions on one version: modify, stop, delete, TensorBoard, create model, save
job parameters — each with the reason it is not allowed, when it is not.

The job detail screen is built on this: it provides the selected version (`current`),
the job's name and versions, and what `C` would compare; the actions, their workers and
the "why not" live here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import SystemCommand
from textual.message import Message
from textual.screen import Screen

from app.tui.messages import ActionDone, ActionFailed, JobsChanged
from app.tui.screens.explained import Explained

if TYPE_CHECKING:
    from app.context import Context
    from app.readmodels import VersionInfo
    from app.registry import ModelVersionInfo
    from app.tensorboard import TensorBoardInfo

ACTIVE = frozenset({"initializing", "queued", "running"})
"""Statuses a version can be stopped in."""


class VersionActionsScreen(Explained, Screen[None]):
    """A screen showing one selected version of a job, and the actions on it."""

    ctx: Context
    job: str

    class TensorBoardStarting(Message):
        """The version has event files: TensorBoard is being started (it takes a while)."""

        def __init__(self, label: str) -> None:
            super().__init__()
            self.label = label

    class TensorBoardReady(Message):
        """TensorBoard answers (or is starting) for the version."""

        def __init__(self, board: TensorBoardInfo) -> None:
            super().__init__()
            self.board = board

    @property
    def current(self) -> VersionInfo | None:
        """The selected version (the screen built on this says which)."""
        raise NotImplementedError

    def compare_labels(self) -> list[str] | None:
        """What compare would take: some labels, or None for all."""
        raise NotImplementedError

    @property
    def version_count(self) -> int:
        """How many versions the job has (compare needs two)."""
        raise NotImplementedError

    # -- what is allowed, and why not ---------------------------------------------------------

    def disabled_reason(self, action: str) -> str | None:
        """Why `action` cannot run on the selected version now (None: it can)."""
        info = self.current
        needs_version = {"modify", "stop", "delete", "tensorboard", "create_model",
                         "save_parameters"}
        if action in needs_version and info is None:
            return f"{action.replace('_', ' ')}: no version selected"
        if info is None:
            return "compare: this job has no versions" if action == "compare" else None
        if action == "stop" and info.status not in ACTIVE:
            return f"stop: {info.version} already {info.status}"
        if action == "create_model":
            from app.registry import create_model_refusal

            return create_model_refusal(info.status, info.version)
        if action == "compare" and len(self.compare_labels() or range(self.version_count)) < 2:
            return "compare: needs at least two versions"
        return None

    # -- actions ---------------------------------------------------------------------------

    def action_modify(self) -> None:
        """Make a new version from the selected one, with changed parameters."""
        info = self.current
        if info is None or not self.allowed("modify"):
            return
        open_wizard = getattr(self.app, "open_wizard", None)
        if callable(open_wizard):
            open_wizard(modify_from=(self.job, info.version))

    def action_tensorboard(self) -> None:
        """Start (or find) TensorBoard for the selected version's event files."""
        info = self.current
        if info is None or not self.allowed("tensorboard"):
            return
        self._start_tensorboard(info.version, info.output, info.id)

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-tensorboard")
    def _start_tensorboard(self, label: str, output: str, version_id: int) -> None:
        """Check the output and working folder for event files, then start TensorBoard
        (it may take a while)."""
        from app.errors import TraindeckError
        from app.runtime.plan import work_dir
        from app.tensorboard import start_tensorboard, unavailable_reason

        what = f"No TensorBoard for {self.job} {label}"
        reason = unavailable_reason(output, work_dir(self.ctx.settings, version_id))
        if reason:
            self.post_message(ActionFailed(what, reason))
            return
        self.post_message(self.TensorBoardStarting(label))
        try:
            board = start_tensorboard(self.ctx, self.job, [label])
        except TraindeckError as exc:
            self.post_message(ActionFailed(what, str(exc)))
            return
        self.post_message(self.TensorBoardReady(board))

    @on(TensorBoardStarting)
    def _tensorboard_starting(self, message: TensorBoardStarting) -> None:
        self.notify(f"Starting TensorBoard for {self.job} {message.label}…", timeout=5)

    @on(TensorBoardReady)
    def _tensorboard_ready(self, message: TensorBoardReady) -> None:
        from app.tui.screens.tensorboard import TensorBoardScreen

        self.app.push_screen(TensorBoardScreen(self.ctx, message.board))

    def action_create_model(self) -> None:
        """Register the selected succeeded version as a model."""
        info = self.current
        if info is None or not self.allowed("create_model"):
            return
        from app.tui.screens.create_model import CreateModelScreen

        def created(model: ModelVersionInfo | None) -> None:
            if model is not None:
                copied = " (artifacts copied)" if model.copied else ""
                self.notify(f"Created model {model.model} {model.version} from "
                            f"{model.source}{copied}")

        self.app.push_screen(CreateModelScreen(self.ctx, self.job, info.version), created)

    def action_stop(self) -> None:
        """Stop the selected version (after confirming)."""
        info = self.current
        if info is None or not self.allowed("stop"):
            return
        from app.tui.screens.confirm import ConfirmScreen

        grace = self.ctx.settings.stop_grace_seconds
        question = (f"Stop {self.job} {info.version} ({info.status})? Its processes get "
                    f"SIGTERM, then SIGKILL after {grace:g}s; the version ends as stopped "
                    "and keeps its logs and outputs.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._stop(info.version)

        self.app.push_screen(ConfirmScreen(question, title="Stop version", yes="Stop"),
                             answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-write")
    def _stop(self, label: str) -> None:
        """Ask the version's supervisor to stop it."""
        from app.errors import TraindeckError
        from app.runtime.control import stop_version

        try:
            done = stop_version(self.ctx, self.job, label)
        except TraindeckError as exc:
            self.post_message(ActionFailed("Not stopped", str(exc)))
            return
        self.post_message(ActionDone(done, self.job))
        self.post_message(JobsChanged(self.job))

    def action_delete(self) -> None:
        """Delete the selected version's records (after confirming)."""
        info = self.current
        if info is None or not self.allowed("delete"):
            return
        from app.tui.screens.confirm import ConfirmScreen

        stop_first = (f"It is {info.status}: Traindeck stops it first. "
                      if info.status in ACTIVE else "")
        question = (f"Delete version {info.version} of {self.job} ({info.status}) from "
                    f"Traindeck? {stop_first}Its records, metrics and events go; its output "
                    "and log files stay on disk.")

        def answered(yes: bool | None) -> None:
            if yes:
                self._delete(info.version)

        self.app.push_screen(ConfirmScreen(question, title="Delete version", yes="Delete"),
                             answered)

    @work(thread=True, exclusive=True, exit_on_error=False, group="detail-write")
    def _delete(self, label: str) -> None:
        """Stop the version if it still runs, then remove its rows (as `traindeck delete`)."""
        from app.errors import TraindeckError
        from app.runtime.control import delete

        try:
            delete(self.ctx, self.job, label)
        except TraindeckError as exc:
            self.post_message(ActionFailed("Not deleted", str(exc)))
            return
        self.post_message(ActionDone(f"Deleted {self.job} {label}", self.job))
        self.post_message(JobsChanged(self.job))

    def action_save_parameters(self) -> None:
        """Save the selected version's settings as job parameters (a template)."""
        info = self.current
        if info is None or not self.allowed("save_parameters"):
            return
        from app.tui.screens.save_params import SaveParamsScreen

        def answered(result: tuple[str, str] | None) -> None:
            if result is not None:
                self.post_message(ActionDone(f"Saved job parameters {result[0]!r}"))

        def save(name: str, description: str) -> str | None:
            return self._save_parameters(info, name, description)

        self.app.push_screen(SaveParamsScreen(f"{self.job} {info.version}", save), answered)

    def _save_parameters(self, info: VersionInfo, name: str, description: str) -> str | None:
        """Store the version's spec under `name` (in the dialog's worker); why not, or None."""
        from pydantic import ValidationError

        from app.errors import TraindeckError
        from app.jobs import save_template
        from app.specs.spec import JobSpec

        try:
            spec = JobSpec.model_validate(info.spec)
            save_template(self.ctx, name, description, spec, info.id)
        except (TraindeckError, ValidationError) as exc:
            return str(exc)
        return None

    def version_commands(self, label: str) -> Iterable[SystemCommand]:
        """The version actions for the command palette."""
        yield SystemCommand(f"version: modify {label}", "New version with changed parameters",
                            self.action_modify)
        yield SystemCommand(f"version: stop {label}", "Stop the selected version",
                            self.action_stop)
        yield SystemCommand(f"version: delete {label}", "Delete the selected version's records",
                            self.action_delete)
        yield SystemCommand(f"version: save job parameters from {label}",
                            "Save these settings as job parameters", self.action_save_parameters)
        yield SystemCommand(f"version: TensorBoard for {label}", "Start TensorBoard",
                            self.action_tensorboard)
        yield SystemCommand(f"version: create model from {label}",
                            "Register a succeeded version as a model", self.action_create_model)
