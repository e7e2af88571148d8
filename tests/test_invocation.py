"""How a script is called: argument conventions, commands with placeholders, `env:`,
torchelastic's variables, and what `traindeck validate` says will run.

The conventions are checked on `app.specs.invocation` directly and on the plans
`build_plan` makes; the spec rules through `validate_spec`; the CLI in-process. The runs
themselves are in tests/test_runtime_scripts.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, StaticCatalog, instant_launcher, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

import app.runtime.launcher
from app.errors import SpecError
from app.specs.invocation import (
    fill,
    invocation,
    placeholder_problem,
    placeholders,
    rendezvous_env,
)
from app.specs.rules import EngineInfo, validate_spec
from app.specs.spec import JobSpec, format_parameter

BOOT = ["/py/bin/python", "/code/train.py"]
PARAMS = {"lr": 0.1, "epochs": 3, "amp": True, "dry": False, "tag": "a b"}


def spec_of(algorithm: dict[str, Any], parameters: dict[str, Any] | None = None,
            **extra: Any) -> JobSpec:
    """A well-formed spec (shape only) with this algorithm block."""
    return JobSpec.model_validate({
        "name": "demo", "data": {"paths": ["/d"]}, "algorithm": algorithm,
        "parameters": PARAMS if parameters is None else parameters, **extra})


def framework(**fields: Any) -> dict[str, Any]:
    """A framework algorithm block (boot file train.py unless a command is given)."""
    block: dict[str, Any] = {"engine": "python", "engine_version": "3.11", "code_dir": "/code"}
    if "command" not in fields:
        block["boot_file"] = "train.py"
    return {"framework": {**block, **fields}}


# ------------------------------------------------------------------ the conventions


def test_modelarts_is_the_default_with_folders_ending_in_a_slash() -> None:
    call = invocation(spec_of(framework()), BOOT, "/data", "/out/V001")
    assert call.argv == [*BOOT, "--data_url=/data/", "--train_url=/out/V001/", "--lr=0.1",
                         "--epochs=3", "--amp=true", "--dry=false", "--tag=a b"]


def test_plain_passes_only_parameters_with_bare_flags() -> None:
    call = invocation(spec_of(framework(arguments="plain")), BOOT, "/data", "/out")
    assert call.argv == [*BOOT, "--lr=0.1", "--epochs=3", "--amp", "--tag=a b"]


def test_none_appends_nothing() -> None:
    assert invocation(spec_of(framework(arguments="none")), BOOT, "/d", "/o").argv == BOOT


def test_folders_are_always_in_the_environment() -> None:
    for style in ("modelarts", "plain", "none"):
        env = invocation(spec_of(framework(arguments=style)), BOOT, "/data/", "/out").env
        assert env == {"TRAINDECK_DATA_URL": "/data/", "TRAINDECK_TRAIN_URL": "/out/",
                       "DATA_URL": "/data/", "TRAIN_URL": "/out/"}


def test_a_command_fills_placeholders_and_appends_nothing_by_default() -> None:
    command = ["torchrun", "--nproc_per_node=2", "train.py", "{epochs}", "--lr={lr}",
               "--save={train_url}model.pt", "{data_url}", "{{literal}}", "}}{{"]
    call = invocation(spec_of(framework(command=command)), BOOT, "/data", "/out")
    assert call.argv == ["torchrun", "--nproc_per_node=2", "train.py", "3", "--lr=0.1",
                         "--save=/out/model.pt", "/data/", "{literal}", "}{"]


def test_a_command_may_still_ask_for_a_convention() -> None:
    spec = spec_of(framework(command=["python", "main.py"], arguments="plain"))
    assert invocation(spec, BOOT, "/d", "/o").argv[2:] == ["--lr=0.1", "--epochs=3", "--amp",
                                                          "--tag=a b"]


def test_a_custom_image_command_fills_placeholders_then_its_convention() -> None:
    image = {"image": {"name": "img:1", "command": ["python", "/app/t.py", "{tag}"],
                       "arguments": "none"}}
    assert invocation(spec_of(image), [], "/d", "/o").argv == ["python", "/app/t.py", "a b"]
    image["image"].pop("arguments")
    assert invocation(spec_of(image), [], "/d", "/o").argv[3:5] == ["--data_url=/d/",
                                                                     "--train_url=/o/"]


def test_env_is_added_for_every_rank_as_text() -> None:
    spec = spec_of(framework(), env={"SM_EPOCHS": 5, "USE_AMP": True, "NAME": "x y"})
    assert spec.env == {"SM_EPOCHS": "5", "USE_AMP": "true", "NAME": "x y"}
    env = invocation(spec, BOOT, "/d", "/o").env
    assert env["SM_EPOCHS"] == "5" and env["DATA_URL"] == "/d/"


def test_rendezvous_env_is_torchrun_s_full_set() -> None:
    env = rendezvous_env(1, 2, 1, "host0", 29500, "run-1")
    assert env == {
        "MASTER_ADDR": "host0", "MASTER_PORT": "29500", "WORLD_SIZE": "2", "RANK": "1",
        "NODE_RANK": "1", "GROUP_RANK": "1", "ROLE_RANK": "1", "ROLE_WORLD_SIZE": "2",
        "ROLE_NAME": "default", "GROUP_WORLD_SIZE": "2", "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "run-1",
        "TORCHELASTIC_RESTART_COUNT": "0", "TORCHELASTIC_MAX_RESTARTS": "0",
        "PET_NNODES": "2", "PET_NODE_RANK": "1", "PET_MASTER_ADDR": "host0",
        "PET_MASTER_PORT": "29500",
    }


def test_env_values_take_placeholders_as_command_items_do() -> None:
    spec = spec_of(framework(), env={"SM_MODEL_DIR": "{train_url}", "SM_EPOCHS": "{epochs}",
                                     "JSON": '{{"a": 1}}'})
    env = invocation(spec, BOOT, "/d", "/o").env
    assert (env["SM_MODEL_DIR"], env["SM_EPOCHS"], env["JSON"]) == ("/o/", "3", '{"a": 1}')


def test_rendezvous_env_of_several_processes_per_node() -> None:
    """Process 5 of 2 nodes of 4 processes: the second node's second process."""
    env = rendezvous_env(5, 2, 4, "host0", 29500, "run-1")
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == \
           ("5", "8", "1", "4")
    assert (env["NODE_RANK"], env["GROUP_RANK"], env["GROUP_WORLD_SIZE"]) == ("1", "1", "2")
    assert (env["ROLE_RANK"], env["ROLE_WORLD_SIZE"]) == ("5", "8")


