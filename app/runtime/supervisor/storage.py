"""The supervisor's object-storage steps: stage the data in, keep logs and output going up."""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.context import Context
from app.datasets import s3_pins
from app.runtime.launcher import dataset_paths
from app.runtime.plan import PlanError
from app.runtime.supervisor.outcome import Outcome
from app.specs.spec import JobSpec, is_remote
from app.storage import (
    DataError,
    LogSyncer,
    TransferCancelled,
    local_output_path,
    prepare_data,
    remote_log_uri,
    transfer_path,
    upload_output,
)
from app.store.models import Status, Version

log = logging.getLogger("traindeck.supervisor")
LOG_SYNC_SECONDS = 30.0
"""How often an object-storage log folder is brought up to date while a version runs."""
DATA_CACHE = "data-cache"
"""Folder of the state dir that object-storage data is staged into (removed at the end)."""


class VersionStorage:
    """A running version's object storage, for its supervisor: the data staged in, the
    log folder kept in sync, the output sent up at the end."""

    def __init__(self, ctx: Context, version_id: int, state: Path, stop: threading.Event,
                 note: Callable[[str], None], event: Callable[..., None]) -> None:
        self.ctx = ctx
        self.version_id = version_id
        self.state = state
        self.stop = stop
        """Set when the version is to stop (a staging in progress is left behind)."""
        self.note = note
        """Writes a line of Traindeck's own into the version's log."""
        self.event = event
        """Records an event of the version: `event(message, kind="info")`."""
        self.output_uri = ""
        self.log_sync: LogSyncer | None = None

    def start(self, version: Version, spec: JobSpec, label: str) -> None:
        """Remember where the output goes; keep an object-storage log folder in sync."""
        self.output_uri = version.output
        self.log_sync = LogSyncer(self.ctx.settings, Path(version.log_dir),
                                  remote_log_uri(spec.log_dir, label), LOG_SYNC_SECONDS,
                                  warn=lambda message: self.event(message, "warning"),
                                  progress_file=transfer_path(self.state))
        self.log_sync.start()

    def prepare_data(self, spec: JobSpec) -> list[str] | Outcome:
        """Stage object-storage data and apply the 255 rule: the local data paths, or how
        the version ends (stopped meanwhile, or the data cannot be had).

        The staging runs in a thread of its own: a stop takes effect at once, even while
        a transfer waits on an endpoint that does not answer (the thread is left to the
        end of this process).
        """
        done: dict[str, Any] = {}

        def stage() -> None:
            try:
                sources, pins = spec.data.paths, None
                if sources is None:
                    sources = dataset_paths(self.ctx, spec, self.version_id)
                    pins = s3_pins(self.ctx, [(d.name, d.version)
                                              for d in spec.data.datasets or []])
                done["paths"] = prepare_data(
                    self.ctx.settings, sources, self.state / DATA_CACHE, self.note,
                    self.event, should_stop=self.stop.is_set, pins=pins)
            except BaseException as exc:
                done["error"] = exc

        worker = threading.Thread(target=stage, name="stage-data", daemon=True)
        worker.start()
        while worker.is_alive() and not self.stop.is_set():
            worker.join(0.1)
        error = done.get("error")
        if worker.is_alive() or isinstance(error, TransferCancelled):
            return Outcome(Status.STOPPED, "stopped by user")
        if isinstance(error, DataError | PlanError):
            return Outcome(Status.FAILED, str(error))
        if error is not None:
            raise error
        return [str(p) for p in done["paths"]]

    def upload_output(self, outcome: Outcome) -> Outcome:
        """Send an object-storage output up. A succeeded version whose output cannot go up
        fails; the reason says where its files stay."""
        if not is_remote(self.output_uri):
            return outcome
        try:
            error = upload_output(self.ctx.settings,
                                  local_output_path(self.output_uri, self.state),
                                  self.output_uri, self.note,
                                  warn=lambda message: self.event(message, "warning"))
        except Exception as exc:  # the version must still end
            log.exception("output upload failed")
            error = f"output upload failed: {exc}"
        if error is None:
            return outcome
        self.event(error, "warning")
        if outcome.status == Status.SUCCEEDED:
            return Outcome(Status.FAILED, error, outcome.exit_code)
        return outcome

    def finish(self) -> None:
        """The last log upload (after the last line), and the staged data goes away."""
        shutil.rmtree(self.state / DATA_CACHE, ignore_errors=True)
        if self.log_sync is not None:
            try:
                self.log_sync.stop()  # a failure becomes a warning event
            except Exception:
                log.exception("log upload failed")
