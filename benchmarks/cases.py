"""The seven cases of the benchmark, each measured next to its baseline.

Each case runs in a process of its own (started by `benchmarks.run`), and every run of
a case starts fresh processes for what it times: a TUI, a CLI, a supervisor. What is
shared between runs is what an installed copy shares: compiled modules and the OS page
cache. A case returns `Row`s with the raw figure of every run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.data import (
    BIG_LOG_END,
    BIG_LOG_JOB,
    COMPARE_JOB,
    DETAIL_JOB,
    FOLLOW_JOB,
    Workspace,
    copy_home,
)
from benchmarks.table import Row, Target, median
from benchmarks.terminal import ROOT, Terminal, cpu_seconds

FOLLOW_RATE = 100_000
"""Lines a second the chatty job prints (the quality bar's figure)."""
IDLE_JOBS = 10
"""Running versions while the TUI idles."""
QUEUED = 1_000
"""Versions waiting for GPUs in the queue case."""
QUEUE_GPUS = 8
"""GPUs the queue case declares."""
TIMEOUT = 600.0
"""Seconds a probe may take before the case gives up on it."""


@dataclass(frozen=True)
class Options:
    """How much measuring to do."""

    runs: int = 3
    quick: bool = False

    @property
    def startup_runs(self) -> int:
        """Start-up takes a second a run and is the noisiest figure: three times as many."""
        return 3 * self.runs

    @property
    def launch_runs(self) -> int:
        """A launch takes a few hundred ms, most of it the engine's start, which varies by
        a third from one run to the next: three times as many."""
        return 3 * self.runs

    @property
    def idle_seconds(self) -> float:
        """The idle window of each run."""
        return 5.0 if self.quick else 15.0

    @property
    def follow_seconds(self) -> float:
        """How long the chatty job prints in each run."""
        return 4.0 if self.quick else 8.0

    @property
    def settle_seconds(self) -> float:
        """How long an idle TUI is left to settle after it is ready."""
        return 3.0 if self.quick else 5.0


def child_env(space: Workspace, home: Path) -> dict[str, str]:
    """The environment of what a case starts: `home` as the Traindeck home, compiled
    modules cached in the work folder (as an installed copy has them)."""
    dropped = ("TRAINDECK_DATABASE_URL", "TRAINDECK_CONFIG", "TRAINDECK_READY_FILE",
               "TRAINDECK_EXIT_WHEN_READY", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k.upper() not in dropped}
    env["TRAINDECK_HOME"] = str(home)
    env["PYTHONPYCACHEPREFIX"] = str(space.pycache)
    return env


def progress(text: str) -> None:
    """A line of progress on stderr (the table goes to stdout)."""
    print(f"  {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- in the app, via the probe


def probe(space: Workspace, scenario: str, *args: str) -> dict[str, Any]:
    """Run one `benchmarks.probe` scenario in a fresh TUI process in a pseudo-terminal."""
    result = space.root / f"probe-{scenario}.json"
    result.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "benchmarks.probe", scenario, "--result", str(result), *args]
    with Terminal(argv, child_env(space, space.scenes)) as term:
        status = term.wait(TIMEOUT)
    if not result.exists():
        raise RuntimeError(f"probe {scenario} wrote nothing (exit status {status})")
    out: dict[str, Any] = json.loads(result.read_text())
    if "error" in out:
        raise RuntimeError(f"probe {scenario} failed:\n{out['error']}")
    return out


def case_detail(space: Workspace, opts: Options) -> list[Row]:
    """2: opening a job with 1,000 versions, against pushing a screen with an empty Tree."""
    versions = space.sizes.detail_versions
    ours, base = [], []
    steps: dict[str, list[float]] = {}
    for run in range(opts.runs):
        out = probe(space, "detail", "--job", DETAIL_JOB, "--versions", str(versions))
        ours.append(out["ours"])
        base.append(out["baseline"])
        for step, seconds in out["steps"].items():
            steps.setdefault(step, []).append(seconds)
        progress(f"detail run {run + 1}: {out['ours']:.3f}s (empty Tree {out['baseline']:.3f}s);"
                 + "".join(f" {step} {seconds:.3f}s," for step, seconds in out["steps"].items()))
    along = ", ".join(f"{step} {median(values):.2f} s" for step, values in steps.items())
    return [Row(f"2 open a job of {versions:,} versions: enter → tree, overview, keys drawn",
                "s", ours,
                base, Target("below", 0.3),
                note="baseline: pushing a screen with an empty Tree in the same app; "
                     f"medians along the way: {along}, then the frame is drawn")]


def case_compare(space: Workspace, opts: Options) -> list[Row]:
    """5: the compare screen of 100 versions x 50 metrics x 1,000 steps."""
    sizes = space.sizes
    ours, base, every, rss = [], [], [], []
    for run in range(opts.runs):
        out = probe(space, "compare", "--job", COMPARE_JOB,
                    "--versions", str(sizes.compare_versions),
                    "--metrics", str(sizes.compare_metrics))
        ours.append(out["ours"])
        base.append(out["baseline"])
        every.append(out["every_curve"])
        rss.append(out["peak_rss_mb"])
        progress(f"compare run {run + 1}: {out['ours']:.3f}s, peak RSS "
                 f"{out['peak_rss_mb']:.0f} MB (sqlite3: what is on screen "
                 f"{out['baseline']:.3f}s, every curve {out['every_curve']:.3f}s)")
    points = sizes.compare_versions * sizes.compare_metrics * sizes.compare_steps
    return [Row(f"5 compare {sizes.compare_versions} versions × {sizes.compare_metrics} "
                f"metrics × {sizes.compare_steps:,} steps: screen drawn", "s", ours, base,
                Target("below", 0.5),
                note="baseline: sqlite3 alone reading what the screen shows (every final "
                     "value, one metric's curves of every version); sqlite3 alone reading "
                     f"all {points:,} curve points takes {median(every):.2f} s"),
            Row("5 compare: TUI peak memory (RSS)", "MB", rss)]


def case_logs(space: Workspace, opts: Options) -> list[Row]:
    """4: the tail of a 1 GB log, following a job at 100k lines/s, the supervisor's capture."""
    from app.tui.widgets.log_panel import TAIL_LINES

    panel, screen, tail_cmd, rss = [], [], [], []
    for run in range(opts.runs):
        out = probe(space, "log-open", "--job", BIG_LOG_JOB, "--last-line", BIG_LOG_END)
        started = time.monotonic()
        subprocess.run(["tail", "-n", str(TAIL_LINES), str(space.big_log)], check=True,
                       stdout=subprocess.DEVNULL)
        tail_cmd.append(time.monotonic() - started)
        panel.append(out["ours"])
        screen.append(out["with_screen"])
        rss.append(out["peak_rss_mb"])
        progress(f"log open run {run + 1}: panel {out['ours']:.3f}s, job screen + Logs tab "
                 f"{out['with_screen']:.3f}s, tail -n {TAIL_LINES} {tail_cmd[-1]:.3f}s")
    size = space.big_log.stat().st_size / 2**30
    rows = [
        Row(f"4 logs: panel shows the tail of a {size:.1f} GiB log", "s", panel, tail_cmd,
            Target("below", 0.5),
            note=f"the panel reads the last {TAIL_LINES:,} lines; baseline: "
                 f"`tail -n {TAIL_LINES}` of the file"),
        Row("4 logs: the same from opening the job (enter, then Logs)", "s", screen, tail_cmd,
            Target("below", 0.5)),
    ]
    lags, final, rates = [], [], []
    for run in range(opts.runs):
        space.follow_log.write_text("2026-02-01T00:00:00.000Z waiting for the writer\n")
        out = probe(space, "log-follow", "--job", FOLLOW_JOB, "--path", str(space.follow_log),
                    "--rate", str(FOLLOW_RATE), "--seconds", str(opts.follow_seconds))
        lags.append(out["max_lag"])
        final.append(out["final_lag"])
        rates.append(out["writer_rate"])
        rss.append(out["peak_rss_mb"])
        progress(f"follow run {run + 1}: max lag {out['max_lag']:.3f}s, median "
                 f"{out['median_lag']:.3f}s, last line {out['final_lag']:.3f}s after the "
                 f"writer ended, writer {out['writer_rate']:,.0f} lines/s")
    rows.append(Row(f"4 logs: panel follows {FOLLOW_RATE // 1000}k lines/s, lag of the newest "
                    "line shown", "s", lags, rates, Target("below", 1.0, "max"),
                    baseline_unit="lines/s",
                    note=f"sampled every 50 ms over {opts.follow_seconds:g} s; baseline: the "
                         "writer's own rate"))
    rows.append(Row("4 logs: TUI peak memory (RSS) over the log cases", "MB", rss,
                    target=Target("below", 200, "max")))
    rows.extend(capture(space, opts))
    return rows


LAST_T = re.compile(rb" t=(\d+\.\d+) ")


def _tail_bytes(path: Path, count: int = 16384) -> bytes:
    """The last `count` bytes of `path` (nothing when it does not exist yet)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - count))
            return handle.read()
    except FileNotFoundError:
        return b""


def _newest_stamp(tail: bytes) -> float | None:
    """The writer's moment of the newest whole line in `tail` (None before the first)."""
    found = LAST_T.findall(tail[: tail.rfind(b"\n") + 1])
    return float(found[-1]) if found else None


def capture(space: Workspace, opts: Options) -> list[Row]:
    """4: a version printing 100k lines/s; the lag of its rank log behind it, and the
    lines lost. Local ranks write their own log (the rank wrapper); a Docker rank's
    output is copied by its supervisor from the engine."""
    from app.context import Context
    from app.jobs import submit
    from app.runtime.control import wait_final

    home = copy_home(space.base, space.root / "capture")
    os.environ.update(child_env(space, home))
    ctx = Context.open()
    code = space.root / "capture-code"
    code.mkdir(exist_ok=True)
    shutil.copyfile(ROOT / "benchmarks" / "writer.py", code / "train.py")
    rows: list[Row] = []
    for runtime in ("local", "docker"):
        if runtime == "docker" and not docker_reachable():
            rows.append(Row("4 logs: capture, docker", "s", [], error="the Docker engine "
                            "does not answer: not measured"))
            continue
        lags, lost, rates = [], [], []
        for run in range(opts.runs):
            name = f"chatty-{runtime}-{run + 1}"
            raw = {"name": name, "data": {"paths": [str(code)]},
                   "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                               "code_dir": str(code), "boot_file": "train.py"}},
                   "parameters": {"rate": FOLLOW_RATE, "seconds": opts.follow_seconds},
                   "output": str(home / "runs" / name / "out"),
                   "log_dir": str(home / "runs" / name / "logs"),
                   "resources": {"runtime": runtime}}
            log = home / "runs" / name / "logs" / "V001" / "rank-0.log"
            submit(ctx, raw, home)
            worst = 0.0
            deadline = time.monotonic() + opts.follow_seconds + 60
            while time.monotonic() < deadline:
                time.sleep(0.05)
                tail = _tail_bytes(log)
                stamp = _newest_stamp(tail)
                if stamp is not None:
                    worst = max(worst, time.monotonic() - stamp)
                if b"writer done" in tail:
                    break
            version = wait_final(ctx, name, None, 120)
            data = log.read_bytes()
            done = re.search(rb"writer done lines=(\d+) seconds=(\d+\.\d+)", data)
            if version.status != "succeeded" or done is None:
                raise RuntimeError(f"{name} ended {version.status}; see {log}")
            expected, took = int(done[1]), float(done[2])
            got = data.count(b"Z step ")
            lags.append(worst)
            lost.append(float(expected - got))
            rates.append(expected / took)
            progress(f"capture {runtime} run {run + 1}: max lag {worst:.3f}s, "
                     f"{got:,} of {expected:,} lines")
        rows += [
            Row(f"4 logs: {runtime} rank printing {FOLLOW_RATE // 1000}k lines/s, lag of "
                "the rank log", "s", lags, rates, Target("below", 1.0, "max"),
                baseline_unit="lines/s",
                note="the file sampled every 50 ms; baseline: the job's own rate"),
            Row(f"4 logs: lines the {runtime} capture lost", "", lost,
                target=Target("equal", 0)),
        ]
    return rows


# ---------------------------------------------------------------- start-up and idle


def case_startup(space: Workspace, opts: Options) -> list[Row]:
    """1: launch to an interactive job list over 10k jobs, against a bare Textual app."""
    from benchmarks.bench_startup import measure, traindeck_argv

    env = child_env(space, space.base)
    bare = [sys.executable, str(ROOT / "benchmarks" / "bench_startup.py"), "--bare"]
    cases = {"ours": traindeck_argv(), "bare": bare}
    ready = space.root / "ready"
    for argv in cases.values():  # once each, so that compiled modules exist
        measure(argv, env, ready)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for run in range(opts.startup_runs):
        for name, argv in cases.items():
            times[name].append(measure(argv, env, ready))
        progress(f"start-up run {run + 1}: {times['ours'][-1][0]:.3f}s "
                 f"(bare app {times['bare'][-1][0]:.3f}s)")
    jobs = space.sizes.jobs * space.sizes.versions_per_job
    return [
        Row(f"1 start-up to interactive job list ({space.sizes.jobs:,} jobs / {jobs:,} "
            "versions)", "s", [t[0] for t in times["ours"]], [t[0] for t in times["bare"]],
            Target("ratio", 1.5),
            note="launch in a 120×40 pty to the first page on screen with the focus "
                 "(TRAINDECK_READY_FILE); baseline: a bare Textual app with an empty "
                 "DataTable, its first frame"),
        Row("1 start-up, CPU time used by then", "s", [t[1] for t in times["ours"]],
            [t[1] for t in times["bare"]]),
    ]


def _running_jobs(space: Workspace, home: Path) -> list[str]:
    """Submit IDLE_JOBS local versions that sleep and print nothing; wait until running."""
    from app.context import Context
    from app.jobs import submit
    from app.queries import version_info

    os.environ.update(child_env(space, home))
    ctx = Context.open()
    code = space.root / "idle-code"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text("import time\n\ntime.sleep(3600)\n")
    names = []
    for n in range(1, IDLE_JOBS + 1):
        name = f"sleeper-{n:02d}"
        submit(ctx, {"name": name, "data": {"paths": [str(code)]},
                     "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                                 "code_dir": str(code),
                                                 "boot_file": "train.py"}},
                     "output": str(home / "runs" / name / "out"),
                     "log_dir": str(home / "runs" / name / "logs"),
                     "resources": {"runtime": "local"}}, home)
        names.append(name)
    deadline = time.monotonic() + 120
    while any(version_info(ctx.db, n).status != "running" for n in names):
        if time.monotonic() > deadline:
            raise RuntimeError("the sleeping versions did not all start within 120 s")
        time.sleep(0.5)
    return names


