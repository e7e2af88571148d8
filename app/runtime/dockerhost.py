"""Reaching the Docker engine (the docker SDK), with clear errors when it is not there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.errors import TraindeckError

if TYPE_CHECKING:
    from app.config import Settings


@dataclass(frozen=True)
class EngineAddress:
    """Where the engine is, for a process that has not loaded the settings (the
    supervisor's first stage): what `docker_client` reads of them."""

    docker_host: str | None = None


class EngineUnreachable(TraindeckError):
    """The Docker engine cannot be reached."""


_api_versions: dict[str | None, str] = {}
"""The API version each engine (by its configured host) answered with, in this process:
later clients skip asking again (one round trip less per submit in a long-lived TUI)."""


def docker_client(settings: Settings | EngineAddress, timeout: float = 60,
                  max_pool_size: int = 32) -> Any:
    """A docker SDK client for the configured engine; EngineUnreachable if none answers."""
    import docker
    from docker.errors import DockerException

    version = _api_versions.get(settings.docker_host)
    try:
        if settings.docker_host:
            client = docker.DockerClient(base_url=settings.docker_host, timeout=timeout,
                                         max_pool_size=max_pool_size, version=version)
        else:
            # One log stream per rank plus polling: more than the SDK's default 10 connections.
            client = docker.from_env(timeout=timeout, max_pool_size=max_pool_size,
                                     version=version)
        client.ping()
    except (DockerException, OSError) as exc:
        _api_versions.pop(settings.docker_host, None)  # another engine may answer next time
        raise EngineUnreachable(f"Docker engine unreachable: {exc}") from exc
    _api_versions[settings.docker_host] = client.api.api_version
    return client


def docker_reachable(settings: Settings | EngineAddress) -> bool:
    """True when a Docker engine answers a ping within a few seconds."""
    try:
        docker_client(settings, timeout=3).close()
    except EngineUnreachable:
        return False
    return True
