"""Executors run a version's ranks: as Docker containers or as local processes."""

from __future__ import annotations

from app.runtime.executors.base import (
    Executor,
    ExecutorError,
    LaunchPlan,
    Mount,
    RankExit,
    RankPlan,
)


def get_executor(kind: str, settings: object, client: object = None) -> Executor:
    """The executor for a runtime kind (`docker` or `local`); `client`: a docker SDK
    client the caller already has for the configured engine (else one is made)."""
    if kind == "docker":
        from app.runtime.executors.docker import DockerExecutor

        return DockerExecutor(settings, client)  # type: ignore[arg-type]
    if kind == "local":
        from app.runtime.executors.local import LocalExecutor

        return LocalExecutor(settings)  # type: ignore[arg-type]
    raise ExecutorError(f"resources.runtime: unknown runtime {kind!r}")


__all__ = ["Executor", "ExecutorError", "LaunchPlan", "Mount", "RankExit", "RankPlan",
           "get_executor"]
