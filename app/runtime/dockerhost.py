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
"""The API version each engine (by its host; None: the environment's) answered with, in
this process: later clients skip asking again (one round trip less per submit in a
long-lived TUI)."""


def docker_client(settings: Settings | EngineAddress, timeout: float = 60,
                  max_pool_size: int = 32) -> Any:
    """A docker SDK client for the configured engine; EngineUnreachable if none answers.

    One round trip to the engine: a ping. The first client of a process learns the
    engine's API version from the ping's answer (engines since 2017 name it there); the
    SDK would ask `/version` for it, which takes the engine about ten times longer (it
    asks containerd too).
    """
    from docker.errors import DockerException

    host = settings.docker_host
    version = _api_versions.get(host)
    try:
        if version is None:
            version = _ping_for_version(host, timeout)  # None: an engine that did not say
            client = _new_client(host, timeout, max_pool_size, version)  # (asks /version)
        else:
            client = _new_client(host, timeout, max_pool_size, version)
            client.ping()
    except (DockerException, OSError) as exc:
        _api_versions.pop(host, None)  # another engine may answer next time
        raise EngineUnreachable(f"Docker engine unreachable: {exc}") from exc
    _api_versions[host] = client.api.api_version
    return client


def _new_client(host: str | None, timeout: float, max_pool_size: int,
                version: str | None) -> Any:
    """A client (nothing is sent unless `version` is None: then the SDK asks for it)."""
    import docker

    if host:
        return docker.DockerClient(base_url=host, timeout=timeout,
                                   max_pool_size=max_pool_size, version=version)
    # One log stream per rank plus polling: more than the SDK's default 10 connections.
    return docker.from_env(timeout=timeout, max_pool_size=max_pool_size, version=version)


def _ping_for_version(host: str | None, timeout: float) -> str | None:
    """Ping the engine; the API version its answer names (None if it names none)."""
    from docker.constants import DEFAULT_DOCKER_API_VERSION

    probe = _new_client(host, timeout, 1, DEFAULT_DOCKER_API_VERSION)  # sends nothing
    try:
        answer = probe.api.get(f"{probe.api.base_url}/_ping", timeout=timeout)
        answer.raise_for_status()
        return answer.headers.get("API-Version") or None
    finally:
        probe.close()


PING_SECONDS = 3.0
"""How long a reachability check waits for the engine to answer."""


def reachable_client(settings: Settings | EngineAddress, timeout: float = 60) -> Any | None:
    """A client for the engine when it answers within PING_SECONDS, else None.

    The client's later calls wait up to `timeout`: a process that checks and then uses
    the engine needs one client and one round trip, not two.
    """
    try:
        client = docker_client(settings, timeout=PING_SECONDS)
    except EngineUnreachable:
        return None
    client.api.timeout = timeout
    return client


def docker_reachable(settings: Settings | EngineAddress) -> bool:
    """True when a Docker engine answers within a few seconds."""
    client = reachable_client(settings)
    if client is None:
        return False
    client.close()
    return True
