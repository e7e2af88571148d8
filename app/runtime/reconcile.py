"""Reconciliation: on every start of the app or the CLI, no version is left orphaned.

A version whose supervisor is gone gets a truthful end: a Docker run still known to
the engine is adopted by a new supervisor (which also reads a finished container's
real exit code); a local run is failed as "supervisor lost" and its processes killed;
a version that never got going is started again, at most a few times.
"""

from __future__ import annotations

import json
import time

from app.context import Context
from app.jobs import set_status
from app.models import Status, utcnow
from app.queries import active_versions
from app.runtime.procs import supervisor_alive
from app.runtime.scheduler import release, release_finished

LAUNCH_GRACE_SECONDS = 30.0
"""A version younger than this with no supervisor pid is still being launched."""


def reconcile(ctx: Context, *, restart: bool = True) -> list[str]:
    """Settle every active version whose supervisor is gone; returns what was done."""
    from app.runtime.launcher import start_supervisor

    actions: list[str] = []
    release_finished(ctx)
    now = utcnow()
    for job, version in active_versions(ctx.db):
        vid = version.id or 0
        if supervisor_alive(version.supervisor_pid, vid, version.supervisor_host):
            continue
        if version.supervisor_pid is None and (
                now - version.created_at).total_seconds() < LAUNCH_GRACE_SECONDS:
            continue
        name = f"{job}/V{version.number:03d}"
        if version.stop_requested and not version.handle:
            set_status(ctx, vid, Status.STOPPED, "stopped by user")
            actions.append(f"{name}: stopped")
            continue
        if version.handle:
            handle = json.loads(version.handle)
            if handle.get("kind") == "docker":
                adoptable = _docker_adoptable(ctx, handle)
                if adoptable is None:
                    continue  # the engine does not answer: decide at a later start
                if adoptable:
                    if restart:
                        _clear_pid(ctx, vid)
                        start_supervisor(ctx, vid)
                        actions.append(f"{name}: supervisor restarted, containers adopted")
                    continue
                set_status(ctx, vid, Status.FAILED, "supervisor lost (containers gone)")
            else:
                _kill_local(ctx, handle)
                set_status(ctx, vid, Status.FAILED, "supervisor lost")
            release(ctx, vid)
            actions.append(f"{name}: failed (supervisor lost)")
            continue
        if restart and _restarts(ctx, vid) < 3:
            _clear_pid(ctx, vid)
            start_supervisor(ctx, vid)
            actions.append(f"{name}: supervisor restarted")
        else:
            set_status(ctx, vid, Status.FAILED, "supervisor lost")
            release(ctx, vid)
            actions.append(f"{name}: failed (supervisor lost)")
    return actions


def _clear_pid(ctx: Context, version_id: int) -> None:
    from app.jobs import record_event
    from app.models import Version

    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if version is not None:
            version.supervisor_pid = None
            session.add(version)
            record_event(session, version_id, "supervisor lost; restarting it", "warning")


def _restarts(ctx: Context, version_id: int) -> int:
    from sqlmodel import func, select

    from app.models import Event

    with ctx.db.read() as session:
        return int(session.exec(
            select(func.count()).select_from(Event).where(
                Event.version_id == version_id,
                Event.message == "supervisor lost; restarting it")
        ).one())


def _docker_adoptable(ctx: Context, handle: dict[str, object]) -> bool | None:
    """Whether the engine still knows the containers; None when it does not answer."""
    from app.runtime.executors import ExecutorError, get_executor

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
