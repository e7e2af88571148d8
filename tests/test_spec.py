"""Job spec rules: each rule refuses what it should, naming the field, and accepts the rest.

Most tests check `validate_spec` against an in-memory catalog; a few go through the
context (`prepare_spec`, `submit`) where the settings take part.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, StaticCatalog, noop_launcher, write_yaml

from app.context import Context
from app.errors import FieldError, SpecError
from app.jobs import parse_assignments, prepare_spec, submit
from app.specs.rules import EngineInfo, ParamSchema, PresetInfo, validate_spec
from app.specs.spec import JobSpec, load_spec_file, parse_yaml

# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    """A valid project: code/train.py, data/, spec with relative paths."""
    return make_project()


@pytest.fixture
def catalog(project: Project, tmp_path: Path) -> StaticCatalog:
    """Engines (caffe single-node), pools, a topic, datasets and presets."""
    mnist_v1 = tmp_path / "datasets" / "mnist-v1"
    mnist_v1.mkdir(parents=True)
    return StaticCatalog(
        engines=[
            EngineInfo("python", "3.11"),
            EngineInfo("pytorch", "2.4"),
            EngineInfo("pytorch", "2.13"),
            EngineInfo("caffe", "1.0", single_node=True),
        ],
        pools={"public", "team-a"},
        topics={"ops"},
        datasets={"mnist": {"V001": str(mnist_v1), "V002": "s3://bucket/mnist/v2"}},
        presets={
            "resnet": PresetInfo(
                "resnet", "pytorch", "2.4",
                (ParamSchema("lr", "float", min=0, max=1), ParamSchema("depth", "int")),
            ),
            "caffenet": PresetInfo("caffenet", "caffe", "1.0"),
        },
    )


Check = Callable[[dict[str, Any]], JobSpec]
Fields = Callable[[dict[str, Any]], dict[str, str]]


@pytest.fixture
def check(project: Project, catalog: StaticCatalog) -> Check:
    """Validate a raw spec against the project folder and the catalog."""
    return lambda raw: validate_spec(raw, project.base, catalog, "spec.yaml")


@pytest.fixture
def fields(check: Check) -> Fields:
    """Validate a raw spec that must be refused: `{field: message}` of every error."""

    def run(raw: dict[str, Any]) -> dict[str, str]:
        with pytest.raises(SpecError) as info:
            check(raw)
        errors = info.value.errors
        assert errors, "a SpecError must list at least one field"
        for line in info.value.lines():
            assert "\n" not in line
            assert line.startswith("spec.yaml: ")
        return {e.field: e.message for e in errors}

    return run


def framework(**changes: Any) -> dict[str, Any]:
    """The project's framework block with some keys changed."""
    block = {"engine": "python", "engine_version": "3.11", "code_dir": "code",
             "boot_file": "train.py"}
    block.update(changes)
    return {"framework": block}


# ------------------------------------------------------------------ the valid spec


def test_valid_spec_passes_and_paths_become_absolute(project: Project, check: Check) -> None:
    spec = check(project.raw())
    assert spec.name == "demo"
    assert spec.data.paths == [str(project.data_dir.resolve())]
    assert spec.algorithm.framework is not None
    assert spec.algorithm.framework.code_dir == str(project.code_dir.resolve())
    assert spec.output == str((project.base / "out").resolve())
    assert spec.log_dir == str((project.base / "logs").resolve())
    assert spec.parameters == {"lr": 0.1, "epochs": 2}


def test_validation_writes_nothing(project: Project, check: Check) -> None:
    before = sorted(p.relative_to(project.base) for p in project.base.rglob("*"))
    check(project.raw())
    assert sorted(p.relative_to(project.base) for p in project.base.rglob("*")) == before


def test_every_bad_field_is_reported_at_once(project: Project, fields: Fields) -> None:
    raw = project.raw(output="data", resources={"pool": "nowhere", "nodes": 1})
    raw["algorithm"] = framework(boot_file="missing.py")
    assert set(fields(raw)) == {"output", "resources.pool", "algorithm.framework.boot_file"}


