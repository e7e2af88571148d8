"""Shared fixtures of the TUI tests: a private TRAINDECK_HOME, a frozen clock, a data builder.

Snapshot tests need the same pixels on every run, so every time shown comes from fixed
data (`T0` and offsets from it), the TUI clock is frozen at `NOW`, the local time zone is
UTC, and homes used by snapshot tests live at a fixed path (paths appear on screen).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tui_data import NOW, DataBuilder

from app.context import Context

SNAPSHOT_ROOT = Path("/tmp/traindeck-tui-snapshots")
"""Fixed parent of snapshot homes: the paths they show must not change between runs."""


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests in a fresh event loop (Pilot tests need no plugin)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


def _reset_caches() -> None:
    import app.config
    import app.store.db

    app.store.db.reset_cache()
    app.config.get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _utc_and_frozen_clock() -> Iterator[None]:
    """Local time is UTC and the TUI clock stands at NOW for every TUI test."""
    from app.tui import clock

    old_tz = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    clock.freeze(NOW)
    yield
    clock.freeze(None)
    if old_tz is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old_tz
    time.tzset()


def _open_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("TRAINDECK_HOME", str(home))
    monkeypatch.delenv("TRAINDECK_CONFIG", raising=False)
    (home / "config.yaml").write_text("default_runtime: local\ngpus: [0, 1]\n")
    _reset_caches()
    return Context.open()


@pytest.fixture
def quick_wizard_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wizard checks its fields 20 ms after a change instead of after a typing pause."""
    import app.tui.wizard.screen as wizard_module

    monkeypatch.setattr(wizard_module, "CHECK_DELAY_S", 0.02)


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """A fresh Traindeck home in a temporary folder, opened."""
    context = _open_home(tmp_path / "home", monkeypatch)
    yield context
    context.db.dispose()
    _reset_caches()


@pytest.fixture
def snap_ctx(request: pytest.FixtureRequest,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Context]:
    """A fresh home at a fixed path named after the test (for snapshot tests)."""
    home = SNAPSHOT_ROOT / request.node.name.replace("[", "-").replace("]", "")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    context = _open_home(home, monkeypatch)
    yield context
    context.db.dispose()
    _reset_caches()


@pytest.fixture
def build(ctx: Context, tmp_path: Path) -> DataBuilder:
    """A data builder over the temporary home."""
    return DataBuilder(ctx, tmp_path / "work")


@pytest.fixture
def snap_build(snap_ctx: Context) -> DataBuilder:
    """A data builder over the fixed-path home of a snapshot test."""
    from app.config import home_dir

    home = home_dir()
    assert home is not None
    return DataBuilder(snap_ctx, home / "work")
