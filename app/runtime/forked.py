"""A local version's supervisor forked from the command that submitted it.

A local version's ranks must be its supervisor's children, so a spawned supervisor
has to boot (a new interpreter, its imports) before the first rank can start. A
`traindeck` command has all of that imported already, so a command-line process (one
that called `procs.allow_forking`) forks itself instead: about 50 ms sooner to the
first line on a 2-core machine. The child takes the supervisor's title (`ps` shows it
as `python -m app.runtime.supervisor ID`, and `supervisor_alive` recognises it),
leaves the caller's session, terminal and descriptors, records itself as the
supervisor, starts the ranks the way a fast start does (`startup.start_in_caller`)
and supervises them as a spawned supervisor would. The command returns right after
the fork. Where the title cannot be set, the child execs the ordinary supervisor.

A Docker version is not forked: its containers are started by the submitter while
the spawned supervisor boots (`handoff`), and measured side by side a forked one was
no sooner (the engine's start dominates, and a fork's copy-on-write faults cost what
the boot would have).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
import traceback
from typing import Any, NoReturn

from app.context import Context
from app.models import Version
from app.runtime.procs import (
    SUPERVISOR_MODULE,
    allow_forking,
    hostname,
    may_fork,
    supervisor_alive,
)
from app.runtime.supervisor import CONTROL_SIGNALS


def fork_supervisor(ctx: Context, version_id: int) -> int | None:
    """Fork this process into the supervisor of a new version; the child's pid, or None
    when this process may not fork (the caller then spawns one). Returns at once: the
    child records itself as the supervisor."""
    if not may_fork():
        return None
    try:
        from setproctitle import setproctitle
    except ImportError:
        return None
    from app.runtime.launcher import supervisor_log

    out = supervisor_log(ctx, version_id)
    ctx.db.dispose()  # no database connection may cross the fork
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, CONTROL_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            _become_supervisor(ctx, version_id, setproctitle, out)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    # Reap it if this process outlives it; waiting there, the thread holds no lock.
    reaper = threading.Thread(target=os.waitpid, args=(pid, 0), name=f"reap-{pid}", daemon=True)
    reaper.start()
    allow_forking(reaper)
    return pid


def _argv(version_id: int) -> list[str]:
    return [sys.executable, "-m", SUPERVISOR_MODULE, str(version_id)]


def _become_supervisor(ctx: Context, version_id: int, setproctitle: Any, out: str
                       ) -> NoReturn:
    """In the forked child: supervise `version_id` to its end; never returns.

    The control signals stay blocked (as the launcher blocks them for a spawned one)
    until the handlers are in place: a stop sent right after the submit is kept.
    """
    code = 1
    try:
        os.setsid()
        gc.freeze()  # what the parent made stays shared: the collector never walks it
        null = os.open(os.devnull, os.O_RDONLY)
        log_fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        for fd, target in ((null, 0), (log_fd, 1), (log_fd, 2)):
            os.dup2(fd, target)
        os.close(null)
        os.close(log_fd)
        os.chdir(ctx.settings.data_dir)
        setproctitle(" ".join(_argv(version_id)))
        if not supervisor_alive(os.getpid(), version_id):
            os.execv(sys.executable, _argv(version_id))  # untitled: the ordinary way
        sys.stdin = sys.__stdin__ = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = sys.__stdout__ = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115
        sys.stderr = sys.__stderr__ = open(  # noqa: SIM115
            2, "w", closefd=False, buffering=1, errors="backslashreplace")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        code = _supervise(ctx, version_id)
    except BaseException:  # the child must never return into its parent's code
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _supervise(ctx: Context, version_id: int) -> int:
    from app.runtime.handoff import WarmStart, first_stage
    from app.runtime.startup import start_in_caller
    from app.runtime.supervision import run_supervisor
    from app.runtime.supervisor import (
        FIRST_OUTPUT_WAIT_SECONDS,
        SignalFlags,
        install_signal_handlers,
    )

    flags = SignalFlags()
    install_signal_handlers(flags)
    with ctx.db.write() as session:
        version = session.get(Version, version_id)
        if version is None or version.supervisor_pid is not None:
            return 0  # gone, or another supervisor took it meanwhile
        version.supervisor_pid, version.supervisor_host = os.getpid(), hostname()
        session.add(version)
    warm: list[WarmStart] = []

    def hand_off(payload: dict[str, Any]) -> None:
        # A local version's plan (only those are forked), as soon as it is made: the
        # ranks start here, as this process's children.
        started = first_stage(payload, None, flags.changed.set)
        if started is not None:
            warm.append(started)

    start_in_caller(ctx, version_id, hand_off, supervisor_pid=os.getpid())
    if warm:
        # As in a spawned supervisor: let the pumps write the first output before the
        # rest of the start holds the interpreter.
        warm[0].first_output.wait(FIRST_OUTPUT_WAIT_SECONDS)
    return run_supervisor(version_id, flags, warm[0] if warm else None)