def test_malformed_and_missing_fields_are_reported_together(project: Project,
                                                            fields: Fields) -> None:
    # A malformed field (the shape check) no longer hides the rules on the others.
    errors = fields(project.raw(name="1 bad", algorithm=framework(code_dir="no-such-code")))
    assert set(errors) == {"name", "algorithm.framework.code_dir"}
    assert "is not an existing directory" in errors["algorithm.framework.code_dir"]


def test_every_kind_of_error_comes_in_one_run(project: Project, fields: Fields) -> None:
    raw = project.raw(name="", resources={"gpus": -1}, data={"paths": ["nowhere"]},
                      subscriptions=[{"topic": "nobody", "events": ["OnJobFailed"]}],
                      output="data/out")
    assert set(fields(raw)) == {"name", "resources.gpus", "data.paths[0]",
                                "subscriptions[0].topic"}
    # (output: the data path is missing, so it cannot be overlapped)


def test_shape_errors_come_first_then_the_rules(project: Project, check: Check) -> None:
    raw = project.raw(name="9", data={"paths": ["nowhere"]})
    with pytest.raises(SpecError) as info:
        check(raw)
    assert [e.field for e in info.value.errors] == ["name", "data.paths[0]"]


def test_a_malformed_framework_still_checks_its_good_fields(project: Project,
                                                            fields: Fields) -> None:
    block = framework(code_dir="no-such-code")
    block["framework"]["bootfile"] = block["framework"].pop("boot_file")
    errors = fields(project.raw(algorithm=block))
    assert errors == {"algorithm.framework.bootfile": "unknown field",
                      "algorithm.framework.boot_file": "required",
                      "algorithm.framework.code_dir": errors["algorithm.framework.code_dir"]}
    assert "no-such-code" in errors["algorithm.framework.code_dir"]


def test_a_malformed_framework_checks_engine_and_boot_file(project: Project,
                                                           fields: Fields) -> None:
    block = framework(engine="tensorflow", boot_file="missing.py")
    block["framework"]["colour"] = "red"
    assert set(fields(project.raw(algorithm=block))) == {
        "algorithm.framework.colour", "algorithm.framework.engine",
        "algorithm.framework.boot_file"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # A malformed algorithm: no "several paths need a framework" guess.
        ({"algorithm": {"framework": 3}, "data": {"paths": ["data", "code"]}},
         {"algorithm.framework"}),
        # Malformed data: nothing said about the stand-in data, nor the output beside it.
        ({"data": {"paths": "data"}, "output": "data"}, {"data.paths"}),
        # Malformed resources: the image's runtime rule cannot be judged.
        ({"algorithm": {"image": {"name": "img:1"}}, "resources": {"runtime": "cloud"}},
         {"resources.runtime"}),
        # Malformed parameters: the preset's schema is not checked against a stand-in.
        ({"algorithm": {"preset": {"name": "resnet"}}, "parameters": ["lr=1"]},
         {"parameters"}),
        # Two algorithm sources: neither is checked.
        ({"algorithm": {"preset": {"name": "ghost"}, **framework(code_dir="nope")}},
         {"algorithm"}),
    ],
)
def test_stand_ins_for_malformed_fields_are_never_checked(
    project: Project, fields: Fields, changes: dict[str, Any], expected: set[str],
) -> None:
    assert set(fields(project.raw(**changes))) == expected


# ------------------------------------------------------------------ name


@pytest.mark.parametrize(
    "name",
    ["", "1job", "-job", "_job", "job name", "job.name", "job/name", "jöb", "a" * 65, "job\n"],
)
def test_bad_job_name_is_refused(project: Project, fields: Fields, name: str) -> None:
    assert "name" in fields(project.raw(name=name))


@pytest.mark.parametrize("name", ["a", "Z", "a" * 64, "job-1_b", "A9-_"])
def test_good_job_name_is_accepted(project: Project, check: Check, name: str) -> None:
    assert check(project.raw(name=name)).name == name


