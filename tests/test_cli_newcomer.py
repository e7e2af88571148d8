"""What a newcomer trips over on the command line: `validate` agrees with `submit`, names
that are not found suggest the closest, `modify` of resources and of parameters the job
lacks, `show --events`, `compare` of one version, engines the local interpreter lacks."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Project, instant_launcher, run_cli

import app.runtime.launcher
from app.catalog import spec_unavailable_reason, unavailable_reason
from app.config import EngineSettings, Settings
from app.context import Context
from app.jobs import submit
from app.specs.spec import JobSpec


@pytest.fixture(autouse=True)
def instant(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions the CLI launches succeed at once."""
    monkeypatch.setattr(app.runtime.launcher, "launch", instant_launcher)


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    return make_project(name="logreg-local")


@pytest.fixture
def spec_file(project: Project) -> Path:
    return project.write_spec()


def error_of(argv: tuple[str, ...]) -> str:
    code, out = run_cli(*argv)
    assert code != 0, out
    return out.strip().splitlines()[-1]


# ------------------------------------------------------------------ validate == submit


def test_validate_refuses_what_submit_refuses_with_the_same_words(
        spec_file: Path, project: Project, make_project: Callable[..., Project]) -> None:
    assert run_cli("validate", str(spec_file))[0] == 0
    assert run_cli("submit", str(spec_file))[0] == 0
    # The same name again.
    assert error_of(("validate", str(spec_file))) == error_of(("submit", str(spec_file)))
    assert "already exists" in error_of(("validate", str(spec_file)))
    # Another job writing into the first one's output folder.
    other = make_project(name="other")
    raw = other.raw(output=str(project.base / "out"), log_dir="logs")
    other_file = other.write_spec(raw)
    refused = error_of(("validate", str(other_file)))
    assert "output:" in refused and "already used by logreg-local/V001" in refused
    assert refused == error_of(("submit", str(other_file)))
    # A taken template name.
    third = make_project(name="third")
    saved = third.write_spec(third.raw(save_as_template={"name": "t1"}))
    assert run_cli("submit", str(saved))[0] == 0
    fourth = make_project(name="fourth")
    clash = fourth.write_spec(fourth.raw(save_as_template={"name": "t1"}))
    assert error_of(("validate", str(clash))) == error_of(("submit", str(clash)))


# ------------------------------------------------------------------ suggestions


def test_unknown_job_names_suggest_the_closest(spec_file: Path) -> None:
    assert run_cli("submit", str(spec_file))[0] == 0
    for argv in (("show", "logreg-locl"), ("compare", "logreg_local"),
                 ("modify", "logreg-loca", "--from", "V001")):
        assert error_of(argv).endswith("not found; did you mean logreg-local?"), argv
    assert "did you mean" not in error_of(("show", "zzzz"))


def test_unknown_commands_suggest_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli.main import main

    with pytest.raises(SystemExit) as caught:
        main(["lsit"])
    assert caught.value.code == 2
    assert "unknown command 'lsit'; did you mean list?" in capsys.readouterr().err


# ------------------------------------------------------------------ modify


def test_modify_sets_resources_of_a_preset_job(ctx: Context, project: Project) -> None:
    raw = project.raw(algorithm={"preset": {"name": "logistic-regression"}},
                      parameters={"train_steps": 5})
    raw["resources"]["gpus"] = 0
    submit(ctx, raw, project.base, launcher=instant_launcher)
    code, out = run_cli("modify", "logreg-local", "--from", "V001", "--set", "resources.gpus=0",
                        "--set", "resources.nodes=1", "--set", "lr=0.2", "--json")
    assert code == 0, out
    code, out = run_cli("modify", "logreg-local", "--from", "V001", "--set",
                        "resources.runtime=docker", "--dry-run")
    assert (code, out.strip().splitlines()) == (
        0, ['resources.runtime: "local" -> "docker"', "(dry run: nothing was launched)"])
    shown = json.loads(run_cli("show", "logreg-local", "-v", "V002", "--json")[1])
    assert shown["versions"][0]["parameters"]["lr"] == 0.2
    assert shown["versions"][0]["nodes"] == 1


def test_modify_set_of_a_missing_parameter_asks_for_add(spec_file: Path) -> None:
    assert run_cli("submit", str(spec_file))[0] == 0
    assert error_of(("modify", "logreg-local", "--from", "V001", "--set", "amp=true")) == (
        "error: parameters.amp: not a parameter of logreg-local; to add it use --add amp=true")
    code, out = run_cli("modify", "logreg-local", "--from", "V001", "--add", "amp=true",
                        "--set", "lr=0.3")
    assert code == 0, out
    shown = json.loads(run_cli("show", "logreg-local", "-v", "V002", "--json")[1])
    assert shown["versions"][0]["parameters"] == {"lr": 0.3, "epochs": 2, "amp": True}


