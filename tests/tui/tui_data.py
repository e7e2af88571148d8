"""Test data for the TUI tests: a builder of jobs, versions, metrics and logs with fixed times.

Import as `from tui_data import ...` (this folder is on the test path).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers import new_version, noop_launcher
from sqlalchemy import update
from sqlmodel import col, select
from textual.pilot import Pilot

from app.context import Context
from app.jobs import VersionRef, set_status, submit
from app.store.models import Event, Job, MetricPointRow, MetricSummary, Status, Version

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
"""When the test data's first job was created."""
NOW = datetime(2026, 3, 2, 18, 0, 0, tzinfo=UTC)
"""What the frozen TUI clock says."""


async def settle(pilot: Pilot[Any], rounds: int = 3) -> None:
    """Let workers finish and the screen catch up."""
    for _ in range(rounds):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@dataclass
class DataBuilder:
    """Makes jobs, versions, metrics and logs with fixed times, through the core."""

    ctx: Context
    base: Path

    def __post_init__(self) -> None:
        (self.base / "code").mkdir(parents=True, exist_ok=True)
        (self.base / "code" / "train.py").write_text("print('training')\n")
        (self.base / "data").mkdir(exist_ok=True)
        (self.base / "data" / "train.csv").write_text("x,y\n1,2\n")
        self._jobs = 0

    def spec(self, name: str, **changes: Any) -> dict[str, Any]:
        """A valid spec dict; `changes` replace top-level keys."""
        spec: dict[str, Any] = {
            "name": name,
            "description": changes.pop("description", ""),
            "data": {"paths": ["./data"]},
            "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                        "code_dir": "./code", "boot_file": "train.py"}},
            "parameters": {"train_steps": 10000, "lr": 0.01},
            "output": f"./runs/{name}/out",
            "log_dir": f"./runs/{name}/logs",
            "resources": {"pool": "public", "gpus": 0, "nodes": 1, "runtime": "local"},
            "subscriptions": [],
        }
        spec.update(changes)
        return spec

    def job(self, name: str, status: Status = Status.SUCCEEDED, reason: str = "",
            *, created: datetime | None = None, ran: timedelta = timedelta(minutes=12),
            exit_code: int | None = None, **spec_changes: Any) -> VersionRef:
        """A new job whose V001 ends in `status` (times fixed from T0)."""
        self._jobs += 1
        ref = submit(self.ctx, self.spec(name, **spec_changes), self.base, launcher=noop_launcher)
        created = created or T0 + timedelta(minutes=10 * self._jobs)
        self.finish(ref, status, reason, created=created, ran=ran, exit_code=exit_code)
        with self.ctx.db.write() as s:
            s.exec(update(Job).where(col(Job.name) == name)
                   .values(created_at=created, updated_at=created + ran))
        return ref

    def version(self, job: str, parent: str, params: dict[str, Any],
                status: Status = Status.SUCCEEDED, reason: str = "", *,
                created: datetime | None = None, ran: timedelta = timedelta(minutes=20),
                exit_code: int | None = None) -> VersionRef:
        """A new version of `job` made from `parent` with changed run parameters."""
        ref = new_version(self.ctx, job, parent, params, self.base)
        created = created or T0 + timedelta(hours=1, minutes=ref.version_id)
        self.finish(ref, status, reason, created=created, ran=ran, exit_code=exit_code)
        with self.ctx.db.write() as s:
            s.exec(update(Job).where(col(Job.name) == job).values(updated_at=created + ran))
        return ref

    def finish(self, ref: VersionRef, status: Status, reason: str = "", *,
               created: datetime, ran: timedelta, exit_code: int | None = None) -> None:
        """Walk the version to `status` and pin its times (and its events' times)."""
        vid = ref.version_id
        if status != Status.INITIALIZING:
            if status != Status.QUEUED:
                set_status(self.ctx, vid, Status.RUNNING)
            if status != Status.RUNNING:
                if exit_code is None and status == Status.SUCCEEDED:
                    exit_code = 0
                set_status(self.ctx, vid, status, reason, exit_code=exit_code)
        started = created + timedelta(seconds=5)
        with self.ctx.db.write() as s:
            version = s.get(Version, vid)
            assert version is not None
            version.created_at = created
            if version.queued_at is not None:
                version.queued_at = created + timedelta(seconds=1)
            if status in (Status.RUNNING, Status.SUCCEEDED, Status.FAILED, Status.STOPPED):
                version.started_at = started
            if status.is_final:
                version.finished_at = started + ran
            if status == Status.QUEUED:
                version.reason = reason
            s.add(version)
            event_ids = list(s.exec(select(Event.id).where(Event.version_id == vid)
                                    .order_by(col(Event.id))))
            for i, event_id in enumerate(event_ids):
                moment = created if i == 0 else started if i == 1 else started + ran
                s.exec(update(Event).where(col(Event.id) == event_id).values(time=moment))

    def metrics(self, ref: VersionRef, finals: dict[str, float],
                curves: dict[str, list[float]] | None = None) -> None:
        """Final values and per-step curves of a version."""
        with self.ctx.db.write() as s:
            for name, value in finals.items():
                s.add(MetricSummary(version_id=ref.version_id, name=name, value=value))
            for name, values in (curves or {}).items():
                for step, value in enumerate(values):
                    s.add(MetricPointRow(version_id=ref.version_id, name=name,
                                         step=step * 100, value=value))

    def log(self, ref: VersionRef, lines: list[str], rank: int = 0,
            start: datetime | None = None) -> Path:
        """Write a rank's log file in the version's log folder (stamped lines)."""
        from app.queries import version_info

        info = version_info(self.ctx.db, ref.job, ref.version)
        folder = Path(info.log_dir)
        folder.mkdir(parents=True, exist_ok=True)
        moment = start or T0
        path = folder / f"rank-{rank}.log"
        with path.open("a") as f:
            for i, line in enumerate(lines):
                stamp = (moment + timedelta(milliseconds=250 * i)).strftime(
                    "%Y-%m-%dT%H:%M:%S.%f")[:-3]
                f.write(f"{stamp}Z {line}\n")
        return path