def test_missing_name_is_required(project: Project, fields: Fields) -> None:
    assert fields(project.raw(name=None)) == {"name": "required"}


# ------------------------------------------------------------------ data source


def test_data_with_both_datasets_and_paths_is_refused(project: Project, fields: Fields) -> None:
    raw = project.raw(data={"paths": ["data"], "datasets": [{"name": "mnist",
                                                             "version": "V001"}]})
    assert "data" in fields(raw)


@pytest.mark.parametrize("data", [{}, {"paths": []}, {"datasets": []}],
                         ids=["none", "empty-paths", "empty-datasets"])
def test_data_without_a_source_is_refused(project: Project, fields: Fields,
                                          data: dict[str, Any]) -> None:
    assert "data" in fields(project.raw(data=data))


def test_data_from_a_dataset_version(project: Project, check: Check) -> None:
    spec = check(project.raw(data={"datasets": [{"name": "mnist", "version": "V002"}]}))
    assert spec.data.datasets is not None
    assert spec.data.datasets[0].name == "mnist"


def test_unknown_dataset_and_version_are_refused(project: Project, fields: Fields) -> None:
    raw = project.raw(data={"datasets": [{"name": "nope", "version": "V001"},
                                         {"name": "mnist", "version": "V009"}]})
    assert set(fields(raw)) == {"data.datasets[0].name", "data.datasets[1].version"}


def test_dataset_version_must_look_like_a_version(project: Project, fields: Fields) -> None:
    raw = project.raw(data={"datasets": [{"name": "mnist", "version": "latest"}]})
    assert "data.datasets[0].version" in fields(raw)


def test_missing_data_path_is_refused(project: Project, fields: Fields) -> None:
    assert "data.paths[0]" in fields(project.raw(data={"paths": ["no-such-dir"]}))


def test_data_path_listed_twice_is_refused(project: Project, fields: Fields) -> None:
    assert "data.paths" in fields(project.raw(data={"paths": ["data", "./data"]}))


def test_malformed_remote_data_path_is_refused(project: Project, fields: Fields) -> None:
    assert "data.paths[0]" in fields(project.raw(data={"paths": ["s3://"]}))


def test_remote_data_path_is_accepted(project: Project, check: Check) -> None:
    spec = check(project.raw(data={"paths": ["s3://bucket/train", "obs://other-bkt/x"]}))
    assert spec.data.paths == ["s3://bucket/train", "obs://other-bkt/x"]


# ------------------------------------------------------------------ several paths


def test_several_paths_work_with_a_framework(project: Project, check: Check) -> None:
    (project.base / "more").mkdir()
    assert len(check(project.raw(data={"paths": ["data", "more"]})).data.paths or []) == 2


@pytest.mark.parametrize(
    "algorithm",
    [{"preset": {"name": "resnet"}}, {"image": {"name": "registry/img:1"}}],
    ids=["preset", "image"],
)
def test_several_paths_need_a_framework(project: Project, fields: Fields, check: Check,
                                        algorithm: dict[str, Any]) -> None:
    (project.base / "more").mkdir()
    base = project.raw(algorithm=algorithm, parameters={},
                       resources={"runtime": "docker"})
    check(base)  # one path is fine with any algorithm
    assert "data.paths" in fields({**base, "data": {"paths": ["data", "more"]}})


# ------------------------------------------------------------------ algorithm source


def test_no_algorithm_source_is_refused(project: Project, fields: Fields) -> None:
    assert "algorithm" in fields(project.raw(algorithm={}))


@pytest.mark.parametrize(
    "extra",
    [{"preset": {"name": "resnet"}}, {"image": {"name": "img:1"}}],
    ids=["framework+preset", "framework+image"],
)
def test_two_algorithm_sources_are_refused(project: Project, fields: Fields,
                                           extra: dict[str, Any]) -> None:
    assert "algorithm" in fields(project.raw(algorithm={**framework(), **extra}))


