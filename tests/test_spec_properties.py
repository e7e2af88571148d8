"""Property tests: malformed specs only ever raise Traindeck errors, and write nothing.

Every example goes through `app.jobs.submit` with a launcher that starts nothing, and
the row count of every table is compared before and after a refused submit.

Text includes NUL characters, lone surrogates, line breaks and long names: all of them
reach the file system checks, which must turn them into field errors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Project, count_rows, noop_launcher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.context import Context
from app.errors import ConflictError, SpecError, TraindeckError
from app.jobs import prepare_spec, submit
from app.specs.invocation import invocation

PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SAFE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="x/~.", min_size=200, max_size=320),
)
"""Any text at all, including what no file system accepts (see the module docstring)."""

FIELD_NAMES = [
    "name", "description", "data", "datasets", "paths", "algorithm", "framework", "preset",
    "image", "engine", "engine_version", "code_dir", "boot_file", "command", "parameters",
    "output", "log_dir", "resources", "pool", "gpus", "nodes", "runtime", "subscriptions",
    "topic", "events", "save_as_template", "version", "arguments", "env",
]

PATH_PARTS = st.sampled_from(
    ["data", "code", "train.py", "..", ".", "", "out", "logs", "s3:", "obs:", "bucket", "x y",
     "/", "/tmp", "/etc/passwd", "ä", "*", "-rf"]
)
PATHS = st.one_of(
    SAFE_TEXT.filter(lambda s: not s.startswith("~")),
    st.lists(PATH_PARTS, min_size=1, max_size=5).map("/".join),
)
"""Path-like text: random, or assembled from parts that exist, climb out or look remote."""

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), SAFE_TEXT, PATHS,
    st.sampled_from(["python", "3.11", "public", "OnJobFailed", "V001", "local", "docker"]),
)
KEYS = st.one_of(st.sampled_from(FIELD_NAMES), SAFE_TEXT, st.integers(-3, 3), st.booleans())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)
"""Random nested dicts, lists and scalars."""


# ------------------------------------------------------------------ the invariant


def submit_checked(ctx: Context, raw: dict[Any, Any], base: Path) -> bool:
    """Submit `raw`; only TraindeckError may come out, and a refusal writes no row.

    Returns True when the spec was accepted (which writes a job, a version, an event).
    """
    before = count_rows(ctx.db)
    try:
        submit(ctx, raw, base, "spec.yaml", launcher=noop_launcher)
    except TraindeckError as exc:
        assert str(exc), "a Traindeck error must say something"
        if isinstance(exc, SpecError):
            assert exc.errors and all("\n" not in line for line in exc.lines())
        assert count_rows(ctx.db) == before, f"refused submit wrote rows: {exc}"
        return False
    after = count_rows(ctx.db)
    assert after["jobs"] == before["jobs"] + 1
    assert after["versions"] == before["versions"] + 1
    return True


# ------------------------------------------------------------------ mutations


def node_paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside nested dicts and lists (not the root itself)."""
    out: list[tuple[Any, ...]] = []
    items: list[tuple[Any, Any]] = []
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = list(enumerate(data))
    for key, value in items:
        out.append((*prefix, key))
        out.extend(node_paths(value, (*prefix, key)))
    return out


def parent_of(data: Any, path: tuple[Any, ...]) -> Any:
    """The container holding the node at `path`."""
    for key in path[:-1]:
        data = data[key]
    return data


