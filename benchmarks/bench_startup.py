"""Start-up of the TUI over 10,000 jobs / 50,000 versions, against a bare Textual app.

Cases, each measured from process launch to a usable screen, in a pseudo-terminal of
120 by 40 cells whose output is read and thrown away (as a real terminal would draw it):

* baseline — a bare Textual app showing an empty DataTable: ready after its first frame.
* traindeck — `traindeck` opening the job list: ready once the first page of jobs is on
  screen and the table has the focus (the app's `TRAINDECK_READY_FILE` hook).
* traindeck, core path — the same with `TRAINDECK_DATABASE_URL` set, which turns off the
  stdlib-only first page and waits for the whole core to open (for comparison).

Both sides write `time.monotonic()` and their CPU time to a file when ready (CLOCK_MONOTONIC
is one clock for every process) and exit. Children run with compiled modules cached (under
the work folder), as an installed copy has them, even where PYTHONDONTWRITEBYTECODE is
set. Runs alternate between the cases so that a busy moment of the machine hits them
alike; the table shows medians. Nothing is asserted: this is for reading.

    .venv/bin/python benchmarks/bench_startup.py [--runs N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import pty
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = 10_000
VERSIONS_PER_JOB = 5
METRICS = ("accuracy", "f1", "recall", "precision", "loss")
COLUMNS, ROWS = 120, 40
TARGET = 1.5
READY_TIMEOUT = 60.0


# ---------------------------------------------------------------- the bare baseline app


def run_bare_app() -> None:
    """The baseline: a Textual app with an empty DataTable; reports its first frame."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    class BareApp(App[None]):
        def compose(self) -> ComposeResult:
            table: DataTable[str] = DataTable()
            table.add_columns("Name", "Version", "Status")
            yield table

        def on_mount(self) -> None:
            self.call_after_refresh(self.report_ready)

        def report_ready(self) -> None:
            # The same hook as the app's (app/tui/ready.py): note the moment, exit if asked
            # (the idle case keeps it open).
            path = os.environ.get("TRAINDECK_READY_FILE")
            if path:
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(f"{time.monotonic():.6f} {time.process_time():.6f}\n")
            if os.environ.get("TRAINDECK_EXIT_WHEN_READY"):
                self.exit()

    BareApp().run()


# ---------------------------------------------------------------- the data


def _stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def build_database(home: Path, jobs_count: int = JOBS,
                   versions_per_job: int = VERSIONS_PER_JOB) -> Path:
    """A Traindeck home with 10,000 jobs, 50,000 versions, their metrics and events
    (fewer when asked: the smoke test builds a small one)."""
    import sqlite3

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("default_runtime: local\ngpus: [0, 1]\n")
    env_home = os.environ.get("TRAINDECK_HOME")
    os.environ["TRAINDECK_HOME"] = str(home)
    try:
        from app.context import Context

        Context.open().db.dispose()  # schema, catalog and presets, as the app makes them
    finally:
        if env_home is None:
            os.environ.pop("TRAINDECK_HOME", None)
        else:
            os.environ["TRAINDECK_HOME"] = env_home
    path = home / "traindeck.db"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    spec = {
        "name": "", "description": "", "data": {"paths": [str(home / "data")]},
        "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                    "code_dir": str(home / "code"), "boot_file": "train.py"}},
        "parameters": {"train_steps": 10000, "lr": 0.01, "batch": 64},
        "output": str(home / "runs" / "out"), "log_dir": str(home / "runs" / "logs"),
        "resources": {"pool": "public", "gpus": 1, "nodes": 1, "runtime": "local"},
        "subscriptions": [{"topic": "lab", "events": ["OnJobFailed"]}],
    }
    jobs, versions, metrics, events = [], [], [], []
    version_id = 0
    for j in range(1, jobs_count + 1):
        name = f"exp-{j:05d}"
        created = start + timedelta(minutes=7 * j)
        latest = 0
        for n in range(1, versions_per_job + 1):
            version_id += 1
            latest = version_id
            status = ("failed" if (j + n) % 11 == 0 else "stopped" if (j + n) % 17 == 0
                      else "succeeded")
            made = created + timedelta(minutes=n)
            ran = made + timedelta(minutes=30 + n)
            body = dict(spec, name=name, parameters={"train_steps": 1000 * n, "lr": 0.01 * n,
                                                      "batch": 64})
            versions.append((
                version_id, j, n, version_id - 1 if n > 1 else None, status,
                "exit code 1" if status == "failed" else "", json.dumps(body), "python 3.11",
                "local", "public", 1, 1, f"{home}/runs/{name}/V{n:03d}",
                f"{home}/runs/{name}/logs/V{n:03d}", _stamp(made), None,
                _stamp(made + timedelta(seconds=5)), _stamp(ran), 0 if status != "failed" else 1,
                "", "local", "", None, "", 0,
            ))
            for k, metric in enumerate(METRICS):
                metrics.append((version_id, metric, 0.5 + ((j * 7 + n * 3 + k) % 50) / 100))
            events.append((version_id, _stamp(made + timedelta(seconds=5)), "status",
                           "running", "running"))
            events.append((version_id, _stamp(ran), "status", status, status))
        updated = created + timedelta(minutes=versions_per_job + 40)
        jobs.append((j, name, f"sweep {j % 40}", _stamp(created), _stamp(updated),
                     versions_per_job, latest))
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT INTO jobs (id, name, description, created_at, updated_at, "
                         "last_version_number, latest_version_id) VALUES (?,?,?,?,?,?,?)", jobs)
        conn.executemany(
            "INSERT INTO versions (id, job_id, number, parent_id, status, reason, spec_json, "
            "engine, runtime, pool, gpus_requested, nodes, output, log_dir, created_at, "
            "queued_at, started_at, finished_at, exit_code, allocated_gpus, executor, handle, "
            "supervisor_pid, supervisor_host, stop_requested) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", versions)
        conn.executemany("INSERT INTO metric_summaries (version_id, name, value) "
                         "VALUES (?,?,?)", metrics)
        conn.executemany("INSERT INTO events (version_id, time, kind, status, message) "
                         "VALUES (?,?,?,?,?)", events)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