def test_preset_and_image_together_are_refused(project: Project, fields: Fields) -> None:
    raw = project.raw(algorithm={"preset": {"name": "resnet"}, "image": {"name": "img:1"}})
    assert "algorithm" in fields(raw)


def test_unknown_engine_is_refused(project: Project, fields: Fields) -> None:
    errors = fields(project.raw(algorithm=framework(engine="theano")))
    assert "theano" in errors["algorithm.framework.engine"]


def test_unknown_engine_version_is_refused_listing_known(project: Project,
                                                         fields: Fields) -> None:
    errors = fields(project.raw(algorithm=framework(engine="pytorch", engine_version="0.1")))
    message = errors["algorithm.framework.engine_version"]
    assert "2.4" in message and "2.13" in message


def test_engine_version_read_as_a_number_still_matches(project: Project, catalog: StaticCatalog,
                                                       tmp_path: Path) -> None:
    # `engine_version: 2.4` unquoted is a float in YAML.
    text = (project.write_spec().read_text()
            .replace("engine: python", "engine: pytorch")
            .replace("engine_version: '3.11'", "engine_version: 2.4"))
    raw = parse_yaml(text, "spec.yaml")
    assert raw["algorithm"]["framework"]["engine_version"] == 2.4
    spec = validate_spec(raw, project.base, catalog)
    assert spec.algorithm.framework is not None
    assert spec.algorithm.framework.engine_version == "2.4"


def test_unknown_preset_is_refused(project: Project, fields: Fields) -> None:
    raw = project.raw(algorithm={"preset": {"name": "nope"}}, parameters={})
    assert "algorithm.preset.name" in fields(raw)


def test_preset_parameters_are_checked(project: Project, fields: Fields, check: Check) -> None:
    base = project.raw(algorithm={"preset": {"name": "resnet"}})
    check({**base, "parameters": {"lr": 0.5, "depth": 50}})
    errors = fields({**base, "parameters": {"lr": 5.0, "depth": "deep", "other": 1}})
    assert set(errors) == {"parameters.lr", "parameters.depth", "parameters.other"}


def test_missing_code_dir_is_refused(project: Project, fields: Fields) -> None:
    assert "algorithm.framework.code_dir" in fields(
        project.raw(algorithm=framework(code_dir="no-such-code")))


# ------------------------------------------------------------------ boot file


def test_missing_boot_file_is_refused(project: Project, fields: Fields) -> None:
    errors = fields(project.raw(algorithm=framework(boot_file="nope.py")))
    assert "not found" in errors["algorithm.framework.boot_file"]


def test_boot_file_in_a_subfolder_is_accepted(project: Project, check: Check) -> None:
    (project.code_dir / "pkg").mkdir()
    (project.code_dir / "pkg" / "main.py").write_text("print(1)\n")
    check(project.raw(algorithm=framework(boot_file="pkg/main.py")))


def test_boot_file_escaping_with_dotdot_is_refused(project: Project, fields: Fields) -> None:
    (project.base / "outside.py").write_text("print(1)\n")
    errors = fields(project.raw(algorithm=framework(boot_file="../outside.py")))
    assert "inside the code dir" in errors["algorithm.framework.boot_file"]


def test_boot_file_dotdot_back_inside_is_accepted(project: Project, check: Check) -> None:
    check(project.raw(algorithm=framework(boot_file="../code/train.py")))


def test_absolute_boot_file_is_refused_even_inside(project: Project, fields: Fields) -> None:
    raw = project.raw(algorithm=framework(boot_file=str(project.boot_file.resolve())))
    assert "algorithm.framework.boot_file" in fields(raw)


def test_boot_file_symlink_pointing_outside_is_refused(project: Project,
                                                       fields: Fields) -> None:
    outside = project.base / "secret.py"
    outside.write_text("print(1)\n")
    (project.code_dir / "link.py").symlink_to(outside)
    errors = fields(project.raw(algorithm=framework(boot_file="link.py")))
    assert "inside the code dir" in errors["algorithm.framework.boot_file"]


