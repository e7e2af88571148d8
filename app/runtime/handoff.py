"""The fast start of a version: a head start by the submitter, a light first stage.

A supervisor needs a second or so to import the database layer; a container starts in
a few hundred milliseconds, a local process in a few dozen. So the submitting process
(the TUI or the CLI, whose imports are already done) admits the version and plans it
while the supervisor it spawned boots, and writes a small *handoff* file (JSON):

* Docker: the submitter starts the containers, records the handle itself and copies
  the first line of output into the log (for 0.3 s at most: `startup`); the handoff
  names the run. The supervisor's first stage waits for that file before it imports
  anything (its imports would take a core from the engine while it starts the
  containers), then copies the rest of the output, skipping the lines already there.
* Local: the ranks must be the supervisor's own children (it reads their pipes and
  their exit codes), so the handoff carries the whole launch plan and the first stage
  starts them, then copies their output. (A command-line process forks the supervisor
  instead, which starts them with no handoff: see `app.runtime.forked`.)

In both, the second stage opens the database and takes over the version as usual.

Whatever goes wrong on either side falls back to the ordinary path: the supervisor
reads the version from the database and recovers any container by its labels.

This module is imported by the supervisor's entry point before the heavy imports:
it must stay light at import time.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HANDOFF_ENV = "TRAINDECK_HANDOFF"
"""Environment variable naming the handoff file a new supervisor should wait for."""
STARTER_ENV = "TRAINDECK_STARTER_PID"
"""Environment variable with the pid of the process starting the ranks for it."""
KIND_ENV = "TRAINDECK_HANDOFF_KIND"
"""Environment variable with the runtime of the version (`docker` or `local`)."""
DOCKER_HOST_ENV = "TRAINDECK_HANDOFF_DOCKER_HOST"
"""Environment variable with the engine's configured address (empty: the default one),
so that the first stage reaches it without loading the settings."""
HANDOFF_WAIT_SECONDS = 120.0
"""Longest wait for the handoff (a slow engine); a dead starter ends it at once."""
_POLL = 0.005


@dataclass
class WarmStart:
    """What the supervisor's light first stage already runs: pumps copying the logs."""

    handle: dict[str, Any]
    executor: Any
    logs: dict[int, Any]
    """RankLog per rank."""
    threads: list[threading.Thread] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    first_output: threading.Event = field(default_factory=threading.Event)
    """Set when a pump has written the ranks' first output, or has ended without any."""
    started_here: bool = False
    """The ranks were started by this first stage (local), not by the submitter."""
    gpus: list[int] = field(default_factory=list)
    """GPUs admitted for the ranks (local: recorded by the second stage)."""
    error: str = ""
    """Why the first stage could not start the ranks (the version fails with it)."""


def handoff_path(state: Path) -> Path:
    """The handoff file of a version, in its state folder."""
    return state / "handoff.json"


def write_handoff(path: Path, payload: dict[str, Any]) -> None:
    """Write the handoff atomically (the supervisor polls for the file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, path)


def _starter_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def read_handoff(path: Path, starter: int, timeout: float = HANDOFF_WAIT_SECONDS
                 ) -> dict[str, Any] | None:
    """Wait for the handoff file and return it; None when the starter died or timed out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = None
        except (OSError, ValueError):
            return None
        if isinstance(data, dict):
            path.unlink(missing_ok=True)
            return data
        if time.monotonic() > deadline or not _starter_alive(starter):
            return None
        time.sleep(_POLL)


def warm_start(on_end: Any) -> WarmStart | None:
    """The supervisor's first stage: pick up a handoff and start the log pumps.

    Returns None when there is no handoff to wait for (an ordinary start) or it says
    to fall back. `on_end` is called by each pump when its rank's output ends.
    """
    raw_path = os.environ.pop(HANDOFF_ENV, None)
    starter = int(os.environ.pop(STARTER_ENV, "0") or 0)
    kind = os.environ.pop(KIND_ENV, "docker")
    docker_host = os.environ.pop(DOCKER_HOST_ENV, "") or None
    if not raw_path:
        return None
    if kind == "local":
        return _warm_local(Path(raw_path), starter, on_end)
    # Nothing is imported before the handoff: importing the engine's client takes a
    # core for about as long as the engine takes to start the containers, and on a
    # small machine that would slow the start. The submitter copies their first
    # output meanwhile.
    data = read_handoff(Path(raw_path), starter)
    if not data or "handle" not in data:
        return None
    from app.runtime.dockerhost import EngineAddress
    from app.runtime.executors.docker import DockerExecutor

    # Only the engine's address: loading the settings (pydantic) takes longer still.
    executor = DockerExecutor(EngineAddress(docker_host))  # type: ignore[arg-type]
    return first_stage(data, executor, on_end)


def _warm_local(path: Path, starter: int, on_end: Any) -> WarmStart | None:
    """Local ranks: start them from the handed-over plan, then copy their output."""
    # Before the wait: starting the ranks and copying their output need these at once.
    import app.runtime.executors.local
    import app.runtime.logpump  # noqa: F401

    data = read_handoff(path, starter)
    if not data or "plan" not in data:
        return None
    return first_stage(data, None, on_end)


def first_stage(data: dict[str, Any], docker_executor: Any, on_end: Any) -> WarmStart | None:
    """Run what a fast start handed over (see `startup.start_in_caller`).

    Docker (`handle`: the containers run): copy their output with `docker_executor`.
    Local (`plan`): start the ranks here, as this process's children, and copy theirs.
    None when there is nothing to take over (`fallback`, `done`).
    """
    if "handle" in data:
        warm = WarmStart(handle=data["handle"], executor=docker_executor,
                         logs=_rank_logs(data))
        if data.get("first_output"):
            warm.first_output.set()  # the submitter copied it: the rest need not wait
        _start_pumps(warm, on_end)
        return warm
    if "plan" not in data:
        return None
    from app.runtime.executors.base import ExecutorError, plan_from_json
    from app.runtime.executors.local import LocalExecutor

    executor = LocalExecutor()
    warm = WarmStart(handle={}, executor=executor, logs=_rank_logs(data), started_here=True,
                     gpus=[int(g) for g in data.get("gpus", [])])
    try:
        warm.handle = executor.start(plan_from_json(data["plan"]))
    except ExecutorError as exc:
        warm.error = str(exc)
        return warm
    _start_pumps(warm, on_end)
    return warm


def _rank_logs(data: dict[str, Any]) -> dict[int, Any]:
    from app.runtime.logpump import RankLog

    return {int(rank): RankLog(Path(log), Path(counter))
            for rank, (log, counter) in data["logs"].items()}


def _start_pumps(warm: WarmStart, on_end: Any) -> None:
    from app.runtime.logpump import pump

    for rank, rank_log in sorted(warm.logs.items()):
        rank_log.resume()
        thread = threading.Thread(
            target=pump, name=f"logs-{rank}", daemon=True,
            args=(warm.executor, warm.handle, rank, rank_log, warm.ended, on_end,
                  warm.first_output.set))
        thread.start()
        warm.threads.append(thread)
