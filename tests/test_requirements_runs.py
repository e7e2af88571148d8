"""requirements.txt through `traindeck submit`: a replaced engine package is named in the
log, and `algorithm.requirements: ignore` leaves the file alone (kept by `modify` and
templates, shown by `validate`). Locally on an engine made here (`engine_with`), and in
Docker on the test image, which has no pip.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import require_image, write_yaml
from runtime_helpers import (
    cli,
    current,
    engine_with,
    log_lines,
    script_spec,
    submit,
    tiny_wheel,
    wait,
)

from app.context import Context
from app.errors import SpecError
from app.jobs import prepare_spec

IMAGE = "traindeck/python:3.11"
SHOW = """\
import tinypkg
print("tinypkg", tinypkg.VALUE, flush=True)
"""
IGNORED = "[traindeck] requirements.txt ignored (requirements: ignore): nothing installed"


def with_requirements(spec: Path, requirements: str | None) -> Path:
    """The spec file with `algorithm.requirements` set."""
    raw = yaml.safe_load(spec.read_text())
    raw["algorithm"]["requirements"] = requirements
    return write_yaml(spec, raw)


def test_a_replaced_engine_package_is_named_and_requirements_can_be_ignored(
    ctx: Context, home: Path, tmp_path: Path
) -> None:
    python = engine_with(tmp_path / "engine", tiny_wheel(tmp_path / "old", "tinypkg", "1.0"))
    (home / "config.yaml").write_text(json.dumps({"engines": [
        {"name": "python", "version": "3.11", "image": IMAGE, "interpreter": python}]}))
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels, "tinypkg", "2.0")
    requirements = f"--no-index\n--find-links {wheels}\ntinypkg==2.0\n"

    submit(script_spec(tmp_path, "replaced", SHOW, parameters={"p": 1},
                       files={"requirements.txt": requirements}))
    version = wait(ctx, "replaced", timeout=120)
    lines = log_lines(version)
    assert version.status == "succeeded", "\n".join(lines)
    replaced = lines.index("[traindeck] requirements.txt: tinypkg 1.0 from the engine is "
                           "replaced by 2.0 in this version's environment")
    assert replaced < lines.index("tinypkg 2.0")

    spec = with_requirements(script_spec(tmp_path, "ignored", SHOW, parameters={"p": 1},
                                         files={"requirements.txt": requirements}), "ignore")
    rank0 = json.loads(cli("validate", str(spec), "--json").stdout)["rank0"]
    assert rank0["argv"][2:4] == ["--ignore", "--"]
    submit(spec)
    for number in ("V001", "V002"):
        version = wait(ctx, "ignored", timeout=120)
        lines = log_lines(version)
        assert version.status == "succeeded", "\n".join(lines)
        # The engine's own tinypkg: nothing installed.
        assert lines.index(IGNORED) + 1 == lines.index("tinypkg 1.0")
        assert current(ctx, "ignored").number == int(number[1:])
        if number == "V001":
            cli("modify", "ignored", "--from", "V001", "--set", "p=2")
    assert len(list((ctx.settings.data_dir / "envs" / "local").glob("*/bin"))) == 1  # replaced
    cli("templates", "save", "keep", "--job", "ignored", "--version", "V002")
    template = json.loads(cli("templates", "show", "keep", "--json").stdout)["spec"]
    assert template["algorithm"]["requirements"] == "ignore"
    shown = json.loads(cli("show", "ignored", "--json").stdout)["versions"][-1]["spec"]
    assert shown["algorithm"]["requirements"] == "ignore"


def test_an_unknown_value_names_the_field(ctx: Context, tmp_path: Path) -> None:
    raw = yaml.safe_load(script_spec(tmp_path, "bad", SHOW).read_text())
    raw["algorithm"]["requirements"] = "no"
    with pytest.raises(SpecError, match=r"algorithm\.requirements: Input should be 'install' "
                                        r"or 'ignore'"):
        prepare_spec(ctx, raw, tmp_path)


@pytest.mark.docker
def test_in_docker_an_ignored_file_needs_no_pip(docker_engine: Any, ctx: Context,
                                                tmp_path: Path) -> None:
    """The test image has no pip: requirements.txt fails the version with one line, unless
    it is ignored."""
    require_image(docker_engine, IMAGE)
    files = {"requirements.txt": "tinypkg==2.0\n"}
    submit(script_spec(tmp_path, "d-needs-pip", "print('ran', flush=True)\n", "docker",
                       files=files))
    version = wait(ctx, "d-needs-pip", timeout=120)
    assert version.status == "failed"
    assert (version.reason or "").startswith("exit code 97: requirements.txt needs pip in image ")
    submit(with_requirements(script_spec(tmp_path, "d-ignored", "print('ran', flush=True)\n",
                                         "docker", files=files), "ignore"))
    version = wait(ctx, "d-ignored", timeout=120)
    lines = log_lines(version)
    assert version.status == "succeeded", "\n".join(lines)
    assert lines.index(IGNORED) + 1 == lines.index("ran")