def test_boot_file_symlink_through_a_folder_outside_is_refused(project: Project,
                                                               fields: Fields) -> None:
    elsewhere = project.base / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "train.py").write_text("print(1)\n")
    (project.code_dir / "lib").symlink_to(elsewhere, target_is_directory=True)
    assert "algorithm.framework.boot_file" in fields(
        project.raw(algorithm=framework(boot_file="lib/train.py")))


def test_boot_file_symlink_inside_is_accepted(project: Project, check: Check) -> None:
    (project.code_dir / "entry.py").symlink_to(project.boot_file)
    check(project.raw(algorithm=framework(boot_file="entry.py")))


def test_boot_file_that_is_a_folder_is_refused(project: Project, fields: Fields) -> None:
    (project.code_dir / "pkg").mkdir()
    assert "algorithm.framework.boot_file" in fields(
        project.raw(algorithm=framework(boot_file="pkg")))


# ------------------------------------------------------------------ run parameters


@pytest.mark.parametrize("name", ["1lr", "", "l r", "lr=1", "-lr", ".lr", "lr$", "lé", "a/b"])
def test_bad_parameter_name_is_refused(project: Project, fields: Fields, name: str) -> None:
    errors = fields(project.raw(parameters={name: 1}))
    assert "parameters" in errors
    assert repr(name) in errors["parameters"]


@pytest.mark.parametrize("name", ["lr", "_x", "train.steps", "warm-up", "A_1.b-c"])
def test_good_parameter_name_is_accepted(project: Project, check: Check, name: str) -> None:
    assert name in check(project.raw(parameters={name: 1})).parameters


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), "a\x00b", [1, 2], {"a": 1}, None],
    ids=["nan", "inf", "nul", "list", "dict", "null"],
)
def test_bad_parameter_value_is_refused(project: Project, fields: Fields, value: Any) -> None:
    errors = fields(project.raw(parameters={"lr": value}))
    assert any(field.startswith("parameters") for field in errors)


def test_parameter_values_keep_their_types(project: Project, check: Check) -> None:
    params = {"steps": 10, "lr": 0.5, "amp": True, "mode": "fast"}
    assert check(project.raw(parameters=params)).parameters == params


