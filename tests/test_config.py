"""Settings: TRAINDECK_HOME, the config file, environment variables and their errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, write_yaml
from sqlmodel import select

from app.cli.main import main
from app.config import (
    DEFAULT_ENGINES,
    config_file,
    data_dir,
    get_settings,
    load_settings,
)
from app.context import Context
from app.errors import ConfigError, SpecError
from app.jobs import prepare_spec
from app.store.models import EngineRow, ResourcePool, Topic

CUSTOM_CONFIG: dict[str, Any] = {
    "engines": [
        {"name": "jax", "version": "0.4", "image": "lab/jax:0.4"},
        {"name": "caffe", "version": "1.0", "image": "lab/caffe:1", "single_node": True},
    ],
    "pools": [
        {"name": "public", "kind": "public"},
        {"name": "gpu-a", "kind": "dedicated", "gpus": [0, 1], "description": "team A"},
    ],
    "topics": [{"name": "ops", "urls": ["json://127.0.0.1:9/hook"]}],
    "stop_grace_seconds": 3,
}


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Platform config and data dirs pointed at empty temporary folders."""
    dirs = {"config": tmp_path / "xdg-config", "data": tmp_path / "xdg-data"}
    for path in dirs.values():
        path.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(dirs["config"]))
    monkeypatch.setenv("XDG_DATA_HOME", str(dirs["data"]))
    return dirs


def write_config(home: Path, data: Any) -> Path:
    """Write `config.yaml` in the home folder."""
    return write_yaml(home / "config.yaml", data)


# ------------------------------------------------------------------ where things live


def test_home_puts_config_and_database_under_one_folder(home: Path, xdg: dict[str, Path]) -> None:
    settings = load_settings()
    assert config_file() == home / "config.yaml"
    assert data_dir() == home
    assert settings.resolved_database_url == f"sqlite:///{home / 'traindeck.db'}"
    assert settings.resolved_runs_dir == home / "runs"
    Context.open()
    assert (home / "traindeck.db").is_file()
    assert list(xdg["config"].iterdir()) == [] and list(xdg["data"].iterdir()) == []


def test_without_home_the_platform_dirs_are_used(
    home: Path, xdg: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRAINDECK_HOME")
    assert config_file() == xdg["config"] / "traindeck" / "config.yaml"
    assert data_dir() == xdg["data"] / "traindeck"
    assert load_settings().resolved_database_url == (
        f"sqlite:///{xdg['data'] / 'traindeck' / 'traindeck.db'}")


def test_traindeck_config_names_another_file(home: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    other = write_yaml(tmp_path / "team.yaml", {"stop_grace_seconds": 42})
    write_config(home, {"stop_grace_seconds": 1})
    monkeypatch.setenv("TRAINDECK_CONFIG", str(other))
    assert config_file() == other
    assert load_settings().stop_grace_seconds == 42


def test_settings_are_read_once_until_the_cache_is_cleared(home: Path) -> None:
    first = get_settings()
    write_config(home, {"stop_grace_seconds": 5})
    assert get_settings() is first and first.stop_grace_seconds == 10
    get_settings.cache_clear()
    assert get_settings().stop_grace_seconds == 5


# ------------------------------------------------------------------ the config file


def test_defaults_without_a_config_file(home: Path) -> None:
    settings = load_settings()
    assert [(e.name, e.version) for e in settings.engines] == [
        (e.name, e.version) for e in DEFAULT_ENGINES]
    assert [p.name for p in settings.pools] == ["public"]
    assert settings.topics == []
    assert settings.default_runtime == "auto"


def test_config_file_overrides_engines_pools_and_topics(home: Path) -> None:
    write_config(home, CUSTOM_CONFIG)
    settings = load_settings()
    assert [(e.name, e.version) for e in settings.engines] == [("jax", "0.4"), ("caffe", "1.0")]
    assert settings.pool("gpu-a") is not None and settings.pool("gpu-a").gpus == [0, 1]
    assert settings.topic("ops") is not None
    assert settings.stop_grace_seconds == 3


def test_catalog_from_the_config_file_is_what_specs_meet(
    home: Path, make_project: Callable[..., Project],
) -> None:
    write_config(home, CUSTOM_CONFIG)
    ctx = Context.open()
    project = make_project()
    raw = project.raw(resources={"pool": "gpu-a", "runtime": "local"},
                      subscriptions=[{"topic": "ops", "events": ["OnJobFailed"]}])
    raw["algorithm"]["framework"].update(engine="jax", engine_version="0.4")
    assert prepare_spec(ctx, raw, project.base).resources.pool == "gpu-a"

    with pytest.raises(SpecError) as info:
        prepare_spec(ctx, project.raw(), project.base)  # python 3.11 is not configured
    assert {e.field for e in info.value.errors} == {"algorithm.framework.engine"}


def test_catalog_tables_mirror_the_config_file(home: Path) -> None:
    write_config(home, CUSTOM_CONFIG)
    ctx = Context.open()
    with ctx.db.read() as session:
        assert {(r.name, r.version) for r in session.exec(select(EngineRow))} == {
            ("jax", "0.4"), ("caffe", "1.0")}
        assert {r.name for r in session.exec(select(ResourcePool))} == {"public", "gpu-a"}
        assert [(t.name, t.url_count) for t in session.exec(select(Topic))] == [("ops", 1)]
    write_config(home, {"engines": [{"name": "jax", "version": "0.5", "image": "lab/jax"}]})
    ctx = Context.open()
    with ctx.db.read() as session:
        assert [(r.name, r.version) for r in session.exec(select(EngineRow))] == [("jax", "0.5")]
        assert [r.name for r in session.exec(select(ResourcePool))] == ["public"]
        assert list(session.exec(select(Topic))) == []


def test_engines_command_shows_the_configured_catalog(
    home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    write_config(home, CUSTOM_CONFIG)
    assert main(["engines"]) == 0
    out = capsys.readouterr().out
    assert "jax" in out and "pytorch" not in out


def test_public_pool_is_added_when_the_config_lists_only_dedicated_ones(home: Path) -> None:
    write_config(home, {"pools": [{"name": "gpu-b", "gpus": [2]}]})
    pools = load_settings().pools
    assert [(p.name, p.kind) for p in pools] == [("public", "public"), ("gpu-b", "dedicated")]


def test_empty_config_file_means_defaults(home: Path) -> None:
    (home / "config.yaml").write_text("")
    assert load_settings().stop_grace_seconds == 10


# ------------------------------------------------------------------ environment variables


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("TRAINDECK_STOP_GRACE_SECONDS", "2.5", "stop_grace_seconds", 2.5),
        ("TRAINDECK_DEFAULT_RUNTIME", "local", "default_runtime", "local"),
        ("TRAINDECK_GPUS", "[0, 1]", "gpus", [0, 1]),
        ("TRAINDECK_DOCKER_HOST", "tcp://127.0.0.1:2375", "docker_host", "tcp://127.0.0.1:2375"),
        ("TRAINDECK_DOCKER_SHM_SIZE", "8g", "docker_shm_size", "8g"),
        ("TRAINDECK_THEME", "ansi", "theme", "ansi"),
    ],
)
def test_environment_variables_set_values(
    home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str,
    expected: Any,
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), attribute) == expected


