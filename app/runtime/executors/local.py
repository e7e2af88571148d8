"""Runs each rank as a plain local process, for machines without Docker.

Every rank gets its own session (so its own process group): stop signals the whole
tree a trainer spawned, and when a rank's main process ends, whatever it left behind in
its group is killed, as Docker does when a container's main process exits. Output is a
pipe owned by the supervisor that started the ranks, so a run cannot be adopted by a
later supervisor; `kill_orphans` ends the ranks of a lost one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING

from app.runtime.executors.base import Executor, ExecutorError, Handle, LaunchPlan, RankExit

if TYPE_CHECKING:
    from app.config import Settings

_CHUNK = 64 * 1024
_WAIT_STEP = 0.02
"""Seconds between checks while waiting for ranks to exit."""


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, process group, start time in clock ticks) from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = raw.rsplit(b")", 1)[-1].split()
    if len(fields) < 20:
        return None
    # Fields 3 (state), 5 (pgrp) and 22 (starttime) of proc(5).
    return fields[0].decode(), int(fields[2]), int(fields[19])


def _leader_exited(proc: subprocess.Popen[bytes]) -> bool | None:
    """Whether the rank's main process ended, without reaping it; None if already reaped."""
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    return info is not None


def _exit_code(returncode: int) -> int:
    """A shell-style exit code: killed by signal N reads as 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _killpg(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class LocalExecutor(Executor):
    """Runs ranks as child processes of the supervisor, argv exec'd without a shell."""

    kind = "local"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._readers: set[int] = set()
        # Guards exit detection: a group is killed only while its leader is unreaped,
        # so its pid (= the group id) cannot have been reused by then.
        self._lock = threading.Lock()

    def start(self, plan: LaunchPlan) -> Handle:
        """Spawn every rank; on failure kill those already started and raise."""
        started: list[subprocess.Popen[bytes]] = []
        for rank in plan.ranks:
            try:
                proc = subprocess.Popen(
                    list(rank.argv),
                    cwd=plan.workdir,
                    # The host environment keeps PATH, HOME and the like working; the
                    # supervisor puts CUDA_VISIBLE_DEVICES and the rest in rank.env.
                    env={**os.environ, **rank.env},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except (OSError, ValueError) as exc:
                self._abort(started)
                raise ExecutorError(_spawn_reason(rank.name, rank.argv, plan.workdir, exc)) from exc
            started.append(proc)
        with self._lock:
            self._procs.update({p.pid: p for p in started})
        stats = [proc_stat(p.pid) for p in started]
        return {
            "kind": self.kind,
            "pids": [p.pid for p in started],
            # start_new_session makes each rank the leader of its own group.
            "pgids": [p.pid for p in started],
            "start_times": [s[2] if s else 0 for s in stats],
        }

    def _abort(self, procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            _killpg(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.wait()
            if proc.stdout:
                proc.stdout.close()

    def logs(self, handle: Handle, rank: int, since: datetime | None = None) -> Iterator[bytes]:
        """Yield the rank's output as it is written, until every writer has closed it.

        `since` is ignored: a pipe cannot replay. Yields nothing for a rank this
        executor did not start. One reader per rank.
        """
        pid = handle["pids"][rank]
        with self._lock:
            proc = self._procs.get(pid)
            if proc is None or proc.stdout is None or proc.stdout.closed:
                return
            if pid in self._readers:
                raise ExecutorError(f"the output of rank {rank} is already being read")
            self._readers.add(pid)
            pipe = proc.stdout
        try:
            fd = pipe.fileno()
            # os.read returns whatever is there (up to 64 KiB) without waiting to fill a
            # buffer, so lines arrive promptly and floods are read in large bites.
            while chunk := os.read(fd, _CHUNK):
                yield chunk
        finally:
            with self._lock:
                self._readers.discard(pid)
                pipe.close()

    def poll(self, handle: Handle) -> list[RankExit | None]:
        """Per rank: None while its main process runs, else its shell-style exit code."""
        result: list[RankExit | None] = []
        for rank, pid in enumerate(handle["pids"]):
            with self._lock:
                proc = self._procs.get(pid)
            if proc is None:
                result.append(self._poll_foreign(handle, rank))
                continue
            code = self._reap_if_exited(proc)
            result.append(None if code is None else RankExit(rank=rank, exit_code=code))
        return result

    def _reap_if_exited(self, proc: subprocess.Popen[bytes]) -> int | None:
        """If the rank's main process ended: kill what it left in its group, reap it."""
        with self._lock:
            if proc.returncode is None:
                exited = _leader_exited(proc)
                if exited is False:
                    return None
                if exited:
                    # The unreaped leader keeps its pid, our group id, from being reused.
                    _killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return _exit_code(proc.returncode)

    def _poll_foreign(self, handle: Handle, rank: int) -> RankExit | None:
        """A rank started by another supervisor: we can only tell whether it still runs."""
        if self._same_process(handle, rank, alive=True):
            return None
        return RankExit(rank=rank, exit_code=-1, error="process lost with its supervisor")

    @staticmethod
    def _same_process(handle: Handle, rank: int, alive: bool = False) -> bool:
        """True when the handle's pid still names the process it started (no pid reuse)."""
        stat = proc_stat(handle["pids"][rank])
        if stat is None or stat[2] != handle["start_times"][rank]:
            return False
        return not (alive and stat[0] in ("Z", "X"))

    def stop(self, handle: Handle, grace: float) -> None:
        """SIGTERM every rank's group, SIGKILL the groups still alive after `grace`."""
        owned: list[subprocess.Popen[bytes]] = []
        foreign: list[int] = []
        for rank, pid in enumerate(handle["pids"]):
            with self._lock:
                proc = self._procs.get(pid)
            if proc is not None:
                owned.append(proc)
            elif self._same_process(handle, rank):
                foreign.append(rank)
        for proc in owned:
            self._signal_unreaped(proc, signal.SIGTERM)
        for rank in foreign:
            _killpg(handle["pgids"][rank], signal.SIGTERM)

        def running() -> bool:
            return any(_leader_exited(p) is False for p in owned if p.returncode is None) or any(
                self._same_process(handle, r, alive=True) for r in foreign
            )

        deadline = time.monotonic() + max(0.0, grace)
        while time.monotonic() < deadline and running():
            time.sleep(_WAIT_STEP)
        for proc in owned:
            self._signal_unreaped(proc, signal.SIGKILL)
            self._reap_blocking(proc)
        if foreign:
            self.kill_orphans(handle)

    def _signal_unreaped(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        with self._lock:
            if proc.returncode is None:
                _killpg(proc.pid, sig)

    def _reap_blocking(self, proc: subprocess.Popen[bytes]) -> None:
        # Only called after SIGKILL, so the wait is short.
        while self._reap_if_exited(proc) is None:
            time.sleep(_WAIT_STEP)

    def cleanup(self, handle: Handle) -> None:
        """Kill and reap anything left of the ranks and forget them; safe to call again."""
        for pid in handle["pids"]:
            with self._lock:
                proc = self._procs.get(pid)
            if proc is None:
                continue
            self._signal_unreaped(proc, signal.SIGKILL)
            self._reap_blocking(proc)
            with self._lock:
                self._procs.pop(pid, None)
                # An active reader closes the pipe itself once it has drained it.
                if pid not in self._readers and proc.stdout and not proc.stdout.closed:
                    proc.stdout.close()

    def adoptable(self, handle: Handle) -> bool:
        """Always False: the ranks' output pipes died with the supervisor that made them."""
        return False

    def kill_orphans(self, handle: Handle) -> int:
        """SIGKILL the groups of ranks whose pid still names the process started.

        For a lost supervisor's run: its ranks must not keep running unwatched. A pid
        whose start time differs was reused by an unrelated process and is left alone.
        Returns how many groups were signalled.
        """
        killed = 0
        for rank, pgid in enumerate(handle["pgids"]):
            if self._same_process(handle, rank):
                _killpg(pgid, signal.SIGKILL)
                killed += 1
        return killed


def _spawn_reason(name: str, argv: list[str], workdir: str, exc: Exception) -> str:
    """A user-facing reason for a rank that could not be spawned, naming the path."""
    if isinstance(exc, OSError):
        path = exc.filename or (argv[0] if argv else "")
        if path == workdir or not os.path.isdir(workdir):
            return f"{name}: working directory {workdir}: {exc.strerror}"
        return f"{name}: cannot run {path}: {exc.strerror}"
    return f"{name}: cannot start: {exc}"