# ------------------------------------------------------------------ placeholders


@pytest.mark.parametrize(("item", "problem"), [
    ("{epocs}", "unknown placeholder {epocs} (known: data_url, train_url, epochs, lr)"),
    ("{}", "unknown placeholder {}"),
    ("{a", "unmatched '{' (write {{ for a literal brace)"),
    ("a}", "unmatched '}' (write }} for a literal brace)"),
    ('{"k": 1}', "unknown placeholder"),
])
def test_placeholder_problems(item: str, problem: str) -> None:
    found = placeholder_problem(item, {"data_url", "train_url", "epochs", "lr"})
    assert found is not None and found.startswith(problem)


PARAM_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,12}", fullmatch=True)
PARAM_VALUES = st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False,
                                                                  allow_infinity=False),
                         # a NUL is refused in any value (no argv can carry it)
                         st.text(st.characters(blacklist_characters="\x00"), max_size=20))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_doubled_braces_always_stand_for_themselves(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert placeholders(escaped) == []
    assert fill(escaped, {}) == text


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(PARAM_NAMES, PARAM_VALUES, min_size=1, max_size=5),
       st.text(alphabet="ab-=/ ", max_size=5))
def test_each_parameter_placeholder_is_its_value(params: dict[str, Any], glue: str) -> None:
    values = {name: format_parameter(value) for name, value in params.items()}
    item = glue.join(f"{{{name}}}" for name in params)
    assert fill(item, values) == glue.join(values.values())
    assert placeholder_problem(item, set(params)) is None


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(PARAM_NAMES, PARAM_VALUES, max_size=6))
def test_plain_passes_each_parameter_once_and_never_a_false_flag(params: dict[str, Any]) -> None:
    argv = invocation(spec_of(framework(arguments="plain"), params), BOOT, "/d", "/o").argv
    assert argv[:2] == BOOT
    expected = [f"--{name}" if value is True else f"--{name}={format_parameter(value)}"
                for name, value in params.items() if value is not False]
    assert argv[2:] == expected


