"""TensorBoard and create-model on a version in the job screen, and their dialogs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from tui_data import DataBuilder, sample_job
from tui_helpers import settle_workers as settle
from tui_helpers import tensorboard_info

from app.context import Context
from app.queries import version_info
from app.registry import list_models
from app.tensorboard import TensorBoardInfo
from app.tui.app import TraindeckApp
from app.tui.screens.create_model import CreateModelScreen
from app.tui.screens.job_detail import JobDetailScreen
from app.tui.screens.tensorboard import TensorBoardScreen

SIZE = (120, 40)


class NotingApp(TraindeckApp):
    """Keeps every toast's text (and its title) for the assertions."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.toasts: list[str] = []

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        self.toasts.append(f"{title}: {message}" if title else str(message))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)


async def open_job(pilot: Pilot[Any], *keys: str) -> None:
    """Open the first job and press `keys` there."""
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


# ---------------------------------------------------------------- TensorBoard


async def test_tensorboard_without_event_files_says_why(build: DataBuilder) -> None:
    sample_job(build)
    app = NotingApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await open_job(pilot, "t")
        assert isinstance(app.screen, JobDetailScreen)
        output = version_info(build.ctx.db, "digits-baseline", "V003").output
        assert any(f"no TensorBoard event files in {output}" in toast
                   and "No TensorBoard for digits-baseline V003" in toast
                   for toast in app.toasts), app.toasts


async def test_tensorboard_with_event_files_shows_the_ssh_line(build: DataBuilder,
                                                               monkeypatch: Any) -> None:
    sample_job(build)
    output = Path(version_info(build.ctx.db, "digits-baseline", "V003").output)
    output.mkdir(parents=True)
    (output / "events.out.tfevents.1700000000.gpu-box").write_bytes(b"\0")
    started: list[tuple[str, list[str] | None]] = []

    def fake_start(ctx: Context, job: str, labels: list[str] | None = None,
                   **_: Any) -> TensorBoardInfo:
        started.append((job, labels))
        return tensorboard_info(job, "V003")

    import app.tensorboard

    monkeypatch.setattr(app.tensorboard, "start_tensorboard", fake_start)
    tui = NotingApp(build.ctx)
    async with tui.run_test(size=SIZE) as pilot:
        await open_job(pilot, "t")
        assert started == [("digits-baseline", ["V003"])]
        dialog = tui.screen
        assert isinstance(dialog, TensorBoardScreen)
        ssh = dialog.query_one("#tensorboard-ssh")
        assert str(ssh.render()) == "ssh -L 6123:127.0.0.1:6123 alice@gpu-box"
        assert "traindeck tensorboard stop 3" in str(dialog.query_one("#tensorboard-stop")
                                                     .render())
        await pilot.press("c")
        assert tui.clipboard == "ssh -L 6123:127.0.0.1:6123 alice@gpu-box"
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(tui.screen, JobDetailScreen)


# ---------------------------------------------------------------- create model


async def test_create_model_refused_for_a_failed_version(build: DataBuilder) -> None:
    sample_job(build)
    app = NotingApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await open_job(pilot)
        screen = app.screen
        assert isinstance(screen, JobDetailScreen) and screen.selected == "V003"
        assert screen.check_action("create_model", ()) is None  # dimmed in the footer
        await pilot.press("M")
        await settle(pilot)
        assert isinstance(app.screen, JobDetailScreen)
        assert "create model: only succeeded versions (V003 is failed)" in app.toasts
    assert list_models(build.ctx.db) == []


async def test_create_model_from_a_succeeded_version(build: DataBuilder) -> None:
    sample_job(build)
    Path(version_info(build.ctx.db, "digits-baseline", "V002").output).mkdir(parents=True)
    app = NotingApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await open_job(pilot, "up", "M")
        dialog = app.screen
        assert isinstance(dialog, CreateModelScreen)
        assert dialog.query_one("#model-name").value == "digits-baseline"  # type: ignore[attr-defined]
        await pilot.press("tab", *"best lr")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, JobDetailScreen)
        assert "Created model digits-baseline V001 from digits-baseline/V002" in app.toasts
    models = list_models(build.ctx.db)
    assert [(m.name, m.description, m.latest) for m in models] == [
        ("digits-baseline", "best lr", "V001")]


async def test_create_model_bad_name_stays_open_with_the_reason(build: DataBuilder) -> None:
    sample_job(build)
    Path(version_info(build.ctx.db, "digits-baseline", "V002").output).mkdir(parents=True)
    app = TraindeckApp(build.ctx)
    async with app.run_test(size=SIZE) as pilot:
        await open_job(pilot, "up", "M")
        dialog = app.screen
        assert isinstance(dialog, CreateModelScreen)
        dialog.query_one("#model-name").value = "2 bad"  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.screen is dialog and isinstance(dialog, CreateModelScreen)
        assert "must be 1-64 letters" in dialog.error
        assert dialog.query_one("#model-error").display
    assert list_models(build.ctx.db) == []


# ---------------------------------------------------------------- snapshots


def test_snapshot_tensorboard_dialog(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def show(pilot: Pilot[Any]) -> None:
        await open_job(pilot)
        info = tensorboard_info(label="V003")
        await pilot.app.push_screen(TensorBoardScreen(snap_build.ctx, info))
        await settle(pilot)

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=show)


def test_snapshot_create_model_dialog(snap_compare: Any, snap_build: DataBuilder) -> None:
    sample_job(snap_build)

    async def show(pilot: Pilot[Any]) -> None:
        await open_job(pilot, "up", "M")

    assert snap_compare(TraindeckApp(snap_build.ctx), terminal_size=SIZE, run_before=show)
