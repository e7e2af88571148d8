"""The supervisor: one detached process per version that owns the version's whole life.

`python -m app.runtime.supervisor VERSION_ID` — started by `launcher.start_supervisor`
in its own session, so closing the terminal, an SSH hang-up or the TUI's death never
touch it. It waits for GPUs, plans and starts the ranks, writes their logs, ingests
metrics, moves the status, and on the way out releases GPUs and wakes queued versions.
A second supervisor started for a version that already has a live one exits at once;
one started for a Docker version whose supervisor died adopts the containers again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from app.context import Context
from app.errors import TraindeckError
from app.jobs import record_event, set_status
from app.logs import LogWriter, last_timestamp, rank_log_path
from app.metrics import (
    JsonlMetricsReader,
    MetricPoint,
    final_values,
    read_summary_file,
    read_tensorboard_scalars,
)
from app.models import (
    Dataset,
    DatasetVersion,
    Job,
    MetricPointRow,
    MetricSummary,
    Status,
    Version,
    version_label,
)
from app.runtime.control import STOP_SIGNAL, WAKE_SIGNAL, signal_supervisor
from app.runtime.executors import Executor, ExecutorError, RankExit, get_executor
from app.runtime.executors.base import Handle
from app.runtime.plan import PlanError, build_plan, metrics_file_name, state_dir
from app.runtime.procs import hostname, supervisor_alive
from app.runtime.scheduler import queued_supervisors, release, try_admit
from app.spec import JobSpec

log = logging.getLogger("traindeck.supervisor")
POLL_SECONDS = 0.5
METRICS_SECONDS = 1.0
QUEUE_RECHECK_SECONDS = 2.0
ENGINE_RETRY_SECONDS = 600.0


class Supervisor:
    """Runs one version from admission to its final status."""

    def __init__(self, ctx: Context, version_id: int) -> None:
        self.ctx = ctx
        self.version_id = version_id
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self.writers: dict[int, LogWriter] = {}
        self.readers: dict[int, JsonlMetricsReader] = {}
        self.points: list[MetricPoint] = []
        self.threads: list[threading.Thread] = []
        self.job = ""
        self.label = ""

    # -- life ---------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise the version; returns the process exit code."""
        signal.signal(STOP_SIGNAL, lambda *_: self._request_stop())
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        signal.signal(WAKE_SIGNAL, lambda *_: self.wake_event.set())
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        version = self._claim()
        if version is None:
            return 0
        spec = JobSpec.model_validate(json.loads(version.spec_json))
        try:
            if version.handle:
                self._adopt(version)
            else:
                self._launch(version, spec)
        except Exception as exc:  # the version must end truthfully whatever went wrong
            log.exception("supervisor failed")
            self._fail(f"supervisor error: {exc}")
        finally:
            release(self.ctx, self.version_id)
            self._wake_queued()
            for writer in self.writers.values():
                writer.close()
        return 0

    def _request_stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def _claim(self) -> Version | None:
        """Record this process as the version's supervisor, unless another live one is."""
        with self.ctx.db.write() as session:
            version = session.get(Version, self.version_id)
            if version is None or Status(version.status).is_final:
                return None
            if version.supervisor_pid not in (None, os.getpid()) and supervisor_alive(
                    version.supervisor_pid, self.version_id, version.supervisor_host):
                return None
            version.supervisor_pid, version.supervisor_host = os.getpid(), hostname()
            session.add(version)
            self.job = session.exec(select(Job.name).where(Job.id == version.job_id)).one()[0]
            self.label = version_label(version.number)
            if version.stop_requested:
                self.stop_event.set()
            return version

    def _fail(self, reason: str, status: Status = Status.FAILED, **fields: Any) -> None:
        self._log(f"{status.value}: {reason}")
        set_status(self.ctx, self.version_id, status, reason, **fields)

    def _log(self, message: str, rank: int = 0) -> None:
        writer = self.writers.get(rank)
        if writer is not None:
            writer.write_line(f"[traindeck] {message}")

    def _event(self, message: str, kind: str = "info") -> None:
        with self.ctx.db.write() as session:
            record_event(session, self.version_id, message, kind)

    # -- admission ------------------------------------------------------------------------

    def _admit(self) -> list[int] | None:
        """Wait in `queued` until the GPUs are ours; None when stopped or impossible."""
        last_reason = None
        while not self.stop_event.is_set():
            admission = try_admit(self.ctx, self.version_id)
            if admission.granted is not None:
                return admission.granted
            if admission.impossible:
                self._fail(admission.reason)
                return None
            if admission.reason != last_reason:
                set_status(self.ctx, self.version_id, Status.QUEUED, admission.reason)
                last_reason = admission.reason
            self.wake_event.wait(QUEUE_RECHECK_SECONDS)
            self.wake_event.clear()
        self._fail("stopped by user", Status.STOPPED)
        return None

    def _wake_queued(self) -> None:
        for version in queued_supervisors(self.ctx):
            if version.id != self.version_id:
                signal_supervisor(version, WAKE_SIGNAL)

    # -- start ------------------------------------------------------------------------------

    def _dataset_paths(self, spec: JobSpec) -> list[str]:
        out: list[str] = []
        with self.ctx.db.read() as session:
            for ref in spec.data.datasets or []:
                row = session.exec(
                    select(DatasetVersion.uri)
                    .join(Dataset, Dataset.id == DatasetVersion.dataset_id)
                    .where(Dataset.name == ref.name,
                           DatasetVersion.number == int(ref.version.lstrip("Vv")))
                ).first()
                if row is None:
                    raise PlanError(f"dataset {ref.name} {ref.version} no longer exists")
                out.append(row[0])
        return out

    def _open_logs(self, version: Version) -> None:
        for rank in range(max(1, version.nodes)):
            self.writers[rank] = LogWriter(rank_log_path(Path(version.log_dir), rank))

    def _launch(self, version: Version, spec: JobSpec) -> None:
        self._open_logs(version)
        gpus = self._admit()
        if gpus is None:
            return
        executor = get_executor(version.runtime or "local", self.ctx.settings)
        try:
            plan = build_plan(self.ctx.settings, self.job, version, spec, gpus,
                              self._dataset_paths(spec))
        except (PlanError, OSError) as exc:
            self._fail(str(exc))
            return
        if self.stop_event.is_set():
            self._fail("stopped by user", Status.STOPPED)
            return
        self._log(f"starting {self.job} {self.label}: {len(plan.ranks)} rank(s) with "
                  f"{version.runtime}" + (f" on GPU {','.join(map(str, gpus))}" if gpus else ""))
        self._log("command: " + " ".join(plan.ranks[0].argv))
        try:
            handle = executor.start(plan)
        except ExecutorError as exc:
            self._fail(str(exc))
            return
        set_status(self.ctx, self.version_id, Status.RUNNING, "", handle=json.dumps(handle),
                   executor=executor.kind, allocated_gpus=",".join(map(str, gpus)))
        self._watch(executor, handle, version, resume=False)

    def _adopt(self, version: Version) -> None:
        """Take over a run whose supervisor died (Docker ranks live on in the engine)."""
        handle: Handle = json.loads(version.handle)
        executor = get_executor(version.executor or version.runtime, self.ctx.settings)
        self._open_logs(version)
        deadline = time.monotonic() + ENGINE_RETRY_SECONDS
        while True:
            try:
                adoptable = executor.adoptable(handle)
                break
            except ExecutorError as exc:
                if time.monotonic() > deadline:
                    self._fail(f"supervisor lost; {exc}")
                    return
                time.sleep(2.0)
        if not adoptable:
            self._fail("supervisor lost")
            return
        self._log("supervisor restarted: adopting the running ranks")
        self._event("supervisor restarted; ranks adopted")
        self._watch(executor, handle, version, resume=True)

    # -- watch ------------------------------------------------------------------------------

    def _pump_logs(self, executor: Executor, handle: Handle, rank: int, path: Path,
                   resume: bool, done: threading.Event) -> None:
        since = last_timestamp(path) if resume else None
        writer = self.writers[rank]
        while True:
            try:
                for chunk in executor.logs(handle, rank, since):
                    writer.write(chunk)
            except ExecutorError as exc:
                log.warning("log stream of rank %d broke: %s", rank, exc)
            except Exception:
                log.exception("log stream of rank %d failed", rank)
            if done.wait(1.0) or executor.kind != "docker":
                return
            since = last_timestamp(path)

    def _ingest_metrics(self, version: Version) -> None:
        state = state_dir(self.ctx.settings, self.version_id)
        new: list[MetricPoint] = []
        for rank in range(max(1, version.nodes)):
            reader = self.readers.setdefault(
                rank, JsonlMetricsReader(state / metrics_file_name(rank)))
            new += reader.read_new()
        if not new:
            return
        self.points += new
        with self.ctx.db.write() as session:
            session.add_all([
                MetricPointRow(version_id=self.version_id, name=p.name, step=p.step,
                               value=p.value, wall_time=p.wall_time) for p in new
            ])

    def _poll(self, executor: Executor, handle: Handle) -> list[RankExit | None]:
        deadline = time.monotonic() + ENGINE_RETRY_SECONDS
        reported = False
        while True:
            try:
                return executor.poll(handle)
            except ExecutorError as exc:
                if time.monotonic() > deadline:
                    raise
                if not reported:
                    self._log(f"{exc}; retrying")
                    self._event(f"{exc}; retrying", "warning")
                    reported = True
                time.sleep(2.0)

    def _watch(self, executor: Executor, handle: Handle, version: Version, resume: bool) -> None:
        done = threading.Event()
        for rank in range(max(1, version.nodes)):
            thread = threading.Thread(
                target=self._pump_logs, name=f"logs-{rank}", daemon=True,
                args=(executor, handle, rank, rank_log_path(Path(version.log_dir), rank),
                      resume, done))
            thread.start()
            self.threads.append(thread)
        stopping = False
        last_metrics = 0.0
        exits: list[RankExit | None] = []
        while True:
            exits = self._poll(executor, handle)
            if all(e is not None for e in exits):
                break
            failed = any(e is not None and e.exit_code != 0 for e in exits)
            if (self.stop_event.is_set() or failed) and not stopping:
                stopping = True
                if not failed:
                    self._log("stop requested")
                threading.Thread(target=executor.stop, name="stop", daemon=True,
                                 args=(handle, self.ctx.settings.stop_grace_seconds)).start()
            if time.monotonic() - last_metrics > METRICS_SECONDS:
                self._ingest_metrics(version)
                last_metrics = time.monotonic()
            self.stop_event.wait(POLL_SECONDS)
        done.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self._finish(executor, handle, version, [e for e in exits if e is not None])

    # -- end --------------------------------------------------------------------------------

    def _finish(self, executor: Executor, handle: Handle, version: Version,
                exits: list[RankExit]) -> None:
        self._ingest_metrics(version)
        output = Path(version.output)
        summary = read_summary_file(output) if output.is_dir() else {}
        tb_points = read_tensorboard_scalars(output) if output.is_dir() else []
        known = {p.name for p in self.points}
        extra = [p for p in tb_points if p.name not in known]
        finals = final_values([*self.points, *extra], summary)
        with self.ctx.db.write() as session:
            if extra:
                session.add_all([
                    MetricPointRow(version_id=self.version_id, name=p.name, step=p.step,
                                   value=p.value, wall_time=p.wall_time) for p in extra])
            session.exec(delete(MetricSummary).where(
                MetricSummary.version_id == self.version_id))  # type: ignore[arg-type]
            session.add_all([MetricSummary(version_id=self.version_id, name=k, value=v)
                             for k, v in finals.items()])
        try:
            executor.cleanup(handle)
        except ExecutorError as exc:
            self._event(f"cleanup failed: {exc}", "warning")
        bad = next((e for e in exits if e.exit_code != 0 or e.error), None)
        code = bad.exit_code if bad else 0
        if self.stop_event.is_set():
            self._fail("stopped by user", Status.STOPPED, exit_code=code)
        elif bad is None:
            self._log("succeeded")
            set_status(self.ctx, self.version_id, Status.SUCCEEDED, "", exit_code=0)
        else:
            self._fail(describe_exit(bad, len(exits) > 1), exit_code=code)


def describe_exit(exit_: RankExit, several: bool) -> str:
    """A failure reason a user can act on."""
    where = f" (rank {exit_.rank})" if several else ""
    if exit_.error:
        return exit_.error + where
    if exit_.oom_killed:
        return f"killed (OOM){where}"
    if exit_.exit_code == 137:
        return f"killed (SIGKILL, exit code 137){where}"
    return f"exit code {exit_.exit_code}{where}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: `python -m app.runtime.supervisor VERSION_ID`."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m app.runtime.supervisor VERSION_ID", file=sys.stderr)
        return 2
    try:
        ctx = Context.open(sync=False)
    except TraindeckError as exc:
        log.error("%s", exc)
        return 1
    return Supervisor(ctx, int(args[0])).run()


if __name__ == "__main__":
    raise SystemExit(main())
