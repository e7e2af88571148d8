"""The small interface every executor implements, and the plan it is handed.

The supervisor builds a `LaunchPlan` (what to run, where, with which GPUs) and an
executor turns it into containers or processes. Handles are plain JSON-able dicts
stored in the database, so a later supervisor can find the run again.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import TraindeckError

Handle = dict[str, Any]


class ExecutorError(TraindeckError):
    """A run could not be started or controlled; the message is the version's reason."""


@dataclass(frozen=True)
class Mount:
    """A host folder made visible to the ranks (Docker bind mount; local runs use `host`)."""

    host: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class RankPlan:
    """One rank (node) of a version: its argv (never a shell string) and environment."""

    rank: int
    argv: list[str]
    env: dict[str, str]
    name: str
    """Container name, or a label for the process (unique per rank)."""
    gpus: list[str] = field(default_factory=list)
    """The devices this rank may use, as CUDA_VISIBLE_DEVICES and Docker name them
    (`GpuDevice.device_id`: a GPU's index, a MIG instance's UUID)."""
    log: str = ""
    """Where the rank's wrapper writes its log: the rank's log file, or in a container
    a file of the job's folder (`logs_in_job_folder`)."""


@dataclass(frozen=True)
class LaunchPlan:
    """Everything an executor needs to start a version."""

    job: str
    version: str
    version_id: int
    image: str | None
    """Docker image; None for local runs."""
    workdir: str
    """Working directory: a path inside the container, or a host path for local runs."""
    mounts: list[Mount]
    ranks: list[RankPlan]
    user: tuple[int, int]
    """uid, gid the ranks run as."""
    shm_size: str = "2g"
    network: str | None = None
    """Docker network shared by the ranks of a multi-node version."""
    labels: dict[str, str] = field(default_factory=dict)
    state_dir: str = ""
    """Traindeck's own folder of the version (never visible to the ranks)."""
    cpus: float | None = None
    """CPU cores each rank may use (the spec's `resources.cpus`); None: no limit."""
    memory: int | None = None
    """Bytes of memory each rank may use (the spec's `resources.memory`); None: no limit."""
    network_mode: str | None = None
    """A single-node Docker version's network (`bridge`, `none`, `host`); None: bridge.
    `network`, when set, wins."""



@dataclass(frozen=True)
class RankExit:
    """How one rank ended."""

    rank: int
    exit_code: int
    oom_killed: bool = False
    error: str = ""
    """Set when the executor itself could not tell (e.g. the container vanished)."""
    log_error: str = ""
    """Set when the rank's log could not be written completely (e.g. a full disk)."""


class Executor(ABC):
    """Starts, watches, stops and cleans up the ranks of a version."""

    kind: str

    @abstractmethod
    def start(self, plan: LaunchPlan) -> Handle:
        """Start every rank; raise ExecutorError with a user-facing reason on failure."""

    def logs_in_job_folder(self, handle: Handle) -> bool:
        """True when each rank's wrapper writes its log into the job's folder (a container
        cannot reach Traindeck's own files), for the supervisor to copy into the rank's
        log; False when the wrappers write the ranks' logs themselves."""
        return False

    def wait_any(self, handle: Handle, timeout: float) -> None:
        """Return when a rank may have ended, or after `timeout` seconds at most."""
        time.sleep(timeout)

    def prepare(self, plan: LaunchPlan, note: Callable[[str], None] | None, *,
                may_wait: bool) -> LaunchPlan | None:
        """The plan ready to start (e.g. with its image pulled, progress lines to `note`);
        None when that needs a wait the caller may not make (`may_wait`)."""
        return plan

    def queue_reason(self, handle: Handle) -> str | None:
        """Why a scheduler behind the executor (Slurm) still holds the started ranks, in
        words; None once they run (and always, where nothing holds them)."""
        return None

    def find_containers(self, version_id: int) -> list[Any]:
        """Containers labelled with `version_id`, in rank order: ranks started by a
        process that died before it recorded their handle (executors with labels)."""
        return []

    @abstractmethod
    def poll(self, handle: Handle) -> list[RankExit | None]:
        """Per rank: None while running, else how it ended."""

    @abstractmethod
    def stop(self, handle: Handle, grace: float) -> None:
        """SIGTERM every rank, SIGKILL whatever still runs after `grace` seconds."""

    @abstractmethod
    def cleanup(self, handle: Handle) -> None:
        """Remove containers/networks (exit codes must have been read first)."""

    @abstractmethod
    def adoptable(self, handle: Handle) -> bool:
        """True when a new supervisor can take over the run (its ranks are still known)."""
