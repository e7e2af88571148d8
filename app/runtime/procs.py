"""Small process helpers shared by the launcher, the supervisor and reconciliation."""

from __future__ import annotations

import gc
import os
import socket
import threading
from pathlib import Path

SUPERVISOR_MODULE = "app.runtime.supervisor"

_forking = False
_fork_safe_threads: set[threading.Thread] = set()


def allow_forking(thread: threading.Thread | None = None) -> None:
    """Declare this process fit to fork itself into its versions' supervisors.

    For a command-line process: single-threaded, its imports done, about to exit. Forking
    spares a supervisor the start of a new interpreter (see `forked`). `thread`:
    a thread of this process known to hold no lock (one blocked reading a socket), so
    that it does not keep the process from forking.
    """
    global _forking
    _forking = True
    if thread is not None:
        _fork_safe_threads.add(thread)


def may_fork() -> bool:
    """True when this process allowed forking and runs no thread that could hold a lock
    the forked child would then find held forever."""
    if not _forking:
        return False
    current = threading.current_thread()
    return all(t is current or t in _fork_safe_threads for t in threading.enumerate())


def settle_heap() -> None:
    """Keep the garbage collector off what start-up made (modules, the database layer):
    it lives as long as the process. Without this, a full collection walks all of it —
    tens of milliseconds on a small machine, landing in the middle of whatever runs
    then (a scheduling decision, a status write)."""
    gc.collect()
    gc.freeze()


def hostname() -> str:
    """This machine's name, recorded beside supervisor pids."""
    return socket.gethostname()


def pid_alive(pid: int | None) -> bool:
    """True when a process with `pid` exists (zombies count as gone)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    """A process's argv, or [] when unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def supervisor_alive(pid: int | None, version_id: int, host: str = "") -> bool:
    """True when `pid` is still the supervisor of `version_id` (guards against pid reuse)."""
    if host and host != hostname():
        # Another machine's supervisor: we cannot tell, so trust it.
        return True
    if not pid_alive(pid):
        return False
    argv = cmdline(pid or 0)
    if not argv:
        return True
    if len(argv) == 1:  # a forked supervisor's title (`forked`): one string
        argv = argv[0].split()
    return SUPERVISOR_MODULE in argv and str(version_id) in argv


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