def sample_job(build: DataBuilder) -> None:
    """The data most screens are shown with: three jobs, one failed, one with versions."""
    ref = build.job("digits-baseline", Status.SUCCEEDED, description="first try",
                    parameters={"train_steps": 10000, "lr": 0.01, "batch": 64})
    build.metrics(ref, {"accuracy": 0.912, "f1": 0.905, "recall": 0.9, "precision": 0.91,
                        "loss": 0.31},
                  {"accuracy": [0.5, 0.7, 0.82, 0.88, 0.912],
                   "loss": [1.2, 0.8, 0.5, 0.4, 0.31]})
    v2 = build.version("digits-baseline", "V001", {"lr": 0.1}, Status.SUCCEEDED)
    build.metrics(v2, {"accuracy": 0.934, "f1": 0.921, "recall": 0.93, "precision": 0.915,
                       "loss": 0.27},
                  {"accuracy": [0.55, 0.75, 0.86, 0.91, 0.934],
                   "loss": [1.1, 0.7, 0.45, 0.33, 0.27]})
    v3 = build.version("digits-baseline", "V002", {"lr": 0.5}, Status.FAILED,
                       "training script exited with code 1: CUDA out of memory",
                       exit_code=1, ran=timedelta(minutes=3, seconds=7))
    build.metrics(v3, {"loss": 2.3}, {"loss": [2.3, 2.4]})
    build.log(v3, ["loading data from /data", "epoch 1 loss 2.3",
                   "Traceback (most recent call last):",
                   "RuntimeError: CUDA out of memory"])
    build.job("mnist-cnn", Status.FAILED, "data: no usable file (3 names longer than 255 "
              "characters were skipped)", exit_code=None, ran=timedelta(seconds=2),
              resources={"pool": "public", "gpus": 1, "nodes": 2, "runtime": "local"})
    build.job("resnet-sweep", Status.RUNNING, description="lr sweep",
              resources={"pool": "public", "gpus": 2, "nodes": 1, "runtime": "local"})
