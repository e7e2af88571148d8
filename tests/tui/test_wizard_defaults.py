"""The wizard's defaults and checks a newcomer meets: Next through the defaults makes a job
that succeeds, a Next pressed while the wizard is still loading is kept, GPUs a pool
cannot give are refused beside the field, `metrics.log_patterns` is offered with the
core's errors beside each pattern, and the confirm page does not fold paths mid-word.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlmodel import select
from textual.pilot import Pilot
from textual.widgets import RadioButton, Static
from tui_helpers import (
    SIZE,
    WizardHost,
    fill_without_clicks,
    freeze,
    host,
    next_step,
    note,
    press_next_until,
    put,
    sync,
    version_spec,
    wizard,
)
from tui_helpers import settle_wizard as settle

import app.tui.wizard.screen as wizard_module
from app.context import Context
from app.runtime.control import wait_final
from app.store.models import MetricSummary
from app.templates import get_template
from app.tui.wizard.checks import check_raw_spec, locate
from app.tui.wizard.choices import load_choices
from app.tui.wizard.rows import PathRows, PatternRows
from app.tui.wizard.screen import WizardScreen

pytestmark = pytest.mark.usefixtures("quick_wizard_checks")

SMALL = (80, 24)


# ---------------------------------------------------------------- defaults → job succeeds


@sync
async def test_next_through_the_defaults_makes_a_job_that_succeeds(build: Any) -> None:
    """A fresh home (no dataset, no code of one's own): Next on every step, then create.

    The version really runs (local runtime, as the home's config says) and its metrics
    are recorded."""
    app = WizardHost(WizardScreen(build.ctx, base_dir=build.base))  # the real launcher
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press_next_until(pilot, 5)
        spec = wizard(pilot).result.spec  # type: ignore[union-attr]
        assert spec is not None and spec.name == "trainjob-1"
        assert spec.algorithm.preset is not None
        assert spec.algorithm.preset.name == "logistic-regression"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.closed and app.result is not None
    version = await asyncio.to_thread(wait_final, build.ctx, "trainjob-1", None, 120)
    assert (version.status, version.runtime) == ("succeeded", "local"), version.reason
    with build.ctx.db.read() as session:
        metrics = dict(session.exec(select(MetricSummary.name, MetricSummary.value).where(
            MetricSummary.version_id == version.id)).all())
    assert metrics["accuracy"] > 0.9


@sync
async def test_a_second_job_gets_the_next_free_name(build: Any) -> None:
    build.job("trainjob-1")
    choices = load_choices(build.ctx, None)
    assert choices.default_name == "trainjob-2"
    assert load_choices(build.ctx, ("trainjob-1", "V001")).starter == {}  # modify: its own


@sync
async def test_next_pressed_while_the_wizard_loads_is_kept(build: Any,
                                                           monkeypatch: Any) -> None:
    """Ctrl+N before the choices are read (a loaded machine, a quick user) moves once."""
    gate = threading.Event()

    def held_load(*args: Any) -> Any:
        gate.wait(10)
        return load_choices(*args)

    monkeypatch.setattr(wizard_module, "load_choices", held_load)
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = wizard(pilot)
        assert not screen._loaded
        await pilot.press("ctrl+n")
        gate.set()
        await next_step_settled(pilot)
        assert screen.step == 2
        await pilot.press("ctrl+n")
        await next_step_settled(pilot)
        assert screen.step == 3


async def next_step_settled(pilot: Pilot[Any]) -> None:
    """Wait for the check a Next asked for to be answered."""
    screen = wizard(pilot)
    for _ in range(40):
        await settle(pilot)
        if screen._loaded and screen._pending_step is None:
            return
    raise AssertionError("the Next was never answered")


# ---------------------------------------------------------------- GPUs the pool lacks


@sync
async def test_gpus_a_pool_cannot_give_are_refused_beside_the_field(build: Any) -> None:
    app = host(build.ctx, build.base)  # this machine: GPUs 0 and 1, all in pool public
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press_next_until(pilot, 3)
        screen = wizard(pilot)
        put(pilot, "#gpus", "4")
        await next_step(pilot)
        assert screen.step == 3
        assert note(pilot, "gpus") == (
            "pool public has 2 GPU(s) on this machine; 4 GPU(s) asked for")
        put(pilot, "#gpus", "1")
        put(pilot, "#nodes", "3")
        await settle(pilot)
        assert note(pilot, "gpus") == (
            "pool public has 2 GPU(s) on this machine; 1 GPU(s) × 3 nodes asked for")
        put(pilot, "#nodes", "2")
        await next_step(pilot)
        assert screen.step == 4


def test_gpus_on_a_machine_without_any_are_refused(build: Any) -> None:
    from app.config import config_file, get_settings

    config_file().write_text("default_runtime: local\ngpus: []\n")
    get_settings.cache_clear()
    ctx = Context.open()
    raw = build.spec("gpu-job", resources={"pool": "public", "gpus": 1, "nodes": 1})
    result = check_raw_spec(ctx, raw, build.base)
    assert [(e.field, e.message) for e in result.errors] == [(
        "resources.gpus", "pool public has no GPU(s) on this machine; 1 GPU(s) asked for")]
    raw["resources"]["gpus"] = 0
    assert check_raw_spec(ctx, raw, build.base).errors == []


# ---------------------------------------------------------------- metrics.log_patterns


async def to_log_patterns(pilot: Pilot[Any], patterns: list[str]) -> None:
    """On step 2: own patterns chosen, `patterns` typed, the field in view."""
    screen = wizard(pilot)
    put(pilot, "#log-metrics-patterns", True)
    await settle(pilot)
    rows = screen.query_one(PatternRows)
    await rows.set_rows(patterns)
    await settle(pilot)
    screen.query_one("#step-2").scroll_to_widget(rows, animate=False, top=True)
    await pilot.pause()


@sync
async def test_log_patterns_are_checked_beside_each_and_reach_the_spec(build: Any) -> None:
    app = host(build.ctx, build.base)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"logs")
        await next_step(pilot)
        screen = wizard(pilot)
        assert not screen.query_one("#log-patterns-field").display
        assert note(pilot, "log-metrics") == "name=value and name: value pairs on a line"
        await to_log_patterns(pilot, ["loss (", "epoch", r"loss=(?P<loss>\S+)"])
        await next_step(pilot)
        assert screen.step == 2
        rows = screen.query_one(PatternRows).rows
        errors = [str(r.error.render()) for r in rows]
        assert errors[0].startswith("not a valid regular expression: missing )")
        assert errors[1].startswith("has no named group")
        assert errors[2] == ""
        await screen.query_one(PatternRows).set_rows([r"loss=(?P<loss>\S+)"])
        await settle(pilot)
        await press_next_until(pilot, 5)
        shown = getattr(screen.query_one("#confirm-spec", Static).content, "code", "")
        assert "log_patterns:" in shown and r"loss=(?P<loss>\S+)" in shown
        await pilot.press("ctrl+b")
        await settle(pilot)
        await pilot.press("ctrl+b", "ctrl+b")
        await settle(pilot)
        put(pilot, "#log-metrics-off", True)
        await settle(pilot)
        assert not screen.query_one("#log-patterns-field").display
        assert screen.form.collect()[0]["metrics"] == {"log_patterns": []}
        put(pilot, "#log-metrics-default", True)
        await settle(pilot)
        assert "metrics" not in screen.form.collect()[0]
        put(pilot, "#log-metrics-patterns", True)
        put(pilot, "#save-template", True)
        await pilot.pause()
        put(pilot, "#template-name", "with-patterns")
        await press_next_until(pilot, 5)
        await pilot.press("ctrl+s")
        await settle(pilot)
    spec, _ = version_spec(build.ctx, "logs", 1)
    assert spec["metrics"] == {"log_patterns": [r"loss=(?P<loss>\S+)"]}
    assert get_template(build.ctx, "with-patterns").spec["metrics"] == spec["metrics"]


@sync
async def test_modify_and_saved_parameters_show_their_log_patterns(build: Any) -> None:
    build.job("quiet", metrics={"log_patterns": []})
    build.job("custom", metrics={"log_patterns": ["a=(?P<a>\\d+)", "b=(?P<b>\\d+)"]})
    for job, kind, rows in (("quiet", "off", []),
                            ("custom", "patterns", ["a=(?P<a>\\d+)", "b=(?P<b>\\d+)"])):
        app = host(build.ctx, build.base, modify_from=(job, "V001"))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = wizard(pilot)
            assert screen.query_one(f"#log-metrics-{kind}", RadioButton).value
            assert screen.query_one(PatternRows).paths() == rows
            assert screen.form.collect()[0]["metrics"] == {"log_patterns": rows}


@pytest.mark.parametrize(("field", "row"), [("metrics.log_patterns[1]", 1),
                                            ("metrics.log_patterns", None)])
def test_locate_maps_log_patterns_to_their_rows(field: str, row: int | None) -> None:
    assert (locate(field).step, locate(field).target, locate(field).row) == (
        2, "log-patterns", row)
    assert locate("metrics").target == "log-metrics"


@pytest.mark.parametrize("size", [SMALL, SIZE])
def test_snapshot_log_patterns_with_errors(snap_compare: Any, snap_build: Any,
                                           size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await fill_without_clicks(pilot)
        await to_log_patterns(pilot, ["loss (", "epoch", r"loss=(?P<loss>\S+)"])
        await next_step(pilot)
        wizard(pilot).query_one(PatternRows).rows[0].controls[0].focus()
        screen = wizard(pilot)
        screen.query_one("#step-2").scroll_to_widget(
            screen.query_one("#log-metrics-field"), animate=False, top=True)
        await pilot.pause()
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=size,
                        run_before=run_before)


# ---------------------------------------------------------------- the confirm page


def test_snapshot_confirm_defaults_small(snap_compare: Any, snap_build: Any) -> None:
    """80x24, scrolled to the paths: they are whole (the page scrolls sideways)."""
    async def run_before(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        screen = wizard(pilot)
        assert screen.query_one(PathRows).paths()[0].endswith("samples/two-blobs")
        await press_next_until(pilot, 5)
        screen.query_one("#step-5").scroll_end(animate=False)
        await pilot.pause()
        freeze(pilot)

    assert snap_compare(host(snap_build.ctx, snap_build.base), terminal_size=SMALL,
                        run_before=run_before)
