"""Starting a version: the caller starts the ranks, a detached supervisor adopts them.

There is one way to start a run and one way to recover it, for every executor:

* `launch` runs in the process that created the version (the CLI or the TUI). When the
  version can start at once (its data is local, its GPUs free) it plans it and starts
  its ranks right there — Docker containers, or local processes under the rank wrapper
  (`app.runtime.rankrun`) — records their handle, and only then starts the version's
  detached supervisor. Otherwise (it must wait in the queue, stage object-storage data,
  or anything went wrong here) the supervisor does it all itself.
* The supervisor (`app.runtime.supervisor`) adopts whatever handle it finds. So does a
  new supervisor started for a version whose supervisor died (`restart_supervisor`):
  both runtimes keep running and writing their logs without one.

Until `launch` has started the supervisor the version has no supervisor pid, and
reconciliation leaves it alone for `LAUNCH_GRACE_SECONDS`; after that, a dead caller's
version gets a supervisor that adopts what was recorded, or starts it.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlmodel import select

from app.context import Context
from app.formatting import describe_limits
from app.lifecycle import record_event, runtime_note, set_status
from app.procs import SUPERVISOR_MODULE, hostname
from app.runtime.executors import Executor, ExecutorError, executor_for
from app.runtime.executors.base import Handle, LaunchPlan
from app.runtime.gpus import GpuDevice
from app.runtime.logpump import RankLog, copy_job_log, own_lines_path
from app.runtime.plan import (
    PlanError,
    build_plan,
    job_log_path,
    metrics_path,
    rank_count,
    state_dir,
)
from app.runtime.signals import CONTROL_SIGNALS, RESTARTED
from app.specs.spec import JobSpec
from app.storage import data_ready
from app.store.models import Dataset, DatasetVersion, Job, Status, Version, parse_version_label

log = logging.getLogger("traindeck.launcher")

RESTART_EVENT = "supervisor lost; restarting it"
"""Event message recorded each time reconciliation restarts a version's supervisor."""
FIRST_OUTPUT_COPY_SECONDS = 0.3
"""How long the starter of a Docker version copies its first output into the log before
it starts the supervisor (which copies the rest): a job that prints at once has its
first line there as soon as a `docker run` would show it."""


def supervisor_log(ctx: Context, version_id: int) -> str:
    """File that receives the supervisor process's own stderr (tracebacks, if any)."""
    folder = ctx.settings.data_dir / "supervisors"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{version_id}.log")


def _spawn(ctx: Context, version_id: int, *, restarted: bool = False
           ) -> subprocess.Popen[bytes]:
    """Start `python -m app.runtime.supervisor VERSION_ID` in a session of its own.

    The new session means no controlling terminal: an SSH hang-up, closing tmux or
    killing the starter (even with -9) does not reach it. The control signals are
    blocked in the child until it has installed its handlers, so a stop sent while it
    is still importing is kept for it instead of killing it.
    """
    with open(supervisor_log(ctx, version_id), "ab") as out:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, CONTROL_SIGNALS)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, str(version_id),
                 *([RESTARTED] if restarted else [])],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                close_fds=True, cwd=str(ctx.settings.data_dir),
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    # Reap it when it ends, so a long-lived TUI collects no zombies.
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    return proc


def launch(ctx: Context, version_id: int) -> int:
    """Start a new version: its ranks here when they can start now, then its supervisor.

    Returns the supervisor's pid. Nothing that goes wrong while starting the ranks here
    escapes: the supervisor then starts (or fails) the version itself.
    """
    try:
        _start_here(ctx, version_id)
    except Exception:
        log.exception("starting version %d in the caller failed; its supervisor takes over",
                      version_id)
    proc = _spawn(ctx, version_id)
    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if version is not None and version.supervisor_pid is None:
            version.supervisor_pid, version.supervisor_host = proc.pid, hostname()
            session.add(version)
    return proc.pid


def _start_here(ctx: Context, version_id: int) -> None:
    """Admit, plan and start the ranks of a new version, if it can start at once."""
    with ctx.db.read() as session:
        version = session.get(Version, version_id)
        if (version is None or version.status != Status.INITIALIZING.value
                or version.handle or version.stop_requested):
            return
        job = session.exec(select(Job.name).where(Job.id == version.job_id)).one()
    spec = JobSpec.model_validate(json.loads(version.spec_json))
    try:
        sources = (spec.data.paths if spec.data.paths is not None
                   else dataset_paths(ctx, spec, version_id))
    except PlanError:
        return  # the supervisor plans it again and fails it with the reason
    if not data_ready(sources):
        return  # object-storage data is staged by the supervisor
    from app.runtime.scheduler import release, try_admit

    admission = try_admit(ctx, version_id)
    if admission.granted is None:
        return  # queued, or impossible: the supervisor says so
    client = None
    if version.runtime == "docker":
        # A short ping: a hung engine must not hang the caller (the supervisor waits
        # for it, and reports).
        from app.runtime.dockerhost import reachable_client

        client = reachable_client(ctx.settings)
        if client is None:
            return
    try:
        executor = executor_for(version, ctx.settings, client)
        logs = open_rank_logs(ctx, version, fresh=True)
        try:
            handle = start_ranks(ctx, job, version, spec, admission.granted, sources,
                                 executor, logs, may_wait=False)
            if handle is None:
                return  # its image must be pulled first: the supervisor does it
            if executor.logs_in_job_folder(handle):
                # The supervisor needs most of a second to start: copy the first output
                # of rank 0 meanwhile, here (a `docker run` shows it at once).
                until = time.monotonic() + FIRST_OUTPUT_COPY_SECONDS
                copy_job_log(job_log_path(ctx.settings, version_id, 0), logs[0],
                             lambda: logs[0].rank_lines > 0 or time.monotonic() > until)
        except PlanError:
            return  # the supervisor plans it again and fails it with the reason
        except ExecutorError as exc:
            logs[0].note(f"failed: {exc}")
            set_status(ctx, version_id, Status.FAILED, str(exc), handle="")
            release(ctx, version_id)
        finally:
            for rank_log in logs.values():
                rank_log.abandon()  # no partial line: the supervisor replays it whole
    finally:
        if client is not None:
            client.close()


