"""The whole path a newcomer takes, driven through the real app with keys only, on real
local runs (detached supervisors, the logistic-regression sample): create a job in the
wizard and see it succeed, modify it into V002 and compare the two, stop a running one.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Button, Input
from tui_data import settle

from app.context import Context
from app.runtime.control import wait_final
from app.store.models import Version
from app.tui.app import TraindeckApp
from app.tui.screens.compare import CompareScreen
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.widgets.key_table import KeyTable
from app.tui.wizard.screen import WizardScreen

ROOT = Path(__file__).resolve().parents[2]
SIZE = (120, 40)



async def type_text(pilot: Pilot[Any], text: str) -> None:
    await pilot.press(*[{" ": "space", ".": "full_stop", "/": "slash", "_": "underscore",
                         "-": "minus", "=": "equals_sign"}.get(c, c) for c in text])


async def tab_to(pilot: Pilot[Any], predicate: Any, limit: int = 40) -> None:
    """Press tab until the focused widget is the one wanted (as a person would)."""
    for _ in range(limit):
        if pilot.app.focused is not None and predicate(pilot.app.focused):
            return
        await pilot.press("tab")
        await pilot.pause()
    raise AssertionError(f"never reached the widget; focus on {pilot.app.focused!r}")


def by_id(name: str) -> Any:
    return lambda widget: widget.id == name


async def final(ctx: Context, job: str, version: str | None = None) -> Version:
    return await asyncio.to_thread(wait_final, ctx, job, version, 90)


async def add_parameter_and_finish(pilot: Pilot[Any], name: str, value: str) -> None:
    """In the wizard's job parameters: `+ add parameter`, `name = value`, then the next
    steps up to the confirmation page."""
    await tab_to(pilot, lambda w: isinstance(w, Button) and "parameter" in str(w.label))
    await pilot.press("enter")
    await settle(pilot)
    await type_text(pilot, name)
    await pilot.press("tab")
    await type_text(pilot, value)
    await settle(pilot)
    for _ in range(3):
        await pilot.press("ctrl+n")
        await settle(pilot)


async def modify_with(pilot: Pilot[Any], name: str, value: str) -> None:
    """`m` on the selected version, one more parameter, and launch from the confirm page
    (which shows the change from the parent above the spec)."""
    await pilot.press("m")
    await settle(pilot)
    await pilot.press("ctrl+n")
    await settle(pilot)
    await add_parameter_and_finish(pilot, name, value)
    await pilot.press("ctrl+s")  # launch
    await settle(pilot)


def project(base: Path) -> Path:
    """The sample's code and data in a folder of their own (relative paths from here)."""
    base.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "sample_jobs" / "logreg", base / "code")
    shutil.copytree(ROOT / "sample_jobs" / "data" / "blobs", base / "data")
    return base


async def test_create_run_modify_compare_and_stop_with_keys_only(
        ctx: Context, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(project(tmp_path / "work"))
    app = TraindeckApp(ctx)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # -- create, step by step
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, WizardScreen)
        await type_text(pilot, "newcomer")
        await pilot.press("tab")
        await type_text(pilot, "first try")
        await pilot.press("ctrl+n")
        await settle(pilot)
        await tab_to(pilot, lambda w: isinstance(w, Input)
                     and w.placeholder.startswith("e.g. ./data"))
        await pilot.press("ctrl+u")  # (the wizard starts on sample data and a preset)
        await type_text(pilot, "./data")
        await tab_to(pilot, by_id("algo-kind"))
        await pilot.press("down", "enter")  # common framework
        await settle(pilot)
        await tab_to(pilot, by_id("engine"))
        await pilot.press("enter", "down", "enter")  # the first engine: python
        await settle(pilot)
        await tab_to(pilot, by_id("code-dir"))
        await type_text(pilot, "./code")
        await pilot.press("tab")
        await type_text(pilot, "train.py")
        await add_parameter_and_finish(pilot, "train_steps", "60")
        assert app.screen.step == 5, app.screen.query_one("#wizard-error").render()
        await pilot.press("ctrl+s")
        await settle(pilot)
        v1 = await final(ctx, "newcomer")
        assert (v1.status, v1.runtime) == ("succeeded", "local")

        # -- open it, modify into V002 with another learning rate
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JobDetailScreen) and app.screen.selected == "V001"
        await modify_with(pilot, "lr", "0.3")
        v2 = await final(ctx, "newcomer", "V002")
        assert v2.status == "succeeded" and v2.parent_id == v1.id

        # -- compare the two
        await settle(pilot)
        await pilot.press("C")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        table = app.screen.query_one("#compare-table", KeyTable)
        assert [str(c.label) for c in table.ordered_columns][1:] == ["V001", "V002"]
        lr = table.get_row("param-lr")
        assert [str(cell) for cell in lr[1:]] == ["—", "0.3"]
        assert "metric-accuracy" in [str(row.key.value) for row in table.ordered_rows]
        await pilot.press("escape")
        await settle(pilot)

        # -- a long V003, stopped from the job screen
        await modify_with(pilot, "sleep_per_step", "1")
        for _ in range(100):
            await pilot.pause(0.2)
            screen = app.screen
            if (isinstance(screen, JobDetailScreen) and screen.current is not None
                    and screen.current.version == "V003" and screen.current.status == "running"):
                break
        else:
            raise AssertionError("V003 never showed as running")
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        v3 = await final(ctx, "newcomer", "V003")
        assert (v3.status, v3.reason) == ("stopped", "stopped by user")