def test_duplicate_parameter_in_yaml_is_refused_with_its_line(project: Project) -> None:
    path = project.base / "dup.yaml"
    path.write_text(
        "name: demo\n"
        "parameters:\n"
        "  lr: 0.1\n"
        "  steps: 10\n"
        "  lr: 0.2\n",
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    (line,) = info.value.lines()
    assert line.startswith(str(path))
    assert "line 5" in line and "duplicate key 'lr'" in line


def test_duplicate_top_level_key_in_yaml_is_refused(project: Project) -> None:
    with pytest.raises(SpecError, match="line 3: duplicate key 'name'"):
        parse_yaml("name: a\nparameters: {}\nname: b\n", "spec.yaml")


def test_duplicate_key_in_a_flow_mapping_is_refused() -> None:
    with pytest.raises(SpecError, match="line 1: duplicate key 'lr'"):
        parse_yaml("parameters: {lr: 1, lr: 2}\n", "spec.yaml")


def test_duplicate_parameter_on_the_command_line_is_refused() -> None:
    with pytest.raises(FieldError) as info:
        parse_assignments(["lr=0.1", "lr=0.2"])
    assert info.value.field == "parameters.lr"


def test_assignments_are_typed_like_yaml() -> None:
    parsed = parse_assignments(["lr=0.5", "steps=10", "amp=true", "mode=fast", "tag=001x"])
    assert parsed == {"lr": 0.5, "steps": 10, "amp": True, "mode": "fast", "tag": "001x"}


@pytest.mark.parametrize(
    ("item", "field"),
    [("lr", "--set"), ("1x=2", "parameters.1x"), ("a b=1", "parameters.a b")],
)
def test_bad_assignment_names_its_field(item: str, field: str) -> None:
    with pytest.raises(FieldError) as info:
        parse_assignments([item])
    assert info.value.field == field


# ------------------------------------------------------------------ output location


@pytest.mark.parametrize(
    "output", ["data", "./data/", "data/../data", "data/out", "data/a/b", ".", ".."],
    ids=["equal", "equal-slash", "equal-dotdot", "inside", "deep-inside", "contains",
         "contains-parent"],
)
def test_output_overlapping_the_data_path_is_refused(project: Project, fields: Fields,
                                                     output: str) -> None:
    assert "output" in fields(project.raw(output=output))


def test_output_next_to_the_data_path_is_accepted(project: Project, check: Check) -> None:
    (project.base / "data-out").mkdir()  # a common prefix is not an overlap
    assert check(project.raw(output="data-out")).output == str(project.base / "data-out")


def test_output_overlapping_a_dataset_folder_is_refused(project: Project, fields: Fields,
                                                        catalog: StaticCatalog) -> None:
    dataset_dir = catalog.datasets["mnist"]["V001"]
    raw = project.raw(data={"datasets": [{"name": "mnist", "version": "V001"}]},
                      output=f"{dataset_dir}/out")
    assert "output" in fields(raw)


def test_remote_output_overlapping_remote_data_is_refused(project: Project,
                                                          fields: Fields) -> None:
    raw = project.raw(data={"paths": ["s3://bucket/train"]}, output="s3://bucket/train/out")
    assert "output" in fields(raw)


def test_output_that_is_a_file_is_refused(project: Project, fields: Fields) -> None:
    (project.base / "out.txt").write_text("x")
    assert "output" in fields(project.raw(output="out.txt"))


@pytest.mark.parametrize("key", ["output", "log_dir"])
def test_blank_location_is_refused(project: Project, fields: Fields, key: str) -> None:
    assert key in fields(project.raw(**{key: "  "}))


# ------------------------------------------------------------------ resources


@pytest.mark.parametrize("nodes", [0, -1])
def test_nodes_below_one_are_refused(project: Project, fields: Fields, nodes: int) -> None:
    assert "resources.nodes" in fields(project.raw(resources={"nodes": nodes}))


def test_single_node_engine_needs_one_node(project: Project, fields: Fields,
                                           check: Check) -> None:
    caffe = framework(engine="caffe", engine_version="1.0")
    check(project.raw(algorithm=caffe, resources={"nodes": 1}))
    errors = fields(project.raw(algorithm=caffe, resources={"nodes": 2}))
    assert "single node" in errors["resources.nodes"]


def test_single_node_preset_needs_one_node(project: Project, fields: Fields) -> None:
    raw = project.raw(algorithm={"preset": {"name": "caffenet"}}, parameters={},
                      resources={"nodes": 2})
    assert "resources.nodes" in fields(raw)


def test_distributed_engine_allows_several_nodes(project: Project, check: Check) -> None:
    raw = project.raw(algorithm=framework(engine="pytorch", engine_version="2.4"),
                      resources={"nodes": 4, "gpus": 2})
    assert check(raw).resources.nodes == 4


def test_negative_gpus_are_refused(project: Project, fields: Fields, check: Check) -> None:
    assert check(project.raw(resources={"gpus": 0})).resources.gpus == 0
    assert "resources.gpus" in fields(project.raw(resources={"gpus": -1}))


def test_unknown_pool_is_refused(project: Project, fields: Fields, check: Check) -> None:
    assert check(project.raw(resources={"pool": "team-a"})).resources.pool == "team-a"
    errors = fields(project.raw(resources={"pool": "team-b"}))
    assert "team-b" in errors["resources.pool"]


def test_unknown_runtime_is_refused(project: Project, fields: Fields) -> None:
    assert "resources.runtime" in fields(project.raw(resources={"runtime": "k8s"}))


# ------------------------------------------------------------------ subscriptions


def test_known_topic_and_events_are_accepted(project: Project, check: Check) -> None:
    subs = [{"topic": "ops", "events": ["OnJobRunning", "OnJobSucceeded", "OnJobFailed"]}]
    assert check(project.raw(subscriptions=subs)).subscriptions[0].topic == "ops"


def test_unknown_topic_is_refused(project: Project, fields: Fields) -> None:
    raw = project.raw(subscriptions=[{"topic": "ops", "events": ["OnJobFailed"]},
                                     {"topic": "pager", "events": ["OnJobFailed"]}])
    assert set(fields(raw)) == {"subscriptions[1].topic"}


def test_unknown_event_is_refused(project: Project, fields: Fields) -> None:
    raw = project.raw(subscriptions=[{"topic": "ops", "events": ["OnJobExploded"]}])
    assert "subscriptions[0].events[0]" in fields(raw)


def test_empty_or_repeated_events_are_refused(project: Project, fields: Fields) -> None:
    assert "subscriptions[0].events" in fields(
        project.raw(subscriptions=[{"topic": "ops", "events": []}]))
    assert "subscriptions[0].events" in fields(
        project.raw(subscriptions=[{"topic": "ops", "events": ["OnJobFailed"] * 2}]))


def test_topic_subscribed_twice_is_refused(project: Project, fields: Fields) -> None:
    subs = [{"topic": "ops", "events": ["OnJobFailed"]},
            {"topic": "ops", "events": ["OnJobSucceeded"]}]
    assert set(fields(project.raw(subscriptions=subs))) == {"subscriptions[1].topic"}


# ------------------------------------------------------------------ unknown fields, types


@pytest.mark.parametrize(
    ("where", "field"),
    [((), "colour"), (("resources",), "resources.colour"),
     (("algorithm", "framework"), "algorithm.framework.colour"), (("data",), "data.colour")],
)
def test_unknown_field_is_refused(project: Project, fields: Fields, where: tuple[str, ...],
                                  field: str) -> None:
    raw = project.raw()
    target = raw
    for key in where:
        target = target[key]
    target["colour"] = "red"
    assert fields(raw) == {field: "unknown field"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"name": 12}, "name"), ({"parameters": ["lr=1"]}, "parameters"),
     ({"resources": {"nodes": "many"}}, "resources.nodes"),
     ({"data": {"paths": "data"}}, "data.paths"), ({"description": "x" * 1001}, "description")],
)
def test_wrong_types_name_their_field(project: Project, fields: Fields,
                                      changes: dict[str, Any], field: str) -> None:
    assert field in fields(project.raw(**changes))


