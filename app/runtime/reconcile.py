"""Reconciliation: on every start of the app or the CLI, no version is left orphaned.

A version whose supervisor is gone gets a truthful end: a run whose ranks are still
known (Docker containers in the engine, local ranks under their wrappers, running or
ended with a recorded status) is adopted by a new supervisor, which reads their real
exit codes; a version that never got going is started again, at most a few times.

Restarts are compare-and-set on the recorded supervisor pid, so two reconciling
processes (a TUI and a CLI started together) never start two supervisors.

A version ended here whose output or log path is `s3://` still has its files on this
disk only (the supervisor uploads them as a version ends; this one is gone). A small
marker in `<data dir>/pending-uploads/` records what must go up, and a detached uploader
process (`python -m app.runtime.reconcile upload VERSION_ID`) sends them, so neither the
TUI nor a CLI command waits for it. Every reconcile starts an uploader for each marker
that has none; an upload that fails is tried again at later starts, a few times.
(A Docker run still known to the engine gets a new supervisor, which uploads as usual.)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from app.context import Context
from app.lifecycle import active_versions, record_event, set_status
from app.procs import supervisor_alive
from app.runtime.scheduler import release, release_finished
from app.specs.spec import is_remote
from app.store.models import Status, Version, utcnow, version_label

LAUNCH_GRACE_SECONDS = 30.0
"""A version younger than this with no supervisor pid is still being launched."""
MAX_RESTARTS = 3
"""Restarts of a version's supervisor before giving up on it (no restart loop)."""
PENDING_UPLOADS = "pending-uploads"
"""Folder of the data dir holding one marker per version whose files must still go up."""
MAX_UPLOAD_TRIES = 3
"""Uploads of a lost supervisor's files tried before giving up."""
UPLOAD_RETRY_SECONDS = 60.0
"""After a failed upload, the next start tries again once this long times the tries made
have passed (a CLI run in a loop must not use the tries up in seconds)."""
UPLOAD_MODULE = "app.runtime.reconcile"


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
    start_pending_uploads(ctx)
    return actions


def _settle(ctx: Context, version: Version, restart: bool) -> str | None:
    """Deal with one version whose supervisor is gone; what was done, if anything."""
    from app.runtime.launcher import restart_supervisor

    vid = version.id or 0
    lost = version.supervisor_pid
    started = bool(version.handle)
    if version.stop_requested and not version.handle:
        if _finalise(ctx, version, Status.STOPPED, "stopped by user"):
            return "stopped" + _upload_note(version)
        return None
    if started:
        handle = json.loads(version.handle)
        adoptable = _adoptable(ctx, handle)
        if adoptable is None:
            return None  # the engine does not answer: decide at a later start
        if adoptable and _restarts(ctx, vid) < MAX_RESTARTS:
            if restart and restart_supervisor(ctx, vid, lost) is not None:
                return "supervisor restarted, ranks adopted"
            return None
        reason = "supervisor lost (its ranks are gone)"
        if adoptable:
            # Its supervisors keep dying: no restart loop; the ranks must not run on
            # unwatched either.
            _stop_ranks(ctx, handle)
            reason = (f"supervisor failed {MAX_RESTARTS + 1} times (see "
                      f"{Path(ctx.settings.data_dir) / 'supervisors' / f'{vid}.log'})")
        if _finalise(ctx, version, Status.FAILED, reason):
            return "failed (supervisor lost)" + _upload_note(version)
        return None
    if restart and _restarts(ctx, vid) < MAX_RESTARTS:
        if restart_supervisor(ctx, vid, lost) is not None:
            return "supervisor restarted"
        return None
    if _finalise(ctx, version, Status.FAILED, "supervisor lost"):
        return "failed (supervisor lost)" + _upload_note(version)
    return None


def _finalise(ctx: Context, version: Version, status: Status, reason: str) -> bool:
    """End the version; when this call ended it, its object-storage files are queued."""
    version_id = version.id or 0
    done = set_status(ctx, version_id, status, reason)
    release(ctx, version_id)
    if done:
        queue_upload(ctx, version)
    return done