# ------------------------------------------------------------------ show, compare


def test_show_events_without_a_version_shows_the_latest_versions(spec_file: Path) -> None:
    assert run_cli("submit", str(spec_file))[0] == 0
    assert run_cli("modify", "logreg-local", "--from", "V001", "--set", "lr=0.2")[0] == 0
    code, out = run_cli("show", "logreg-local", "--events")
    assert code == 0
    assert "V002 created from V001" in out
    assert "V001 created" not in out.replace("V002 created from V001", "")


def test_compare_with_one_version_says_it_needs_two(spec_file: Path) -> None:
    assert run_cli("submit", str(spec_file))[0] == 0
    assert error_of(("compare", "logreg-local")) == (
        "error: compare: needs at least two versions (logreg-local has V001 here)")
    assert run_cli("modify", "logreg-local", "--from", "V001", "--set", "lr=0.2")[0] == 0
    assert run_cli("compare", "logreg-local")[0] == 0


# ------------------------------------------------------------------ local interpreters


def test_an_engine_whose_interpreter_lacks_its_module_says_why_and_the_fix(home: Path) -> None:
    settings = Settings(engines=[
        EngineSettings(name="pytorch", version="2.13", image="x", interpreter="/nonexistent/py"),
        EngineSettings(name="pytorch", version="9.9", image="x", interpreter=sys.executable),
        EngineSettings(name="python", version="3.11", image="x")])
    reason = unavailable_reason(settings, "pytorch", "2.13")
    assert reason is not None
    assert "/nonexistent/py has no module 'torch'" in reason
    assert "fix: `/nonexistent/py -m pip install torch`" in reason
    assert "traindeck images build pytorch" in reason
    has_torch = importlib.util.find_spec("torch") is not None
    assert (unavailable_reason(settings, "pytorch", "9.9") is None) == has_torch
    assert unavailable_reason(settings, "python", "3.11") is None


def test_a_module_the_code_folders_requirements_install_is_no_warning(
        home: Path, project: Project) -> None:
    (home / "config.yaml").write_text(json.dumps({"engines": [
        {"name": "scikit-learn", "version": "1.5", "image": "x",
         "interpreter": "/nonexistent/py"}]}))
    framework = {"engine": "scikit-learn", "engine_version": "1.5", "code_dir": "code",
                 "boot_file": "train.py"}

    def warnings(**algorithm: str) -> list[str]:
        raw = project.raw(algorithm={"framework": framework, **algorithm})
        code, out = run_cli("validate", str(project.write_spec(raw)), "--json")
        assert code == 0, out
        return [w for w in json.loads(out)["warnings"] if w.startswith("algorithm.framework")]

    (found,) = warnings()
    assert "fix: `/nonexistent/py -m pip install scikit-learn`" in found  # not `sklearn`
    (project.code_dir / "requirements.txt").write_text("# pinned\nScikit_Learn>=1.5  # ok\n")
    assert warnings() == []  # installed into the version's environment before it runs
    assert len(warnings(requirements="ignore")) == 1


def test_validate_warns_of_a_data_folder_without_a_usable_file(project: Project) -> None:
    spec_file = project.write_spec()
    code, out = run_cli("validate", str(spec_file), "--json")
    assert code == 0 and not [w for w in json.loads(out)["warnings"] if w.startswith("data")]
    for data_file in project.data_dir.iterdir():
        data_file.unlink()
    code, out = run_cli("validate", str(spec_file), "--json")
    assert code == 0, out
    assert [w for w in json.loads(out)["warnings"] if w.startswith("data")] == [
        f"data.paths: no usable data files in {project.data_dir.resolve()}: the version "
        "fails when it starts (a script that reads no data still needs a file there)"]


def test_validate_reports_a_preset_the_interpreter_cannot_run(home: Path,
                                                              project: Project) -> None:
    config = {"engines": [{"name": "pytorch", "version": "2.13", "image": "x",
                           "interpreter": "/nonexistent/py"},
                          {"name": "python", "version": "3.11", "image": "x"}]}
    (home / "config.yaml").write_text(json.dumps(config))
    raw = project.raw(algorithm={"preset": {"name": "mlp-classifier"}}, parameters={})
    spec_file = project.write_spec(raw)
    code, out = run_cli("validate", str(spec_file), "--json")
    assert code == 0, out
    warnings = json.loads(out)["warnings"]
    assert len(warnings) == 1
    assert warnings[0].startswith("algorithm.preset.name: preset mlp-classifier: pytorch 2.13: ")
    ctx = Context.open()
    spec = JobSpec.model_validate(raw | {"data": {"paths": [str(project.data_dir)]}})
    found = spec_unavailable_reason(ctx.catalog, spec)
    assert found is not None and "has no module 'torch'" in found[1]