def _stop_jobs(names: list[str]) -> None:
    from app.context import Context
    from app.errors import TraindeckError
    from app.runtime.control import stop_version, wait_final

    ctx = Context.open()
    for name in names:
        with contextlib.suppress(TraindeckError):
            stop_version(ctx, name)
    for name in names:
        try:
            wait_final(ctx, name, None, 60)
        except TraindeckError as exc:
            progress(f"could not stop {name}: {exc}")


def idle_once(argv: list[str], env: dict[str, str], ready: Path, settle: float,
              window: float) -> tuple[float, float]:
    """Start `argv` in a pty, wait until ready and `settle` more seconds, then measure over
    `window` seconds: (% of one core used, bytes a second written to the terminal)."""
    ready.unlink(missing_ok=True)
    env = {**env, "TRAINDECK_READY_FILE": str(ready)}
    with Terminal(argv, env) as term:
        deadline = time.monotonic() + 60
        while not (ready.exists() and ready.read_text().strip()):
            if term.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[-1]} never became ready")
            time.sleep(0.01)
        time.sleep(settle)
        cpu, written, began = cpu_seconds(term.pid), term.bytes_written, time.monotonic()
        time.sleep(window)
        cpu = cpu_seconds(term.pid) - cpu
        written = term.bytes_written - written
        took = time.monotonic() - began
    return 100 * cpu / took, written / took


