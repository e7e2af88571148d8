"""Spec limits (`resources.cpus`, `memory`, `network`), the settings' own checks, and
spec parsing that stays linear in the number of keys."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, write_yaml

from app.config import load_settings
from app.context import Context
from app.errors import ConfigError, SpecError
from app.jobs import prepare_spec
from app.specs.spec import parse_yaml

# ------------------------------------------------------------------ spec limits


def refused(ctx: Context, project: Project, **resources: Any) -> dict[str, str]:
    """The fields (and messages) of a spec with these resources, which must be refused."""
    raw = project.raw(resources={"runtime": "docker", **resources})
    with pytest.raises(SpecError) as info:
        prepare_spec(ctx, raw, project.base, "spec.yaml")
    return {e.field: e.message for e in info.value.errors}


@pytest.mark.parametrize(("resources", "field", "words"), [
    ({"memory": "8 GB"}, "resources.memory", "is not a size like 512m or 8g"),
    ({"memory": "1m"}, "resources.memory", "below the 6m Docker needs"),
    ({"cpus": 0}, "resources.cpus", "greater than 0"),
    ({"cpus": "many"}, "resources.cpus", "number"),
    ({"network": "overlay"}, "resources.network", "'bridge', 'none' or 'host'"),
    ({"nodes": 2, "network": "none"}, "resources.network", "its own bridge network"),
    ({"nodes": 2, "network": "host"}, "resources.network", "its own bridge network"),
])
def test_bad_limits_name_their_field(ctx: Context, make_project: Callable[..., Project],
                                     resources: dict[str, Any], field: str,
                                     words: str) -> None:
    errors = refused(ctx, make_project(), **resources)
    assert field in errors and words in errors[field], errors


def test_limits_reach_the_launch_plan(ctx: Context, make_project: Callable[..., Project],
                                      tmp_path: Path) -> None:
    from app.jobs import submit
    from app.runtime.plan import build_plan
    from app.store.models import Version

    project = make_project()
    raw = project.raw(resources={"runtime": "docker", "cpus": 0.5, "memory": "1g",
                                 "network": "none"})
    spec = prepare_spec(ctx, raw, project.base, "spec.yaml")
    assert spec.to_dict()["resources"] == {"pool": "public", "gpus": 0, "nodes": 1,
                                           "runtime": "docker", "cpus": 0.5,
                                           "memory": "1g", "network": "none"}
    plain = prepare_spec(ctx, project.raw(), project.base, "spec.yaml")
    assert "network" not in plain.to_dict()["resources"]  # older specs stay as they were
    ref = submit(ctx, raw, project.base, "spec.yaml", launcher=lambda c, v: None)
    with ctx.db.read() as session:
        version = session.get(Version, ref.version_id)
    plan = build_plan(ctx.settings, "demo", version, spec, [])
    assert (plan.cpus, plan.memory, plan.network_mode) == (0.5, 1024 ** 3, "none")


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(("config", "field", "words"), [
    ({"gpus": [0, 0, 1]}, "gpus", "GPU index 0 is listed twice"),
    ({"gpus": [0, -1]}, "gpus", "GPU index -1 is negative"),
    ({"pools": [{"name": "a", "gpus": [2, 2]}]}, "pools.0.gpus", "listed twice"),
    ({"pools": [{"name": "a", "gpus": [-1]}]}, "pools.0.gpus", "negative"),
    ({"stop_grace_seconds": -5}, "stop_grace_seconds", "greater than 0"),
    ({"stop_grace_seconds": 0}, "stop_grace_seconds", "greater than 0"),
    ({"storage_read_timeout": 0}, "storage_read_timeout", "greater than 0"),
    ({"storage_connect_timeout": -1}, "storage_connect_timeout", "greater than 0"),
    ({"storage_max_attempts": 0}, "storage_max_attempts", "greater than or equal to 1"),
    ({"docker_cap_add": ["net admin"]}, "docker_cap_add", "not a capability name"),
    ({"docker_pids_limit": 0}, "docker_pids_limit", "greater than or equal to 1"),
    ({"docker_log_max_size": "lots"}, "docker_log_max_size", "not a size like 100m"),
    ({"docker_log_max_file": 0}, "docker_log_max_file", "greater than or equal to 1"),
])
def test_bad_settings_name_the_setting(home: Path, config: dict[str, Any], field: str,
                                       words: str) -> None:
    path = write_yaml(home / "config.yaml", config)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"{path}: {field}: ")
    assert words in str(info.value)


def test_hardening_defaults(home: Path) -> None:
    settings = load_settings()
    assert (settings.docker_cap_drop, settings.docker_cap_add) == (["ALL"], [])
    assert settings.docker_no_new_privileges is True
    assert settings.docker_pids_limit == 4096
    assert (settings.docker_log_max_size, settings.docker_log_max_file) == ("100m", 3)
    assert (settings.storage_connect_timeout, settings.storage_read_timeout,
            settings.storage_max_attempts) == (10.0, 60.0, 3)


# ------------------------------------------------------------------ parsing time


@pytest.mark.slow
def test_spec_parsing_is_linear_in_the_number_of_keys() -> None:
    """40k parameters took 19 s when each key was compared with every earlier one;
    about 0.5 s now (libyaml's parser and a set of seen keys)."""
    text = "name: demo\nparameters:\n" + "".join(f"  p{i}: {i}\n" for i in range(40_000))
    started = time.monotonic()
    assert len(parse_yaml(text, "spec.yaml")["parameters"]) == 40_000
    assert time.monotonic() - started < 6
    with pytest.raises(SpecError, match="duplicate key 'p7'"):
        parse_yaml(text + "  p7: 0\n", "spec.yaml")
