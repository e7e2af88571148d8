"""The supervisor: one detached process per version that owns the version's whole life.

Started by `app.runtime.launcher` (entry point `app.runtime.supervisor`) in its own
session, so closing the terminal, an SSH hang-up or the TUI's death never touch it.
When the ranks were started already (by the caller, or before a supervisor died) it
adopts them; else it waits for GPUs, stages the data and starts them itself. Then it
copies Docker ranks' output into their logs (local ranks write theirs), ingests
metrics, moves the status, and on the way out releases GPUs and wakes queued versions.
A second supervisor started for a version that already has a live one exits at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

from sqlalchemy import delete
from sqlmodel import col

from app.context import Context
from app.errors import TraindeckError
from app.lifecycle import record_event, set_status
from app.metrics import MetricPoint, final_values, read_final_metrics
from app.metrics_log import RankMetricsReader
from app.procs import hostname, settle_heap, supervisor_alive
from app.runtime.executors import (
    Executor,
    ExecutorError,
    RankExit,
    executor_for,
    get_executor,
)
from app.runtime.executors.base import Handle
from app.runtime.gpus import GpuDevice
from app.runtime.launcher import open_rank_logs, start_ranks
from app.runtime.logpump import RankLog, copy_job_log
from app.runtime.plan import (
    CREATED_LABEL,
    INSTANCE_LABEL,
    PlanError,
    instance_tag,
    job_log_path,
    metrics_path,
    rank_count,
    rank_names,
    state_dir,
    version_stamp,
    work_dir,
)
from app.runtime.sampler import PREFIX as SAMPLED
from app.runtime.sampler import Sampler
from app.runtime.scheduler import peek_admission, release, try_admit, wake_queued
from app.runtime.signals import SignalFlags
from app.runtime.supervisor.outcome import Outcome, outcome_of
from app.runtime.supervisor.storage import VersionStorage
from app.specs.spec import JobSpec
from app.storage import (
    local_output_path,
)
from app.store.models import (
    Job,
    MetricPointRow,
    MetricSummary,
    Status,
    Version,
    version_label,
)

log = logging.getLogger("traindeck.supervisor")
POLL_SECONDS = 2.0
"""Longest time between two polls of the ranks (a rank's end wakes it sooner)."""
METRICS_SECONDS = 1.0
QUEUE_RECHECK_SECONDS = 2.0
ENGINE_RETRY_SECONDS = 600.0
"""How long an unreachable Docker engine is waited for before the version fails."""


class Supervisor:
    """Runs one version from admission to its final status."""

    def __init__(self, ctx: Context, version_id: int, flags: SignalFlags | None = None,
                 *, restarted: bool = False) -> None:
        self.ctx = ctx
        self.version_id = version_id
        self.flags = flags or SignalFlags()
        self.logs: dict[int, RankLog] = {}
        self.readers: dict[int, RankMetricsReader] = {}
        self.log_patterns: list[str] | None = None
        """The spec's `metrics.log_patterns` (None: the default rules)."""
        self.parameter_names: list[str] = []
        """The run parameters: echoed in the log, they are settings, not metrics."""
        self.points: list[MetricPoint] = []
        self.threads: list[threading.Thread] = []
        self.state = state_dir(ctx.settings, version_id)
        self.job = ""
        self.label = ""
        self.failed_first: list[RankExit] = []
        self.storage = VersionStorage(ctx, version_id, self.state, self.flags.stop,
                                      self._note, self._event)
        self.restarted = restarted
        """True when this process replaces a supervisor of the version that died."""

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self.flags.stop.is_set()

    # -- life ---------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise the version; returns the process exit code."""
        version = self._claim()
        if version is None:
            return 0
        try:
            spec = JobSpec.model_validate(json.loads(version.spec_json))
            self.log_patterns = spec.metrics.log_patterns if spec.metrics else None
            self.parameter_names = list(spec.parameters)
            self.storage.start(version, spec, self.label)
            if version.handle:
                self._adopt(version)
            else:
                self._launch(version, spec)
        except Exception as exc:  # the version must end truthfully whatever went wrong
            log.exception("supervisor failed")
            self._end(Outcome(Status.FAILED, f"supervisor error: {exc}"))
        finally:
            try:
                release(self.ctx, self.version_id)
                wake_queued(self.ctx, exclude=self.version_id)
            finally:
                for rank_log in self.logs.values():
                    rank_log.close()
                # Subscribed status changes are being sent in the background: they must
                # reach their topics before this process exits.
                notify = sys.modules.get("app.notify")
                if notify is not None:
                    notify.wait_for_notifications()
        return 0

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
            job = session.get(Job, version.job_id)
            self.job = job.name if job is not None else "?"
            self.label = version_label(version.number)
            if version.stop_requested:
                self.flags.request_stop()
            return version

    def _end(self, outcome: Outcome) -> None:
        """Upload the output, write the last log line, close (and upload) the logs, then
        make the status final."""
        outcome = self.storage.upload_output(outcome)
        line = outcome.status.value + (f": {outcome.reason}" if outcome.reason else "")
        self._note(line)
        for rank_log in self.logs.values():
            rank_log.close()
        self.storage.finish()
        fields: dict[str, Any] = {}
        if outcome.exit_code is not None:
            fields["exit_code"] = outcome.exit_code
        set_status(self.ctx, self.version_id, outcome.status, outcome.reason, **fields)

    def _close_logs(self) -> None:
        for rank_log in self.logs.values():
            rank_log.close()

    def _note(self, message: str, rank: int = 0) -> None:
        rank_log = self.logs.get(rank)
        if rank_log is not None:
            rank_log.note(message)

    def _event(self, message: str, kind: str = "info") -> None:
        with self.ctx.db.write() as session:
            record_event(session, self.version_id, message, kind)

    def _open_logs(self, version: Version, *, fresh: bool) -> None:
        self.logs = open_rank_logs(self.ctx, version, fresh=fresh)

    def _reload(self) -> Version | None:
        with self.ctx.db.read() as session:
            return session.get(Version, self.version_id)

    # -- admission ------------------------------------------------------------------------

    def _admit(self) -> list[GpuDevice] | None:
        """Wait in `queued` until the GPUs are ours; None when stopped or impossible."""
        last_reason = None
        peek_admission(self.ctx, self.version_id)  # prepares the decision's statements
        while not self.stopping:
            self.flags.wake.clear()
            admission = try_admit(self.ctx, self.version_id)
            if admission.granted is not None:
                if admission.granted:
                    # Others waiting re-check now, so their reasons name the new holder.
                    wake_queued(self.ctx, exclude=self.version_id)
                return admission.granted
            if admission.impossible:
                self._end(Outcome(Status.FAILED, admission.reason))
                return None
            if admission.reason != last_reason:
                set_status(self.ctx, self.version_id, Status.QUEUED, admission.reason)
                last_reason = admission.reason
            self.flags.wake.wait(QUEUE_RECHECK_SECONDS)
        self._end(Outcome(Status.STOPPED, "stopped by user"))
        return None

    # -- start ------------------------------------------------------------------------------

    def _launch(self, version: Version, spec: JobSpec) -> None:
        self._open_logs(version, fresh=True)
        data_paths = self.storage.prepare_data(spec)
        if isinstance(data_paths, Outcome):
            self._end(data_paths)
            return
        gpus = self._admit()
        if gpus is None:
            return
        executor = executor_for(version, self.ctx.settings)
        if self._recover(executor, version):
            return
        if self.stopping:
            self._end(Outcome(Status.STOPPED, "stopped by user"))
            return
        try:
            handle = start_ranks(self.ctx, self.job, version, spec, gpus, data_paths,
                                 executor, self.logs)
        except (PlanError, ExecutorError, OSError) as exc:
            self._end(Outcome(Status.FAILED, str(exc)))
            return
        assert handle is not None  # the supervisor may wait
        self._watch(executor, handle, version, adopted=False)

    def _recover(self, executor: Executor, version: Version) -> bool:
        """Containers of this version left by a supervisor that died while starting them.

        When every rank's container was started, adopt them (True); remove any other
        leftovers so that a fresh start can reuse the names (False).
        """
        tag = instance_tag(self.ctx.settings)
        try:
            found = [c for c in executor.find_containers(self.version_id)
                     if c.labels.get(INSTANCE_LABEL) == tag]
        except ExecutorError:
            return False
        if not found:
            return False
        _, network = rank_names(self.ctx.settings, self.job, version)
        handle: Handle = {"kind": executor.kind, "containers": [c.id for c in found],
                          "names": [c.name for c in found],
                          "network": network if rank_count(version) > 1 else None}
        mine = all(c.labels.get(CREATED_LABEL) == version_stamp(version) for c in found)
        if (mine and len(found) == rank_count(version)
                and all(c.status != "created" for c in found)):
            with self.ctx.db.write() as session:
                row = session.get(Version, self.version_id)
                if row is not None:
                    row.handle, row.executor = json.dumps(handle), executor.kind
                    session.add(row)
            version.handle = json.dumps(handle)
            self._adopt(version)
            return True
        self._cleanup(executor, handle, retry=False)
        return False

    def _adopt(self, version: Version) -> None:
        """Watch ranks that run without this process: started by the caller, or before
        a supervisor of the version died (both runtimes' ranks live on without one)."""
        handle: Handle = json.loads(version.handle)
        executor = get_executor(version.executor or handle.get("kind") or version.runtime,
                                self.ctx.settings)
        self._close_logs()
        self._open_logs(version, fresh=False)
        for rank_log in self.logs.values():
            rank_log.resume()
        deadline = time.monotonic() + ENGINE_RETRY_SECONDS
        while True:
            try:
                adoptable = executor.adoptable(handle)
                break
            except ExecutorError as exc:
                if time.monotonic() > deadline:
                    self._end(Outcome(Status.FAILED, f"supervisor lost; {exc}"))
                    return
                time.sleep(2.0)
        if not adoptable:
            self._end(Outcome(Status.FAILED, "supervisor lost (its ranks are gone)"))
            return
        if self.restarted:
            self._note("supervisor restarted: adopting the running ranks")
            self._event("supervisor restarted; ranks adopted")
        if version.status != Status.RUNNING.value:
            set_status(self.ctx, self.version_id, Status.RUNNING, "")
        self._watch(executor, handle, version, adopted=self.restarted)

    # -- watch ------------------------------------------------------------------------------

    def _start_watchers(self, executor: Executor, handle: Handle, ended: threading.Event
                        ) -> None:
        """Threads that wake the main loop when a rank ends and, for ranks whose logs
        are in the job's folder, copy them into the ranks' logs until `ended`."""
        def wait() -> None:
            while not ended.is_set():
                executor.wait_any(handle, POLL_SECONDS)
                self.flags.changed.set()

        threading.Thread(target=wait, name="rank-waiter", daemon=True).start()
        if not executor.logs_in_job_folder(handle):
            return
        for rank, rank_log in sorted(self.logs.items()):
            source = job_log_path(self.ctx.settings, self.version_id, rank)
            thread = threading.Thread(target=copy_job_log, name=f"logs-{rank}", daemon=True,
                                      args=(source, rank_log, ended.is_set))
            thread.start()
            self.threads.append(thread)

    def _ingest_metrics(self, version: Version, *, replace: bool = False) -> None:
        """Store new metric points; `replace` re-reads the files from their start."""
        new: list[MetricPoint] = []
        for rank in range(rank_count(version)):
            if rank not in self.readers:
                # Rank 0's log only: the ranks of a run mostly print the same numbers.
                log_path = self.logs[0].path if rank == 0 and 0 in self.logs else None
                self.readers[rank] = RankMetricsReader(
                    metrics_path(self.ctx.settings, self.version_id, rank), log_path,
                    self.log_patterns, self.parameter_names)
            reader = self.readers[rank]
            new += reader.read_new()
        if not new and not replace:
            return
        self.points += new
        with self.ctx.db.write() as session:
            if replace:
                session.exec(delete(MetricPointRow).where(  # the sampler's `sys/` stay
                    col(MetricPointRow.version_id) == self.version_id,
                    ~col(MetricPointRow.name).startswith(SAMPLED)))
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
                    self._note(f"{exc}; retrying")
                    self._event(f"{exc}; retrying", "warning")
                    reported = True
                self.flags.changed.wait(2.0)
                self.flags.changed.clear()

    def _watch(self, executor: Executor, handle: Handle, version: Version, adopted: bool
               ) -> None:
        ended = threading.Event()
        self._start_watchers(executor, handle, ended)
        sampler = Sampler(self.ctx, self.version_id, handle).start()
        held: str | None = None
        stop_sent = False
        last_metrics = last_poll = time.monotonic()
        self._ingest_metrics(version, replace=adopted)
        woke = True
        while True:
            # A rank's end, stop requests and the stop thread all set `changed`; without
            # news the ranks are polled only now and then.
            if woke or time.monotonic() - last_poll >= POLL_SECONDS:
                exits = self._poll(executor, handle)
                last_poll = time.monotonic()
                if all(e is not None for e in exits):
                    break
                waiting = None if any(exits) else executor.queue_reason(handle)
                if waiting != held:  # a scheduler behind the executor holds the ranks
                    held = waiting
                    set_status(self.ctx, self.version_id,
                               Status.QUEUED if held else Status.RUNNING, held or "")
                failed = [e for e in exits if e is not None and e.exit_code != 0]
                if (self.stopping or failed) and not stop_sent:
                    stop_sent = True
                    self.failed_first = failed
                    self._note("stop requested" if self.stopping and not failed else
                               "a rank failed: stopping the others")
                    threading.Thread(target=self._stop_ranks, name="stop", daemon=True,
                                     args=(executor, handle)).start()
            if time.monotonic() - last_metrics >= METRICS_SECONDS:
                self._ingest_metrics(version)
                last_metrics = time.monotonic()
            woke = self.flags.changed.wait(METRICS_SECONDS)
            if woke:
                self.flags.changed.clear()
        ended.set()
        sampler.stop()
        for thread in self.threads:  # the copies read the job's files to their end
            thread.join()
        for rank_log in self.logs.values():
            rank_log.finish_partial()
        if executor.logs_in_job_folder(handle):  # copied: the job's copies only take space now
            for rank in self.logs:
                job_log_path(self.ctx.settings, self.version_id, rank).unlink(missing_ok=True)
        self._finish(executor, handle, version, [e for e in exits if e is not None])

    def _stop_ranks(self, executor: Executor, handle: Handle) -> None:
        try:
            executor.stop(handle, self.ctx.settings.stop_grace_seconds)
        except ExecutorError as exc:
            log.warning("stop failed: %s", exc)
        finally:
            self.flags.changed.set()

    # -- end --------------------------------------------------------------------------------

    def _finish(self, executor: Executor, handle: Handle, version: Version,
                exits: list[RankExit]) -> None:
        self._ingest_metrics(version)
        output = local_output_path(version.output, self.state)
        tb_points, summary = read_final_metrics([output, work_dir(self.ctx.settings,
                                                                  self.version_id)])
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
        cleaned = self._cleanup(executor, handle, retry=False)
        outcome = outcome_of(exits, self.failed_first, self.stopping,
                             {rank: x.path for rank, x in self.logs.items()})
        lost = [f"rank {e.rank}: {e.log_error}" for e in exits if e.log_error]
        lost += [f"rank {r}: {x.error}" for r, x in sorted(self.logs.items()) if x.error]
        if lost:
            # The run itself is not at fault: its status stays, the gap is said.
            self._event("log incomplete: " + "; ".join(lost), "warning")
            if outcome.status is Status.SUCCEEDED:
                outcome = Outcome(Status.SUCCEEDED, "log incomplete: " + lost[0], 0)
        self._end(outcome)
        if not cleaned:
            # The engine may be restarting: the status is final, the GPUs free; keep
            # trying to remove the containers for a while, so that none is left behind.
            release(self.ctx, self.version_id)
            wake_queued(self.ctx, exclude=self.version_id)
            self._cleanup(executor, handle, retry=True)

    def _cleanup(self, executor: Executor, handle: Handle, *, retry: bool) -> bool:
        """Remove the ranks' containers/processes; with `retry`, for up to 10 minutes."""
        deadline = time.monotonic() + (ENGINE_RETRY_SECONDS if retry else 0)
        while True:
            try:
                executor.cleanup(handle)
                return True
            except ExecutorError as exc:
                if time.monotonic() >= deadline:
                    if retry:
                        self._event(f"cleanup failed: {exc}", "warning")
                    return False
            time.sleep(2.0)


def run_supervisor(version_id: int, flags: SignalFlags, *, restarted: bool = False) -> int:
    """Open the database and supervise `version_id`; the process's exit code."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        ctx = Context.open(sync=False)
    except TraindeckError as exc:
        log.error("%s", exc)
        return 1
    ctx.db.checkpoint_in_background()  # a scheduling decision must not wait for one
    settle_heap()
    return Supervisor(ctx, version_id, flags, restarted=restarted).run()