def case_idle(space: Workspace, opts: Options) -> list[Row]:
    """6: the TUI left alone with 10 running jobs, against a bare Textual app left alone."""
    from benchmarks.bench_startup import traindeck_argv

    home = copy_home(space.base, space.root / "idle")
    names = _running_jobs(space, home)
    env = child_env(space, home)
    bare = [sys.executable, str(ROOT / "benchmarks" / "bench_startup.py"), "--bare"]
    cases = {"ours": traindeck_argv(), "bare": bare}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    try:
        for run in range(opts.runs):
            for name, argv in cases.items():
                figures[name].append(idle_once(argv, env, space.root / "ready", opts.settle_seconds,
                                               opts.idle_seconds))
            progress(f"idle run {run + 1}: {figures['ours'][-1][0]:.2f}% CPU, "
                     f"{figures['ours'][-1][1]:.0f} B/s (bare app {figures['bare'][-1][0]:.2f}%, "
                     f"{figures['bare'][-1][1]:.0f} B/s)")
    finally:
        _stop_jobs(names)
    how = (f"over {opts.idle_seconds:g} s, {opts.settle_seconds:g} s after ready, in a 120×40 "
           "pty; CPU from /proc/PID/stat; baseline: a bare Textual app with an empty DataTable")
    return [
        Row(f"6 idle with {IDLE_JOBS} running jobs: CPU of the TUI", "%",
            [f[0] for f in figures["ours"]], [f[0] for f in figures["bare"]],
            Target("below", 2.0), note=how),
        Row("6 idle: bytes written to the terminal", "B/s", [f[1] for f in figures["ours"]],
            [f[1] for f in figures["bare"]], Target("below", 1024)),
    ]


