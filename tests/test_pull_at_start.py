"""End to end: a Docker version whose image is missing pulls it in its supervisor, with
progress lines in its log; `auto` says in the log why it runs as local processes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import Project
from registry import LoopbackRegistry, saved_image

from app.config import EngineSettings, Settings
from app.context import Context
from app.jobs import submit
from app.runtime.control import wait_final

pytestmark = pytest.mark.docker
MISSING = "traindeck-h6-missing/python:0.0"


def log_of(version: Any) -> str:
    return (Path(version.log_dir) / "rank-0.log").read_text()


@pytest.fixture
def project(make_project: Any) -> Project:
    return make_project(boot="print('hello from the job')\n")


def test_a_docker_version_pulls_its_image_with_progress_in_its_log(
        docker_engine: Any, home: Path, project: Project) -> None:
    served = LoopbackRegistry(name="traindeck-test/python", pace=0.002,
                              saved=saved_image(docker_engine, "traindeck/python:3.11"))
    try:
        (home / "config.yaml").write_text(json.dumps({"engines": [  # supervisors read it
            {"name": "python", "version": "3.11", "image": served.image}]}))
        ctx = Context.open()
        raw = project.raw()
        raw["resources"]["runtime"] = "docker"
        submit(ctx, raw, project.base)
        version = wait_final(ctx, "demo", None, 120)
        text = log_of(version)
        assert version.status == "succeeded", (version.reason, text)
        assert f"[traindeck] pulling {served.image}: 0%" in text
        assert f"[traindeck] pulling {served.image}: 100%" in text
        assert "hello from the job" in text
    finally:
        served.close()
        with contextlib.suppress(Exception):
            docker_engine.images.remove(served.image, force=True)


def test_auto_says_in_the_log_why_it_runs_locally(docker_engine: Any, home: Path,
                                                  project: Project) -> None:
    ctx = Context.open(Settings(default_runtime="auto", engines=[EngineSettings(
        name="python", version="3.11", image=MISSING)]))
    raw = project.raw()
    del raw["resources"]["runtime"]
    submit(ctx, raw, project.base)
    version = wait_final(ctx, "demo", None, 60)
    text = log_of(version)
    assert version.status == "succeeded", (version.reason, text)
    assert version.runtime == "local"
    assert f"[traindeck] docker image {MISSING} not available (" in text
    assert "hello from the job" in text
