"""Steps shared by every way a version's ranks are started.

The supervisor starts ranks itself; the submitting process may give it a head start
(`start_in_caller`, see `app.runtime.handoff`): it starts a Docker version's containers,
or plans a local version for the supervisor's first stage to start. Both open the rank
logs, plan and announce the run the same way, through the functions here.

While a version's ranks are being started that way, its `handle` holds a *marker*
(`{"kind": ..., "starting": PID, "host": ...}`, PID being the process that starts
them) instead of a real handle: a supervisor then waits for the real handle rather
than start a second run, and reconciliation treats it as "not started yet".
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlmodel import select

from app.context import Context
from app.jobs import set_status
from app.models import Dataset, DatasetVersion, Job, Status, Version, version_label
from app.runtime.executors.base import LaunchPlan
from app.runtime.logpump import RankLog, copy_first_output, own_lines_path
from app.runtime.plan import PlanError, metrics_file_name, state_dir
from app.runtime.procs import hostname, pid_alive
from app.spec import JobSpec
from app.storage import data_ready

log = logging.getLogger("traindeck.launcher")

FIRST_OUTPUT_COPY_SECONDS = 0.3
"""How long the starter of a Docker version copies its first output into the log (the
supervisor takes over then): a job that prints at once has its first line there as
soon as a `docker run` would show it."""
STARTING = "starting"
"""Key of a marker handle: the pid of the process starting the ranks."""


def marker_of(handle_json: str) -> dict[str, Any] | None:
    """The marker in a version's `handle`, or None when it is empty or a real handle."""
    if not handle_json:
        return None
    handle = json.loads(handle_json)
    return handle if STARTING in handle else None


def marker_alive(marker: dict[str, Any]) -> bool:
    """True while the process that set the marker may still be starting the ranks."""
    if marker.get("host") not in (None, "", hostname()):
        return True
    return pid_alive(int(marker.get(STARTING) or 0))


def clear_marker(ctx: Context, version_id: int, expected: str | None = None) -> bool:
    """Remove a marker handle (only the one expected, when given); True when removed."""
    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if version is None or marker_of(version.handle) is None:
            return False
        if expected is not None and version.handle != expected:
            return False
        version.handle = ""
        session.add(version)
    return True


def open_rank_logs(ctx: Context, version: Version, *, fresh: bool) -> dict[int, RankLog]:
    """Open every rank's log; a stale file of an older, deleted version is set aside."""
    state = state_dir(ctx.settings, version.id or 0)
    state.mkdir(parents=True, exist_ok=True)
    created = version.created_at.timestamp()
    logs: dict[int, RankLog] = {}
    for rank in range(max(1, version.nodes)):
        path = Path(version.log_dir) / f"rank-{rank}.log"
        if fresh and path.exists() and path.stat().st_mtime < created - 1:
            path.rename(path.with_name(f"{path.name}.{int(path.stat().st_mtime)}.old"))
        logs[rank] = RankLog(path, own_lines_path(state, rank))
    return logs


def dataset_paths(ctx: Context, spec: JobSpec) -> list[str]:
    """Where the spec's datasets live now (a deleted dataset version is a PlanError)."""
    out: list[str] = []
    with ctx.db.read() as session:
        for ref in spec.data.datasets or []:
            row = session.exec(
                select(DatasetVersion.uri)
                .join(Dataset, Dataset.id == DatasetVersion.dataset_id)  # type: ignore[arg-type]
                .where(Dataset.name == ref.name,
                       DatasetVersion.number == int(ref.version.lstrip("Vv")))
            ).first()
            if row is None:
                raise PlanError(f"dataset {ref.name} {ref.version} no longer exists")
            out.append(row if isinstance(row, str) else row[0])
    return out


def announce_start(ctx: Context, version: Version, logs: dict[int, RankLog], plan: LaunchPlan,
                   kind: str, gpus: list[int]) -> None:
    """Just before the ranks start: reset their metrics files and logs' counts, say so."""
    state = state_dir(ctx.settings, version.id or 0)
    for rank in range(len(plan.ranks)):
        (state / metrics_file_name(rank)).unlink(missing_ok=True)
    for rank_log in logs.values():
        rank_log.start_fresh()
    on_gpus = f" on GPU {','.join(map(str, gpus))}" if gpus else ""
    logs[0].note(f"starting {plan.job} {plan.version}: {len(plan.ranks)} rank(s) with "
                 f"{kind}{on_gpus}")
    logs[0].note("command: " + " ".join(plan.ranks[0].argv))


