"""TensorBoard for one or more versions, fit for SSH: loopback only, auto-stop, `ssh -L`.

`start_tensorboard` starts a small watchdog process in its own session (so it outlives
the TUI and an SSH hang-up, like a supervisor) and records a `TensorBoardSession` row.
The watchdog runs `tensorboard --logdir_spec V001:<output>,V002:<output> --host
127.0.0.1` on an internal port, and serves the session's public port itself by relaying
each TCP connection to TensorBoard.

Why a relay: it sees every byte the browser exchanges with TensorBoard, so "idle" has a
precise meaning — no bytes in either direction for `idle_timeout` seconds — with no
guessing from /proc counters or log lines. An open TensorBoard tab polls the server
(auto-reload), so it keeps its session alive; a closed tab or a dropped tunnel lets it
stop. On idle the watchdog stops TensorBoard, marks the row stopped and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from app.context import Context
from app.errors import ConflictError, NotFoundError, TraindeckError
from app.procs import cmdline, free_port, pid_alive
from app.specs.spec import is_remote
from app.store.models import Job, TensorBoardSession, Version, utcnow, version_label

INSTALL_HINT = ("scripts/bootstrap (TensorBoard is one of Traindeck's dependencies), or "
                "pip install tensorboard")
DEFAULT_IDLE_TIMEOUT = 3600
"""Seconds without any traffic after which a TensorBoard stops by itself."""
HOST = "127.0.0.1"
WATCHDOG_MODULE = "app.tensorboard"
READY_MARK = "traindeck-tensorboard-ready"
START_TIMEOUT = 60.0
_PR_SET_PDEATHSIG = 1


class TensorBoardError(TraindeckError):
    """TensorBoard cannot be started for these versions; the message says why."""


def tensorboard_installed() -> bool:
    """Whether the `tensorboard` package can be imported by this Python."""
    return importlib.util.find_spec("tensorboard") is not None


def has_event_files(folder: Path) -> bool:
    """True when `folder` holds an `events.out.tfevents.*` file at any depth."""
    if not folder.is_dir():
        return False
    return any(p.is_file() for p in folder.rglob("events.out.tfevents.*"))


def event_folder(output: str, work: Path | None = None) -> tuple[str | None, str]:
    """The folder of a version's TensorBoard event files — its output, else its working
    folder (`SummaryWriter()` writes `runs/` there) — or None and why there is none."""
    candidates = [] if not output or is_remote(output) else [output]
    if work is not None:
        candidates.append(str(work))
    for folder in candidates:
        if "," in folder:
            return None, f"{folder} holds a comma, which TensorBoard's --logdir_spec cannot name"
        if has_event_files(Path(folder)):
            return folder, ""
    if not output:
        return None, "the version has no output location"
    if is_remote(output) and work is None:
        return None, f"output {output} is in object storage; TensorBoard needs local event files"
    where = " or its working folder" if work is not None else ""
    return None, f"no TensorBoard event files in {output}{where}"


def unavailable_reason(output: str, work: Path | None = None) -> str | None:
    """Why a version with this output (and working folder) cannot get a TensorBoard
    (None: it can)."""
    return event_folder(output, work)[1] or None


def ssh_command(port: int) -> str:
    """The `ssh -L` line that brings the port to the user's own machine."""
    return f"ssh -L {port}:{HOST}:{port} {getpass.getuser()}@{socket.gethostname()}"


@dataclass(frozen=True)
class TensorBoardInfo:
    """A TensorBoard session as the CLI and the TUI show it."""

    id: int
    job: str
    versions: list[str]
    version_ids: list[int]
    url: str
    ssh: str
    port: int
    pid: int | None
    logdir: str
    started: datetime
    stopped: datetime | None
    idle_timeout: int

    @property
    def running(self) -> bool:
        """True until the session has stopped."""
        return self.stopped is None

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        data = asdict(self)
        data["started"] = self.started.isoformat()
        data["stopped"] = self.stopped.isoformat() if self.stopped else None
        data["running"] = self.running
        return data


def _ids(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip().isdigit()]