# ------------------------------------------------------------------ spec rules


@pytest.fixture
def check(make_project: Callable[..., Project]) -> Callable[[dict[str, Any]], JobSpec]:
    """Validate a raw spec against a project folder and a python 3.11 catalog."""
    project = make_project()
    catalog = StaticCatalog(engines=[EngineInfo("python", "3.11")])

    def run(changes: dict[str, Any]) -> JobSpec:
        return validate_spec(project.raw(**changes), project.base, catalog, "spec.yaml")

    return run


def errors_of(check: Callable[[dict[str, Any]], JobSpec], **changes: Any) -> list[str]:
    """The error lines of a spec that must be refused."""
    with pytest.raises(SpecError) as info:
        check(changes)
    return info.value.lines()


def code_framework(**fields: Any) -> dict[str, Any]:
    """The test project's framework block with some fields changed (None removes one)."""
    block = {"engine": "python", "engine_version": "3.11", "code_dir": "code",
             "boot_file": "train.py", **fields}
    return {"framework": {k: v for k, v in block.items() if v is not None}}


def test_a_command_replaces_the_boot_file(check: Callable[..., JobSpec]) -> None:
    spec = check({"algorithm": code_framework(boot_file=None,
                                              command=["torchrun", "train.py", 50, "{lr}"])})
    assert spec.algorithm.framework is not None
    assert spec.algorithm.framework.command == ["torchrun", "train.py", "50", "{lr}"]
    assert spec.algorithm.framework.argument_style == "none"
    assert "arguments" not in spec.to_dict()["algorithm"]["framework"]  # stored as written


def test_an_unknown_placeholder_names_the_item(check: Callable[..., JobSpec]) -> None:
    lines = errors_of(check, algorithm=code_framework(
        boot_file=None, command=["python", "main.py", "--epochs", "{epocs}", "{lr"]))
    assert lines == [
        "spec.yaml: algorithm.framework.command[3]: unknown placeholder {epocs} "
        "(known: data_url, train_url, epochs, lr)",
        "spec.yaml: algorithm.framework.command[4]: unmatched '{' (write {{ for a literal "
        "brace)",
    ]


def test_a_custom_image_command_is_checked_too(check: Callable[..., JobSpec]) -> None:
    lines = errors_of(check, algorithm={"image": {"name": "img:1", "command": ["{nope}"]}},
                      resources={"runtime": "docker"})
    assert lines == ["spec.yaml: algorithm.image.command[0]: unknown placeholder {nope} "
                     "(known: data_url, train_url, epochs, lr)"]


def test_an_env_value_with_an_unknown_placeholder_names_the_variable(
        check: Callable[..., JobSpec]) -> None:
    lines = errors_of(check, env={"SM_MODEL_DIR": "{model_dir}"})
    assert lines == ["spec.yaml: env.SM_MODEL_DIR: unknown placeholder {model_dir} "
                     "(known: data_url, train_url, epochs, lr)"]