# ---------------------------------------------------------------- launch


def docker_reachable() -> bool:
    """True when the `docker` command answers."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=30).returncode == 0


def case_launch(space: Workspace, opts: Options) -> list[Row]:
    """3: submit → first log line, against `docker run --rm`, running the script directly
    and (where a Slurm controller answers) `sbatch` + `srun` of it by hand."""
    from benchmarks import bench_launch

    home = copy_home(space.base, space.root / "launch")
    os.environ.update(child_env(space, home))
    slurm = bench_launch.slurm_partition()
    if slurm is not None:
        os.environ["TRAINDECK_POOLS"] = bench_launch.slurm_pools(slurm)
    folder = space.root / "launch-work"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    docker = docker_reachable()
    bench = bench_launch.Bench(folder)
    found: dict[str, Callable[[], float]] = bench_launch.scenarios(bench, docker, slurm)
    times: dict[str, list[float]] = {name: [] for name in found}
    for run in found.values():  # warm-up: compiled modules, the image's layers
        run()
    for run_number in range(opts.launch_runs):
        for name in bench_launch.round_order(list(found), run_number):
            times[name].append(found[name]())
        progress(f"launch run {run_number + 1}: " + ", ".join(
            f"{name} {values[-1]:.3f}s" for name, values in times.items()))
    words = {"traindeck submit": "cold `traindeck submit`",
             "app.jobs.submit": "in-process submit"}
    rows = []
    for name, values in times.items():
        base = bench_launch.baseline_of(name)
        if base is None:
            continue
        how, runtime = name.split(", ")
        target: Target | None
        if runtime == "local":
            target = Target("over", 1.0 if how == "traindeck submit" else 0.3)
        elif runtime == "docker":  # the TUI's submit; a cold command pays its imports first
            target = Target("ratio", 1.3) if how == "app.jobs.submit" else None
        else:  # slurm: no bar set yet, the ratio is shown
            target = None
        rows.append(Row(f"3 launch, {runtime}: {words[how]} → first log line", "s", values,
                        times[base], target, shown_as=target.kind if target else "ratio"))
    if rows:
        rows[0].note = ("baselines: `docker run --rm` of the same image and command; "
                        "the script run directly with the same interpreter; `sbatch` of a "
                        "script running it under `srun` (Slurm). In-process "
                        "submit is what the TUI does; a cold `traindeck submit` imports "
                        "the database layer first")
    if not docker:
        rows.insert(0, Row("3 launch, docker", "s", [], error="the Docker engine does not "
                                                             "answer: not measured"))
    if slurm is None:
        rows.append(Row("3 launch, slurm", "s", [], error="no Slurm controller answers: "
                                                         "not measured"))
    return rows


# ---------------------------------------------------------------- queue


def queue_home(space: Workspace, count: int = QUEUED) -> tuple[Path, list[int]]:
    """A copy of the base home with 8 declared GPUs and `count` queued versions (1, 2 or
    4 GPUs each), ten to a job; their ids in submission order."""
    home = copy_home(space.base, space.root / "queue",
                     "default_runtime: local\ngpus: [0, 1, 2, 3, 4, 5, 6, 7]\n")
    conn = sqlite3.connect(home / "traindeck.db")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    job_id = int(conn.execute("SELECT MAX(id) FROM jobs").fetchone()[0])
    first = int(conn.execute("SELECT MAX(id) FROM versions").fetchone()[0]) + 1
    jobs, versions = [], []
    per_job = 10
    for k in range(count):
        vid = first + k
        if k % per_job == 0:
            job_id += 1
            jobs.append([job_id, f"queued-{k // per_job:03d}", 0, 0])
        jobs[-1][2] += 1
        jobs[-1][3] = vid
        made = (start + timedelta(seconds=k)).strftime("%Y-%m-%d %H:%M:%S.%f")
        gpus = (1, 1, 2, 1, 4, 1, 2, 1)[k % 8]
        versions.append((vid, job_id, jobs[-1][2], "queued", "{}", "python 3.11", "local",
                         "public", gpus, 1, "", "", made, made))
    with conn:
        conn.executemany("INSERT INTO jobs (id, name, description, created_at, updated_at, "
                         "last_version_number, latest_version_id) VALUES (?,?,'',?,?,?,?)",
                         [(j, name, "2026-03-01 00:00:00.000000", "2026-03-01 00:00:00.000000",
                           count, latest) for j, name, count, latest in jobs])
        conn.executemany(
            "INSERT INTO versions (id, job_id, number, status, reason, spec_json, engine, "
            "runtime, pool, gpus_requested, nodes, output, log_dir, created_at, queued_at, "
            "allocated_gpus, executor, handle, supervisor_host, stop_requested, parent_id) "
            "VALUES (?,?,?,?,'',?,?,?,?,?,?,?,?,?,?,'','local','','',0,NULL)", versions)
    conn.close()
    return home, [v[0] for v in versions]


def double_booked(conn: sqlite3.Connection, declared: set[int]) -> int:
    """GPUs held twice, or held beyond what a version asked, or not declared at all,
    read from the allocation table and the versions' own record of their GPUs."""
    problems = 0
    rows = conn.execute("SELECT a.gpu, a.version_id, v.gpus_requested * v.nodes, v.status, "
                        "v.allocated_gpus FROM gpu_allocations a "
                        "JOIN versions v ON v.id = a.version_id").fetchall()
    holders: dict[int, int] = {}
    held: dict[int, int] = {}
    for gpu, vid, _, _, _ in rows:
        if gpu not in declared or gpu in holders:
            problems += 1
        holders[gpu] = vid
        held[vid] = held.get(vid, 0) + 1
    for _, vid, wanted, _, _ in rows:
        if held[vid] > wanted:
            problems += 1
    recorded: dict[int, int] = {}
    for (listed,) in conn.execute("SELECT allocated_gpus FROM versions WHERE status IN "
                                  "('initializing', 'queued', 'running') "
                                  "AND allocated_gpus != ''"):
        for gpu in map(int, listed.split(",")):
            recorded[gpu] = recorded.get(gpu, 0) + 1
    problems += sum(count - 1 for count in recorded.values() if count > 1)
    return problems


