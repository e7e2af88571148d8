"""The `traindeck` command line: exit codes, one-line errors, `--json` output.

Most tests call `app.cli.main.main` in-process with the supervisor launcher replaced by
one that finishes each version at once; a few submit for real (a detached supervisor
running a local process) and a few run the installed `traindeck` script.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    BOOT_EXIT_3,
    Project,
    count_rows,
    instant_launcher,
    noop_launcher,
    traindeck_executable,
)
from sqlmodel import delete, select

import app.runtime.launcher
from app.cli.main import main
from app.config import DEFAULT_ENGINES
from app.context import Context
from app.jobs import create_version, modified_spec, submit
from app.store.models import MetricSummary, Version

# ------------------------------------------------------------------ running the CLI


@dataclass
class Result:
    """What one command did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        """The single `error: ...` line on stderr (asserts there is exactly one)."""
        lines = self.err.splitlines()
        assert len(lines) == 1, f"expected one error line, got {lines!r}"
        assert lines[0].startswith("error: "), lines[0]
        return lines[0]


Cli = Callable[..., Result]


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run `traindeck ARGS...` in-process on the test home."""

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def instant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Versions the CLI launches succeed at once instead of starting a supervisor."""
    monkeypatch.setattr(app.runtime.launcher, "launch", instant_launcher)


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    """A valid project named `demo` with parameters lr=0.1, epochs=2."""
    return make_project()


@pytest.fixture
def spec_file(project: Project) -> Path:
    """The project's spec written to `spec.yaml`."""
    return project.write_spec()


@pytest.fixture
def submitted(cli: Cli, instant: None, spec_file: Path) -> Path:
    """`demo` V001 submitted through the CLI (and already succeeded)."""
    assert cli("submit", spec_file).code == 0
    return spec_file


def versions_of(job: str) -> list[tuple[int, int | None, str]]:
    """(number, parent number, status) of each version, oldest first."""
    ctx = Context.open()
    with ctx.db.read() as session:
        rows = session.exec(select(Version).order_by(Version.number)).all()
        numbers = {v.id: v.number for v in rows}
    return [(v.number, numbers.get(v.parent_id), v.status) for v in rows]


# ------------------------------------------------------------------ validate


def test_validate_accepts_a_valid_spec(cli: Cli, spec_file: Path, project: Project) -> None:
    result = cli("validate", spec_file)
    assert (result.code, result.err) == (0, "")
    assert "valid" in result.out

    data = cli("validate", spec_file, "--json").json()
    assert data["valid"] is True
    assert data["spec"]["data"]["paths"] == [str(project.data_dir.resolve())]


