"""Controlling versions from outside their supervisor: stop, wait, delete.

A supervisor owns its version; others ask it to act by setting `stop_requested` and
sending it SIGUSR1. When no supervisor is alive (it never started, or it is gone), the
version is finalised here directly so that nothing waits forever.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.context import Context
from app.errors import ConflictError, TraindeckError
from app.lifecycle import delete_rows, load_version, set_status
from app.models import Status, Version, version_label
from app.runtime.procs import supervisor_alive
from app.runtime.signals import STOP_SIGNAL, signal_supervisor

__all__ = ["Deletion", "delete", "keep_unuploaded_output", "stop_version", "wait_final"]

RECONCILE_EVERY_SECONDS = 5.0
"""While waiting, how often to check that the version's supervisor is still alive."""


def stop_version(ctx: Context, job: str, label: str | None = None) -> str:
    """Ask a version to stop; returns what was done, for the user."""
    with ctx.db.write() as session:
        _, version = load_version(session, job, label)
        name = f"{job} {version_label(version.number)}"
        if Status(version.status).is_final:
            raise ConflictError(f"{name} is already {version.status}: nothing to stop")
        version.stop_requested = True
        session.add(version)
    if signal_supervisor(version, STOP_SIGNAL):
        return f"stopping {name}"
    _stop_unsupervised(ctx, version)
    set_status(ctx, version.id or 0, Status.STOPPED, "stopped by user")
    return f"{name} stopped"


def _stop_unsupervised(ctx: Context, version: Version) -> None:
    """Stop and remove the ranks of a version whose supervisor is gone (best effort)."""
    if not version.handle:
        return
    import json

    from app.runtime.executors import ExecutorError, get_executor

    handle = json.loads(version.handle)
    try:
        executor = get_executor(handle.get("kind") or version.runtime, ctx.settings)
        executor.stop(handle, ctx.settings.stop_grace_seconds)
        executor.cleanup(handle)
    except ExecutorError:
        pass


def wait_final(ctx: Context, job: str, label: str | None, timeout: float | None) -> Version:
    """Block until the version reaches a final status (or the timeout passes)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    next_check = time.monotonic() + RECONCILE_EVERY_SECONDS
    while True:
        with ctx.db.read() as session:
            _, version = load_version(session, job, label)
        if Status(version.status).is_final:
            return version
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + RECONCILE_EVERY_SECONDS
            if not supervisor_alive(version.supervisor_pid, version.id or 0,
                                    version.supervisor_host):
                # Its supervisor died: settle it (restart, adopt or fail) rather than
                # wait for something that can no longer happen.
                from app.runtime.reconcile import reconcile

                reconcile(ctx)
        if deadline is not None and time.monotonic() >= deadline:
            raise TraindeckError(
                f"{job} {version_label(version.number)} still {version.status} "
                f"after {timeout:g}s"
            )
        time.sleep(0.2)


def purge_state(ctx: Context, version_id: int) -> None:
    """Remove Traindeck's own files of a deleted version (never its output or logs)."""
    from app.runtime.plan import state_dir

    shutil.rmtree(state_dir(ctx.settings, version_id), ignore_errors=True)
    (ctx.settings.data_dir / "supervisors" / f"{version_id}.log").unlink(missing_ok=True)


KEPT_OUTPUTS = "kept-outputs"
"""Folder of the data dir where deleted versions' never-uploaded outputs are kept."""


@dataclass(frozen=True)
class Deletion:
    """What `delete` removed, and where outputs that never reached object storage went."""

    job: str
    labels: list[str]
    kept: dict[str, Path] = field(default_factory=dict)
    """Label → the folder now holding that version's output (`<data dir>/kept-outputs`)."""

    def message(self) -> str:
        """One line for the CLI and the TUI's notification."""
        text = f"deleted {self.job} {', '.join(self.labels)}"
        for label, path in self.kept.items():
            text += f"; {label}'s output never reached object storage: kept in {path}"
        return text


def keep_unuploaded_output(ctx: Context, job: str, version: Version) -> Path | None:
    """Move the local copy of a version's object-storage output out of its state dir
    (which is about to go) unless all of it went up; the folder it now lives in.

    Kept under `<data dir>/kept-outputs/<job>/<V00n>` (`-2`, `-3`, ... when taken).
    """
    from app.runtime.plan import state_dir
    from app.spec import is_remote
    from app.storage import local_output_path, output_uploaded

    if not is_remote(version.output or ""):
        return None
    local = local_output_path(version.output, state_dir(ctx.settings, version.id or 0))
    try:
        if local.is_symlink() or not local.is_dir() or not any(local.iterdir()):
            return None
    except OSError:
        return None
    if output_uploaded(local):
        return None
    base = ctx.settings.data_dir / KEPT_OUTPUTS / job / version_label(version.number)
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}-{n}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(local, target)
    return target


def delete(
    ctx: Context, job: str, label: str | None = None, *, purge: bool = False,
    timeout: float | None = None,
) -> Deletion:
    """Stop what still runs, then remove the records; with `purge`, the files too.

    Without `purge`, an object-storage output that did not (all) go up is moved out of
    the version's state dir and kept (`Deletion.kept` says where).
    """
    with ctx.db.read() as session:
        if label is None:
            from sqlmodel import select

            from app.models import Job

            job_row = session.exec(select(Job).where(Job.name == job)).first()
            if job_row is None:
                from app.errors import NotFoundError

                raise NotFoundError(f"job {job!r} not found")
            versions = list(session.exec(select(Version).where(Version.job_id == job_row.id)))
        else:
            versions = [load_version(session, job, label)[1]]
    grace = ctx.settings.stop_grace_seconds
    for version in versions:
        if not Status(version.status).is_final:
            v = version_label(version.number)
            stop_version(ctx, job, v)
            wait_final(ctx, job, v, timeout if timeout is not None else grace + 30)
    removed = delete_rows(ctx, job, label)
    kept: dict[str, Path] = {}
    for version in removed:
        if not purge:
            where = keep_unuploaded_output(ctx, job, version)
            if where is not None:
                kept[version_label(version.number)] = where
        purge_state(ctx, version.id or 0)
    if purge:
        for version in removed:
            for path in (version.output, version.log_dir):
                if path and not path.startswith(("s3://", "obs://")):
                    shutil.rmtree(Path(path), ignore_errors=True)
    return Deletion(job, [version_label(v.number) for v in removed], kept)