def _info(ctx: Context, row: TensorBoardSession) -> TensorBoardInfo:
    ids = _ids(row.version_ids)
    with ctx.db.read() as session:
        pairs = session.exec(
            select(Version.id, Version.number, Job.name)
            .join(Job, col(Job.id) == col(Version.job_id)).where(col(Version.id).in_(ids))
        ).all()
    labels = {vid: version_label(number) for vid, number, _ in pairs}
    job = pairs[0][2] if pairs else ""
    return TensorBoardInfo(
        id=row.id or 0, job=job, versions=[labels.get(i, f"#{i}") for i in ids],
        version_ids=ids, url=f"http://{HOST}:{row.port}/", ssh=ssh_command(row.port),
        port=row.port, pid=row.pid, logdir=row.logdir, started=row.started_at,
        stopped=row.stopped_at, idle_timeout=row.idle_timeout_s,
    )


def _is_watchdog(pid: int | None, session_id: int) -> bool:
    """True when `pid` is still this session's watchdog (guards against pid reuse)."""
    if not pid_alive(pid):
        return False
    argv = cmdline(pid or 0)
    return not argv or (WATCHDOG_MODULE in argv and str(session_id) in argv)


def _mark_stopped(ctx: Context, session_id: int) -> None:
    with ctx.db.write() as session:
        row = session.get(TensorBoardSession, session_id)
        if row is not None and row.stopped_at is None:
            row.stopped_at = utcnow()
            session.add(row)


def list_sessions(ctx: Context, *, include_stopped: bool = False) -> list[TensorBoardInfo]:
    """TensorBoard sessions, newest first; ones whose process is gone are marked stopped."""
    with ctx.db.read() as session:
        query = select(TensorBoardSession).order_by(col(TensorBoardSession.id).desc())
        rows = list(session.exec(query))
    for row in rows:
        if row.stopped_at is None and not _is_watchdog(row.pid, row.id or 0):
            _mark_stopped(ctx, row.id or 0)
            row.stopped_at = utcnow()
    return [_info(ctx, r) for r in rows if include_stopped or r.stopped_at is None]


def _versions(ctx: Context, job: str, labels: list[str] | None) -> list[Version]:
    from app.jobs import load_version

    with ctx.db.read() as session:
        if not labels:
            return [load_version(session, job, None)[1]]
        found = [load_version(session, job, label)[1] for label in labels]
    unique = {v.id: v for v in found}
    return sorted(unique.values(), key=lambda v: v.number)


def start_tensorboard(
    ctx: Context, job: str, labels: list[str] | None = None, *,
    idle_timeout: int = DEFAULT_IDLE_TIMEOUT, wait: float = START_TIMEOUT,
) -> TensorBoardInfo:
    """Start (or reuse) a TensorBoard on the outputs of a job's versions (default: latest).

    Raises TensorBoardError saying why when TensorBoard is not installed or a version
    has no event files. Waits up to `wait` seconds until TensorBoard answers.
    """
    if idle_timeout < 1:
        raise TensorBoardError("idle timeout: must be at least 1 second")
    if not tensorboard_installed():
        raise TensorBoardError(f"TensorBoard is not installed; install it with: {INSTALL_HINT}")
    from app.runtime.plan import work_dir

    versions = _versions(ctx, job, labels)
    folders = []
    for version in versions:
        folder, why = event_folder(version.output, work_dir(ctx.settings, version.id or 0))
        if folder is None:
            raise TensorBoardError(f"create TensorBoard: {version_label(version.number)}: {why}")
        folders.append(folder)
    ids = ",".join(str(v.id) for v in versions)
    for running in list_sessions(ctx):
        if ",".join(map(str, running.version_ids)) == ids:
            return running
    spec = ",".join(f"{version_label(v.number)}:{folder}"
                    for v, folder in zip(versions, folders, strict=True))
    port = free_port()
    with ctx.db.write() as session:
        row = TensorBoardSession(version_ids=ids, logdir=spec, host=HOST, port=port,
                                 idle_timeout_s=idle_timeout)
        session.add(row)
        session.flush()
        session_id = row.id or 0
    folder = ctx.settings.data_dir / "tensorboard"
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{session_id}.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", WATCHDOG_MODULE, "--session", str(session_id),
             "--port", str(port), "--idle-timeout", str(idle_timeout), "--logdir-spec", spec],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True, cwd=str(folder), env=dict(os.environ),
        )
    threading.Thread(target=proc.wait, name=f"reap-tb-{proc.pid}", daemon=True).start()
    with ctx.db.write() as session:
        stored = session.get(TensorBoardSession, session_id)
        if stored is not None:
            stored.pid = proc.pid
            session.add(stored)
    _wait_ready(ctx, session_id, proc, log_path, wait)
    with ctx.db.read() as session:
        final = session.get(TensorBoardSession, session_id)
    assert final is not None
    return _info(ctx, final)


