"""Cold `traindeck list`, `show JOB`, `logs JOB --tail 100` and `compare JOB` on the 10k-job
home, each against a bare `python -c` script that prints the same with the standard library's
sqlite3.

Issue 20's targets (set for the first three): each command at most 150 ms, and within 1.5x
of its bare script. The floor column is a `python -c` that does only what any command of
this shape does before a line of its own runs: it imports sqlite3, json and argparse,
builds a parser with one subcommand and parses it (which is when argparse imports shutil
and locale). That much of the ratio no Traindeck code can remove. The core path (the same
command with `TRAINDECK_DATABASE_URL` set, which turns the cold path off: the whole core
opens and reconciles first) is shown beside them.

Every run starts a fresh process (compiled modules cached under the work folder, as an
installed copy has them); runs alternate between the sides so that a busy moment of the
machine hits them alike; the table shows medians. Nothing is asserted.

    .venv/bin/python -m benchmarks.bench_cold [--runs N] [--core-runs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_startup import JOBS, VERSIONS_PER_JOB, build_database

ROOT = Path(__file__).resolve().parents[1]
JOB = f"exp-{JOBS // 2:05d}"
LOG_LINES = 20_000
TARGET_MS = 150.0
TARGET_RATIO = 1.5

_LIST = """import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for row in c.execute("SELECT j.name, v.number, v.status, v.engine, v.gpus_requested, v.nodes, "
        "v.runtime, j.created_at, v.started_at, v.finished_at FROM jobs AS j LEFT JOIN "
        "versions AS v ON v.id = j.latest_version_id ORDER BY j.updated_at DESC, j.id DESC "
        "LIMIT 1000"):
    print(*row, sep="  ")
"""
_SHOW = """import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for row in c.execute("SELECT v.id, v.number, v.status, v.reason, v.engine, v.runtime, v.pool, "
        "v.gpus_requested, v.nodes, v.created_at, v.started_at, v.finished_at, v.exit_code, "
        "v.spec_json, v.output, v.log_dir, p.number FROM versions AS v JOIN jobs AS j ON "
        "j.id = v.job_id LEFT JOIN versions AS p ON p.id = v.parent_id WHERE j.name = ? "
        "ORDER BY v.number", [sys.argv[2]]).fetchall():
    print(*row[1:], sep="\\n  ")
    print(*c.execute("SELECT name, value FROM metric_summaries WHERE version_id = ?", [row[0]]))
"""
_LOGS = """import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
(folder,) = c.execute("SELECT v.log_dir FROM versions AS v JOIN jobs AS j ON j.id = v.job_id "
        "WHERE j.name = ? ORDER BY v.number DESC LIMIT 1", [sys.argv[2]]).fetchone()
with open(folder + "/rank-0.log", "rb") as f:
    f.seek(max(0, f.seek(0, 2) - 65536))
    for line in f.read().decode().splitlines()[-100:]:
        print(line.split(" ", 1)[1])
"""
_COMPARE = """import json, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("SELECT v.id, v.number, v.status, v.spec_json FROM versions AS v JOIN jobs AS j "
        "ON j.id = v.job_id WHERE j.name = ? ORDER BY v.number", [sys.argv[2]]).fetchall()
marks = ", ".join("?" * len(rows))
ids = [row[0] for row in rows]
metrics = c.execute(f"SELECT version_id, name, value FROM metric_summaries WHERE version_id "
        f"IN ({marks})", ids).fetchall()
gpus = c.execute(f"SELECT version_id, name, max(value), avg(value) FROM metric_points "
        f"WHERE version_id IN ({marks}) AND name LIKE 'sys/gpu%' GROUP BY version_id, name",
        ids).fetchall()
print(*(row[1:3] for row in rows))
for row in rows:
    print(json.loads(row[3])["parameters"])
