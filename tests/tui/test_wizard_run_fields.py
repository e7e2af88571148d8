"""The wizard's fields for how a script is run: a command, the arguments convention, the
moxing shim, environment variables, processes per node and container limits; modify keeps
them all; an engine that cannot run as local processes says so beside it."""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input
from tui_helpers import (
    SIZE,
    fill_basic_and_framework,
    fill_without_clicks,
    freeze,
    host,
    next_step,
    note,
    put,
    sync,
    version_spec,
    wizard,
)
from tui_helpers import settle_wizard as settle

from app.tui.wizard.rows import EnvRows

pytestmark = pytest.mark.usefixtures("quick_wizard_checks")

RUN_FIELDS: dict[str, Any] = {
    "algorithm": {
        "framework": {"engine": "python", "engine_version": "3.11", "code_dir": "./code",
                      "command": ["python", "train.py", "--steps", "{train_steps}",
                                  "--out", "{train_url}model.pt"],
                      "arguments": "plain"},
        "compat": "moxing",
        "requirements": "ignore",
    },
    "env": {"SEED": "7", "MODE": "fast run"},
    "resources": {"pool": "public", "gpus": 0, "nodes": 1, "runtime": "local",
                  "processes_per_node": 2, "cpus": 1.5, "memory": "2g"},
    "metrics": {"log_patterns": [r"loss=(?P<loss>[0-9.]+)"]},
}


@sync
async def test_modify_keeps_every_run_field(build: Any) -> None:
    build.job("torch-run", **RUN_FIELDS)
    app = host(build.ctx, build.base, modify_from=("torch-run", "V001"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = wizard(pilot)
        assert screen.query_one("#fresh-code-field").display
        assert not screen.query_one("#fresh-code", Checkbox).value
        await next_step(pilot)
        assert screen.query_one("#command", Input).value == (
            "python train.py --steps '{train_steps}' --out '{train_url}model.pt'")
        assert screen.query_one("#boot-file", Input).value == ""
        assert screen.query_one("#compat-moxing", Checkbox).value
        assert screen.query_one("#requirements-ignore", Checkbox).value
        assert screen.query_one("#env", EnvRows).items() == [("SEED", "7"),
                                                             ("MODE", "fast run")]
        for _ in range(3):
            await next_step(pilot)
        assert screen.step == 5 and screen.result is not None
        assert screen.result.diff == []
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert app.result is not None and app.result.version == "V002"
    parent, _ = version_spec(build.ctx, "torch-run", 1)
    child, _ = version_spec(build.ctx, "torch-run", 2)
    assert child == parent
    assert parent["env"] == RUN_FIELDS["env"] and parent["metrics"] == RUN_FIELDS["metrics"]


@sync
async def test_run_fields_typed_in_reach_the_spec(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await fill_basic_and_framework(pilot)
        screen = wizard(pilot)
        assert not screen.query_one("#fresh-code-field").display  # only modify offers it
        put(pilot, "#boot-file", "")
        put(pilot, "#command", "python train.py --epochs {epocs}")
        put(pilot, "#arguments-none", True)
        await settle(pilot)
        assert "unknown placeholder {epocs}" in note(pilot, "command")
        assert note(pilot, "arguments") == "appends nothing: use {placeholders}"
        put(pilot, "#command", "python train.py --epochs {train_steps}")
        put(pilot, "#compat-moxing", True)
        put(pilot, "#requirements-ignore", True)
        await screen.query_one("#env", EnvRows).set_params({"SEED": 3})
        await settle(pilot)
        assert note(pilot, "command") != "" and "placeholder" not in note(pilot, "command")
        await next_step(pilot)
        put(pilot, "#processes", "many")
        put(pilot, "#cpus", "two")
        put(pilot, "#memory", "1q")
        await settle(pilot)
        assert "must be a number" in note(pilot, "cpus")
        assert note(pilot, "processes") not in ("", "a number, or gpus: one process per GPU")
        assert note(pilot, "memory") != "e.g. 16g or 512m"
        put(pilot, "#processes", "1")
        put(pilot, "#cpus", "0.5")
        put(pilot, "#memory", "512m")
        put(pilot, "#network", "none")
        await settle(pilot)
        raw, errors = screen.form.collect()
    assert errors == []
    assert raw["algorithm"] == {
        "framework": {"engine": "python", "engine_version": "3.11", "code_dir": "./code",
                      "command": ["python", "train.py", "--epochs", "{train_steps}"],
                      "arguments": "none"},
        "compat": "moxing", "requirements": "ignore"}
    assert raw["env"] == {"SEED": 3}
    assert raw["resources"] == {"pool": "public", "gpus": 0, "nodes": 1,
                                "processes_per_node": 1, "cpus": 0.5, "memory": "512m",
                                "network": "none"}


@sync
async def test_an_engine_the_local_interpreter_lacks_says_so(build: Any) -> None:
    from app.catalog import unavailable_reason

    if unavailable_reason(build.ctx.settings, "tensorflow", "2.16") is None:
        pytest.fail("this test needs a local interpreter without tensorflow")
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await fill_basic_and_framework(pilot)
        put(pilot, "#engine", "tensorflow")
        await settle(pilot)
        assert note(pilot, "engine").startswith(  # the tests' default runtime is local
            "⚠ cannot run locally: tensorflow 2.16: the local interpreter")
        assert "fix: `" in note(pilot, "engine")
        put(pilot, "#runtime-docker", True)
        await pilot.pause()
        assert note(pilot, "engine") == "the framework your code is written for"
        put(pilot, "#runtime-auto", True)
        await pilot.pause()
        assert note(pilot, "engine").startswith("⚠ cannot run locally")
        put(pilot, "#engine", "python")
        await settle(pilot)
        assert note(pilot, "engine") == "the framework your code is written for"


async def quiet(pilot: Pilot[Any]) -> None:
    """Settle until no check is waiting to run or on its way (a loaded machine is slow)."""
    for _ in range(40):
        await settle(pilot)
        if wizard(pilot)._timer is None and wizard(pilot)._pending_step is None:
            break


async def _command_step(pilot: Pilot[Any]) -> None:
    await fill_without_clicks(pilot)
    put(pilot, "#boot-file", "")
    put(pilot, "#command", "torchrun train.py {epocs}")
    put(pilot, "#arguments-plain", True)
    put(pilot, "#compat-moxing", True)
    await quiet(pilot)
    wizard(pilot).query_one("#arguments").focus()
    wizard(pilot).query_one("#run-style-fields").scroll_visible(animate=False)
    await pilot.pause()
    freeze(pilot)


async def _resources_step(pilot: Pilot[Any]) -> None:
    await fill_without_clicks(pilot)
    await next_step(pilot)
    put(pilot, "#processes", "gpus")  # needs GPUs: the error stands beside the field
    put(pilot, "#cpus", "4")
    put(pilot, "#memory", "16g")
    await quiet(pilot)
    freeze(pilot)


@pytest.mark.parametrize("size", [SIZE, (80, 24)])
@pytest.mark.parametrize("scene", [_command_step, _resources_step])
def test_snapshot_run_fields(snap_compare: Any, snap_build: Any, size: tuple[int, int],
                             scene: Any) -> None:
    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=size,
                        run_before=scene)