@st.composite
def mutated(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with one to four fields removed, retyped, added or duplicated."""
    raw = copy.deepcopy(spec)
    for _ in range(draw(st.integers(1, 4))):
        paths = node_paths(raw)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = parent_of(raw, path), path[-1]
        op = draw(st.sampled_from(["remove", "retype", "add", "duplicate"]))
        if op == "remove":
            del parent[key]
        elif op == "retype":
            parent[key] = draw(VALUES)
        elif op == "add" and isinstance(parent[key], dict):
            parent[key][draw(KEYS)] = draw(VALUES)
        elif op == "duplicate" and isinstance(parent[key], list):
            parent[key].extend(copy.deepcopy(parent[key]))
        else:
            parent[key] = draw(SCALARS)
    return raw


# ------------------------------------------------------------------ properties


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    """A valid project whose spec the properties start from."""
    return make_project("prop")


@PROPERTY_SETTINGS
@given(raw=st.dictionaries(KEYS, VALUES, max_size=8))
def test_random_mappings_only_raise_traindeck_errors(
    ctx: Context, project: Project, raw: dict[Any, Any],
) -> None:
    submit_checked(ctx, raw, project.base)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_mutated_valid_specs_only_raise_traindeck_errors(
    ctx: Context, project: Project, data: st.DataObject,
) -> None:
    raw = data.draw(mutated(project.spec))
    submit_checked(ctx, raw, project.base)


@PROPERTY_SETTINGS
@given(
    name=SAFE_TEXT, data_path=PATHS, code_dir=PATHS, boot_file=PATHS, output=PATHS,
    log_dir=PATHS,
)
def test_random_names_and_paths_only_raise_traindeck_errors(
    ctx: Context, project: Project, name: str, data_path: str, code_dir: str,
    boot_file: str, output: str, log_dir: str,
) -> None:
    raw = project.raw(name=name, data={"paths": [data_path]}, output=output, log_dir=log_dir)
    raw["algorithm"]["framework"].update(code_dir=code_dir, boot_file=boot_file)
    submit_checked(ctx, raw, project.base)


@PROPERTY_SETTINGS
@given(parameters=st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_parameters_only_raise_traindeck_errors(
    ctx: Context, project: Project, parameters: dict[Any, Any],
) -> None:
    submit_checked(ctx, project.raw(name="params", parameters=parameters), project.base)
    # Accepted once, the name is then taken: later examples must be refused cleanly.


COMMAND_ITEMS = st.lists(st.one_of(
    SAFE_TEXT, st.integers(), st.booleans(),
    st.sampled_from(["{data_url}", "{train_url}model.pt", "--lr={lr}", "{epochs}", "{{x}}",
                     "{nope}", "{", "}", "{}", "{{{lr}}}"]),
), max_size=5)
"""Command items: any text, numbers, and placeholders known, unknown or broken."""


@PROPERTY_SETTINGS
@given(command=COMMAND_ITEMS, env=st.dictionaries(KEYS, VALUES, max_size=4),
       arguments=st.one_of(st.sampled_from(["modelarts", "plain", "none"]), SCALARS))
def test_random_commands_and_env_only_raise_traindeck_errors(
    ctx: Context, project: Project, command: list[Any], env: dict[Any, Any], arguments: Any,
) -> None:
    """And a command that validation accepts can always be filled in."""
    raw = project.raw(name="command", env=env)
    framework = raw["algorithm"]["framework"]
    framework.pop("boot_file")
    framework.update(command=command, arguments=arguments)
    try:
        spec = prepare_spec(ctx, raw, project.base, "spec.yaml")
    except SpecError:
        pass
    else:
        call = invocation(spec, [], "/data", "/out")
        assert len(call.argv) >= len(command)
        assert set(spec.env or {}) <= set(call.env)
    submit_checked(ctx, raw, project.base)


@PROPERTY_SETTINGS
@given(
    key=st.sampled_from(["name", "description", "data", "parameters", "output", "log_dir",
                         "resources", "subscriptions", "save_as_template", "colour"]),
    value=VALUES,
)
def test_a_malformed_field_never_hides_the_other_fields_errors(
    ctx: Context, project: Project, key: str, value: Any,
) -> None:
    """Whatever one field holds, the rules on the others still run in the same pass."""
    raw = project.raw()
    raw[key] = value
    raw["algorithm"]["framework"]["code_dir"] = "no-such-code"
    before = count_rows(ctx.db)
    with pytest.raises(SpecError) as info:
        submit(ctx, raw, project.base, "spec.yaml", launcher=noop_launcher)
    assert "algorithm.framework.code_dir" in {e.field for e in info.value.errors}
    assert all("\n" not in line for line in info.value.lines())
    assert count_rows(ctx.db) == before


def test_the_valid_spec_is_accepted_and_a_second_submit_writes_nothing(
    ctx: Context, project: Project,
) -> None:
    assert submit_checked(ctx, project.raw(), project.base)
    before = count_rows(ctx.db)
    with pytest.raises(ConflictError, match="modify"):
        submit(ctx, project.raw(), project.base, launcher=noop_launcher)
    assert count_rows(ctx.db) == before


def test_template_name_clash_rolls_back_the_whole_submit(ctx: Context, project: Project) -> None:
    template = {"name": "tpl", "description": "saved"}
    assert submit_checked(ctx, project.raw(name="first", save_as_template=template),
                          project.base)
    before = count_rows(ctx.db)
    with pytest.raises(ConflictError, match=r"save_as_template\.name"):
        submit(ctx, project.raw(name="second", output="runs/second/out",
                                log_dir="runs/second/logs", save_as_template=template),
               project.base, launcher=noop_launcher)
    assert count_rows(ctx.db) == before


# ------------------------------------------------------------------ text no path can hold


@pytest.mark.parametrize(
    ("where", "value"),
    [
        pytest.param("data", "da\x00ta", id="data-nul"),
        pytest.param("data", "\ud800", id="data-surrogate"),
        pytest.param("data", "~no-such-user-xyz/data", id="data-unknown-user"),
        pytest.param("data", "x" * 300, id="data-too-long"),
        pytest.param("output", "o\x00ut", id="output-nul"),
        pytest.param("output", "y" * 300, id="output-too-long"),
        pytest.param("output", "~no-such-user-xyz/out", id="output-unknown-user"),
        pytest.param("log_dir", "\ud800", id="log-dir-surrogate"),
        pytest.param("code_dir", "co\x00de", id="code-dir-nul"),
        pytest.param("code_dir", "c" * 5000, id="code-dir-too-long"),
        pytest.param("boot_file", "z" * 300, id="boot-file-too-long"),
        pytest.param("boot_file", "t\x00rain.py", id="boot-file-nul"),
        pytest.param("boot_file", "\ud800.py", id="boot-file-surrogate"),
    ],
)
def test_unusable_path_text_is_a_field_error(
    ctx: Context, project: Project, where: str, value: str,
) -> None:
    raw = project.raw()
    if where == "data":
        raw["data"] = {"paths": [value]}
    elif where in ("code_dir", "boot_file"):
        raw["algorithm"]["framework"][where] = value
    else:
        raw[where] = value
    before = count_rows(ctx.db)
    with pytest.raises(SpecError) as info:
        submit(ctx, raw, project.base, launcher=noop_launcher)
    field = {"data": "data.paths[0]", "code_dir": "algorithm.framework.code_dir",
             "boot_file": "algorithm.framework.boot_file"}.get(where, where)
    assert field in {e.field for e in info.value.errors}
    assert count_rows(ctx.db) == before


def test_unknown_key_with_a_line_break_stays_on_one_line(ctx: Context, project: Project) -> None:
    with pytest.raises(SpecError) as info:
        submit(ctx, project.raw(**{"bad\nkey": 1}), project.base, launcher=noop_launcher)
    assert all("\n" not in line for line in info.value.lines())


@pytest.mark.parametrize("where", ["data", "code_dir"])
def test_path_error_lines_hold_no_line_break(ctx: Context, project: Project,
                                             where: str) -> None:
    raw = project.raw()
    if where == "data":
        raw["data"] = {"paths": ["no\nsuch"]}
    else:
        raw["algorithm"]["framework"]["code_dir"] = "no\nsuch"
    with pytest.raises(SpecError) as info:
        submit(ctx, raw, project.base, launcher=noop_launcher)
    assert all("\n" not in line for line in info.value.lines())