def start_ranks(ctx: Context, job: str, version: Version, spec: JobSpec, gpus: list[GpuDevice],
                sources: list[str], executor: Executor, logs: dict[int, RankLog], *,
                may_wait: bool = True) -> Handle | None:
    """Plan the version, start its ranks and record them as running; their handle.

    Shared by the caller (`launch`, which may not wait: None when the start needs a
    wait, such as an image pull) and the supervisor. Raises PlanError or ExecutorError
    (nothing was started then).
    """
    plan = build_plan(ctx.settings, job, version, spec, gpus, sources)
    ready = executor.prepare(plan, logs[0].note, may_wait=may_wait)
    if ready is None:
        return None
    plan = ready
    announce_start(ctx, version, logs, plan, executor.kind, gpus)
    handle = executor.start(plan)
    set_status(ctx, version.id or 0, Status.RUNNING, "", handle=json.dumps(handle),
               executor=executor.kind, allocated_gpus=",".join(map(str, gpus)))
    return handle


def open_rank_logs(ctx: Context, version: Version, *, fresh: bool) -> dict[int, RankLog]:
    """Open every rank's log; a stale file of an older, deleted version is set aside."""
    state = state_dir(ctx.settings, version.id or 0)
    state.mkdir(parents=True, exist_ok=True)
    created = version.created_at.timestamp()
    logs: dict[int, RankLog] = {}
    for rank in range(rank_count(version)):
        path = Path(version.log_dir) / f"rank-{rank}.log"
        if fresh and path.exists() and path.stat().st_mtime < created - 1:
            path.rename(path.with_name(f"{path.name}.{int(path.stat().st_mtime)}.old"))
        logs[rank] = RankLog(path, own_lines_path(state, rank))
    return logs


def dataset_paths(ctx: Context, spec: JobSpec, version_id: int | None = None) -> list[str]:
    """Where the spec's dataset versions are read from (a deleted one is a PlanError).

    Without `version_id`, their recorded locations. For training version `version_id`:
    a snapshotted local version's read-only view, `data-<i>` in the version's state dir
    (made on first use from the snapshot, so a job gets exactly the version's files however
    the folder changed since); object-storage URIs as they are (staging pins them, see
    `app.datasets.s3_pins`); a version made before snapshots: its live folder, with a
    warning event. A stored file changed in place since is a PlanError naming it.
    """
    from app.datasets import pinned_source
    from app.errors import TraindeckError

    rows: list[tuple[str, DatasetVersion]] = []
    with ctx.db.read() as session:
        for ref in spec.data.datasets or []:
            row = session.exec(
                select(DatasetVersion)
                .join(Dataset, Dataset.id == DatasetVersion.dataset_id)  # type: ignore[arg-type]
                .where(Dataset.name == ref.name,
                       DatasetVersion.number == parse_version_label(ref.version))
            ).first()
            if row is None:
                raise PlanError(f"dataset {ref.name} {ref.version} no longer exists")
            rows.append((ref.name, row))
    if version_id is None:
        return [row.uri for _, row in rows]
    state = state_dir(ctx.settings, version_id)
    try:
        return [pinned_source(ctx, name, row, state / f"data-{i}", version_id)
                for i, (name, row) in enumerate(rows)]
    except TraindeckError as exc:
        raise PlanError(str(exc)) from exc


def announce_start(ctx: Context, version: Version, logs: dict[int, RankLog], plan: LaunchPlan,
                   kind: str, gpus: list[GpuDevice]) -> None:
    """Just before the ranks start: reset their metrics files, the job's copies of their
    logs and the logs' counts, say so."""
    for rank in range(len(plan.ranks)):
        metrics_path(ctx.settings, version.id or 0, rank).unlink(missing_ok=True)
        job_log_path(ctx.settings, version.id or 0, rank).unlink(missing_ok=True)
    for rank_log in logs.values():
        rank_log.start_fresh()
    with ctx.db.read() as session:
        note = runtime_note(session, version.id or 0)
    if note:
        logs[0].note(note)  # why `auto` runs it as local processes
    on_gpus = f" on GPU {','.join(map(str, gpus))}" if gpus else ""
    logs[0].note(f"starting {plan.job} {plan.version}: {len(plan.ranks)} rank(s) with "
                 f"{kind}{on_gpus}")
    logs[0].note("command: " + shlex.join(plan.ranks[0].argv))  # shown; never run by a shell
    if plan.cpus or plan.memory:
        logs[0].note("limits per rank: " + describe_limits(plan.cpus, plan.memory, kind))


def restart_supervisor(ctx: Context, version_id: int, lost_pid: int | None) -> int | None:
    """Start a new supervisor for a version whose supervisor `lost_pid` is gone.

    Compare-and-set in one write transaction: when another process already restarted
    it (the recorded pid is no longer `lost_pid`) or the version ended, nothing is
    started and None is returned; else the new supervisor's pid.
    """
    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if (version is None or Status(version.status).is_final
                or version.supervisor_pid != lost_pid):
            return None
        proc = _spawn(ctx, version_id, restarted=True)
        version.supervisor_pid, version.supervisor_host = proc.pid, hostname()
        session.add(version)
        record_event(session, version_id, RESTART_EVENT, "warning")
    return proc.pid


