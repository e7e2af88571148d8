"""The command helper: a warm process that runs `traindeck` commands in forked children.

Started in the background by a `traindeck` command that found none (see `app.cli.warm`),
as `python -m app.cli.warm_server FOLDER`. It imports what commands need once, then
listens on `FOLDER/cli-KEY.sock`. For each caller (same uid only) it forks a child that
takes the caller's descriptors, folder, environment and umask and runs the command as a
fresh process would: nothing is opened before the fork (settings, database, engine
clients are all made in the child), and the parent stays single-threaded.

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
"""Descriptors of the helper itself (its lock), closed in every child."""


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


def warm_up() -> None:
    """Open, reconcile, submit, admit and list once, on a throwaway in-memory database,
    and build the command parser.

    SQLAlchemy and pydantic set much of their machinery up on first use (mappers, the
    ORM's per-class state, validators), once per process rather than per database: done
    here, before any fork, it saves every command tens of milliseconds. Nothing of the
    user's is written: the database lives in memory and the job's folders in a temporary
    one; the settings and database caches are emptied afterwards.
    """
    import tempfile

    from sqlmodel import SQLModel

    from app.cli.main import shared_parser
    from app.config import get_settings, load_settings
    from app.context import Context
    from app.db import Database, reset_cache
    from app.jobs import submit
    from app.queries import list_jobs
    from app.runtime.reconcile import reconcile
    from app.runtime.scheduler import try_admit

    db = Database("sqlite://")
    try:
        SQLModel.metadata.create_all(db.engine)
        ctx = Context(load_settings(), db)
        from app.catalog import sync_catalog
        from app.presets import sync_presets

        sync_catalog(db, ctx.settings)
        sync_presets(db)
        reconcile(ctx)  # before the job exists: it must never restart a supervisor for it
        shared_parser()
        with tempfile.TemporaryDirectory(prefix="traindeck-warm-up-") as folder:
            base = Path(folder)
            (base / "code").mkdir()
            (base / "data").mkdir()
            (base / "code" / "train.py").write_text("print('hello')\n")
            (base / "data" / "rows.csv").write_text("x\n1\n")
            raw = {"name": "warm-up", "data": {"paths": ["data"]},
                   "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                               "code_dir": "code", "boot_file": "train.py"}},
                   "parameters": {"lr": 0.1}, "output": "out", "log_dir": "logs",
                   "resources": {"runtime": "local"}}
            ref = submit(ctx, raw, base, launcher=lambda _ctx, _version_id: None)
            try_admit(ctx, ref.version_id)
        list_jobs(db)
    finally:
        db.dispose()
        reset_cache()
        get_settings.cache_clear()


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
    last = time.monotonic()
    while True:
        _reap()
        left = idle - (time.monotonic() - last)
        if left <= 0:
            log("idle: exiting")
            return
        ready, _, _ = select.select([listener], [], [], min(left, _CHECK_SECONDS))
        if not _still_ours(path, inode):
            log("the socket was removed or replaced: exiting")
            return
        current = code_stamp(sources) == stamp
        if not ready:
            if not current:  # an upgrade or an edit: leave now rather than at the next
                log("the code or the packages changed: exiting")  # command
                return
            continue
        conn, _ = listener.accept()
        last = time.monotonic()
        with conn:
            if not _handle(conn, listener, current):
                return


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _handle(conn: socket.socket, listener: socket.socket, current: bool) -> bool:
    """Run one caller's command in a child; False when the helper should exit."""
    if peer_uid(conn) != os.getuid():
        log("refused a caller with another uid")
        return True
    if not current:  # before reading the request: its format may have changed too
        with contextlib.suppress(OSError):
            _reply(conn, STALE)
        log("the code or the packages changed: exiting")
        return False
    try:
        request, fds = receive_request(conn)
    except EOFError:
        return True  # a caller that only checked that the helper is there
    except (OSError, ValueError, TypeError) as exc:
        log(f"bad request: {exc}")
        return True
    try:
        pid = os.fork()
        if pid == 0:
            _child(conn, listener, request, fds)
        argv = request.get("argv") or ["?"]
        log(f"ran `{argv[0]}` in pid {pid}")
    finally:
        for fd in fds:
            os.close(fd)
    return True


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
        for fd in _held:
            os.close(fd)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
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
        threading.Thread(target=_hang_up_with, args=(conn,), daemon=True).start()
        code = _run(argv)
    except BaseException:  # a child must never return into the helper
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            _reply(conn, EXIT, code)
        os._exit(code)


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