def test_validate_missing_file_names_it(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = cli("validate", missing)
    assert result.code == 1
    assert str(missing) in result.error_line


def test_bad_yaml_reports_its_line(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: demo\ndata:\n  paths: [a, b\nalgorithm: {}\n")
    result = cli("submit", path)
    assert result.code == 1
    line = result.error_line
    assert str(path) in line and "line 4" in line


def test_duplicate_yaml_key_reports_its_line(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("name: demo\nname: again\n")
    assert "line 2: duplicate key 'name'" in cli("validate", path).error_line


def test_spec_that_is_not_a_mapping_is_refused(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- name: demo\n")
    assert "mapping" in cli("validate", path).error_line


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        raw = raw[key]
    raw[keys[-1]] = value


FIELD_CASES = [
    ("name", "9lives", "name"),
    ("data", {}, "data"),
    ("data.paths", ["missing"], "data.paths[0]"),
    ("algorithm", {}, "algorithm"),
    ("algorithm.framework.engine", "theano", "algorithm.framework.engine"),
    ("algorithm.framework.engine_version", "0.0", "algorithm.framework.engine_version"),
    ("algorithm.framework.boot_file", "../spec.yaml", "algorithm.framework.boot_file"),
    ("algorithm.framework.boot_file", "absent.py", "algorithm.framework.boot_file"),
    ("parameters", {"9x": 1}, "parameters"),
    ("output", "data/out", "output"),
    ("resources.nodes", 0, "resources.nodes"),
    ("resources.gpus", -2, "resources.gpus"),
    ("resources.pool", "vip", "resources.pool"),
    ("subscriptions", [{"topic": "ops", "events": ["OnJobFailed"]}], "subscriptions[0].topic"),
    ("subscriptions", [{"topic": "ops", "events": ["OnLunch"]}], "subscriptions[0].events[0]"),
    ("colour", "red", "colour"),
    ("algorithm", {"image": {"name": "img:1"}}, "resources.runtime"),
]


@pytest.mark.parametrize(("path", "value", "field"), FIELD_CASES,
                         ids=[f"{c[0]}={c[1]!r}"[:40] for c in FIELD_CASES])
def test_each_field_error_is_one_line_naming_the_field(
    cli: Cli, project: Project, path: str, value: Any, field: str,
) -> None:
    raw = project.raw()
    _set(raw, path, value)
    spec = project.write_spec(raw)
    line = cli("validate", spec).error_line
    assert line.startswith(f"error: {spec}: {field}: ")


def test_caffe_with_two_nodes_is_refused(cli: Cli, project: Project) -> None:
    raw = project.raw(resources={"nodes": 2, "runtime": "local"})
    _set(raw, "algorithm.framework.engine", "caffe")
    _set(raw, "algorithm.framework.engine_version", "1.0")
    assert ": resources.nodes: " in cli("validate", project.write_spec(raw)).error_line


def test_several_errors_give_one_line_each(cli: Cli, project: Project) -> None:
    raw = project.raw(name="9", resources={"nodes": 0})
    result = cli("validate", project.write_spec(raw))
    assert result.code == 1
    lines = result.err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("error: ") for line in lines)
    assert ": name: " in lines[0] and ": resources.nodes: " in lines[1]


@pytest.mark.parametrize("command", ["validate", "submit"])
def test_malformed_and_missing_fields_come_in_one_run(cli: Cli, project: Project, instant: None,
                                                      command: str) -> None:
    # A bad name (the shape check) and a missing code dir (a rule on the file system).
    raw = project.raw(name="1 bad", resources={"gpus": -1, "runtime": "local"})
    raw["algorithm"]["framework"]["code_dir"] = "no-such-code"
    spec = project.write_spec(raw)
    before = count_rows(Context.open().db)
    result = cli(command, spec)
    assert result.code == 1 and result.out == ""
    fields = [line.removeprefix(f"error: {spec}: ").split(":")[0]
              for line in result.err.splitlines()]
    assert fields == ["name", "resources.gpus", "algorithm.framework.code_dir"]
    assert count_rows(Context.open().db) == before


# ------------------------------------------------------------------ submit, wait, logs


def test_refused_submit_writes_nothing(cli: Cli, project: Project, instant: None) -> None:
    before = count_rows(Context.open().db)
    assert cli("submit", project.write_spec(project.raw(output="data"))).code == 1
    assert count_rows(Context.open().db) == before


def test_submit_prints_the_new_version(cli: Cli, instant: None, spec_file: Path) -> None:
    data = cli("submit", spec_file, "--json").json()
    assert (data["job"], data["version"]) == ("demo", "V001")
    assert versions_of("demo") == [(1, None, "succeeded")]


def test_submit_refuses_an_existing_name_and_points_to_modify(cli: Cli, submitted: Path) -> None:
    result = cli("submit", submitted)
    assert result.code == 1
    assert "already exists" in result.error_line
    assert "traindeck modify demo --from V001" in result.error_line
    assert len(versions_of("demo")) == 1


def test_a_second_job_may_not_share_the_first_ones_folders(
    cli: Cli, project: Project, instant: None,
) -> None:
    shared = {"output": "runs/out", "log_dir": "runs/logs"}
    assert cli("submit", project.write_spec(project.raw(**shared))).code == 0
    before = count_rows(Context.open().db)
    other = project.write_spec(project.raw(name="other", **shared))
    line = cli("submit", other).error_line
    assert line.startswith("error: output: ") and "already used by demo/V001" in line
    assert count_rows(Context.open().db) == before
    apart = project.raw(name="other", output="runs/out2", log_dir="runs/logs")
    assert "error: log_dir: " in cli("submit", project.write_spec(apart)).error_line
    own = project.raw(name="other", output="runs/out2", log_dir="runs/logs2")
    assert cli("submit", project.write_spec(own)).code == 0


def test_real_submit_then_wait_succeeds(cli: Cli, spec_file: Path) -> None:
    assert cli("submit", spec_file).code == 0
    result = cli("wait", "demo", "--timeout", "30", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert (data["status"], data["exit_code"]) == ("succeeded", 0)
    logs = cli("logs", "demo")
    assert logs.code == 0 and logs.out.strip()


def test_real_submit_of_a_failing_boot_file_makes_wait_exit_1(
    cli: Cli, make_project: Callable[..., Project],
) -> None:
    spec = make_project("fails", boot=BOOT_EXIT_3).write_spec()
    assert cli("submit", spec).code == 0
    result = cli("wait", "fails", "--timeout", "30")
    assert result.code == 1
    assert "failed" in result.out
    shown = cli("show", "fails", "--json").json()["versions"][0]
    assert (shown["status"], shown["exit_code"]) == ("failed", 3)
    assert shown["reason"]


def test_wait_gives_up_after_its_timeout(cli: Cli, project: Project) -> None:
    submit(Context.open(), project.raw(), project.base, launcher=noop_launcher)
    result = cli("wait", "demo", "--timeout", "0.3")
    assert result.code == 1
    assert "still initializing" in result.error_line


# ------------------------------------------------------------------ list and show


def test_list_json(cli: Cli, submitted: Path) -> None:
    rows = cli("list", "--json").json()
    assert [(r["name"], r["version"], r["status"]) for r in rows] == [
        ("demo", "V001", "succeeded")]
    assert cli("list", "--json", "--filter", "nothing-like-it").json() == []


def test_list_text_shows_the_job(cli: Cli, submitted: Path) -> None:
    result = cli("list")
    assert result.code == 0 and "demo" in result.out and "V001" in result.out


def test_list_on_an_empty_home(cli: Cli) -> None:
    assert cli("list", "--json").json() == []


def test_show_json_gives_every_version_field(cli: Cli, submitted: Path) -> None:
    data = cli("show", "demo", "--json").json()
    assert data["job"] == "demo"
    (version,) = data["versions"]
    required = {"version", "status", "reason", "exit_code", "parent", "parameters", "metrics",
                "created", "started", "finished"}
    assert required <= set(version)
    assert version["version"] == "V001" and version["parent"] is None
    assert version["parameters"] == {"lr": 0.1, "epochs": 2}
    assert version["exit_code"] == 0 and version["metrics"] == {}
    assert version["created"] and version["started"] and version["finished"]


def test_show_text_and_one_version(cli: Cli, submitted: Path) -> None:
    result = cli("show", "demo", "--version", "V001", "--events")
    assert result.code == 0
    assert "demo V001" in result.out and "lr=0.1" in result.out


def test_show_says_the_limits_a_version_runs_under(cli: Cli, instant: None,
                                                  project: Project) -> None:
    project.spec["resources"].update(cpus=2, memory="512m", processes_per_node=2)
    assert cli("submit", project.write_spec()).code == 0
    out = cli("show", "demo", "--version", "V001").out
    assert ("limits      per node: 2 CPU(s) (CPU affinity), 512.0 MiB memory (address space "
            "of each process; not applied to GPU ranks)  ·  2 processes per node") in out


@pytest.mark.parametrize(
    ("args", "message"),
    [(("show", "ghost"), "job 'ghost' not found"),
     (("show", "demo", "-v", "V042"), "no version V042"),
     (("show", "demo", "-v", "latest"), "version"),
     (("logs", "ghost"), "ghost"),
     (("wait", "ghost", "--timeout", "1"), "ghost"),
     (("stop", "ghost"), "ghost"),
     (("compare", "ghost"), "ghost"),
     (("compare", "demo", "V001", "V007"), "V007"),
     (("modify", "ghost", "--from", "V001"), "ghost"),
     (("modify", "demo", "--from", "V009"), "V009")],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else None,
)
def test_unknown_job_or_version_is_one_error_line(
    cli: Cli, submitted: Path, args: tuple[str, ...], message: str,
) -> None:
    result = cli(*args)
    assert result.code == 1
    assert message in result.error_line


# ------------------------------------------------------------------ modify


def test_modify_creates_a_child_version(cli: Cli, submitted: Path) -> None:
    result = cli("modify", "demo", "--from", "V001", "--set", "lr=0.5", "--json")
    assert result.code == 0, result.err
    data = result.json()
    assert (data["version"], data["parent"]) == ("V002", "V001")
    assert data["diff"] == [{"field": "parameters.lr", "old": 0.1, "new": 0.5}]
    assert versions_of("demo") == [(1, None, "succeeded"), (2, 1, "succeeded")]
    v2 = cli("show", "demo", "-v", "V002", "--json").json()["versions"][0]
    assert v2["parent"] == "V001"
    assert v2["parameters"] == {"lr": 0.5, "epochs": 2}


def test_modify_adds_parameters_with_their_types(cli: Cli, submitted: Path) -> None:
    assert cli("modify", "demo", "--from", "v1", "--add", "amp=true", "--add",
               "tag=run-b").code == 0
    params = cli("show", "demo", "-v", "V002", "--json").json()["versions"][0]["parameters"]
    assert params == {"lr": 0.1, "epochs": 2, "amp": True, "tag": "run-b"}


def test_modify_dry_run_prints_the_diff_and_creates_nothing(cli: Cli, submitted: Path) -> None:
    before = count_rows(Context.open().db)
    result = cli("modify", "demo", "--from", "V001", "--set", "lr=0.5", "--dry-run")
    assert result.code == 0
    assert "parameters.lr" in result.out and "0.1" in result.out and "0.5" in result.out
    diff = cli("modify", "demo", "--from", "V001", "--set", "epochs=9", "--dry-run",
               "--json").json()
    assert diff == {"diff": [{"field": "parameters.epochs", "old": 2, "new": 9}]}
    assert count_rows(Context.open().db) == before


@pytest.mark.parametrize(
    ("sets", "field"),
    [(["lr"], "--set"), (["9x=1"], "parameters.9x"), (["lr=1", "lr=2"], "parameters.lr")],
)
def test_modify_with_a_bad_assignment_is_refused(cli: Cli, submitted: Path, sets: list[str],
                                                 field: str) -> None:
    args = [a for s in sets for a in ("--set", s)]
    result = cli("modify", "demo", "--from", "V001", *args)
    assert result.code == 1
    assert result.error_line.startswith(f"error: {field}: ")
    assert len(versions_of("demo")) == 1


def test_modify_with_a_spec_file_keeps_the_job_name(cli: Cli, submitted: Path,
                                                    project: Project) -> None:
    other = project.write_spec(project.raw(name="renamed"), "other.yaml")
    result = cli("modify", "demo", "--from", "V001", "--spec", other)
    assert result.code == 1 and "name" in result.error_line
    changed = project.write_spec(project.raw(parameters={"lr": 0.9}), "changed.yaml")
    assert cli("modify", "demo", "--from", "V001", "--spec", changed).code == 0
    assert versions_of("demo")[-1] == (2, 1, "succeeded")


def test_modify_refusing_the_spec_creates_nothing(cli: Cli, submitted: Path,
                                                  project: Project) -> None:
    bad = project.write_spec(project.raw(output="data"), "bad.yaml")
    result = cli("modify", "demo", "--from", "V001", "--spec", bad)
    assert result.code == 1 and ": output: " in result.error_line
    assert len(versions_of("demo")) == 1



def test_modify_with_a_spec_file_reports_every_error_at_once(cli: Cli, submitted: Path,
                                                             project: Project) -> None:
    raw = project.raw(resources={"gpus": -1, "runtime": "local"})
    raw["algorithm"]["framework"]["code_dir"] = "no-such-code"
    bad = project.write_spec(raw, "bad-twice.yaml")
    result = cli("modify", "demo", "--from", "V001", "--spec", bad)
    assert result.code == 1
    fields = [line.removeprefix(f"error: {bad}: ").split(":")[0]
              for line in result.err.splitlines()]
    assert fields == ["resources.gpus", "algorithm.framework.code_dir"]
    assert len(versions_of("demo")) == 1


# ------------------------------------------------------------------ stop and delete


def test_stop_an_active_version_then_again(cli: Cli, project: Project) -> None:
    submit(Context.open(), project.raw(), project.base, launcher=noop_launcher)
    result = cli("stop", "demo")
    assert result.code == 0 and "stopped" in result.out
    assert versions_of("demo") == [(1, None, "stopped")]
    again = cli("stop", "demo")
    assert again.code == 1 and "already stopped" in again.error_line


def test_delete_without_yes_is_refused(cli: Cli, submitted: Path) -> None:
    result = cli("delete", "demo")
    assert result.code == 1
    assert "--yes" in result.error_line
    assert len(versions_of("demo")) == 1


def test_delete_one_version_then_the_job(cli: Cli, submitted: Path) -> None:
    assert cli("modify", "demo", "--from", "V001").code == 0
    result = cli("delete", "demo", "--version", "V001", "--yes", "--json")
    assert result.json() == {"job": "demo", "deleted": ["V001"]}
    assert versions_of("demo") == [(2, None, "succeeded")]
    assert cli("show", "demo", "--json").json()["versions"][0]["version"] == "V002"
    assert cli("delete", "demo", "--yes").code == 0
    assert cli("list", "--json").json() == []
    assert cli("delete", "demo", "--yes").code == 1


def test_delete_purge_removes_the_files(cli: Cli, submitted: Path) -> None:
    version = cli("show", "demo", "--json").json()["versions"][0]
    Path(version["output"]).mkdir(parents=True)
    (Path(version["output"]) / "model.bin").write_bytes(b"x")
    assert cli("delete", "demo", "--yes", "--purge").code == 0
    assert not Path(version["output"]).exists()


# ------------------------------------------------------------------ compare


@pytest.fixture
def three_versions(home: Path, project: Project) -> Context:
    """`demo` V001..V003 (succeeded, lr 0.1/0.2/0.3) with metric summaries."""
    ctx = Context.open()
    submit(ctx, project.raw(), project.base, launcher=instant_launcher)
    for lr in (0.2, 0.3):
        _, spec, parent = modified_spec(ctx, "demo", "V001", {"lr": lr})
        create_version(ctx, "demo", spec, parent, launcher=instant_launcher)
    metrics = {
        1: {"accuracy": 0.80, "f1": 0.70, "loss": 0.50},
        2: {"accuracy": 0.90, "f1": 0.60, "loss": 0.40},
        3: {"accuracy": 0.85, "f1": 0.75, "loss": 0.45},
    }
    with ctx.db.write() as session:
        ids = dict(session.exec(select(Version.number, Version.id)).all())
        for number, values in metrics.items():
            for name, value in values.items():
                session.add(MetricSummary(version_id=ids[number], name=name, value=value))
    return ctx


def test_compare_json_marks_the_best_value_per_metric(cli: Cli, three_versions: Context) -> None:
    data = cli("compare", "demo", "--json").json()
    assert data["versions"] == ["V001", "V002", "V003"]
    assert data["best"] == {"accuracy": ["V002"], "f1": ["V003"], "loss": ["V002"]}
    assert data["goals"] == {"accuracy": "max", "f1": "max", "loss": "min"}
    assert data["metrics"]["loss"] == [0.5, 0.4, 0.45]
    assert data["differing"] == ["lr"]
    assert data["parameters"]["lr"] == [0.1, 0.2, 0.3]


def test_compare_chosen_versions(cli: Cli, three_versions: Context) -> None:
    data = cli("compare", "demo", "V001", "V003", "--json").json()
    assert data["versions"] == ["V001", "V003"]
    assert data["best"] == {"accuracy": ["V003"], "f1": ["V003"], "loss": ["V003"]}


def test_compare_text_stars_the_best_and_hides_equal_parameters(
    cli: Cli, three_versions: Context,
) -> None:
    result = cli("compare", "demo")
    assert result.code == 0
    loss = next(line for line in result.out.splitlines() if line.startswith("loss"))
    assert loss.split() == ["loss", "0.5", "0.4", "*", "0.45"]
    assert "param lr" in result.out and "param epochs" not in result.out
    assert "param epochs" in cli("compare", "demo", "--all").out


def test_compare_marks_every_version_of_a_tie(cli: Cli, three_versions: Context) -> None:
    with three_versions.db.write() as session:
        row = session.exec(select(MetricSummary).where(MetricSummary.name == "f1",
                                                       MetricSummary.value == 0.70)).one()
        row.value = 0.75
        session.add(row)
    assert cli("compare", "demo", "--json").json()["best"]["f1"] == ["V001", "V003"]
    f1 = next(line for line in cli("compare", "demo").out.splitlines() if line.startswith("f1"))
    assert f1.split() == ["f1", "0.75", "*", "0.6", "0.75", "*"]


# ------------------------------------------------------------------ engines


def test_engines_json_lists_the_catalog(cli: Cli) -> None:
    entries = cli("engines", "--json").json()
    assert [(e["name"], e["version"]) for e in entries] == [
        (e.name, e.version) for e in DEFAULT_ENGINES]
    caffe = next(e for e in entries if e["name"] == "caffe")
    assert caffe["single_node"] is True
    assert {"image", "interpreter", "tensorboard"} <= set(caffe)


def test_engines_text(cli: Cli) -> None:
    result = cli("engines")
    assert result.code == 0 and "pytorch" in result.out and "1 only" in result.out


# ------------------------------------------------------------------ templates


def test_templates_save_list_show_delete(cli: Cli, submitted: Path) -> None:
    assert cli("templates", "list", "--json").json() == []
    saved = cli("templates", "save", "base-params", "--job", "demo", "--version", "V001",
                "--description", "the usual")
    assert saved.code == 0, saved.err
    listed = cli("templates", "list", "--json").json()
    assert [(t["name"], t["description"]) for t in listed] == [("base-params", "the usual")]
    shown = cli("templates", "show", "base-params", "--json").json()
    version = cli("show", "demo", "--json").json()["versions"][0]
    assert shown["spec"] == version["spec"]
    assert "lr: 0.1" in cli("templates", "show", "base-params").out
    assert cli("templates", "delete", "base-params").code == 0
    assert cli("templates", "list", "--json").json() == []


def test_templates_save_twice_needs_replace(cli: Cli, submitted: Path) -> None:
    args = ("templates", "save", "tpl", "--job", "demo")
    assert cli(*args).code == 0
    again = cli(*args)
    assert again.code == 1 and "already exist" in again.error_line
    assert cli(*args, "--replace", "--description", "new").code == 0
    assert cli("templates", "list", "--json").json()[0]["description"] == "new"


@pytest.mark.parametrize(
    ("args", "message"),
    [(("templates", "show", "ghost"), "ghost"), (("templates", "delete", "ghost"), "ghost"),
     (("templates", "save", "tpl"), "--job"),
     (("templates", "save", "tpl", "--job", "ghost"), "ghost")],
)
def test_templates_errors(cli: Cli, submitted: Path, args: tuple[str, ...],
                          message: str) -> None:
    result = cli(*args)
    assert result.code == 1 and message in result.error_line


def test_templates_show_without_a_name_is_a_usage_error(cli: Cli) -> None:
    with pytest.raises(SystemExit) as info:
        cli("templates", "show")
    assert info.value.code == 2


def test_templates_save_with_a_bad_name_is_one_error_line(cli: Cli, submitted: Path) -> None:
    result = cli("templates", "save", "bad name", "--job", "demo")
    assert result.code == 1 and "template name" in result.error_line


def test_submit_saves_job_parameters_when_asked(cli: Cli, instant: None,
                                                project: Project) -> None:
    raw = project.raw(save_as_template={"name": "from-submit", "description": "d"})
    assert cli("submit", project.write_spec(raw)).code == 0
    (template,) = cli("templates", "list", "--json").json()
    assert template["name"] == "from-submit"
    assert "save_as_template" not in template["spec"]


# ------------------------------------------------------------------ the installed script


def run_traindeck(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed `traindeck` script with the test environment."""
    return subprocess.run([traindeck_executable(), *map(str, args)], capture_output=True,
                          text=True, env=dict(os.environ), cwd=cwd, timeout=60)


def test_script_engines_json(home: Path) -> None:
    proc = run_traindeck("engines", "--json")
    assert proc.returncode == 0, proc.stderr
    assert {e["name"] for e in json.loads(proc.stdout)} >= {"pytorch", "caffe"}


def test_script_version_flag(home: Path) -> None:
    proc = run_traindeck("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("traindeck ")


def test_script_bad_input_is_one_error_line(home: Path, tmp_path: Path) -> None:
    proc = run_traindeck("validate", tmp_path / "missing.yaml")
    assert proc.returncode == 1
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith("error: ") and "missing.yaml" in line


def test_script_usage_error_exits_2(home: Path) -> None:
    proc = run_traindeck("no-such-command")
    assert proc.returncode == 2


def test_script_submit_wait_show_from_another_folder(home: Path, project: Project,
                                                     tmp_path: Path) -> None:
    spec = project.write_spec()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    submitted = run_traindeck("submit", os.path.relpath(spec, elsewhere), "--json",
                              cwd=elsewhere)
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["version"] == "V001"
    waited = run_traindeck("wait", "demo", "--timeout", "30")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    shown = json.loads(run_traindeck("show", "demo", "--json").stdout)["versions"][0]
    assert shown["status"] == "succeeded"
    assert shown["spec"]["data"]["paths"] == [str(project.data_dir.resolve())]


def test_modify_runs_the_parents_code_unless_asked_and_compare_shows_what_changed(
        cli: Cli, submitted: Path, project: Project) -> None:
    boot = project.boot_file
    boot.write_text(boot.read_text() + "\n# changed after V001\n")
    (boot.parent / "helper.py").write_text("X = 1\n")
    out = cli("modify", "demo", "--from", "V001", "--set", "lr=0.5")
    assert out.code == 0 and "code: V001's snapshot (--code takes" in out.out
    out = cli("modify", "demo", "--from", "V001", "--code", "--set", "lr=0.7")
    assert out.code == 0 and "code: the folder as it is now" in out.out
    text = cli("compare", "demo").out
    assert "code of V002 differs" not in text  # V002 runs V001's code
    assert "code of V003 differs from V001's: helper.py (added), train.py (modified)" in text
    data = json.loads(cli("compare", "demo", "--json").out)
    assert data["code_changes"] == {"V003": [{"path": "helper.py", "change": "added"},
                                             {"path": "train.py", "change": "modified"}]}
    shown = cli("show", "demo", "-v", "V003").out
    code_line = next(line for line in shown.splitlines() if line.startswith("  code  "))
    assert code_line.split()[1:3] == ["2", "files,"] and str(boot.parent) in code_line


def test_show_and_compare_give_a_running_versions_latest_metrics(
        cli: Cli, three_versions: Context) -> None:
    from app.store.models import MetricPointRow

    ctx = three_versions
    with ctx.db.write() as session:
        v3 = session.exec(select(Version).where(Version.number == 3)).one()
        v3.status = "running"
        session.add(v3)
        session.exec(delete(MetricSummary).where(MetricSummary.version_id == v3.id))
        session.add_all([MetricPointRow(version_id=v3.id or 0, name="loss", step=s, value=v)
                         for s, v in ((1, 0.9), (2, 0.7))])
    shown = json.loads(cli("show", "demo", "-v", "V003", "--json").out)
    assert shown["versions"][0]["metrics"] == {"loss": 0.7}  # the latest so far
    compared = json.loads(cli("compare", "demo", "--json").out)
    assert compared["metrics"]["loss"][2] == 0.7


def test_compare_shows_why_a_version_failed(cli: Cli, three_versions: Context) -> None:
    with three_versions.db.write() as session:
        v2 = session.exec(select(Version).where(Version.number == 2)).one()
        v2.status, v2.reason = "failed", "exit code 2: train.py: error: unrecognized arguments"
        session.add(v2)
    text = cli("compare", "demo").out
    reason_row = next(line for line in text.splitlines() if line.startswith("reason"))
    assert "exit code 2: train.py: error: unrecogni…" in reason_row  # cut at 40
