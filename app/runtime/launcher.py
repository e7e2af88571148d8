"""Starting a version's supervisor as a detached process that outlives its starter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from app.context import Context
from app.jobs import record_event
from app.models import Status, Version
from app.runtime.forked import fork_supervisor
from app.runtime.handoff import (
    DOCKER_HOST_ENV,
    HANDOFF_ENV,
    KIND_ENV,
    STARTER_ENV,
    handoff_path,
    write_handoff,
)
from app.runtime.plan import state_dir
from app.runtime.procs import SUPERVISOR_MODULE, hostname
from app.runtime.startup import start_in_caller
from app.runtime.supervisor import CONTROL_SIGNALS

RESTART_EVENT = "supervisor lost; restarting it"
"""Event message recorded each time reconciliation restarts a version's supervisor."""


def supervisor_log(ctx: Context, version_id: int) -> str:
    """File that receives the supervisor process's own stderr (tracebacks, if any)."""
    folder = ctx.settings.data_dir / "supervisors"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{version_id}.log")


def _spawn(ctx: Context, version_id: int, extra_env: dict[str, str] | None = None
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
                [sys.executable, "-m", SUPERVISOR_MODULE, str(version_id)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                close_fds=True, cwd=str(ctx.settings.data_dir),
                env={**os.environ, **(extra_env or {})},
            )
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    # Reap it when it ends, so a long-lived TUI collects no zombies.
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    return proc


def start_supervisor(ctx: Context, version_id: int) -> int:
    """Start the supervisor of a new version; returns its pid.

    A new version gets a fast start. A local version submitted by a command-line
    process gets a supervisor forked from it, which starts the ranks at once (see
    `app.runtime.forked`). Else, while the spawned supervisor boots, the version is
    admitted and planned here, in the caller's thread, and a Docker version's
    containers are started (see `app.runtime.handoff`); this returns once they run (or
    failed to start), or once a local version's plan is handed over.
    """
    kind = _fast_start_kind(ctx, version_id)
    if kind == "local":
        forked = fork_supervisor(ctx, version_id)
        if forked is not None:
            return forked
    handoff = None if kind is None else (_handoff_file(ctx, version_id), kind)
    extra = None
    if handoff is not None:
        path, kind = handoff
        extra = {HANDOFF_ENV: str(path), STARTER_ENV: str(os.getpid()), KIND_ENV: kind,
                 DOCKER_HOST_ENV: ctx.settings.docker_host or ""}
    proc = _spawn(ctx, version_id, extra)
    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if version is not None and version.supervisor_pid is None:
            version.supervisor_pid, version.supervisor_host = proc.pid, hostname()
            session.add(version)
    if handoff is not None:
        start_in_caller(ctx, version_id, lambda payload: write_handoff(handoff[0], payload),
                        supervisor_pid=proc.pid)
    return proc.pid


def _fast_start_kind(ctx: Context, version_id: int) -> str | None:
    """The runtime of a version that gets a fast start (`docker`, `local`), or None."""
    with ctx.db.read() as session:
        version = session.get(Version, version_id)
        if (version is None or version.runtime not in ("docker", "local") or version.handle
                or version.status != Status.INITIALIZING.value):
            return None
        return version.runtime


def _handoff_file(ctx: Context, version_id: int) -> Path:
    """The version's handoff file, not there yet (its folder is)."""
    path = handoff_path(state_dir(ctx.settings, version_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    return path


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
        proc = _spawn(ctx, version_id)
        version.supervisor_pid, version.supervisor_host = proc.pid, hostname()
        session.add(version)
        record_event(session, version_id, RESTART_EVENT, "warning")
    return proc.pid
