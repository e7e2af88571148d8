"""The rank wrapper: `python -m app.runtime.rankrun [--cpus N] [--memory BYTES]
LOG STATUS GRACE -- ARGV...`.

Every rank runs under one of these small processes (standard library only, plus
`app.logs`, which is stdlib only too; both run on Python 3.8 or newer): local ranks
and Slurm tasks in a session of their own, started by whoever starts the version, so
that a run belongs to no supervisor and can be adopted by any; Docker ranks inside
their container, with the image's `python3`, writing LOG into the job's folder (the
supervisor copies it, as data, into the rank's log) with STATUS `-` (the engine keeps
the exit code). The wrapper:

* it runs ARGV (never through a shell) with its output on a pipe, and writes that
  output to the rank's log LOG, each line stamped (`app.logs.LogWriter`);
* it is a child subreaper: whatever the rank starts, daemons that call `setsid()`
  included, stays below it. When the rank's main process ends, everything it left is
  killed, as when a container's main process exits;
* SIGTERM (a stop) is passed to every process of the rank; whatever still runs GRACE
  seconds later, or when KILL_SIGNAL comes, is killed;
* when all is over and the log complete, it writes the rank's exit code (shell style:
  killed by signal N reads 128+N) to STATUS, atomically. A supervisor polls that file;
* `--cpus N` keeps the rank on N of the cores it may use (CPU affinity), `--memory B`
  limits each of its processes' address space to B bytes (an rlimit: inherited, and
  enforced by the kernel without privileges).

The wrapper's own messages (it could not start the command) are not the rank's
output: they go to stderr, which the starter points at a file beside STATUS (in a
container: the engine's log). A log that could not be written (a full disk) does not
stop the rank; its status file (or stderr) says so, for the supervisor to report.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

from app.logs import LogWriter

_PR_SET_CHILD_SUBREAPER = 36
_CHUNK = 64 * 1024
KILL_SIGNAL = signal.SIGUSR1
"""Sent to a wrapper to kill every process of its rank now (a stop's grace is over)."""
SPAWN_FAILED = 127
"""Exit code when the command could not be started (as a shell says it)."""


def _become_subreaper() -> None:
    """Orphans of the rank are re-parented to this process instead of init."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the process group still covers most
        pass


def _children() -> list[int]:
    """Pids of this process's children (re-parented orphans included)."""
    found: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children", "rb") as f:
                found += [int(p) for p in f.read().split()]
    except OSError:  # a kernel without the children files: look at every process
        me = os.getpid()
        for entry in os.listdir("/proc"):
            with suppress(OSError, ValueError, IndexError), \
                    open(f"/proc/{entry}/stat", "rb") as f:
                if int(f.read().rsplit(b")", 1)[1].split()[1]) == me:
                    found.append(int(entry))
    return found


def _signal_all(sig: int, leader: int) -> None:
    """Send `sig` to the rank's process group and to every child of this process."""
    for target in (-leader, *_children()):
        with suppress(ProcessLookupError, PermissionError):
            os.kill(target, sig)


def _kill_rest(leader: int) -> None:
    """Kill and reap everything the rank left behind, until no child is left."""
    while True:
        children = _children()
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return
        if not children:
            time.sleep(0.01)


def _write_status(path: Path, code: int, log_error: str = "") -> None:
    """`code`, then on a second line why the log is incomplete (if it is). STATUS `-`
    (in a container, whose exit code the engine keeps): only the reason, to stderr."""
    if str(path) == "-":
        if log_error:
            print(log_error, file=sys.stderr)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{code}\n{log_error}", encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path) -> tuple[int, str] | None:
    """(exit code, log error) from a STATUS file; None while there is none."""
    try:
        first, _, rest = path.read_text(encoding="utf-8").partition("\n")
        return int(first), rest.strip()
    except (OSError, ValueError):
        return None


def run(log: Path, status: Path, grace: float, argv: list[str]) -> int:
    """Run one rank to its end; returns (and records in `status`) its exit code."""
    _become_subreaper()
    writer: LogWriter | None = None
    log_error = ""
    try:
        writer = LogWriter(log)
    except OSError as exc:
        log_error = f"log {log}: {exc.strerror or exc}"
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    except (OSError, ValueError) as exc:
        if writer is not None:
            writer.close()
        _write_status(status, SPAWN_FAILED, f"cannot run {argv[0] if argv else ''}: {exc}")
        return SPAWN_FAILED
    stopping = threading.Event()

    def on_stop(*_: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        _signal_all(signal.SIGTERM, proc.pid)
        killer = threading.Timer(grace, _signal_all, (signal.SIGKILL, proc.pid))
        killer.daemon = True
        killer.start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(KILL_SIGNAL, lambda *_: _signal_all(signal.SIGKILL, proc.pid))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    assert proc.stdout is not None
    pipe = proc.stdout.fileno()
    # The main process's end wakes the loop through a pidfd (Linux 5.3, Python 3.9);
    # an older Python in a container's image looks every 0.1 s instead.
    pidfd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else -1  # novermin
    poller = select.poll()
    poller.register(pipe, select.POLLIN)
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    leader_done = False
    while True:
        events = dict(poller.poll(None if pidfd >= 0 or leader_done else 100))
        if pipe in events:
            chunk = os.read(pipe, _CHUNK)
            if not chunk:
                break
            if writer is not None and not log_error:
                try:
                    writer.write(chunk)
                except OSError as exc:
                    # A full disk must not stop the rank: its output is read on (and
                    # lost, which is said) so that it does not block or die of SIGPIPE.
                    log_error = f"log {log}: {exc.strerror or exc}"
        if not leader_done and (pidfd in events if pidfd >= 0 else proc.poll() is not None):
            # The main process ended: end whatever it left (it may hold the pipe open),
            # then read the pipe to its end.
            leader_done = True
            if pidfd >= 0:
                poller.unregister(pidfd)
            code = proc.wait()
            _kill_rest(proc.pid)
    if pidfd >= 0:
        os.close(pidfd)
    if not leader_done:
        code = proc.wait()
    _kill_rest(proc.pid)
    try:
        if writer is not None:
            writer.close()
    except OSError as exc:
        log_error = log_error or f"log {log}: {exc.strerror or exc}"
    exit_code = 128 - code if code < 0 else code
    _write_status(status, exit_code, log_error)
    return exit_code


def apply_limits(cpus: float | None, memory: int | None) -> None:
    """Limit this process (and so the rank it starts) to `cpus` cores and `memory` bytes
    of address space per process."""
    if cpus:
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, allowed[:max(1, math.ceil(cpus))])
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def main(args: list[str] | None = None) -> int:
    """Entry point; see the module docstring for the arguments."""
    args = sys.argv[1:] if args is None else args
    limits: dict[str, str] = {}
    while args[:1] and args[0] in ("--cpus", "--memory") and len(args) > 1:
        limits[args[0]], args = args[1], args[2:]
    if len(args) < 5 or args[3] != "--":
        print("usage: python -m app.runtime.rankrun [--cpus N] [--memory BYTES] "
              "LOG STATUS GRACE -- ARGV...", file=sys.stderr)
        return 2
    apply_limits(float(limits.get("--cpus", 0)) or None, int(limits.get("--memory", 0)) or None)
    return run(Path(args[0]), Path(args[1]), float(args[2]), args[4:])


if __name__ == "__main__":
    raise SystemExit(main())