def case_queue(space: Workspace, opts: Options) -> list[Row]:
    """7: 1,000 queued versions on 8 declared GPUs, served first come first served.

    Each decision is `scheduler.try_admit` as a supervisor calls it. The head of the queue
    is asked until it is refused (the GPUs are full); then the last version in the queue
    is asked too (the slowest refusal: 999 versions ahead of it), and the oldest running
    version finishes and gives its GPUs back. After every decision the allocation table
    is checked for a GPU held twice. Runs: the whole queue is served once per run, on a
    fresh copy of the data.
    """
    from app.context import Context
    from app.db import reset_cache
    from app.runtime.procs import settle_heap
    from app.runtime.scheduler import peek_admission

    decisions: list[float] = []
    cpu: list[float] = []
    problems: list[float] = []
    for run in range(opts.runs):
        home, queued = queue_home(space)
        # The copy just written is still going to the disk: a decision that writes a page
        # under writeback waits for it. Flush first, so that no run times the kernel's
        # writeback of the data it was handed.
        os.sync()
        os.environ.update(child_env(space, home))
        reset_cache()
        ctx = Context.open()
        # As a supervisor does once its database is open, and before its first decision:
        ctx.db.checkpoint_in_background()
        settle_heap()
        peek_admission(ctx, queued[0])
        times, cpu_times, found = serve_queue(ctx, home / "traindeck.db", queued)
        ctx.db.dispose()
        decisions.extend(times)
        cpu.extend(cpu_times)
        problems.append(float(found))
        progress(f"queue run {run + 1}: {len(times):,} decisions, max {max(times) * 1000:.1f} "
                 f"ms, {found} double bookings")
    return [
        Row(f"7 queue: {QUEUED:,} queued on {QUEUE_GPUS} GPUs, time per scheduling decision",
            "s", decisions, target=Target("below", 0.02, "max"),
            note=f"{len(decisions):,} decisions over {opts.runs} run(s): each admission, "
                 "and a refusal of the last in the queue whenever the GPUs are full"),
        Row("7 queue: CPU time per decision (wall time less waiting and preemption)", "s",
            cpu, target=Target("below", 0.02, "max")),
        Row("7 queue: GPUs double-booked (checked after every decision)", "", problems,
            target=Target("equal", 0)),
    ]


