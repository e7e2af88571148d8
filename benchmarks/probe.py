"""The TUI side of the in-app cases: the real app, in its terminal, timing one screen.

`benchmarks.run` starts this in a pseudo-terminal (so the app draws every frame to a
real terminal, as it would for a user) with `TRAINDECK_HOME` set to the scenes home.
The app opens on the job list; once that has settled, one scenario runs inside the
app's event loop, writes a JSON object to `--result` and the app exits.

A screen is "ready" when the widgets hold what the user came for (polled every 2 ms
from the event loop) and the frame after that has been drawn (`call_after_refresh`).
No app hook is needed: the conditions read the widgets' public state.

* `detail` — push a Screen with an empty Tree (baseline), then open a job with 1,000
  versions as `enter` on its row does (the app reads the versions, then shows the
  screen): ready with every version in the tree, the cursor on the latest, its overview
  showing it and the footer showing the keys. The screen's code is first imported then,
  as in the app.
* `compare` — push the compare screen of all versions of a job: ready with the table
  filled and the curves plotted. Baseline: reading what the screen shows (every final
  value, one metric's curves) with the standard library's sqlite3 alone; for scale,
  also every curve point of every metric read the same way.
* `log-open` — open the job of a version with a 1 GB log and switch to its Logs
  tab: ready when the log's last line is on screen; then, with the screen open, the log
  panel alone opening the log again (the figure the target is about). Reports the
  process's peak RSS.
* `log-follow` — the job screen of a version whose log a writer process appends to at a
  fixed rate (`benchmarks.writer`); every 50 ms the lag is read from the newest line on
  screen (each line carries the monotonic time it was written). Reports the peak RSS.

    .venv/bin/python -m benchmarks.probe SCENARIO --result FILE [--profile FILE] [options]

(in a terminal: `--profile` writes cProfile stats of the scenario, for `pstats`.)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import re
import sqlite3
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Log, Static, Tree
from textual.widgets.tree import TreeNode

from app.config import load_settings
from app.tui.app import TraindeckApp
from app.tui.messages import OpenJob
from app.tui.screens.jobs import JobsScreen
from benchmarks.terminal import ROOT, peak_rss_mb

POLL = 0.002
"""Seconds between two looks at the widgets."""
SETTLE = 1.0
"""Seconds the job list is left alone before a scenario starts (workers, timers)."""
LAG_SAMPLE = 0.05
"""Seconds between two lag samples while following."""
WRITTEN_AT = re.compile(r" t=(\d+\.\d+)")
WRITER_DONE = re.compile(r"writer done lines=(\d+) seconds=(\d+\.\d+) end=(\d+\.\d+)")

Scenario = Callable[["ProbeApp"], Awaitable[dict[str, Any]]]


class TreeScreen(Screen[None]):
    """The baseline of the job screen: nothing but an empty Tree."""

    def compose(self) -> ComposeResult:
        yield Tree("versions")


class ProbeApp(TraindeckApp):
    """Traindeck with one scenario run from inside its event loop once the list settled."""

    def __init__(self, scenario: Scenario, result: Path, profile: Path | None = None) -> None:
        super().__init__()  # (it opens the core itself, as `traindeck` does)
        self._scenario = scenario
        self._result = result
        self._profile = profile

    def on_ready(self) -> None:
        self.run_worker(self._run(), group="probe")

    async def _run(self) -> None:
        try:
            await self.until(self._list_shown, 60.0)
            await self.until(self._started, 60.0)
            await asyncio.sleep(SETTLE)
            while not isinstance(self.screen, JobsScreen):  # "since you left", a notice
                self.pop_screen()
                await asyncio.sleep(0.2)
            profiler = cProfile.Profile() if self._profile else None
            if profiler is not None:
                profiler.enable()
            out = await self._scenario(self)
            if profiler is not None and self._profile is not None:
                profiler.disable()
                profiler.dump_stats(self._profile)
        except Exception:  # reported to the benchmark, which shows the case as failed
            out = {"error": traceback.format_exc()}
        out["peak_rss_mb"] = peak_rss_mb()
        self._result.write_text(json.dumps(out))
        self.exit()

    def _started(self) -> bool:
        """The core is open and the start-up worker (reconciling runs) is done."""
        return self.ctx is not None and not any(
            worker.group == "context" and not worker.is_finished for worker in self.workers)

    def _list_shown(self) -> bool:
        screen = self.screen
        return isinstance(screen, JobsScreen) and screen.query_one(DataTable).row_count > 0

    async def until(self, ready: Callable[[], bool], timeout: float) -> float:
        """Wait until `ready()` holds and the next frame is drawn; the monotonic time then."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ready():
                    break
            except NoMatches:  # the screen is still being composed
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:g}s")
            await asyncio.sleep(POLL)
        drawn: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.call_after_refresh(lambda: drawn.set_result(time.monotonic()))
        return await drawn

    async def back_to_list(self) -> None:
        """Close the screen a scenario opened and let the list settle again."""
        while not isinstance(self.screen, JobsScreen):
            await self.pop_screen()
        await asyncio.sleep(0.3)


