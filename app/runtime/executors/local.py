"""Runs each rank as a plain local process, for machines without Docker.

Each rank runs under the rank wrapper (`app.runtime.rankrun`) in a session of its own:
the wrapper writes the rank's log, keeps every process the rank starts below it, and
records the exit code in a status file. The supervisor is neither the ranks' parent nor
their reader, so a run outlives a supervisor that dies and is adopted by the next one,
exactly as a Docker run is. The handle names each wrapper by pid and start time (so
that a reused pid is never mistaken for it) and the status files.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from app.runtime.executors.base import Executor, ExecutorError, Handle, LaunchPlan, RankExit
from app.runtime.rankrun import KILL_SIGNAL, SPAWN_FAILED, read_status

if TYPE_CHECKING:
    from app.config import Settings

_WAIT_STEP = 0.02
"""Seconds between checks while waiting for ranks to exit."""
STOP_MARGIN_SECONDS = 5.0
"""After the grace period, how long a wrapper gets to kill its rank and write its status
before it is killed itself."""
LOST = "the rank's wrapper process ended without a status"


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


def status_path(state_dir: str | Path, rank: int) -> Path:
    """The file in which a rank's wrapper records its exit code."""
    return Path(state_dir) / f"exit.rank{rank}"


def _unrunnable(argv: list[str], workdir: str, env: dict[str, str]) -> str:
    """Why `argv` cannot be started in `workdir` (the wrapper would only say it later)."""
    if not os.path.isdir(workdir):
        return f"working directory {workdir}: No such directory"
    if not argv:
        return "empty command"
    program = argv[0]
    if "/" in program:
        found = os.path.join(workdir, program)
        ok = os.path.isfile(found) and os.access(found, os.X_OK)
    else:
        ok = shutil.which(program, path=env.get("PATH")) is not None
    return "" if ok else f"cannot run {program}: No such file or not executable"


class LocalExecutor(Executor):
    """Runs ranks as wrapped local processes, argv exec'd without a shell."""

    kind = "local"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def start(self, plan: LaunchPlan) -> Handle:
        """Spawn every rank's wrapper; on failure kill those already started and raise."""
        grace = self.settings.stop_grace_seconds if self.settings is not None else 10.0
        started: list[subprocess.Popen[bytes]] = []
        for rank in plan.ranks:
            status = status_path(plan.state_dir, rank.rank)
            status.unlink(missing_ok=True)
            # An address-space limit would break CUDA (it maps far more than it uses).
            limits = [*(["--cpus", str(plan.cpus)] if plan.cpus else []),
                      *(["--memory", str(plan.memory)] if plan.memory and not rank.gpus
                        else [])]
            problem = _unrunnable(rank.argv, plan.workdir, {**os.environ, **rank.env})
            if problem:
                self._abort(started)
                raise ExecutorError(f"{rank.name}: {problem}")
            try:
                with open(status.with_name(status.name + ".err"), "ab") as err:
                    proc = subprocess.Popen(
                        # -P: the working folder (the user's code) must not shadow `app`.
                        [sys.executable, "-P", "-m", "app.runtime.rankrun", *limits,
                         rank.log, str(status), str(grace), "--", *rank.argv],
                        cwd=plan.workdir,
                        # The host environment keeps PATH, HOME and the like working; the
                        # plan puts CUDA_VISIBLE_DEVICES and the rest in rank.env.
                        env={**os.environ, **rank.env},
                        stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                        start_new_session=True, close_fds=True,
                    )
            except (OSError, ValueError) as exc:
                self._abort(started)
                raise ExecutorError(f"{rank.name}: cannot start: {exc}") from exc
            # Reap it when it ends, while this process lives (a TUI collects no zombies).
            threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
            started.append(proc)
        stats = [proc_stat(p.pid) for p in started]
        return {
            "kind": self.kind,
            "pids": [p.pid for p in started],
            "start_times": [s[2] if s else 0 for s in stats],
            "state": str(plan.state_dir),
        }

    @staticmethod
    def _abort(procs: list[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)

    @staticmethod
    def _alive(handle: Handle, rank: int) -> bool:
        """True while the rank's wrapper (that very process, not a reused pid) runs."""
        stat = proc_stat(handle["pids"][rank])
        return (stat is not None and stat[2] == handle["start_times"][rank]
                and stat[0] not in ("Z", "X"))

    def poll(self, handle: Handle) -> list[RankExit | None]:
        """Per rank: None while it runs, else its exit code from the wrapper's status."""
        result: list[RankExit | None] = []
        for rank in range(len(handle["pids"])):
            status = read_status(status_path(handle["state"], rank))
            if status is None and self._alive(handle, rank):
                result.append(None)
                continue
            # Read again: the wrapper may have written it just before it ended.
            status = status or read_status(status_path(handle["state"], rank))
            if status is None:
                result.append(RankExit(rank=rank, exit_code=-1, error=LOST))
            else:
                code, log_error = status
                error = log_error if code == SPAWN_FAILED else ""
                result.append(RankExit(rank=rank, exit_code=code, error=error,
                                       log_error=log_error))
        return result

    def wait_any(self, handle: Handle, timeout: float) -> None:
        """Return when a running rank's wrapper ends, or after `timeout` seconds."""
        fds = []
        for rank, pid in enumerate(handle["pids"]):
            if self._alive(handle, rank):
                with suppress(OSError):
                    fds.append(os.pidfd_open(pid))
        try:
            select.select(fds, [], [], timeout) if fds else time.sleep(min(timeout, 0.2))
        finally:
            for fd in fds:
                os.close(fd)

    def stop(self, handle: Handle, grace: float) -> None:
        """SIGTERM every process of every rank, SIGKILL what still runs after `grace`
        (both through the rank's wrapper; one that does not answer is killed with its
        process group)."""
        running = [r for r in range(len(handle["pids"])) if self._alive(handle, r)]
        for sig, wait in ((signal.SIGTERM, grace), (KILL_SIGNAL, STOP_MARGIN_SECONDS)):
            for rank in running:
                with suppress(ProcessLookupError):
                    os.kill(handle["pids"][rank], sig)
            deadline = time.monotonic() + max(0.0, wait)
            while time.monotonic() < deadline and any(self._alive(handle, r) for r in running):
                time.sleep(_WAIT_STEP)
        for rank in running:
            if self._alive(handle, rank):
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(handle["pids"][rank], signal.SIGKILL)

    def cleanup(self, handle: Handle) -> None:
        """Nothing to remove: each wrapper leaves no process behind."""

    def adoptable(self, handle: Handle) -> bool:
        """True when every rank either still runs or has recorded how it ended."""
        return all(self._alive(handle, r)
                   or read_status(status_path(handle["state"], r)) is not None
                   for r in range(len(handle["pids"])))