def test_a_custom_image_may_keep_its_own_command(check: Callable[..., JobSpec]) -> None:
    spec = check({"algorithm": {"image": {"name": "img:1", "command": []}},
                  "resources": {"runtime": "docker"}})
    assert invocation(spec, [], "/d", "/o").argv[:2] == ["--data_url=/d/", "--train_url=/o/"]


@pytest.mark.parametrize(("fields", "line"), [
    ({"command": ["python", "t.py"]},
     "algorithm.framework: give a boot_file or a command, not both"),
    ({"boot_file": None}, "algorithm.framework.boot_file: required"),
    ({"boot_file": None, "command": []},
     "algorithm.framework.command: needs at least a program to run as its first item"),
    ({"arguments": "argparse"},
     "algorithm.framework.arguments: Input should be 'modelarts', 'plain' or 'none'"),
])
def test_framework_shape_errors(check: Callable[..., JobSpec], fields: dict[str, Any],
                                line: str) -> None:
    assert errors_of(check, algorithm=code_framework(**fields)) == [f"spec.yaml: {line}"]


@pytest.mark.parametrize(("env", "line"), [
    ({"TRAINDECK_JOB": "x"}, "env.TRAINDECK_JOB: TRAINDECK_JOB is set by Traindeck for the "
                             "ranks: choose another name"),
    ({"RANK": 1}, "env.RANK: RANK is set by Traindeck for the ranks: choose another name"),
    ({"TORCHELASTIC_RUN_ID": "r"}, "env.TORCHELASTIC_RUN_ID: TORCHELASTIC_RUN_ID is set by "
                                   "Traindeck for the ranks: choose another name"),
    ({"1BAD": "x"}, "env.1BAD: variable name '1BAD' must start with a letter or '_' and hold "
                    "only letters, digits or '_'"),
    ({"OK": [1]}, "env.OK: Input should be a valid string"),
    ({"OK": "a\x00b"}, "env.OK: holds a NUL character"),
])
def test_env_errors_name_the_key(check: Callable[..., JobSpec], env: dict[str, Any],
                                 line: str) -> None:
    assert errors_of(check, env=env) == [f"spec.yaml: {line}"]


def test_a_malformed_env_does_not_hide_other_errors(check: Callable[..., JobSpec]) -> None:
    lines = errors_of(check, env={"RANK": "1"}, algorithm=code_framework(boot_file="nope.py"))
    assert [line.split(":")[1].strip() for line in lines] == [
        "env.RANK", "algorithm.framework.boot_file"]


# ------------------------------------------------------------------ validate, modify, templates


@pytest.fixture
def command_project(make_project: Callable[..., Project], home: Path) -> Project:
    """A project whose spec runs a command with placeholders, `plain` arguments and env."""
    project = make_project(parameters={"epochs": 3, "data_url": "shadow"})
    project.spec["algorithm"]["framework"].pop("boot_file")
    project.spec["algorithm"]["framework"].update(
        command=["python", "train.py", "{epochs}", "--out={train_url}m.pt"], arguments="plain")
    project.spec["env"] = {"MY_CONFIG": "fast", "SEED": 7}
    return project


