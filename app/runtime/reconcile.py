"""Reconciliation: on every start of the app or the CLI, no version is left orphaned.

A version whose supervisor is gone gets a truthful end: a Docker run still known to
the engine is adopted by a new supervisor (which also reads a finished container's
real exit code); a local run is failed as "supervisor lost" and its processes killed;
a version that never got going is started again, at most a few times.

Restarts are compare-and-set on the recorded supervisor pid, so two reconciling
processes (a TUI and a CLI started together) never start two supervisors.
"""

from __future__ import annotations

import json
import time

from app.context import Context
from app.jobs import set_status
from app.models import Status, Version, utcnow, version_label
from app.queries import active_versions
from app.runtime.procs import supervisor_alive
from app.runtime.scheduler import release, release_finished

LAUNCH_GRACE_SECONDS = 30.0
"""A version younger than this with no supervisor pid is still being launched."""
MAX_RESTARTS = 3
"""Restarts of a supervisor that died before its ranks started, before giving up."""


def reconcile(ctx: Context, *, restart: bool = True) -> list[str]:
    """Settle every active version whose supervisor is gone; returns what was done."""
    actions: list[str] = []
    release_finished(ctx)
    now = utcnow()
    for job, version in active_versions(ctx.db):
        if supervisor_alive(version.supervisor_pid, version.id or 0, version.supervisor_host):
            continue
        if version.supervisor_pid is None and (
                now - version.created_at).total_seconds() < LAUNCH_GRACE_SECONDS:
            continue
        action = _settle(ctx, version, restart)
        if action:
            actions.append(f"{job}/{version_label(version.number)}: {action}")
    return actions


def _settle(ctx: Context, version: Version, restart: bool) -> str | None:
    """Deal with one version whose supervisor is gone; what was done, if anything."""
    from app.runtime.launcher import restart_supervisor
    from app.runtime.startup import marker_of

    vid = version.id or 0
    lost = version.supervisor_pid
    # A marker means "being started by the submitter": for us, not started. A new
    # supervisor waits for (or clears) it and recovers any container by its labels.
    started = bool(version.handle) and marker_of(version.handle) is None
    if version.stop_requested and not version.handle:
        if _finalise(ctx, vid, Status.STOPPED, "stopped by user"):
            return "stopped"
        return None
    if started:
        handle = json.loads(version.handle)
        if handle.get("kind") == "docker":
            adoptable = _docker_adoptable(ctx, handle)
            if adoptable is None:
                return None  # the engine does not answer: decide at a later start
            if adoptable:
                if restart and restart_supervisor(ctx, vid, lost) is not None:
                    return "supervisor restarted, containers adopted"
                return None
            reason = "supervisor lost (containers gone)"
        else:
            _kill_local(ctx, handle)
            reason = "supervisor lost"
        return "failed (supervisor lost)" if _finalise(ctx, vid, Status.FAILED, reason) else None
    if restart and _restarts(ctx, vid) < MAX_RESTARTS:
        if restart_supervisor(ctx, vid, lost) is not None:
            return "supervisor restarted"
        return None
    if _finalise(ctx, vid, Status.FAILED, "supervisor lost"):
        return "failed (supervisor lost)"
    return None


def _finalise(ctx: Context, version_id: int, status: Status, reason: str) -> bool:
    done = set_status(ctx, version_id, status, reason)
    release(ctx, version_id)
    return done


def _restarts(ctx: Context, version_id: int) -> int:
    from sqlmodel import func, select

    from app.models import Event
    from app.runtime.launcher import RESTART_EVENT

    with ctx.db.read() as session:
        return int(session.exec(
            select(func.count()).select_from(Event).where(
                Event.version_id == version_id, Event.message == RESTART_EVENT)
        ).one())


def _docker_adoptable(ctx: Context, handle: dict[str, object]) -> bool | None:
    """Whether the engine still knows the containers; None when it does not answer."""
    from app.runtime.dockerhost import docker_reachable
    from app.runtime.executors import ExecutorError, get_executor

    if not docker_reachable(ctx.settings):  # a short ping: a hung engine must not hang us
        return None
    for attempt in range(2):
        try:
            return get_executor("docker", ctx.settings).adoptable(handle)
        except ExecutorError:
            if attempt == 0:
                time.sleep(0.5)
    return None


def _kill_local(ctx: Context, handle: dict[str, object]) -> None:
    from app.runtime.executors.local import LocalExecutor

    LocalExecutor(ctx.settings).kill_orphans(handle)