def test_environment_beats_the_config_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(home, {"stop_grace_seconds": 3, "default_runtime": "docker"})
    monkeypatch.setenv("TRAINDECK_STOP_GRACE_SECONDS", "7")
    settings = load_settings()
    assert settings.stop_grace_seconds == 7
    assert settings.default_runtime == "docker"


def test_runs_dir_from_the_environment_is_the_default_location(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    make_project: Callable[..., Project],
) -> None:
    monkeypatch.setenv("TRAINDECK_RUNS_DIR", str(tmp_path / "runs-here"))
    project = make_project()
    spec = prepare_spec(Context.open(), project.raw(output=None, log_dir=None), project.base)
    assert spec.output == str(tmp_path / "runs-here" / "demo" / "output")


def test_default_runtime_setting_fills_specs_that_name_none(
    home: Path, monkeypatch: pytest.MonkeyPatch, make_project: Callable[..., Project],
) -> None:
    monkeypatch.setenv("TRAINDECK_DEFAULT_RUNTIME", "local")
    project = make_project()
    spec = prepare_spec(Context.open(), project.raw(resources={"pool": "public"}), project.base)
    assert spec.resources.runtime == "local"


# ------------------------------------------------------------------ invalid settings


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"stop_grace_seconds": "soon"}, "stop_grace_seconds"),
        ({"default_runtime": "cloud"}, "default_runtime"),
        ({"colour": "red"}, "colour"),
        ({"engines": [{"name": "x", "version": "1"}]}, "engines.0.image"),
        ({"engines": [DEFAULT_ENGINES[0].model_dump()] * 2}, "engines"),
        ({"pools": [{"name": "public", "kind": "public"}, {"name": "public"}]}, "pools"),
        ({"pools": [{"name": "p", "kind": "shared"}]}, "pools.0.kind"),
        ({"topics": [{"urls": []}]}, "topics.0.name"),
        ({"gpus": "all"}, "gpus"),
    ],
    ids=lambda v: str(v)[:30] if isinstance(v, str) else None,
)
def test_invalid_config_value_names_the_file_and_the_field(
    home: Path, config: dict[str, Any], field: str,
) -> None:
    path = write_config(home, config)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: ")
    assert "\n" not in message


def test_invalid_environment_value_names_the_field(home: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINDECK_STOP_GRACE_SECONDS", "forever")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(
        "environment variable TRAINDECK_STOP_GRACE_SECONDS: stop_grace_seconds: ")


def test_cli_with_an_invalid_config_prints_one_error_line(
    home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(home, {"default_runtime": "cloud"})
    assert main(["list"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {path}: default_runtime: ")


@pytest.mark.parametrize("text", ["stop_grace_seconds: [\n", "- 1\n- 2\n"],
                         ids=["bad-syntax", "not-a-mapping"])
def test_unreadable_config_file_is_a_config_error(home: Path, text: str) -> None:
    (home / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(home / "config.yaml") in str(info.value)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the Docker engine setting


@pytest.mark.docker
def test_docker_engine_fixture_gives_a_working_client(docker_engine: Any) -> None:
    assert docker_engine.ping() is True


MARKED_TEST = textwrap.dedent(
    """
    import pytest

    @pytest.mark.docker
    def test_marked():
        pass

    def test_fixture(docker_engine):
        pass
    """
)


@pytest.mark.parametrize(("required", "outcome"), [("1", "2 errors"), ("", "2 skipped")])
def test_docker_tests_fail_instead_of_skipping_when_required(
    tmp_path: Path, required: str, outcome: str,
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    here = Path(__file__).parent
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(here / name, suite / name)
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "test_marked.py").write_text(MARKED_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINDECK_")}
    env.update(TRAINDECK_HOME=str(tmp_path / "home"),
               TRAINDECK_DOCKER_HOST="unix:///nonexistent/docker.sock",
               TRAINDECK_REQUIRE_DOCKER=required, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        cwd=suite, env=env, capture_output=True, text=True, timeout=120,
    )
    assert outcome in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == (1 if required else 0)
