"""The command helper: a warm process that runs `traindeck` commands in forked children.

Started in the background by a `traindeck` command that found none (see `app.cli.warm`),
as `python -m app.cli.warm_server FOLDER`. It imports what commands need once, then
listens on `FOLDER/cli-KEY.sock`. Each caller (same uid only) is served by a child
forked for it, or by a spare forked and primed ahead (`_Spare`); the child takes the
caller's descriptors, folder, environment and umask and runs the command as a fresh
process would: nothing is opened before the fork (settings, database, engine clients
are all made in the child), and the parent stays single-threaded.

It exits after `TRAINDECK_CLI_HELPER_IDLE` seconds without a command (900), when its
code or installed packages change (it tells the caller to run the command itself),
when its socket is removed or taken over, and on SIGTERM. Only one runs per folder and
installation: a lock file decides.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import marshal
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

from app.cli.warm import (
    DEFAULT_IDLE_SECONDS,
    EXIT,
    HEADER,
    IDLE_ENV,
    PID,
    STALE,
    installation_key,
    log_path,
    socket_path,
)
from app.runtime.procs import allow_forking

PRELOAD = (
    "app.cli.main", "app.cli.extras", "app.cli.data_commands", "app.context", "app.jobs",
    "app.queries", "app.readmodels", "app.spec", "app.spec_rules", "app.logs",
    "app.metrics", "app.templates", "app.datasets", "app.registry",
    "app.runtime.launcher", "app.runtime.startup", "app.runtime.reconcile",
    "app.runtime.control", "app.runtime.plan", "app.runtime.scheduler",
    "app.runtime.executors.docker", "app.runtime.executors.local", "docker", "yaml",
)
"""Modules a command would import first; importing them here is the whole point."""
_CHECK_SECONDS = 5.0
_held: list[int] = []
"""Descriptors of the helper itself (its lock, its ends of the spare's pipes), closed in
every child."""


def log(message: str) -> None:
    """A line in the helper's log (its stderr), for whoever wonders what it did."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} [{os.getpid()}] {message}", file=sys.stderr, flush=True)


def loaded_sources() -> list[str]:
    """The source files of Traindeck's modules this process has imported.

    Only these can go stale here: a module a command imports later is read from disk by
    that command's child.
    """
    package = str(Path(__file__).resolve().parents[1]) + os.sep
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    return sorted(f for f in files if f and f.startswith(package))


def code_stamp(sources: list[str]) -> tuple[int, tuple[int, ...]]:
    """Changes when loaded code or the installed packages change.

    The sum of the loaded source files' modification times (any edit moves it; a file
    removed counts as 0) and the modification times of the site-packages folders (an
    install or an upgrade adds and removes entries there).
    """
    total = 0
    for source in sources:
        with contextlib.suppress(OSError):
            total += os.stat(source).st_mtime_ns
    sites = []
    for entry in sys.path:
        if entry.endswith("site-packages"):
            with contextlib.suppress(OSError):
                sites.append(os.stat(entry).st_mtime_ns)
    return total, tuple(sites)


def preload() -> None:
    """Import what the commands need (nothing is opened, no thread is started)."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    with contextlib.suppress(ImportError):
        import setproctitle

        # Finds the memory of the process's arguments through its environment: only
        # possible before a command's child replaces the environment with its caller's.
        # A supervisor forked from a command then takes its title there (`forked`).
        setproctitle.getproctitle()


def warm_up() -> None:
    """Open, reconcile, submit, admit and list once, on a throwaway database, build the
    command parser and ping the Docker engine.

    SQLAlchemy and pydantic set much of their machinery up on first use (mappers, the
    ORM's per-class state, validators), once per process rather than per database: done
    here, before any fork, it saves every command tens of milliseconds. SQLAlchemy also
    prepares each statement once per engine: when the user's database (of this
    process's settings) is an SQLite file that exists, the throwaway one is its
    *rehearsal* (`app.db.rehearsal`), and its engine, with the statements prepared, is
    kept for the commands. Nothing of the user's is opened or written: the throwaway
    database and the job's folders are in a temporary folder (or in memory); the
    settings and database caches are emptied afterwards.
    """
    import tempfile

    from app.config import HOME_ENV, get_settings, load_settings
    from app.context import Context
    from app.db import Database, keep_rehearsed, rehearsal, reset_cache, sqlite_file

    settings = load_settings()
    url = settings.resolved_database_url
    real = sqlite_file(url)
    rehearse = real is not None and real.is_file()
    with tempfile.TemporaryDirectory(prefix="traindeck-warm-up-") as folder:
        base = Path(folder)
        db = rehearsal(url, base / "rehearsal.db") if rehearse else Database("sqlite://")
        home = os.environ.get(HOME_ENV)
        # The throwaway version's state folder and logs go in here too, not in the
        # user's data folder (where a version of the same id may live).
        os.environ[HOME_ENV] = str(base / "home")
        try:
            _rehearse(db, Context(settings, db), base)
        finally:
            if home is None:
                os.environ.pop(HOME_ENV, None)
            else:
                os.environ[HOME_ENV] = home
            db.dispose()
            reset_cache()
            get_settings.cache_clear()
    if rehearse:
        keep_rehearsed(db)


def _rehearse(db: Any, ctx: Any, base: Path) -> None:
    """The steps of `warm_up`, on `db`, with the job's folders in `base`."""
    from sqlmodel import SQLModel

    from app.catalog import sync_catalog
    from app.cli.main import shared_parser
    from app.jobs import submit
    from app.presets import sync_presets
    from app.queries import list_jobs
    from app.runtime.reconcile import reconcile
    from app.runtime.startup import start_in_caller
    from app.spec import load_spec_file

    SQLModel.metadata.create_all(db.engine)
    sync_catalog(db, ctx.settings)
    sync_presets(db)
    reconcile(ctx)  # before the job exists: it must never restart a supervisor for it
    shared_parser()
    (base / "code").mkdir()
    (base / "data").mkdir()
    (base / "code" / "train.py").write_text("print('hello')\n")
    (base / "data" / "rows.csv").write_text("x\n1\n")
    (base / "spec.yaml").write_text(
        "name: warm-up\ndata: {paths: [data]}\n"
        "algorithm:\n  framework: {engine: python, engine_version: '3.11', code_dir: code,"
        " boot_file: train.py}\n"
        "parameters: {lr: 0.1, epochs: 2, tag: a}\noutput: out\nlog_dir: logs\n"
        "resources: {runtime: local}\n")
    raw, _ = load_spec_file(base / "spec.yaml")  # what `submit SPEC` reads first
    ref = submit(ctx, raw, base, launcher=lambda _ctx, _version_id: None)
    # A fast start up to the plan (a local version's ranks are started by its supervisor,
    # and there is none): admission and the version's writes of a real start.
    start_in_caller(ctx, ref.version_id, lambda _payload: None, supervisor_pid=os.getpid())
    list_jobs(db)
    with contextlib.suppress(Exception):  # (no engine, an odd DOCKER_HOST: a slower submit)
        from app.runtime.dockerhost import docker_client

        # The client a Docker submit makes, and its ping: the engine's API version is
        # then known (for the engine of this process's environment), and the first
        # request of a command does not set the HTTP machinery up.
        docker_client(ctx.settings, timeout=3).close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m app.cli.warm_server FOLDER", file=sys.stderr)
        return 2
    folder = Path(args[0])
    key = installation_key()
    lock = os.open(folder / f"cli-{key}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another helper runs (or is starting) for this installation
    _held.append(lock)  # children close it: a command outliving the helper must not
    # keep the next helper from starting
    with contextlib.suppress(OSError):
        os.truncate(log_path(folder), 0)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = time.monotonic()
    preload()
    try:
        warm_up()
    except Exception as exc:  # only slower commands: they work without it
        log(f"warm-up failed: {exc!r}")
    if threading.active_count() != 1:
        log("an import started a thread; forking is not safe, so no helper")
        return 1
    sources = loaded_sources()
    stamp = code_stamp(sources)
    path = Path(socket_path(folder))
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_umask)
    listener.listen(32)
    inode = path.stat().st_ino
    idle = _idle_seconds()
    log(f"ready in {time.monotonic() - started:.2f}s on {path} (idle exit after {idle:g}s)")
    try:
        _serve(listener, path, inode, sources, stamp, idle)
    finally:
        listener.close()
        if _still_ours(path, inode):
            path.unlink(missing_ok=True)
    return 0


def _exit_on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def _idle_seconds() -> float:
    try:
        value = float(os.environ.get(IDLE_ENV, "") or DEFAULT_IDLE_SECONDS)
    except ValueError:
        return DEFAULT_IDLE_SECONDS
    return max(value, 1.0)


def _still_ours(path: Path, inode: int) -> bool:
    try:
        return path.stat().st_ino == inode
    except OSError:
        return False


def _serve(listener: socket.socket, path: Path, inode: int, sources: list[str],
           stamp: tuple[int, tuple[int, ...]], idle: float) -> None:
    """Serve callers until idle, stale or told to stop.

    Commands run in a *spare* when one is ready (see `_Spare`), else in a child forked
    for the caller. A new spare is made when things are quiet (PRIME_QUIET_SECONDS,
    PRIME_AFTER_SECONDS), so that priming it does not compete with a starting command.
    """
    listener.setblocking(False)  # the spare accepts from it too: never block on a lost race
    last = checked = time.monotonic()
    spare: _Spare | None = None
    spares = True
    running: dict[int, float] = {}
    try:
        while True:
            _reap(running)
            now = time.monotonic()
            left = idle - (now - last)
            if left <= 0:
                log("idle: exiting")
                return
            wait = min(left, _CHECK_SECONDS)
            if spare is None and spares:
                # Prime when commands are over (or long-running), and what they started
                # (a supervisor, a container) had a moment: priming uses a core.
                quiet = max(PRIME_QUIET_SECONDS - (now - last), 0.0)
                if running and quiet == 0:
                    quiet = max(PRIME_AFTER_SECONDS - (now - max(running.values())), 0.0)
                if quiet == 0:
                    spare = _Spare.fork(listener, sources, stamp)
                else:
                    wait = min(wait, quiet, _RUNNING_POLL_SECONDS if running else quiet)
            watch: list[Any] = [spare.events] if spare else []
            if spare is None or not spare.ready:
                watch.append(listener)
            ready, _, _ = select.select(watch, [], [], wait)
            if time.monotonic() - checked >= _CHECK_SECONDS or ready:
                checked = time.monotonic()
                if not _still_ours(path, inode):
                    log("the socket was removed or replaced: exiting")
                    return
                if code_stamp(sources) != stamp:  # an upgrade or an edit: leave now
                    log("the code or the packages changed: exiting")
                    return
            if spare is not None and spare.events in ready:
                news = spare.read()
                if SPARE_TOOK in news:
                    last = time.monotonic()
                    running[spare.pid] = last
                    spare.close()
                    spare = None
                elif SPARE_STALE in news:
                    log("the code or the packages changed: exiting")
                    return
                elif not news:  # it ended without taking a caller
                    log(f"spare {spare.pid} ended early: forking for each command instead")
                    spare.close()
                    spare, spares = None, False
            if listener in ready:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue  # the spare took it
                conn.setblocking(True)
                last = time.monotonic()
                with conn:
                    pid = _handle(conn, listener)
                if pid:
                    running[pid] = time.monotonic()
    finally:
        if spare is not None:
            spare.close()  # it sees the end of its pipe and exits


def _reap(running: dict[int, float]) -> None:
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _status = os.waitpid(-1, os.WNOHANG)
            if not pid:
                return
            running.pop(pid, None)


def _handle(conn: socket.socket, listener: socket.socket) -> int:
    """Run one caller's command in a child; its pid (0 when none was started)."""
    taken = _take(conn)
    if taken is None:
        return 0
    request, fds = taken
    try:
        pid = os.fork()
        if pid == 0:
            _child(conn, listener, request, fds)
        argv = request.get("argv") or ["?"]
        log(f"ran `{argv[0]}` in pid {pid}")
    finally:
        for fd in fds:
            os.close(fd)
    return pid


SPARE_READY, SPARE_TOOK, SPARE_STALE = b"r", b"t", b"s"
"""What a spare tells the helper: primed and accepting; took a caller; code changed."""
PRIME_QUIET_SECONDS = 1.0
"""A new spare is made this long after the last command started, at the earliest..."""
PRIME_AFTER_SECONDS = 2.0
"""...and once every command still running has run this long (`logs -f` may run for
hours: it should not keep the next command from a spare)."""
_RUNNING_POLL_SECONDS = 0.25


class _Spare:
    """A child forked ahead of the next command, primed, and accepting callers itself.

    A command run in a freshly forked child is slowed by the fork and then by every
    first write to a page it shares with the helper (the kernel copies the page: ~4 µs
    here, a few thousand times for a submit). A spare pays for both before a caller
    comes: it runs the warm-up again, which writes to the same pages a command does,
    then waits on the helper's socket. It takes one caller, tells the helper (which
    makes the next spare) and becomes that caller's command.
    """

    def __init__(self, pid: int, events: int, alive: int) -> None:
        self.pid = pid
        self.events = events
        """Read end of the spare's messages (SPARE_*); at its end when the spare ended."""
        self.alive = alive
        """Write end the spare watches: when the helper ends it is closed, and so is the
        spare."""
        self.ready = False

    @classmethod
    def fork(cls, listener: socket.socket, sources: list[str],
             stamp: tuple[int, tuple[int, ...]]) -> _Spare:
        events_r, events_w = os.pipe()
        alive_r, alive_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(events_r)
            os.close(alive_w)
            _spare_main(listener, events_w, alive_r, sources, stamp)
        os.close(events_w)
        os.close(alive_r)
        _held.extend((events_r, alive_w))  # not for the commands' children to keep open
        return cls(pid, events_r, alive_w)

    def read(self) -> bytes:
        """What the spare said since last time (b"" when it ended)."""
        try:
            news = os.read(self.events, 64)
        except OSError:
            return b""
        if SPARE_READY in news:
            self.ready = True
        return news

    def close(self) -> None:
        for fd in (self.events, self.alive):
            if fd in _held:
                _held.remove(fd)
                os.close(fd)


def _spare_main(listener: socket.socket, events: int, alive: int, sources: list[str],
                stamp: tuple[int, tuple[int, ...]]) -> NoReturn:
    """The spare's life: prime, wait for a caller, become its command. Never returns."""
    try:
        _detach_from_helper()
        started = time.monotonic()
        warm_up()
        if threading.active_count() != 1:
            os._exit(1)  # (the helper then stops making spares)
        log(f"spare ready in {time.monotonic() - started:.2f}s")
        os.write(events, SPARE_READY)
        while True:
            ready, _, _ = select.select([listener, alive], [], [])
            if alive in ready:
                os._exit(0)  # the helper ended
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue  # the helper took it
            conn.setblocking(True)
            if code_stamp(sources) != stamp:
                with contextlib.suppress(OSError):
                    _reply(conn, STALE)
                os.write(events, SPARE_STALE)
                os._exit(0)
            taken = _take(conn)
            if taken is not None:
                break
            conn.close()
        request, fds = taken
        argv = request.get("argv") or ["?"]
        log(f"ran `{argv[0]}` in pid {os.getpid()} (a spare)")
        os.write(events, SPARE_TOOK)
        os.close(events)
        os.close(alive)
    except BaseException:  # a spare must never return into the helper's loop
        with contextlib.suppress(BaseException):
            log(f"spare failed: {traceback.format_exc()}")
        os._exit(1)
    _child(conn, listener, request, fds)


def _take(conn: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """A caller's request and descriptors, or None for one to turn away (logged)."""
    if peer_uid(conn) != os.getuid():
        log("refused a caller with another uid")
        return None
    try:
        return receive_request(conn)
    except EOFError:
        return None  # a caller that only checked that the helper is there
    except (OSError, ValueError, TypeError) as exc:
        log(f"bad request: {exc}")
        return None


def receive_request(conn: socket.socket, timeout: float = 5.0
                    ) -> tuple[dict[str, Any], list[int]]:
    """The request `app.cli.warm` sends (a dict: argv, cwd, env, umask) and the caller's
    three descriptors."""
    conn.settimeout(timeout)
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    if not data and not fds:
        raise EOFError("the caller sent nothing")
    try:
        if len(data) < HEADER.size:
            raise ValueError("short request")
        (size,) = HEADER.unpack_from(data)
        body = data[HEADER.size:]
        while len(body) < size:
            chunk = conn.recv(min(65536, size - len(body)))
            if not chunk:
                raise ValueError("request cut short")
            body += chunk
        request = marshal.loads(body)  # from a process of this uid (checked before)
        if len(fds) != 3 or not isinstance(request, dict):
            raise ValueError("malformed request")
    except Exception:
        for fd in fds:
            os.close(fd)
        raise
    conn.settimeout(None)
    return request, fds


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (Linux)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def _reply(conn: socket.socket, word: bytes, number: int | None = None) -> None:
    """One reply line (see `app.cli.warm`): `pid N`, `exit N` or `stale`."""
    conn.sendall(word + (b"" if number is None else b" %d" % number) + b"\n")


def _child(conn: socket.socket, listener: socket.socket, request: dict[str, Any],
           fds: list[int]) -> NoReturn:
    """Become the caller's command; never returns."""
    code = 1
    try:
        listener.close()
        _detach_from_helper()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        argv = [str(a) for a in request["argv"]]
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        os.umask(int(request["umask"]))
        _reopen_stdio()
        sys.argv = ["traindeck", *argv]
        _reply(conn, PID, os.getpid())
        hang_up = threading.Thread(target=_hang_up_with, args=(conn,), daemon=True)
        hang_up.start()
        allow_forking(hang_up)  # it only waits on the socket: a fork cannot catch it in a lock
        os.register_at_fork(after_in_child=conn.close)  # a forked supervisor lets go of it
        code = _run(argv)
    except BaseException:  # a child must never return into the helper
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            _reply(conn, EXIT, code)
        os._exit(code)


def _detach_from_helper() -> None:
    """In a child: let go of what only the helper holds, and die as a process would."""
    while _held:
        with contextlib.suppress(OSError):
            os.close(_held.pop())
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)


def _run(argv: list[str]) -> int:
    """What the `traindeck` script does with ARGV, as an exit code."""
    from app.cli.main import main

    try:
        code: Any = main(argv)
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # reported as the interpreter would
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    return code


def _reopen_stdio() -> None:
    """Text streams on the caller's descriptors, buffered as a new process's would be."""
    sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(  # noqa: SIM115
        1, "w", closefd=False, buffering=1 if os.isatty(1) else -1)
    sys.stderr = sys.__stderr__ = open(  # noqa: SIM115
        2, "w", closefd=False, buffering=1, errors="backslashreplace")


def _hang_up_with(conn: socket.socket) -> None:
    """The caller went away (killed, its terminal closed): end as a hung-up process."""
    with contextlib.suppress(OSError):
        while conn.recv(64):
            pass
    os.kill(os.getpid(), signal.SIGHUP)


if __name__ == "__main__":
    raise SystemExit(main())