def _count_nodes(node: TreeNode[str]) -> int:
    return sum(1 + _count_nodes(child) for child in node.children)


def _text(screen: Screen[Any], selector: str) -> str:
    return str(screen.query_one(selector, Static).content)


# ---------------------------------------------------------------- scenarios


def detail(job: str, versions: int) -> Scenario:
    """Time the job screen of `job` (with `versions` versions) against an empty Tree."""
    latest = f"V{versions:03d}"

    async def run(app: ProbeApp) -> dict[str, Any]:
        bare = TreeScreen()
        started = time.monotonic()
        app.push_screen(bare)
        baseline = await app.until(lambda: app.screen is bare and bare.query_one(Tree)
                                   .is_mounted, 30.0) - started
        await app.back_to_list()

        steps: dict[str, float] = {}

        def mark(step: str) -> None:
            steps.setdefault(step, time.monotonic() - started)

        def shown() -> bool:
            screen = app.screen
            # (by name: the app imports the screen's code when a job is first opened)
            if type(screen).__name__ != "JobDetailScreen" or not screen.is_mounted:
                return False
            mark("screen mounted")
            tree: Tree[str] = screen.query_one("#version-tree", Tree)
            if not tree.root.children:
                return False
            mark("tree has nodes")
            cursor = tree.cursor_node
            if cursor is None or cursor.data != latest:
                return False
            mark("cursor on latest")
            if f"{job} {latest}" not in _text(screen, "#ov-headline"):
                return False
            mark("overview shows it")
            if not screen.query_one(Footer).children:
                return False
            mark("footer shows the keys")
            return _count_nodes(tree.root) == versions

        # What `enter` on the job's row does.
        started = time.monotonic()
        app.screen.post_message(OpenJob(job))
        ours = await app.until(shown, 60.0) - started
        return {"ours": ours, "baseline": baseline, "steps": steps}

    return run


def compare(job: str, versions: int, metrics: int, database: Path) -> Scenario:
    """Time the compare screen of every version of `job` against a bare read of its points."""

    async def run(app: ProbeApp) -> dict[str, Any]:
        from app.tui.screens.compare import CompareScreen

        screen = CompareScreen(app.ctx, job)  # type: ignore[arg-type]

        def shown() -> bool:
            if app.screen is not screen:
                return False
            table = screen.query_one("#compare-table", DataTable)
            return (f"{versions} versions" in _text(screen, "#compare-summary")
                    and table.row_count >= metrics)

        started = time.monotonic()
        app.push_screen(screen)
        ours = await app.until(shown, 300.0) - started
        await app.back_to_list()
        started = time.monotonic()
        shown = read_points(database, job, every_curve=False)
        baseline = time.monotonic() - started
        started = time.monotonic()
        every = read_points(database, job, every_curve=True)
        every_curve = time.monotonic() - started
        return {"ours": ours, "baseline": baseline, "rows_shown": shown,
                "every_curve": every_curve, "rows_every_curve": every}

    return run


