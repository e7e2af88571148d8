"""Executors run a version's ranks: as Docker containers, local processes, or a Slurm job."""

from __future__ import annotations

from typing import Any

from app.runtime.executors.base import (
    Executor,
    ExecutorError,
    LaunchPlan,
    Mount,
    RankExit,
    RankPlan,
)


def get_executor(kind: str, settings: object, client: object = None, *,
                 pool: object = None, gpus_per_node: int = 0) -> Executor:
    """The executor for a runtime kind (`docker`, `local` or `slurm`); `client`: a docker
    SDK client the caller already has for the configured engine (else one is made);
    `pool`, `gpus_per_node`: the Slurm pool (`PoolSettings`) and GPUs per node a new
    Slurm job asks for (stopping or adopting one needs neither)."""
    if kind == "docker":
        from app.runtime.executors.docker import DockerExecutor

        return DockerExecutor(settings, client)  # type: ignore[arg-type]
    if kind == "local":
        from app.runtime.executors.local import LocalExecutor

        return LocalExecutor(settings)  # type: ignore[arg-type]
    if kind == "slurm":
        from app.runtime.executors.slurm import SlurmExecutor

        return SlurmExecutor(settings, pool, gpus_per_node)  # type: ignore[arg-type]
    raise ExecutorError(f"resources.runtime: unknown runtime {kind!r}")


def executor_for(version: Any, settings: Any, client: object = None) -> Executor:
    """The executor that starts `version`'s ranks (its runtime; its pool for Slurm)."""
    kind = version.runtime or "local"
    if kind == "slurm":
        return get_executor(kind, settings, pool=settings.pool(version.pool),
                            gpus_per_node=version.gpus_requested)
    return get_executor(kind, settings, client)


__all__ = ["Executor", "ExecutorError", "LaunchPlan", "Mount", "RankExit", "RankPlan",
           "executor_for", "get_executor"]
