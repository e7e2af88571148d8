"""Starting a version's supervisor as a detached process that outlives its starter."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from app.context import Context
from app.models import Version
from app.runtime.procs import SUPERVISOR_MODULE, hostname


def supervisor_log(ctx: Context, version_id: int) -> str:
    """File that receives the supervisor process's own stderr (tracebacks, if any)."""
    folder = ctx.settings.data_dir / "supervisors"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{version_id}.log")


def start_supervisor(ctx: Context, version_id: int) -> int:
    """Start the supervisor of `version_id` in its own session; returns its pid.

    The new session means no controlling terminal: an SSH hang-up, closing tmux or
    killing the TUI (even with -9) does not reach it.
    """
    with open(supervisor_log(ctx, version_id), "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", SUPERVISOR_MODULE, str(version_id)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True, cwd=str(ctx.settings.data_dir), env=dict(os.environ),
        )
    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if version is not None and version.supervisor_pid is None:
            version.supervisor_pid, version.supervisor_host = proc.pid, hostname()
            session.add(version)
    # Reap it when it ends, so a long-lived TUI collects no zombies.
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    return proc.pid
