"""Fixtures shared by the whole suite: an isolated Traindeck home, a context, a project.

Tests marked `docker` need a reachable Docker engine. They are skipped without one,
unless `TRAINDECK_REQUIRE_DOCKER=1` is set: then they fail, so that a machine that
should run them cannot silently pass without doing so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BOOT_OK, IMAGE, SLURM_PARTITION, Project, build_project, require_image

import app.db
from app.config import Settings, get_settings, load_settings
from app.context import Context
from app.errors import TraindeckError

REQUIRE_DOCKER_ENV = "TRAINDECK_REQUIRE_DOCKER"
REQUIRE_SLURM_ENV = "TRAINDECK_REQUIRE_SLURM"
_docker_problem: list[str | None] = []  # cached once per session: [] = not checked yet


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers (also declared in pyproject, so `--strict-markers` holds)."""
    config.addinivalue_line(
        "markers", f"docker: needs a reachable Docker engine (fails when {REQUIRE_DOCKER_ENV}=1)"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "xdist_group(name): run with the tests of that group")
    config.addinivalue_line(
        "markers", "serial: alone, after the others (it disturbs what they share: dockerd)")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Three groups for `scripts/test` (`-n 3 --dist loadgroup`), each run one test after
    another in a worker of its own: the TUI's (in-process screens, mostly CPU), the Slurm
    tests (mostly waiting on the controller) and all the others (mostly waiting on
    processes, containers and object storage)."""
    for item in items:
        group = ("slurm" if item.path.name.startswith("test_runtime_slurm") else
                 "tui" if item.path.parent.name == "tui" else "core")
        item.add_marker(pytest.mark.xdist_group(group))


def docker_required() -> bool:
    """True when tests needing Docker must fail rather than skip without an engine."""
    return os.environ.get(REQUIRE_DOCKER_ENV) == "1"


def docker_problem() -> str | None:
    """Why no Docker engine can be used (checked once per session), or None."""
    if not _docker_problem:
        from app.runtime.dockerhost import docker_reachable

        try:
            reachable = docker_reachable(load_settings())
        except TraindeckError as exc:
            _docker_problem.append(f"no Docker engine: {exc}")
        else:
            _docker_problem.append(None if reachable else "no reachable Docker engine")
    return _docker_problem[0]


def skip_or_fail(reason: str) -> None:
    """Skip, or fail when Docker is required."""
    if docker_required():
        pytest.fail(f"{reason} ({REQUIRE_DOCKER_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or fail) tests marked `docker` when no engine answers."""
    if item.get_closest_marker("docker") is not None:
        problem = docker_problem()
        if problem:
            skip_or_fail(problem)


@pytest.fixture(scope="session")
def slurm() -> None:
    """A reachable Slurm controller with partition `debug`; skips (fails when
    `TRAINDECK_REQUIRE_SLURM=1`)."""
    import subprocess

    try:
        done = subprocess.run(["sinfo", "-h", "-p", SLURM_PARTITION, "-o", "%a"],
                              capture_output=True, text=True, timeout=30)
        problem = "" if done.stdout.strip() == "up" else (
            f"partition {SLURM_PARTITION} is not up: "
            f"{done.stderr.strip() or done.stdout.strip()}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = f"no Slurm here ({exc}); run scripts/ensure-slurm"
    if problem:
        if os.environ.get(REQUIRE_SLURM_ENV) == "1":
            pytest.fail(f"{problem} ({REQUIRE_SLURM_ENV}=1)", pytrace=False)
        pytest.skip(problem)


def _reset_caches() -> None:
    app.db.reset_cache()
    get_settings.cache_clear()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty TRAINDECK_HOME: config file, database and run folders all under it.

    Every `TRAINDECK_*` setting from the caller's environment is removed first.
    """
    folder = tmp_path / "home"
    folder.mkdir(exist_ok=True)
    for name in [*Settings.model_fields, "config"]:
        monkeypatch.delenv(f"TRAINDECK_{name.upper()}", raising=False)
    monkeypatch.setenv("TRAINDECK_HOME", str(folder))
    _reset_caches()
    yield folder
    _reset_caches()


@pytest.fixture
def ctx(home: Path) -> Context:
    """A context (settings + migrated database) on the `home` fixture's folder."""
    return Context.open()


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Project]:
    """A factory: `make_project(name="demo", boot=..., parameters=...)` → a `Project`.

    Each call writes a code dir with `train.py`, a data dir and a valid spec (relative
    paths, runtime local) in a folder of its own.
    """
    counter = iter(range(1_000_000))

    def make(name: str = "demo", boot: str = BOOT_OK, **kwargs: Any) -> Project:
        return build_project(tmp_path / f"project-{next(counter)}-{name}", name, boot, **kwargs)

    return make


@pytest.fixture
def docker_engine() -> Iterator[Any]:
    """A docker SDK client for the configured engine; skips (or fails, when required)."""
    from app.runtime.dockerhost import EngineUnreachable, docker_client

    problem = docker_problem()
    if problem:
        skip_or_fail(problem)
    try:
        client = docker_client(load_settings())
    except EngineUnreachable as exc:
        skip_or_fail(str(exc))
    yield client
    client.close()


@pytest.fixture
def engine(docker_engine: Any, ctx: Context) -> Iterator[Any]:
    """The engine client, with the test image present; removes this home's leftovers."""
    from app.runtime.plan import INSTANCE_LABEL, instance_tag

    require_image(docker_engine, IMAGE)
    yield docker_engine
    label = f"{INSTANCE_LABEL}={instance_tag(ctx.settings)}"
    for container in docker_engine.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for network in docker_engine.networks.list(filters={"label": label}):
        network.remove()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The loopback S3 server (`tests/s3server.py`), emptied, with the environment
    pointing at it."""
    from s3server import shared_server, use_server

    server = shared_server()
    server.allow_all()
    server.reset()
    use_server(monkeypatch, tmp_path, server)
    yield server
    server.allow_all()