print(*metrics, *gpus, sep="\\n")
"""
FLOOR = ("import argparse, json, sqlite3; p = argparse.ArgumentParser(); "
         "p.add_subparsers().add_parser('x'); p.parse_args(['x']); print()")
"""The standard library a command that parses its arguments and reads JSON from SQLite
imports, with nothing of its own."""
SCRIPT = Path(sys.executable).with_name("traindeck")
TRAINDECK = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "app"]
"""The installed console script, as users run it (with this checkout's `app` first on the
path), or the module where none is installed."""
CASES = {
    "list": (["list"], _LIST),
    f"show {JOB}": (["show", JOB], _SHOW),
    f"logs {JOB} --tail 100": (["logs", JOB, "--tail", "100"], _LOGS),
    f"compare {JOB}": (["compare", JOB], _COMPARE),
}


def build(work: Path, jobs: int = JOBS) -> Path:
    """The 10k-job home (reused when `work` has one), with a rank log for `JOB`'s latest
    (the smoke test builds fewer jobs: `JOB` is the middle one either way)."""
    home = work / "home"
    db = home / "traindeck.db"
    if not db.is_file():
        print(f"building {jobs:,} jobs in {home} ...", file=sys.stderr)
        build_database(home, jobs)
    log = (home / "runs" / f"exp-{jobs // 2:05d}" / "logs" / f"V{VERSIONS_PER_JOB:03d}" /
           "rank-0.log")
    if not log.is_file():
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(f"2026-02-01T00:00:{i % 60:02d}.000Z step {i} loss {1 / (i + 1):.5f}"
                               "\n" for i in range(LOG_LINES)))
    return home


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Milliseconds from launch to exit, and the CPU milliseconds the process used (less
    sensitive to a busy machine); the output is read as a terminal would."""
    cpu, started = _cpu(), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, env=env, cwd=ROOT)
    elapsed, cpu = (time.perf_counter() - started) * 1000, _cpu() - cpu
    if done.returncode != 0 or not done.stdout:
        raise SystemExit(f"{' '.join(argv[:4])} failed: {done.stderr.decode()[-500:]}")
    return elapsed, cpu


def measure(home: Path, work: Path, runs: int, core_runs: int, jobs: int = JOBS
            ) -> list[tuple[str, ...]]:
    """One row per case: medians of traindeck (cold), the bare script and the core path
    (`core_runs` 0: not measured)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("TRAINDECK_") and key != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), TRAINDECK_HOME=str(home),
               PYTHONPYCACHEPREFIX=str(work / "pycache"))
    core_env = {**env, "TRAINDECK_DATABASE_URL": f"sqlite:///{home / 'traindeck.db'}"}
    db = str(home / "traindeck.db")
    rows: list[tuple[str, ...]] = []
    job = f"exp-{jobs // 2:05d}"
    for name, (args, script) in CASES.items():
        args = [job if word == JOB else word for word in args]
        sides = {"traindeck": ([*TRAINDECK, *args], env),
                 "bare": ([sys.executable, "-c", script, db, *args[1:2]], env),
                 "floor": ([sys.executable, "-c", FLOOR], env)}
        if core_runs:
            sides["core"] = ([*TRAINDECK, *args], core_env)
        for argv, side_env in sides.values():
            _time(argv, side_env)  # compiles the modules, warms the page cache
        times: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for run in range(runs):
            for side, (argv, side_env) in sides.items():
                if side != "core" or run < core_runs:
                    times[side].append(_time(argv, side_env))
        (cold, cold_cpu), (bare, bare_cpu), (floor, _), *core = (
            (statistics.median(w for w, _ in times[side]),
             statistics.median(c for _, c in times[side])) for side in sides)
        verdict = "met" if cold <= TARGET_MS and cold <= TARGET_RATIO * bare else "NOT met"
        rows.append((name, f"{cold:.0f}", f"{bare:.0f}", f"{cold / bare:.2f}x",
                     f"{cold_cpu:.0f} / {bare_cpu:.0f} ({cold_cpu / bare_cpu:.2f}x)",
                     f"{floor:.0f} ({floor / bare:.2f}x)",
                     f"{core[0][0]:.0f}" if core else "-", verdict))
    return rows


def main() -> None:
    """Build (or reuse) the home, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each cold side")
    parser.add_argument("--core-runs", type=int, default=3, help="runs of the core path")
    parser.add_argument("--keep", type=Path, help="work folder to build in and keep")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        work = options.keep or Path(scratch)
        home = build(work)
        rows = measure(home, work, options.runs, options.core_runs)
    headers = ("command (10k jobs)", "traindeck ms", "bare sqlite3 ms", "ratio",
               "CPU ms traindeck / bare", "floor ms (ratio)", "core path ms",
               f"≤{TARGET_MS:.0f} ms, ≤{TARGET_RATIO}x")
    widths = [max(len(str(r[i])) for r in (headers, *rows)) for i in range(len(headers))]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