def _upload_note(version: Version) -> str:
    return "; uploading its output and logs in the background" if remote_targets(version) \
        else ""


def _restarts(ctx: Context, version_id: int) -> int:
    from sqlmodel import func, select

    from app.runtime.launcher import RESTART_EVENT
    from app.store.models import Event

    with ctx.db.read() as session:
        return int(session.exec(
            select(func.count()).select_from(Event).where(
                Event.version_id == version_id, Event.message == RESTART_EVENT)
        ).one())


def _stop_ranks(ctx: Context, handle: dict[str, Any]) -> None:
    from app.runtime.executors import ExecutorError, get_executor

    with contextlib.suppress(ExecutorError):
        executor = get_executor(str(handle.get("kind") or ""), ctx.settings)
        executor.stop(handle, ctx.settings.stop_grace_seconds)
        executor.cleanup(handle)


def _adoptable(ctx: Context, handle: dict[str, Any]) -> bool | None:
    """Whether a run's ranks can still be adopted; None when the engine does not answer."""
    from app.runtime.executors import ExecutorError, get_executor

    kind = str(handle.get("kind") or "")
    if kind == "docker":
        from app.runtime.dockerhost import docker_reachable

        if not docker_reachable(ctx.settings):  # a short ping: a hung engine must not hang us
            return None
    for attempt in range(2):
        try:
            return get_executor(kind, ctx.settings).adoptable(handle)
        except ExecutorError:
            if attempt == 0:
                time.sleep(0.5)
    return None


# ---------------------------------------------------------------- uploads left behind


def remote_targets(version: Version) -> dict[str, str]:
    """What of a version goes to object storage: `output` and `logs` URIs (either absent)."""
    from app.storage import remote_log_uri

    targets = {}
    if version.output and is_remote(version.output):
        targets["output"] = version.output
    try:
        log_base = (json.loads(version.spec_json or "{}") or {}).get("log_dir")
    except ValueError:
        log_base = None
    logs = remote_log_uri(log_base if isinstance(log_base, str) else None,
                          version_label(version.number))
    if logs:
        targets["logs"] = logs
    return targets


def pending_dir(ctx: Context) -> Path:
    """Where the markers of uploads still to do are kept."""
    return Path(ctx.settings.data_dir) / PENDING_UPLOADS


def queue_upload(ctx: Context, version: Version) -> bool:
    """Record that a version's local output and logs must go up, with an event; False
    when nothing of it is remote. `start_pending_uploads` starts the uploader."""
    from app.runtime.plan import state_dir
    from app.storage import local_output_path

    targets = remote_targets(version)
    if not targets:
        return False
    version_id = version.id or 0
    marker = {
        "version_id": version_id, "tries": 0,
        "output_uri": targets.get("output"),
        "local_output": str(local_output_path(version.output,
                                              state_dir(ctx.settings, version_id))),
        "log_uri": targets.get("logs"), "local_log_dir": version.log_dir,
    }
    _write_marker(pending_dir(ctx) / f"{version_id}.json", marker)
    where = " and ".join(f"{what} to {uri}" for what, uri in targets.items())
    with ctx.db.write() as session:
        record_event(session, version_id, f"supervisor lost: uploading the {where} from "
                     "this machine in the background")
    return True