def read_points(database: Path, job: str, every_curve: bool) -> int:
    """Read `job`'s curves with sqlite3 alone: every point of every metric, or only what
    the compare screen shows (every final value, one metric's curves); how many rows."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        ids = [row[0] for row in conn.execute(
            "SELECT v.id FROM versions v JOIN jobs j ON j.id = v.job_id WHERE j.name = ? "
            "ORDER BY v.number", (job,))]
        marks = ",".join("?" * len(ids))
        finals = conn.execute("SELECT version_id, name, value FROM metric_summaries "
                              f"WHERE version_id IN ({marks})", ids).fetchall()
        names = sorted({name for _, name, _ in finals})
        if every_curve:
            points = conn.execute("SELECT version_id, name, step, value FROM metric_points "
                                  f"WHERE version_id IN ({marks}) "
                                  "ORDER BY version_id, name, step", ids).fetchall()
        else:
            points = conn.execute("SELECT version_id, name, step, value FROM metric_points "
                                  f"WHERE version_id IN ({marks}) AND name = ? "
                                  "ORDER BY version_id, step", [*ids, names[0]]).fetchall()
    finally:
        conn.close()
    return len(finals) + len(points)


async def _open_logs(app: ProbeApp, job: str, ready: Callable[[Log], bool],
                     timeout: float) -> float:
    """Open `job` (as `enter` on its row), show its Logs tab; seconds until
    `ready(log view)` is drawn."""
    started = time.monotonic()
    app.screen.post_message(OpenJob(job))
    await app.until(lambda: type(app.screen).__name__ == "JobDetailScreen"
                    and app.screen.is_mounted, 60.0)
    screen = app.screen
    screen.action_tab("logs")  # type: ignore[attr-defined]
    done = await app.until(lambda: ready(screen.query_one("#log-view", Log)), timeout)
    return done - started


def log_open(job: str, last_line: str) -> Scenario:
    """Time the Logs tab of `job` until the log's last line (`last_line`) is on screen:
    once from opening the job, then the panel alone opening the log again."""

    def shown(log: Log) -> bool:
        return log.line_count > 0 and last_line in log.lines[-1]

    async def run(app: ProbeApp) -> dict[str, Any]:
        from app.tui.screens.job_detail import JobDetailScreen
        from app.tui.widgets.log_panel import LogPanel

        with_screen = await _open_logs(app, job, shown, 60.0)
        screen = app.screen
        assert isinstance(screen, JobDetailScreen) and screen.current is not None
        panel = screen.query_one(LogPanel)
        log = screen.query_one("#log-view", Log)
        panel.open(None)
        await app.until(lambda: log.line_count == 0, 10.0)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        panel.open(screen.current.log_dir)
        ours = await app.until(lambda: shown(log), 60.0) - started
        return {"ours": ours, "with_screen": with_screen, "lines": log.line_count}

    return run


def log_follow(job: str, path: Path, rate: int, seconds: float) -> Scenario:
    """Follow `job`'s log while a writer appends `rate` lines a second for `seconds`."""

    async def run(app: ProbeApp) -> dict[str, Any]:
        await _open_logs(app, job, lambda log: log.line_count > 0, 60.0)
        log = app.screen.query_one("#log-view", Log)
        writer = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.writer", "--path", str(path),
             "--rate", str(rate), "--seconds", str(seconds), "--stamp"], cwd=ROOT)
        lags: list[float] = []
        done: re.Match[str] | None = None
        deadline = time.monotonic() + seconds + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(LAG_SAMPLE)
            last = log.lines[-1] if log.line_count else ""
            done = WRITER_DONE.search(last)
            if done:
                break
            written = WRITTEN_AT.search(last)
            if written:  # (none before the writer's first line is on screen)
                lags.append(time.monotonic() - float(written[1]))
        caught_up = time.monotonic()
        writer.wait(30)
        if done is None:
            raise RuntimeError("the writer's last line never reached the screen")
        lines, took, end = int(done[1]), float(done[2]), float(done[3])
        return {"lags": lags, "max_lag": max(lags, default=float("nan")),
                "median_lag": statistics.median(lags) if lags else float("nan"),
                "final_lag": caught_up - end, "writer_rate": lines / took,
                "writer_lines": lines}

    return run


# ---------------------------------------------------------------- entry


def main() -> None:
    """Run one scenario in the app and write its figures to `--result`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=("detail", "compare", "log-open", "log-follow"))
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--versions", type=int, default=1)
    parser.add_argument("--metrics", type=int, default=0)
    parser.add_argument("--last-line", default="")
    parser.add_argument("--path", type=Path)
    parser.add_argument("--rate", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", type=Path,
                        help="cProfile the scenario (the event loop's thread) into this file")
    args = parser.parse_args()
    settings = load_settings()
    scenario: Scenario
    if args.scenario == "detail":
        scenario = detail(args.job, args.versions)
    elif args.scenario == "compare":
        database = Path(settings.resolved_database_url.split("///", 1)[1])
        scenario = compare(args.job, args.versions, args.metrics, database)
    elif args.scenario == "log-open":
        scenario = log_open(args.job, args.last_line)
    else:
        scenario = log_follow(args.job, args.path, args.rate, args.seconds)
    ProbeApp(scenario, args.result, args.profile).run()


if __name__ == "__main__":
    main()
