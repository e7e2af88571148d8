"""Engine images on a real Docker engine: which image a version runs in, pulling with the
engine's own words on failure, `runtime: auto` that says why it runs locally, the local
image build, and `traindeck images`.

No registry is reachable here: a pull fails for real (the engine's error is the reason);
the present-image path uses the local test image (`scripts/build-test-image`).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, run_cli, traindeck_executable
from registry import LoopbackRegistry
from sqlmodel import select

from app.config import EngineSettings, Settings
from app.context import Context
from app.images import (
    RECIPES,
    ImageError,
    build_image,
    engine_image,
    ensure_image,
    image_for,
    pull_problem,
    rootfs_tarball,
)
from app.jobs import RUNTIME_EVENT, submit
from app.runtime.control import wait_final
from app.runtime.executors.base import ExecutorError
from app.runtime.executors.docker import DockerExecutor
from app.store.models import Event, Version

pytestmark = pytest.mark.docker

LOCAL = "traindeck/python:3.11"
MISSING = "traindeck-h6-missing/python:0.0"
"""An image no engine has and no registry serves."""
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def engine(docker_engine: Any) -> Iterator[Any]:
    """The engine client, with the local test image present."""
    from docker.errors import ImageNotFound

    try:
        docker_engine.images.get(LOCAL)
    except ImageNotFound:
        message = f"image {LOCAL} missing: run scripts/build-test-image"
        if os.environ.get("TRAINDECK_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield docker_engine


def python_engine(image: str, local_image: str | None) -> EngineSettings:
    return EngineSettings(name="python", version="3.11", image=image, local_image=local_image)


def auto_context(*engines: EngineSettings) -> Context:
    return Context.open(Settings(engines=list(engines), default_runtime="auto"))


# ------------------------------------------------------------------ pulling


def test_a_present_image_is_not_pulled(engine: Any) -> None:
    lines: list[str] = []
    ensure_image(engine, LOCAL, lines.append)
    assert lines == []


def test_a_failed_pull_gives_the_engines_words(engine: Any) -> None:
    lines: list[str] = []
    with pytest.raises(ImageError) as caught:
        ensure_image(engine, MISSING, lines.append)
    message = str(caught.value)
    assert message.startswith(f"image {MISSING}: pull failed: ")
    assert len(message) > len(f"image {MISSING}: pull failed: ") + 5  # the engine said why
    assert lines == [f"pulling {MISSING}: 0%"]
    assert pull_problem(engine, MISSING)  # a submit learns it cannot be pulled, quickly


def test_the_local_build_is_used_instead_of_the_official_image(engine: Any, home: Path) -> None:
    settings = Settings(engines=[python_engine("python:3.11-slim", LOCAL)])
    assert image_for(engine, settings, "python:3.11-slim") == LOCAL
    assert engine_image(engine, settings.engines[0]) == LOCAL
    missing_local = Settings(engines=[python_engine("python:3.11-slim", MISSING)])
    assert image_for(engine, missing_local, "python:3.11-slim") == "python:3.11-slim"
    assert engine_image(engine, python_engine(MISSING, None)) is None


def test_the_docker_executor_fails_a_start_with_the_pull_failure(
        engine: Any, ctx: Context, project: Project) -> None:
    from app.runtime.executors.base import LaunchPlan, RankPlan

    executor = DockerExecutor(ctx.settings, engine)
    lines: list[str] = []
    plan = LaunchPlan(job="demo", version="V001", version_id=1, image=MISSING, workdir="/",
                      mounts=[], ranks=[RankPlan(0, ["true"], {}, "traindeck-h6-pullfail")],
                      user=(os.getuid(), os.getgid()))
    with pytest.raises(ExecutorError, match=f"image {MISSING}: pull failed: "):
        executor.prepare(plan, lines.append, may_wait=True)
    assert lines[0] == f"pulling {MISSING}: 0%"
    assert not engine.containers.list(all=True, filters={"name": "traindeck-h6-pullfail"})


def test_a_missing_image_traindeck_can_build_is_named_with_the_command_that_builds_it(
        engine: Any, home: Path) -> None:
    from app.runtime.executors.base import LaunchPlan, RankPlan

    # As pytorch 2.13's image is: a local build only, no registry serves it.
    settings = Settings(engines=[EngineSettings(name="pytorch", version="2.13", image=MISSING,
                                                local_image=MISSING)])
    plan = LaunchPlan(job="demo", version="V001", version_id=1, image=MISSING, workdir="/",
                      mounts=[], ranks=[RankPlan(0, ["true"], {}, "traindeck-h6-hint")],
                      user=(os.getuid(), os.getgid()))
    with pytest.raises(ExecutorError) as failed:
        DockerExecutor(settings, engine).prepare(plan, None, may_wait=True)
    assert str(failed.value).startswith(f"image {MISSING}: pull failed: ")
    assert str(failed.value).endswith("; build it here with `traindeck images build pytorch`")


def test_the_ranks_are_told_the_image_they_run_in(engine: Any, home: Path) -> None:
    """The local build replaces the official image: the ranks' messages and their
    requirements cache name the one that runs."""
    from app.runtime.executors.base import LaunchPlan, RankPlan

    settings = Settings(engines=[python_engine("python:3.11-slim", LOCAL)])
    plan = LaunchPlan(job="demo", version="V001", version_id=1, image="python:3.11-slim",
                      workdir="/", mounts=[], user=(os.getuid(), os.getgid()),
                      ranks=[RankPlan(0, ["true"], {"TRAINDECK_IMAGE": "python:3.11-slim"},
                                      "traindeck-h6-told")])
    prepared = DockerExecutor(settings, engine).prepare(plan, None, may_wait=True)
    assert prepared is not None and prepared.image == LOCAL
    assert prepared.ranks[0].env["TRAINDECK_IMAGE"] == LOCAL


@pytest.fixture
def project(make_project: Any) -> Project:
    return make_project()


@pytest.fixture
def registry(docker_engine: Any) -> Iterator[LoopbackRegistry]:
    """A loopback registry serving one small image (slowed down: progress on the way);
    the pulled image is removed afterwards."""
    served = LoopbackRegistry(pace=0.02)
    yield served
    served.close()
    with contextlib.suppress(Exception):
        docker_engine.images.remove(served.image, force=True)


def test_a_missing_image_is_pulled_with_progress(engine: Any,
                                                 registry: LoopbackRegistry) -> None:
    assert pull_problem(engine, registry.image) is None  # the registry knows it
    lines: list[str] = []
    ensure_image(engine, registry.image, lines.append)
    percents = [int(line.rsplit(" ", 1)[1].rstrip("%")) for line in lines]
    assert all(line.startswith(f"pulling {registry.image}: ") for line in lines)
    assert percents[0] == 0 and percents[-1] == 100
    assert len(percents) >= 3, lines  # something in between
    assert percents == sorted(set(percents))
    engine.images.get(registry.image)  # it arrived
    assert lines == [f"pulling {registry.image}: {p}%" for p in percents]
    lines.clear()
    ensure_image(engine, registry.image, lines.append)
    assert lines == []


def test_a_docker_start_pulls_with_a_progress_file_the_overview_shows(
        engine: Any, ctx: Context, registry: LoopbackRegistry, tmp_path: Path) -> None:
    from app.runtime.executors.base import LaunchPlan, RankPlan
    from app.storage import read_transfer, transfer_path

    executor = DockerExecutor(ctx.settings, engine)
    lines: list[str] = []
    rank = RankPlan(0, ["/no-such-program"], {}, f"traindeck-h6-pulled-{os.getpid()}")
    plan = LaunchPlan(job="demo", version="V001", version_id=1, image=registry.image,
                      workdir="/", mounts=[], user=(os.getuid(), os.getgid()), ranks=[rank],
                      state_dir=str(tmp_path))
    seen: list[Any] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            snapshot = read_transfer(transfer_path(tmp_path))
            if snapshot is not None:
                seen.append(snapshot)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        ready = executor.prepare(plan, lines.append, may_wait=True)
        assert ready is not None
        handle = executor.start(ready)  # its one rank fails at once: the image is empty
    finally:
        done.set()
        watcher.join()
    for container in handle["containers"]:
        engine.api.remove_container(container, force=True)
    engine.images.get(registry.image)
    assert lines[0].endswith(": 0%") and lines[-1].endswith(": 100%")
    assert seen and {(s.what, s.uri) for s in seen} == {("pulling image", registry.image)}
    assert 0 < seen[-1].done <= seen[-1].total
    assert not transfer_path(tmp_path).exists()  # gone once the pull ended


# ------------------------------------------------------------------ runtime: auto


def _auto_spec(project: Project) -> dict[str, Any]:
    raw = project.raw()
    raw["resources"] = {k: v for k, v in raw["resources"].items() if k != "runtime"}
    return raw


def test_auto_runs_locally_and_says_why_when_the_image_is_missing(
        engine: Any, home: Path, project: Project) -> None:
    from helpers import noop_launcher

    ctx = auto_context(python_engine(MISSING, None))
    ref = submit(ctx, _auto_spec(project), project.base, launcher=noop_launcher)
    with ctx.db.read() as session:
        version = session.get(Version, ref.version_id)
        notes = list(session.exec(select(Event.message).where(
            Event.version_id == ref.version_id, Event.kind == RUNTIME_EVENT)))
    assert version is not None and version.runtime == "local"
    assert len(notes) == 1
    assert notes[0].startswith(f"docker image {MISSING} not available (")
    assert notes[0].endswith("): running as local processes")


def test_auto_runs_in_docker_when_the_local_build_is_present(
        engine: Any, home: Path, project: Project) -> None:
    from helpers import noop_launcher

    ctx = auto_context(python_engine("python:3.11-slim", LOCAL))
    ref = submit(ctx, _auto_spec(project), project.base, launcher=noop_launcher)
    with ctx.db.read() as session:
        version = session.get(Version, ref.version_id)
        kinds = list(session.exec(select(Event.kind).where(Event.version_id == ref.version_id)))
    assert version is not None and version.runtime == "docker"
    assert RUNTIME_EVENT not in kinds


def test_auto_runs_in_docker_when_the_registry_knows_the_image(
        engine: Any, home: Path, project: Project, registry: LoopbackRegistry) -> None:
    from helpers import noop_launcher

    ctx = auto_context(python_engine(registry.image, MISSING))
    ref = submit(ctx, _auto_spec(project), project.base, launcher=noop_launcher)
    with ctx.db.read() as session:
        version = session.get(Version, ref.version_id)
    assert version is not None and version.runtime == "docker"
    from docker.errors import ImageNotFound

    with pytest.raises(ImageNotFound):
        engine.images.get(registry.image)  # not pulled at submit: at start


@pytest.mark.slow
def test_a_docker_version_whose_image_cannot_be_pulled_fails_with_the_reason(
        engine: Any, home: Path, project: Project) -> None:
    (home / "config.yaml").write_text(json.dumps({"engines": [  # the supervisor reads it
        {"name": "python", "version": "3.11", "image": MISSING}]}))
    ctx = Context.open()
    raw = project.raw()
    raw["resources"]["runtime"] = "docker"
    submit(ctx, raw, project.base)
    version = wait_final(ctx, "demo", None, 60)
    assert version.status == "failed"
    assert version.reason.startswith(f"image {MISSING}: pull failed: "), version.reason


# ------------------------------------------------------------------ listing and building


def test_images_lists_each_engine_and_whether_it_is_present(engine: Any, home: Path) -> None:
    (home / "config.yaml").write_text(json.dumps({"engines": [
        {"name": "python", "version": "3.11", "image": "python:3.11-slim",
         "local_image": LOCAL},
        {"name": "tensorflow", "version": "2.16", "image": MISSING},
        {"name": "pytorch", "version": "2.13", "image": MISSING, "local_image": MISSING}]}))
    code, out = run_cli("images", "--json")
    assert code == 0, out
    rows = {r["engine"]: r for r in json.loads(out)}
    assert (rows["python"]["present"], rows["python"]["uses"]) == (True, LOCAL)
    assert (rows["tensorflow"]["present"], rows["tensorflow"]["uses"]) == (False, None)
    code, out = run_cli("images")
    assert code == 0 and LOCAL in out
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["tensorflow"].endswith("missing: pulled at start")
    assert lines["pytorch"].endswith("missing: traindeck images build pytorch")


def test_the_python_recipe_shares_the_test_images_cached_rootfs() -> None:
    name = rootfs_tarball(RECIPES["python"]).name
    assert name in (ROOT / "scripts" / "build-test-image").read_text().replace(
        "${SUITE}", "bookworm")
    assert rootfs_tarball(RECIPES["pytorch"]).name != name


def test_build_of_an_engine_without_a_recipe_names_the_recipes(engine: Any) -> None:
    recipes = r"no local image recipe for 'caffe' \(recipes: python, pytorch\)"
    with pytest.raises(ImageError, match=recipes):
        build_image(engine, "caffe")


@pytest.mark.slow
def test_images_build_python_makes_an_image_that_runs(engine: Any) -> None:
    tarball = rootfs_tarball(RECIPES["python"])
    if not tarball.is_file():
        pytest.skip(f"no cached rootfs {tarball} (scripts/build-test-image makes it; a "
                    "fresh debootstrap takes minutes)")
    tag = "traindeck-h6-test/python:build"
    lines: list[str] = []
    try:
        assert build_image(engine, "python", lines.append, tag=tag) == tag
        assert engine.containers.run(tag, ["python3", "-c", "import sys; print(sys.version)"],
                                     remove=True).startswith(b"3.11")
    finally:
        engine.images.remove(tag, force=True)
    assert lines[-1].startswith(f"built {tag} in ")


def test_a_submitting_process_leaves_the_pull_to_the_supervisor(engine: Any,
                                                                ctx: Context) -> None:
    from app.runtime.executors.base import LaunchPlan, RankPlan

    executor = DockerExecutor(ctx.settings, engine)
    lines: list[str] = []
    plan = LaunchPlan(job="demo", version="V001", version_id=1, image=MISSING, workdir="/",
                      mounts=[], ranks=[RankPlan(0, ["true"], {}, "traindeck-h6-deferred")],
                      user=(os.getuid(), os.getgid()))
    assert executor.prepare(plan, lines.append, may_wait=False) is None
    assert lines == []  # nothing was pulled


def test_images_pull_shows_progress_and_the_engines_answer(
        engine: Any, home: Path, registry: LoopbackRegistry) -> None:
    (home / "config.yaml").write_text(json.dumps({"engines": [
        {"name": "python", "version": "3.11", "image": registry.image},
        {"name": "tensorflow", "version": "2.16", "image": MISSING},
        {"name": "pytorch", "version": "2.13", "image": MISSING, "local_image": MISSING}]}))
    code, out = run_cli("images", "pull", "python")
    assert code == 0, out
    assert f"pulling {registry.image}: 100%" in out and f"{registry.image} is present" in out
    code, out = run_cli("images", "pull", "tensorflow")
    assert code == 1
    assert out.splitlines()[-1].startswith(f"error: image {MISSING}: pull failed: ")


def test_validate_warns_of_an_image_that_is_not_here_and_cannot_be_pulled(
        engine: Any, home: Path, project: Project) -> None:
    (home / "config.yaml").write_text(json.dumps({"engines": [
        {"name": "python", "version": "3.11", "image": MISSING}]}))
    raw = project.raw()
    raw["resources"]["runtime"] = "docker"
    spec = project.write_spec(raw)
    done = subprocess.run([traindeck_executable(), "validate", str(spec)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    warning = next(line for line in done.stderr.splitlines() if MISSING in line)
    assert warning.startswith(f"warning: image {MISSING} is not on this machine and cannot "
                              "be pulled (")
