"""Small process helpers shared by the launcher, the supervisor and reconciliation."""

from __future__ import annotations

import gc
import os
import socket
from pathlib import Path

SUPERVISOR_MODULE = "app.runtime.supervisor"

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
    return SUPERVISOR_MODULE in argv and str(version_id) in argv


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