def serve_queue(ctx: Any, database: Path, queued: list[int]
                ) -> tuple[list[float], list[float], int]:
    """Serve the whole queue (see `case_queue`): each decision's wall and CPU seconds
    (this thread's), and the number of problems the check found."""
    from app.jobs import set_status
    from app.models import Status
    from app.runtime.scheduler import release, try_admit

    check = sqlite3.connect(database)
    declared = set(range(QUEUE_GPUS))
    running: list[int] = []
    times: list[float] = []
    cpu: list[float] = []
    found = 0

    def decide(vid: int) -> bool:
        nonlocal found
        started, used = time.perf_counter(), time.thread_time()
        admission = try_admit(ctx, vid)
        times.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - used)
        found += double_booked(check, declared)
        return admission.granted is not None

    position = 0
    try:
        while position < len(queued):
            if decide(queued[position]):
                set_status(ctx, queued[position], Status.RUNNING)
                running.append(queued[position])
                position += 1
                continue
            if not running:
                raise RuntimeError(f"version {queued[position]} refused with every GPU free")
            if position < len(queued) - 1:
                decide(queued[-1])
            done = running.pop(0)
            set_status(ctx, done, Status.SUCCEEDED)
            release(ctx, done)
    finally:
        check.close()
    return times, cpu, found


CASES: dict[str, Callable[[Workspace, Options], list[Row]]] = {
    "startup": case_startup,
    "detail": case_detail,
    "launch": case_launch,
    "logs": case_logs,
    "compare": case_compare,
    "idle": case_idle,
    "queue": case_queue,
}
"""Every case by name, in the order of the quality bars."""


def run_case(name: str, space: Workspace, opts: Options) -> list[Row]:
    """Run case `name`; a failure becomes a row that says why, not a crash."""
    try:
        return CASES[name](space, opts)
    except Exception as exc:  # the table must still come out
        import traceback

        traceback.print_exc()
        return [Row(f"{list(CASES).index(name) + 1} {name}", "s", [],
                    error=f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")]