def _write_marker(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


def _uploader_running(marker: Path) -> bool:
    """True while an uploader holds the marker's lock."""
    try:
        with open(marker, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return True  # gone meanwhile: nothing to start
    return False


def start_pending_uploads(ctx: Context) -> list[int]:
    """Start a detached uploader for each pending upload that has none; their version ids.

    Cheap when there is nothing to do (one folder listing), as every start calls it.
    """
    try:
        markers = sorted(pending_dir(ctx).glob("*.json"))
    except OSError:
        return []
    started = []
    now = time.time()
    for marker in markers:
        if not marker.stem.isdigit() or _uploader_running(marker):
            continue
        try:
            if float(json.loads(marker.read_text(encoding="utf-8")).get("next_try", 0)) > now:
                continue
        except (OSError, ValueError, TypeError, AttributeError):
            pass  # the uploader settles an unreadable marker
        _spawn_uploader(ctx, int(marker.stem))
        started.append(int(marker.stem))
    return started


def _spawn_uploader(ctx: Context, version_id: int) -> None:
    """`python -m app.runtime.reconcile upload VERSION_ID` in a session of its own."""
    folder = Path(ctx.settings.data_dir) / "supervisors"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{version_id}.upload.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", UPLOAD_MODULE, "upload", str(version_id)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True, cwd=str(ctx.settings.data_dir))
    # Reap it when it ends, so a long-lived TUI collects no zombies.
    threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()


def run_pending_upload(ctx: Context, version_id: int) -> bool:
    """Upload what the marker of `version_id` names (unless another uploader is at it).

    True when the marker is settled: uploaded, or given up after MAX_UPLOAD_TRIES. The
    outcome is an event of the version and a line in its log (before the logs go up).
    """
    from app.runtime.plan import state_dir
    from app.storage import finalize_outputs, transfer_path

    marker = pending_dir(ctx) / f"{version_id}.json"
    try:
        f = open(marker, "r+b")  # noqa: SIM115 - closed below, the lock with it
    except FileNotFoundError:
        return True
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        try:
            if os.fstat(f.fileno()).st_ino != marker.stat().st_ino:
                return True  # settled and replaced meanwhile
            data = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError):
            return True
        with ctx.db.read() as session:
            gone = session.get(Version, version_id) is None
        if gone:  # deleted meanwhile: nothing to record it against
            marker.unlink(missing_ok=True)
            return True
        state = state_dir(ctx.settings, version_id)
        note = _log_note(ctx, state, data.get("local_log_dir"))
        output_uri, log_uri = data.get("output_uri"), data.get("log_uri")
        result = finalize_outputs(
            ctx.settings, Path(data["local_output"]) if output_uri else None, output_uri,
            Path(data["local_log_dir"]) if log_uri else None, log_uri, note,
            progress_file=transfer_path(state),
            warn=lambda message: _warn(ctx, version_id, message))
        errors = [e for e in (result.output_error, result.log_error) if e]
        tries = int(data.get("tries", 0)) + 1
        settled = not errors or tries >= MAX_UPLOAD_TRIES
        with ctx.db.write() as session:
            if not errors:
                sent = " and ".join(f"{what} to {uri}" for what, uri in
                                    (("output", output_uri), ("logs", log_uri)) if uri)
                record_event(session, version_id, f"uploaded the {sent} after the "
                             "supervisor was lost")
            for error in errors:
                more = "giving up" if settled else "tried again at the next start"
                record_event(session, version_id, f"{error} ({more})", "warning")
        if settled:
            marker.unlink(missing_ok=True)
            from app.runtime.supervisor.storage import DATA_CACHE

            shutil.rmtree(state / DATA_CACHE, ignore_errors=True)
        else:
            _write_marker(marker, {**data, "tries": tries,
                                   "next_try": time.time() + UPLOAD_RETRY_SECONDS * tries})
    return settled


def _warn(ctx: Context, version_id: int, message: str) -> None:
    with ctx.db.write() as session:
        record_event(session, version_id, message, "warning")


def _log_note(ctx: Context, state: Path, log_dir: str | None) -> Any:
    """A `log(line)` that adds `[traindeck] line` to rank 0's log (before it goes up)."""
    from app.runtime.logpump import RankLog, own_lines_path

    def note(line: str) -> None:
        if not log_dir or not Path(log_dir).is_dir():
            return
        rank_log = RankLog(Path(log_dir) / "rank-0.log", own_lines_path(state, 0))
        with contextlib.suppress(OSError):
            rank_log.note(line)
        rank_log.close()

    return note


def main(argv: list[str] | None = None) -> int:
    """`python -m app.runtime.reconcile upload VERSION_ID`: the detached uploader."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "upload" or not args[1].isdigit():
        print("usage: python -m app.runtime.reconcile upload VERSION_ID", file=sys.stderr)
        return 2
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from app.errors import TraindeckError

    try:
        ctx = Context.open(sync=False)
    except TraindeckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    run_pending_upload(ctx, int(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
