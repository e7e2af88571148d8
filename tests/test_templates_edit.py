"""Editing saved job parameters in place: the core update, `traindeck templates edit` with
options, and with $EDITOR (a small script stands in for the user's editor).

Every refusal is checked to leave the stored template exactly as it was.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import Project, traindeck_executable
from sqlmodel import select

from app.cli.main import main
from app.context import Context
from app.errors import ConflictError, FieldError, NotFoundError, SpecError
from app.jobs import save_template
from app.specs.rules import validate_spec
from app.store.models import Template
from app.templates import get_template, update_template

# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    """A valid project named `demo` with parameters lr=0.1, epochs=2."""
    return make_project()


@pytest.fixture
def saved(ctx: Context, project: Project) -> Context:
    """Two templates: `base` (the project's spec, absolute paths) and `other`."""
    spec = validate_spec(project.raw(), project.base, ctx.catalog)
    save_template(ctx, "base", "the project as it is", spec)
    save_template(ctx, "other", "", spec)
    return ctx


def stored(ctx: Context, name: str) -> tuple[str, str, str] | None:
    """A template row as stored: (description, spec JSON, updated time), or None."""
    with ctx.db.read() as session:
        row = session.exec(select(Template).where(Template.name == name)).first()
    return None if row is None else (row.description, row.spec_json, str(row.updated_at))


@dataclass
class Result:
    """What one command did."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `traindeck ARGS...` in-process on the test home."""

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def editor_script(path: Path, body: str) -> Path:
    """A shell script used as $EDITOR: `body` runs with the file to edit as `$1`."""
    path.write_text("#!/bin/sh\nset -e\n" + body + "\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def editor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], Path]:
    """Make $EDITOR a script running the given shell lines (and unset $VISUAL)."""

    def use(body: str) -> Path:
        script = editor_script(tmp_path / "editor.sh", body)
        monkeypatch.delenv("VISUAL", raising=False)
        monkeypatch.setenv("EDITOR", str(script))
        return script

    return use


# ------------------------------------------------------------------ the core update


def test_update_sets_parameters_and_description(saved: Context) -> None:
    info = update_template(saved, "base", description="faster", sets={"lr": 0.5, "seed": 7})
    assert info.description == "faster"
    assert info.spec["parameters"] == {"lr": 0.5, "epochs": 2, "seed": 7}
    assert get_template(saved, "base") == info


def test_update_renames_when_the_name_is_free(saved: Context) -> None:
    body = stored(saved, "base")
    info = update_template(saved, "base", new_name="renamed")
    assert info.name == "renamed" and stored(saved, "base") is None
    renamed = stored(saved, "renamed")
    assert renamed is not None and renamed[:2] == body[:2]  # type: ignore[index]


def test_rename_to_a_taken_name_is_refused_and_changes_nothing(saved: Context) -> None:
    before = stored(saved, "base"), stored(saved, "other")
    with pytest.raises(ConflictError, match="name: job parameters 'other' already exist"):
        update_template(saved, "base", new_name="other", description="x")
    assert (stored(saved, "base"), stored(saved, "other")) == before


def test_rename_to_a_bad_name_names_the_field(saved: Context) -> None:
    with pytest.raises(FieldError) as info:
        update_template(saved, "base", new_name="bad name")
    assert info.value.field == "name"


def test_update_of_an_unknown_template_is_not_found(saved: Context) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        update_template(saved, "ghost", description="x")


def test_a_bad_body_is_refused_with_every_error_and_nothing_changes(
    saved: Context, project: Project,
) -> None:
    before = stored(saved, "base")
    body = project.raw(name="1 bad")
    body["algorithm"]["framework"]["code_dir"] = "no-such-code"
    with pytest.raises(SpecError) as info:
        update_template(saved, "base", body=body, description="new", base_dir=project.base)
    assert {e.field for e in info.value.errors} == {"name", "algorithm.framework.code_dir"}
    assert stored(saved, "base") == before


def test_a_new_body_replaces_the_old_with_absolute_paths(saved: Context,
                                                         project: Project) -> None:
    body = project.raw(parameters={"lr": 0.3}, output=None, log_dir=None)
    body["save_as_template"] = {"name": "ignored"}  # a save request is no setting
    info = update_template(saved, "base", body=body, base_dir=project.base)
    assert info.spec["parameters"] == {"lr": 0.3}
    assert info.spec["data"]["paths"] == [str(project.data_dir.resolve())]
    assert "output" not in info.spec and "save_as_template" not in info.spec


def test_a_parameter_the_preset_refuses_is_not_saved(ctx: Context, project: Project) -> None:
    raw = project.raw(algorithm={"preset": {"name": "logistic-regression"}},
                      parameters={"train_steps": 50})
    save_template(ctx, "preset-params", "", validate_spec(raw, project.base, ctx.catalog))
    before = stored(ctx, "preset-params")
    with pytest.raises(SpecError) as info:
        update_template(ctx, "preset-params", sets={"train_steps": 0})
    assert [e.field for e in info.value.errors] == ["parameters.train_steps"]
    assert stored(ctx, "preset-params") == before


def test_a_broken_template_can_still_be_renamed_and_described(saved: Context) -> None:
    with saved.db.write() as session:
        row = session.exec(select(Template).where(Template.name == "other")).one()
        spec = json.loads(row.spec_json)
        spec["algorithm"]["framework"]["engine_version"] = "0.1"
        row.spec_json = json.dumps(spec)
        session.add(row)
    info = update_template(saved, "other", new_name="old-engine", description="kept")
    assert info.spec["algorithm"]["framework"]["engine_version"] == "0.1"
    with pytest.raises(SpecError, match="engine_version"):  # changing the body checks it
        update_template(saved, "old-engine", sets={"lr": 1})


# ------------------------------------------------------------------ the CLI, with options


def test_cli_edit_with_set_and_description(cli: Callable[..., Result], saved: Context) -> None:
    result = cli("templates", "edit", "base", "--set", "lr=0.5", "--set", "tag=v2",
                 "--description", "tuned", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["description"] == "tuned"
    assert data["spec"]["parameters"] == {"lr": 0.5, "epochs": 2, "tag": "v2"}


def test_cli_edit_with_a_spec_file_resolves_against_its_folder(
    cli: Callable[..., Result], saved: Context, project: Project,
) -> None:
    spec_file = project.write_spec(project.raw(parameters={"lr": 0.9}), "new.yaml")
    result = cli("templates", "edit", "base", "--spec", spec_file)
    assert result.code == 0, result.err
    assert result.out == "saved job parameters 'base'\n"
    info = get_template(saved, "base")
    assert info.spec["parameters"] == {"lr": 0.9}
    assert info.spec["algorithm"]["framework"]["code_dir"] == str(project.code_dir.resolve())


def test_cli_edit_with_a_bad_spec_file_names_each_field(
    cli: Callable[..., Result], saved: Context, project: Project,
) -> None:
    before = stored(saved, "base")
    raw = project.raw(name="1 bad", data={"paths": ["nowhere"]})
    spec_file = project.write_spec(raw, "bad.yaml")
    result = cli("templates", "edit", "base", "--spec", spec_file)
    assert result.code == 1 and result.out == ""
    lines = result.err.splitlines()
    assert [line.split(": ")[2] for line in lines] == ["name", "data.paths[0]"]
    assert all(line.startswith(f"error: {spec_file}: ") for line in lines)
    assert stored(saved, "base") == before


def test_cli_edit_rename(cli: Callable[..., Result], saved: Context) -> None:
    result = cli("templates", "edit", "base", "--rename", "base-v2")
    assert result.code == 0
    assert result.out == "saved job parameters 'base-v2' (was 'base')\n"
    taken = cli("templates", "edit", "base-v2", "--rename", "other")
    assert taken.code == 1 and "'other' already exist" in taken.err


@pytest.mark.parametrize("args", [("show", "base", "--set", "lr=1"),
                                  ("delete", "base", "--rename", "x"),
                                  ("edit",)])
def test_cli_edit_usage_errors(cli: Callable[..., Result], saved: Context,
                               args: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as info:
        cli("templates", *args)
    assert info.value.code == 2


# ------------------------------------------------------------------ the CLI, in $EDITOR


def test_editor_changes_are_saved(cli: Callable[..., Result], saved: Context,
                                  editor: Callable[[str], Path], tmp_path: Path) -> None:
    seen = tmp_path / "seen.yaml"
    editor(f'cp "$1" {seen}\nsed -i "s/lr: 0.1/lr: 0.25/" "$1"')
    result = cli("templates", "edit", "base")
    assert result.code == 0, result.err
    assert result.out == "saved job parameters 'base'\n"
    assert get_template(saved, "base").spec["parameters"] == {"lr": 0.25, "epochs": 2}
    shown = seen.read_text()
    assert shown.startswith("# Job parameters 'base': change the spec below")
    assert "lr: 0.1" in shown
    assert not list(Path(tempfile.gettempdir()).glob("traindeck-base-*.yaml"))


def test_editor_leaving_the_file_as_it_is_changes_nothing(
    cli: Callable[..., Result], saved: Context, editor: Callable[[str], Path],
) -> None:
    before = stored(saved, "base")
    editor("true")
    result = cli("templates", "edit", "base")
    assert result.code == 0
    assert "no change" in result.out
    assert stored(saved, "base") == before


def test_a_bad_edit_is_refused_and_kept(cli: Callable[..., Result], saved: Context,
                                        editor: Callable[[str], Path]) -> None:
    before = stored(saved, "base")
    editor('sed -i "s#code_dir: .*#code_dir: /no/such/code#; s/^name: .*/name: 1 bad/" "$1"')
    result = cli("templates", "edit", "base")  # no terminal to answer "edit again?"
    assert result.code == 1 and result.out == ""
    lines = result.err.splitlines()
    assert "name: job name '1 bad' must be" in lines[0]
    assert "algorithm.framework.code_dir: '/no/such/code' is not an existing directory" \
        in lines[1]
    assert "Edit again?" in lines[2]
    assert lines[-1].startswith("error: nothing saved; your edit is kept in ")
    kept = Path(lines[-1].rsplit(" ", 1)[1])
    assert "name: 1 bad" in kept.read_text()
    kept.unlink()
    assert stored(saved, "base") == before


def test_a_yaml_error_in_the_editor_names_the_line(cli: Callable[..., Result], saved: Context,
                                                   editor: Callable[[str], Path]) -> None:
    before = stored(saved, "base")
    editor('printf "name: x\\ndata: {paths: [a]\\n" > "$1"')
    result = cli("templates", "edit", "base")
    assert result.code == 1
    assert ": line 3: " in result.err.splitlines()[0]
    Path(result.err.splitlines()[-1].rsplit(" ", 1)[1]).unlink()
    assert stored(saved, "base") == before


def test_a_failing_editor_saves_nothing(cli: Callable[..., Result], saved: Context,
                                        editor: Callable[[str], Path]) -> None:
    before = stored(saved, "base")
    editor("exit 3")
    result = cli("templates", "edit", "base")
    assert result.code == 1
    assert "exited with 3; nothing saved" in result.err
    assert stored(saved, "base") == before


def test_edit_again_after_an_error_then_save(saved: Context, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed script, answering "y" to "Edit again?": the second round sees the
    errors at the top of the file, fixes the spec and saves."""
    rounds = tmp_path / "rounds"
    script = editor_script(tmp_path / "editor.sh", f"""\
echo x >> {rounds}
cp "$1" {tmp_path}/round-$(wc -l < {rounds}).yaml
if [ "$(wc -l < {rounds})" -eq 1 ]; then
  sed -i "s/lr: 0.1/lr: [1/" "$1"
else
  sed -i "s/lr: \\[1/lr: 0.75/" "$1"
fi""")
    env = {**os.environ, "EDITOR": str(script)}
    env.pop("VISUAL", None)
    proc = subprocess.run([traindeck_executable(), "templates", "edit", "base"], input="y\n",
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "saved job parameters 'base'\n"
    assert "error: " in proc.stderr and "Edit again? [Y/n]" in proc.stderr
    second = (tmp_path / "round-2.yaml").read_text()
    assert second.startswith("# error: line ")
    assert get_template(saved, "base").spec["parameters"]["lr"] == 0.75