# ------------------------------------------------------------------ relative paths


def test_relative_paths_resolve_against_the_spec_folder(
    project: Project, catalog: StaticCatalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    raw, base = load_spec_file(Path(os.path.relpath(project.write_spec(), elsewhere)))
    assert base == project.base.resolve()
    spec = validate_spec(raw, base, catalog)
    assert spec.data.paths == [str(project.data_dir.resolve())]
    assert spec.algorithm.framework is not None
    assert spec.algorithm.framework.code_dir == str(project.code_dir.resolve())
    assert spec.output == str(project.base.resolve() / "out")


def test_relative_paths_in_a_nested_spec_folder(project: Project, catalog: StaticCatalog) -> None:
    raw = project.raw(data={"paths": ["../data"]})
    raw["algorithm"] = framework(code_dir="../code")
    spec_file = write_yaml(project.base / "specs" / "job.yaml", raw)
    spec = validate_spec(*load_spec_file(spec_file), catalog)
    assert spec.data.paths == [str(project.data_dir.resolve())]


def test_missing_spec_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------ custom image and runtime


def test_custom_image_with_local_runtime_is_refused(project: Project, fields: Fields,
                                                    check: Check) -> None:
    image = {"image": {"name": "registry.local/train:1", "command": ["python", "x.py"]}}
    check(project.raw(algorithm=image, resources={"runtime": "docker"}))
    errors = fields(project.raw(algorithm=image, resources={"runtime": "local"}))
    assert "docker" in errors["resources.runtime"]


@pytest.mark.parametrize("name", ["", "has space"])
def test_bad_image_name_is_refused(project: Project, fields: Fields, name: str) -> None:
    raw = project.raw(algorithm={"image": {"name": name}}, resources={"runtime": "docker"})
    assert "algorithm.image.name" in fields(raw)


def test_custom_image_code_dir_must_exist(project: Project, fields: Fields) -> None:
    raw = project.raw(algorithm={"image": {"name": "img:1", "code_dir": "nope"}},
                      resources={"runtime": "docker"})
    assert "algorithm.image.code_dir" in fields(raw)


def test_custom_image_never_resolves_to_the_local_runtime(
    project: Project, home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINDECK_DEFAULT_RUNTIME", "local")
    ctx = Context.open()
    raw = project.raw(algorithm={"image": {"name": "registry.local/train:1"}},
                      resources={"pool": "public"})
    try:
        spec = prepare_spec(ctx, raw, project.base)
    except SpecError as exc:
        assert "resources.runtime" in {e.field for e in exc.errors}
    else:
        assert spec.resources.runtime == "docker"


# ------------------------------------------------------------------ through the context


def test_prepare_spec_fills_default_locations(project: Project, ctx: Context,
                                              home: Path) -> None:
    spec = prepare_spec(ctx, project.raw(output=None, log_dir=None), project.base)
    assert spec.output == str(home / "runs" / "demo" / "output")
    assert spec.log_dir == str(home / "runs" / "demo" / "logs")
    assert spec.resources.runtime == "local"


def test_submit_of_an_invalid_spec_names_the_source(project: Project, ctx: Context) -> None:
    with pytest.raises(SpecError) as info:
        submit(ctx, project.raw(name="9"), project.base, "my.yaml", launcher=noop_launcher)
    assert info.value.lines() == [
        "my.yaml: name: job name '9' must be 1-64 letters, digits, '-' or '_', "
        "starting with a letter"
    ]


# ------------------------------------------------------------------ YAML oddities


@pytest.mark.parametrize("text", ["? [a]\n: 1\n", "? {a: 1}\n: 2\n"], ids=["list", "map"])
def test_unhashable_yaml_key_is_a_spec_error(text: str) -> None:
    with pytest.raises(SpecError, match="line 1"):
        parse_yaml(text, "spec.yaml")


def test_deeply_nested_yaml_is_a_spec_error() -> None:
    with pytest.raises(SpecError):
        parse_yaml("a: " + "[" * 5000, "spec.yaml")


def test_yaml_merge_keys_work() -> None:
    text = "defaults: &d {lr: 0.1, steps: 10}\nparameters:\n  <<: *d\n  seed: 1\n"
    assert parse_yaml(text, "spec.yaml")["parameters"] == {"lr": 0.1, "steps": 10, "seed": 1}


def test_yaml_merge_key_can_be_overridden() -> None:
    text = "defaults: &d {lr: 0.1, steps: 10}\nparameters:\n  <<: *d\n  steps: 20\n"
    assert parse_yaml(text, "spec.yaml")["parameters"] == {"lr": 0.1, "steps": 20}


def test_duplicate_key_next_to_a_merge_is_still_refused() -> None:
    text = "defaults: &d {lr: 0.1}\nparameters:\n  <<: *d\n  seed: 1\n  seed: 2\n"
    with pytest.raises(SpecError, match="line 5: duplicate key 'seed'"):
        parse_yaml(text, "spec.yaml")


def test_a_run_parameter_of_the_wrong_kind_is_one_error(project: Project,
                                                         fields: Fields) -> None:
    errors = fields(project.raw(parameters={"lr": [1, 2], "batch": 64}))
    assert errors == {"parameters.lr": "must be a number, a string or true/false, not a list"}
