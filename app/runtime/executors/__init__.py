"""Executors run a version's ranks: as Docker containers, local processes, or a Slurm job."""

from __future__ import annotations

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


__all__ = ["Executor", "ExecutorError", "LaunchPlan", "Mount", "RankExit", "RankPlan",
           "get_executor"]