# ---------------------------------------------------------------- measuring


def _drain(fd: int, stop: threading.Event) -> None:
    """Read the terminal's output and drop it, as fast as it comes."""
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                if not os.read(fd, 65536):
                    return
            except OSError:
                return


def measure(argv: list[str], env: dict[str, str], ready_file: Path) -> tuple[float, float]:
    """Seconds from launching `argv` in a 120 by 40 pseudo-terminal until it says ready,
    and the CPU seconds the process had used by then."""
    ready_file.unlink(missing_ok=True)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    stop = threading.Event()
    drainer = threading.Thread(target=_drain, args=(master, stop), daemon=True)
    drainer.start()
    env = {**env, "TRAINDECK_READY_FILE": str(ready_file), "TRAINDECK_EXIT_WHEN_READY": "1",
           "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=ROOT, start_new_session=True)
    os.close(slave)
    try:
        deadline = started + READY_TIMEOUT
        while time.monotonic() < deadline:
            if ready_file.exists() and ready_file.read_text().strip():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[-1]} exited with {proc.returncode} before ready")
            time.sleep(0.002)
        else:
            raise RuntimeError(f"{argv} not ready after {READY_TIMEOUT:g}s")
        moment, cpu = (float(x) for x in ready_file.read_text().split()[:2])
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return moment - started, cpu
    finally:
        stop.set()
        drainer.join(1)
        os.close(master)


def traindeck_argv() -> list[str]:
    """How users start it: the `traindeck` script beside this Python, else `-m app`."""
    script = Path(sys.executable).with_name("traindeck")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app"]


def main() -> None:
    """Build the data, measure every case `--runs` times, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each case (default 9)")
    parser.add_argument("--keep", type=Path, help="build the data here and keep it")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        run_bare_app()
        return
    sys.path.insert(0, str(ROOT))
    work = args.keep or Path(tempfile.mkdtemp(prefix="traindeck-bench-startup-"))
    home = work / "home"
    try:
        began = time.monotonic()
        if not (home / "traindeck.db").exists():
            build_database(home)
        print(f"data: {JOBS:,} jobs, {JOBS * VERSIONS_PER_JOB:,} versions, "
              f"{JOBS * VERSIONS_PER_JOB * len(METRICS):,} metric summaries "
              f"({time.monotonic() - began:.1f}s to build)")
        dropped = ("TRAINDECK_DATABASE_URL", "TRAINDECK_CONFIG", "PYTHONDONTWRITEBYTECODE")
        base_env = {k: v for k, v in os.environ.items() if k.upper() not in dropped}
        base_env["TRAINDECK_HOME"] = str(home)
        # Compiled modules, as an installed copy has them (the warm-up run writes them),
        # kept out of the checkout.
        base_env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        core_env = {**base_env,
                    "TRAINDECK_DATABASE_URL": f"sqlite:///{home / 'traindeck.db'}"}
        cases = {
            "baseline": ([sys.executable, str(Path(__file__).resolve()), "--bare"], base_env),
            "traindeck": (traindeck_argv(), base_env),
            "traindeck, core path": (traindeck_argv(), core_env),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for argv, env in cases.values():  # one warm-up each (disk cache, .pyc)
            measure(argv, env, work / "ready")
        for _ in range(args.runs):
            for name, (argv, env) in cases.items():
                times[name].append(measure(argv, env, work / "ready"))
        report(times, args.runs)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def report(times: dict[str, list[tuple[float, float]]], runs: int) -> None:
    """Print one line per case against the baseline: wall time (the target), CPU time."""
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {runs} runs per case, "
          f"medians; terminal {COLUMNS}×{ROWS}")
    header = ("case", "ours (ms)", "baseline (ms)", "ratio", "target", "met")
    lines = []
    for measure_index, what in ((0, "wall"), (1, "CPU")):
        baseline = statistics.median(t[measure_index] for t in times["baseline"])
        for name, values in times.items():
            if name == "baseline":
                continue
            ours = statistics.median(t[measure_index] for t in values)
            ratio = ours / baseline
            target = f"≤ {TARGET:g}×" if what == "wall" else "(info)"
            met = ("yes" if ratio <= TARGET else "no") if what == "wall" else ""
            lines.append((f"start-up to job list, {what} ({name})", f"{ours * 1000:.0f}",
                          f"{baseline * 1000:.0f}", f"{ratio:.2f}×", target, met))
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *lines):
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    spread = {name: f"{min(t[0] for t in v) * 1000:.0f}–{max(t[0] for t in v) * 1000:.0f} ms"
              for name, v in times.items()}
    print("wall-time range: " + ", ".join(f"{name} {text}" for name, text in spread.items()))


if __name__ == "__main__":
    main()
