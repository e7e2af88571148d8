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
from app.models import Status, Version
from app.runtime.launcher import dataset_paths
from app.runtime.plan import PlanError
from app.runtime.supervisor.outcome import Outcome
from app.runtime.supervisor.signals import SignalFlags
from app.spec import JobSpec, is_remote
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

log = logging.getLogger("traindeck.supervisor")
LOG_SYNC_SECONDS = 30.0
"""How often an object-storage log folder is brought up to date while a version runs."""
DATA_CACHE = "data-cache"
"""Folder of the state dir that object-storage data is staged into (removed at the end)."""


class StorageSteps:
    """Object storage for `Supervisor` (a mixin): what it reads and writes of the
    supervisor is declared here."""

    ctx: Context
    version_id: int
    state: Path
    label: str
    output_uri: str
    log_sync: LogSyncer | None
    _note: Callable[..., None]
    _event: Callable[..., None]
    _end: Callable[[Outcome], None]
    flags: SignalFlags

    def _setup_storage(self, version: Version, spec: JobSpec) -> None:
        """Remember where the output goes; keep an object-storage log folder in sync."""
        self.output_uri = version.output
        self.log_sync = LogSyncer(self.ctx.settings, Path(version.log_dir),
                                  remote_log_uri(spec.log_dir, self.label), LOG_SYNC_SECONDS,
                                  warn=lambda message: self._event(message, "warning"),
                                  progress_file=transfer_path(self.state))
        self.log_sync.start()

    def _prepare_data(self, spec: JobSpec) -> list[str] | None:
        """Stage object-storage data and apply the 255 rule; None when the version ended.

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
                    self.ctx.settings, sources, self.state / DATA_CACHE, self._note,
                    self._event, should_stop=self.flags.stop.is_set, pins=pins)
            except BaseException as exc:
                done["error"] = exc

        worker = threading.Thread(target=stage, name="stage-data", daemon=True)
        worker.start()
        while worker.is_alive() and not self.flags.stop.is_set():
            worker.join(0.1)
        error = done.get("error")
        if worker.is_alive() or isinstance(error, TransferCancelled):
            self._end(Outcome(Status.STOPPED, "stopped by user"))
            return None
        if isinstance(error, DataError | PlanError):
            self._end(Outcome(Status.FAILED, str(error)))
            return None
        if error is not None:
            raise error
        return [str(p) for p in done["paths"]]

    def _upload_output(self, outcome: Outcome) -> Outcome:
        """Send an object-storage output up. A succeeded version whose output cannot go up
        fails; the reason says where its files stay."""
        if not is_remote(self.output_uri):
            return outcome
        try:
            error = upload_output(self.ctx.settings,
                                  local_output_path(self.output_uri, self.state),
                                  self.output_uri, self._note,
                                  warn=lambda message: self._event(message, "warning"))
        except Exception as exc:  # the version must still end
            log.exception("output upload failed")
            error = f"output upload failed: {exc}"
        if error is None:
            return outcome
        self._event(error, "warning")
        if outcome.status == Status.SUCCEEDED:
            return Outcome(Status.FAILED, error, outcome.exit_code)
        return outcome

    def _finish_storage(self) -> None:
        """The last log upload (after the last line), and the staged data goes away."""
        shutil.rmtree(self.state / DATA_CACHE, ignore_errors=True)
        if self.log_sync is not None:
            try:
                self.log_sync.stop()  # a failure becomes a warning event
            except Exception:
                log.exception("log upload failed")