def test_validate_prints_rank_0_argv_and_environment(command_project: Project) -> None:
    spec_file = command_project.write_spec()
    code, out = run_cli("validate", str(spec_file))
    assert code == 0, out
    output = (command_project.base / "out" / "V001").resolve()
    data = command_project.data_dir.resolve()
    assert f"  python train.py 3 --out={output}/m.pt --epochs=3 --data_url=shadow\n" in out
    for line in (f"  TRAIN_URL={output}/", f"  TRAINDECK_DATA_URL={data}/", "  MY_CONFIG=fast",
                 "  SEED=7", "  TRAINDECK_METRICS_FILE=<version state>/job/metrics.rank0.jsonl"):
        assert line + "\n" in out
    assert "RANK=" not in out and "MASTER_PORT" not in out  # one process: no rendezvous
    assert "warning: parameters.data_url: Traindeck already passes the data folder" in out
    assert not (command_project.base / "out").exists()  # validation writes nothing
    assert "traindeck-preview-" not in out  # no scratch path is shown as a real one

    code, out = run_cli("validate", "--json", str(spec_file))
    rank0 = json.loads(out)["rank0"]
    assert rank0["version"] == "V001"
    assert rank0["argv"][:4] == ["python", "train.py", "3", f"--out={output}/m.pt"]
    assert rank0["env"]["SEED"] == "7" and "ROLE_NAME" not in rank0["env"]

    command_project.spec["resources"]["nodes"] = 2  # two local processes: torchrun's variables
    code, out = run_cli("validate", str(command_project.write_spec()))
    assert code == 0, out
    for line in ("  RANK=0", "  ROLE_NAME=default", "  MASTER_PORT=<free port>",
                 "  PET_MASTER_PORT=<free port>"):
        assert line + "\n" in out
    assert [w.split(":")[0] for w in rank0["warnings"]] == ["parameters.data_url"]


def test_validate_shows_docker_paths_in_the_container(command_project: Project) -> None:
    spec_file = command_project.write_spec(command_project.raw(resources={"runtime": "docker"}))
    code, out = run_cli("validate", "--json", str(spec_file))
    assert code == 0, out
    rank0 = json.loads(out)["rank0"]
    assert rank0["argv"][3] == "--out=/traindeck/output/m.pt"
    assert rank0["env"]["DATA_URL"] == "/traindeck/data/"
    assert "PATH" not in rank0["env"]  # the image's own PATH is kept


def test_validate_shows_stand_ins_for_what_only_the_start_knows(
        command_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINDECK_GPUS", "[0]")  # a machine with a GPU to ask for
    raw = command_project.raw(data={"paths": ["s3://bucket/train"]}, output="s3://bucket/out",
                              resources={"runtime": "local", "gpus": 1})
    code, out = run_cli("validate", "--json", str(command_project.write_spec(raw)))
    assert code == 0, out
    env = json.loads(out)["rank0"]["env"]
    assert env["DATA_URL"] == "<staged copy of s3://bucket/train>/"
    assert env["TRAIN_URL"] == "<version state>/output/"  # uploaded to s3://bucket/out/V001
    assert env["CUDA_VISIBLE_DEVICES"] == "<granted GPUs>"


def test_modify_and_templates_keep_the_new_fields(command_project: Project,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.runtime.launcher, "launch", instant_launcher)
    assert run_cli("submit", str(command_project.write_spec()))[0] == 0
    code, out = run_cli("modify", "demo", "--from", "V001", "--set", "epochs=4", "--json")
    assert code == 0, out
    assert json.loads(out)["diff"] == [{"field": "parameters.epochs", "old": 3, "new": 4}]
    _, out = run_cli("show", "demo", "-v", "V002", "--json")
    spec = json.loads(out)["versions"][0]["spec"]
    assert spec["algorithm"]["framework"]["command"][2] == "{epochs}"
    assert spec["algorithm"]["framework"]["arguments"] == "plain"
    assert spec["env"] == {"MY_CONFIG": "fast", "SEED": "7"}
    assert run_cli("templates", "save", "cmd", "--job", "demo", "--version", "V002")[0] == 0
    _, out = run_cli("templates", "show", "cmd", "--json")
    assert json.loads(out)["spec"]["env"] == spec["env"]
    assert json.loads(out)["spec"]["algorithm"] == spec["algorithm"]


def test_validate_shows_the_real_requirements_environment(command_project: Project,
                                                          home: Path) -> None:
    (command_project.base / "code" / "requirements.txt").write_text("pyyaml\n")
    code, out = run_cli("validate", str(command_project.write_spec()))
    assert code == 0, out
    assert "traindeck-preview-" not in out
    assert f"{home}/envs/local" in out