def _wait_ready(ctx: Context, session_id: int, proc: subprocess.Popen[bytes], log_path: Path,
                wait: float) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if READY_MARK in text:
            return
        if proc.poll() is not None:
            _mark_stopped(ctx, session_id)
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise TensorBoardError(f"TensorBoard exited before serving: {tail or 'no output'}")
        time.sleep(0.2)
    # Still starting: the session stays; its URL will answer shortly.


def stop_session(ctx: Context, session_id: int, *, grace: float = 5.0) -> TensorBoardInfo:
    """Stop a TensorBoard session (its watchdog and TensorBoard) and mark it stopped."""
    with ctx.db.read() as session:
        row = session.get(TensorBoardSession, session_id)
    if row is None:
        raise NotFoundError(f"TensorBoard session {session_id} not found")
    if row.stopped_at is not None:
        raise ConflictError(f"TensorBoard session {session_id} has already stopped")
    if _is_watchdog(row.pid, session_id):
        _kill_group(row.pid or 0, grace)
    _mark_stopped(ctx, session_id)
    with ctx.db.read() as session:
        row = session.get(TensorBoardSession, session_id)
    assert row is not None
    return _info(ctx, row)


def _kill_group(pid: int, grace: float) -> None:
    # The watchdog leads its own session, so its process group holds TensorBoard too.
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)


# ------------------------------------------------------------------------------ watchdog


class Relay:
    """Relays TCP connections from a public port to TensorBoard's, timing the silence."""

    def __init__(self, listener: socket.socket, target_port: int) -> None:
        self.listener = listener
        self.target_port = target_port
        self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last byte went either way."""
        return time.monotonic() - self.last_activity

    def serve(self) -> None:
        """Accept connections forever (run in a daemon thread)."""
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.last_activity = time.monotonic()
            try:
                upstream = socket.create_connection((HOST, self.target_port), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.last_activity = time.monotonic()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            src.close()


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM it when its parent dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _record_stop(session_id: int) -> None:
    try:
        _mark_stopped(Context.open(sync=False), session_id)
    except Exception as exc:  # the row is also settled by list_sessions
        print(f"could not mark session {session_id} stopped: {exc}", flush=True)


def watch(session_id: int, port: int, idle_timeout: float, logdir_spec: str) -> int:
    """The watchdog's body: serve the relay, stop TensorBoard when idle or told to."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((HOST, port))
    except OSError as exc:
        print(f"port {port} is taken: {exc}", flush=True)
        _record_stop(session_id)
        return 1
    listener.listen(64)
    inner = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir_spec", logdir_spec,
         "--host", HOST, "--port", str(inner), "--load_fast", "false"],
        stdin=subprocess.DEVNULL,
        # TensorBoard ends with its watchdog, however that ends (a SIGKILL included): a
        # session is never left serving without being listed.
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(inner):
        if child.poll() is not None or stop.is_set() or time.monotonic() > deadline:
            print("TensorBoard did not start", flush=True)
            _stop_child(child)
            _record_stop(session_id)
            return 1
        time.sleep(0.25)
    relay = Relay(listener, inner)
    threading.Thread(target=relay.serve, name="relay", daemon=True).start()
    print(f"{READY_MARK} http://{HOST}:{port}/ (idle timeout {idle_timeout:g} s)", flush=True)
    code = 0
    while not stop.wait(min(1.0, idle_timeout / 4)):
        if child.poll() is not None:
            print(f"TensorBoard exited with code {child.returncode}", flush=True)
            code = 1
            break
        if relay.idle_for() >= idle_timeout:
            print(f"no traffic for {idle_timeout:g} s: stopping", flush=True)
            break
    listener.close()
    _stop_child(child)
    _record_stop(session_id)
    return code


def main(argv: list[str] | None = None) -> int:
    """`python -m app.tensorboard --session ID --port P --idle-timeout S --logdir-spec SPEC`."""
    parser = argparse.ArgumentParser(prog="python -m app.tensorboard")
    parser.add_argument("--session", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT)
    parser.add_argument("--logdir-spec", required=True)
    args = parser.parse_args(argv)
    return watch(args.session, args.port, args.idle_timeout, args.logdir_spec)


if __name__ == "__main__":
    raise SystemExit(main())