def start_in_caller(ctx: Context, version_id: int,
                    hand_off: Callable[[dict[str, Any]], None], supervisor_pid: int = 0) -> None:
    """Give a new version's supervisor a head start from this (warm) process.

    Calls `hand_off` exactly once with what the version's supervisor needs to take
    over. Docker: `{"handle", "logs", "first_output"}` once the containers run and the
    first line of rank 0 is in its log (`first_output`: true; false when none came within
    FIRST_OUTPUT_COPY_SECONDS), `{"done": true}` when the start failed (the version is
    then failed here, with the engine's reason).
    Local: `{"plan", "logs", "gpus"}` — the supervisor (`supervisor_pid`) starts the
    ranks, as they must be its children. Either: `{"fallback": true}` when the
    supervisor should do it all itself (GPUs busy, a plan problem, anything unexpected).
    """
    handed: list[dict[str, Any]] = []

    def give(payload: dict[str, Any]) -> None:
        if not handed:
            handed.append(payload)
            hand_off(payload)

    try:
        give(_start(ctx, version_id, give, supervisor_pid))
    except Exception:
        log.exception("fast start of version %d failed", version_id)
        give({"fallback": True})


def _start(ctx: Context, version_id: int, give: Callable[[dict[str, Any]], None],
           supervisor_pid: int) -> dict[str, Any]:
    from app.runtime.dockerhost import reachable_client

    with ctx.db.read() as session:
        version = session.get(Version, version_id)
        kind = version.runtime if version is not None else ""
    if kind not in ("docker", "local") or (kind == "local" and supervisor_pid <= 0):
        return {"fallback": True}
    if kind == "local":
        return _start_ranks(ctx, version_id, kind, None, give, supervisor_pid)
    # A short ping: a hung engine must not hang the submitter (the supervisor waits for
    # it, and reports). The same client then starts the containers.
    client = reachable_client(ctx.settings)
    if client is None:
        return {"fallback": True}
    try:
        return _start_ranks(ctx, version_id, kind, client, give, supervisor_pid)
    finally:
        client.close()


def _start_ranks(ctx: Context, version_id: int, kind: str, client: Any,
                 give: Callable[[dict[str, Any]], None], supervisor_pid: int
                 ) -> dict[str, Any]:
    from app.runtime.executors import ExecutorError, get_executor
    from app.runtime.executors.base import plan_to_json
    from app.runtime.plan import build_plan
    from app.runtime.scheduler import release, try_admit

    starter = os.getpid() if kind == "docker" else supervisor_pid
    marker = json.dumps({"kind": kind, STARTING: starter, "host": hostname()})
    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if (version is None or version.status != Status.INITIALIZING.value or version.handle
                or version.stop_requested or version.runtime != kind):
            return {"fallback": True}
        version.handle = marker
        session.add(version)
        job = session.exec(select(Job.name).where(Job.id == version.job_id)).one()
    started = False
    try:
        spec = JobSpec.model_validate(json.loads(version.spec_json))
        sources = (spec.data.paths if spec.data.paths is not None
                   else dataset_paths(ctx, spec))
        if not data_ready(sources):
            # Object-storage data is staged, and a folder with no usable file is failed
            # with its reason, by the supervisor.
            clear_marker(ctx, version_id, marker)
            return {"fallback": True}
        admission = try_admit(ctx, version_id)
        if admission.granted is None:
            clear_marker(ctx, version_id, marker)
            return {"fallback": True}
        gpus = admission.granted
        plan = build_plan(ctx.settings, job, version, spec, gpus, sources)
        logs = open_rank_logs(ctx, version, fresh=True)
        announce_start(ctx, version, logs, plan, kind, gpus)
        log_files = {str(r): [str(x.path), str(x.counter)] for r, x in logs.items()}
        if kind == "local":
            for rank_log in logs.values():
                rank_log.close()
            # The supervisor starts the ranks from this plan and records the handle.
            return {"plan": plan_to_json(plan), "logs": log_files, "gpus": gpus}
        executor = get_executor(kind, ctx.settings, client)
        try:
            handle = executor.start(plan)
        except ExecutorError as exc:
            logs[0].note(f"failed: {exc}")
            for rank_log in logs.values():
                rank_log.close()
            set_status(ctx, version_id, Status.FAILED, str(exc), handle="")
            release(ctx, version_id)
            return {"done": True}
        started = True
        set_status(ctx, version_id, Status.RUNNING, "", handle=json.dumps(handle),
                   executor=executor.kind, allocated_gpus=",".join(map(str, gpus)))
        # The supervisor has yet to import the engine's client (it waits, so that its
        # imports do not slow the start): copy the first output meanwhile, here.
        copied = copy_first_output(executor, handle, 0, logs[0], FIRST_OUTPUT_COPY_SECONDS)
        for rank_log in logs.values():
            rank_log.close()
        payload = {"handle": handle, "logs": log_files, "first_output": copied}
        give(payload)  # the supervisor copies the rest of the logs
        return payload
    except Exception:
        log.exception("starting %s/%s in the submitting process failed; the supervisor "
                      "takes over", job, version_label(version.number))
        # Its supervisor recovers any container already started, by its labels.
        clear_marker(ctx, version_id, marker)
        return {"fallback": True, "started": started}
