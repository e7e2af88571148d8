"""Every quality bar of the brief, measured in one run: `scripts/bench`.

Builds its own data in a temporary folder (a home with 10,000 jobs / 50,000 versions
with metrics, the jobs the in-app cases open, a 1 GB log), runs each case next to its
baseline `--runs` times, each case in a process of its own and every timed run in
fresh processes, and prints one table: case, ours (median), baseline (median), ratio
or figure, target, met. Nothing is asserted; the folder is removed afterwards unless
`--keep` names one (a kept folder's data is reused by the next run that names it).

Cases (`--only`): startup, detail, launch, logs, compare, idle, queue.

    scripts/bench [--runs N] [--only CASE,CASE] [--quick] [--json FILE] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.cases import CASES, Options, run_case
from benchmarks.data import Sizes, Workspace, build
from benchmarks.table import Row, render
from benchmarks.terminal import ROOT

DEFAULT_RUNS = 3
CASE_TIMEOUT = 1800.0
"""Seconds one case may take in all before it is stopped and reported as not measured."""


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    gpus = "none"
    if shutil.which("nvidia-smi"):
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
        gpus = found.stdout.strip() or "none"
    return {"python": platform.python_version(), "cores": os.cpu_count(),
            "machine": platform.machine(), "system": platform.platform(), "gpus": gpus,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


COMPILE_EVERYTHING = """
import importlib, pkgutil, app
for found in pkgutil.walk_packages(app.__path__, "app."):
    if not found.name.endswith("__main__"):
        try:
            importlib.import_module(found.name)
        except Exception:  # a migration script outside alembic, say: not needed here
            pass
import benchmarks.probe, benchmarks.writer
"""


def child_env(space: Workspace) -> dict[str, str]:
    """The environment of a case's process (and so of everything it starts)."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(space.pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_modules(space: Workspace) -> None:
    """Import every module of the app once, so that the compiled modules of it and of
    what it uses are in the work folder's cache before anything is timed (an installed
    copy has them; no run should pay for compiling)."""
    subprocess.run([sys.executable, "-c", COMPILE_EVERYTHING], cwd=ROOT, env=child_env(space),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def run_in_child(name: str, space: Workspace, opts: Options) -> list[Row]:
    """Run one case in a process of its own; its rows (or one saying why there are none)."""
    result = space.root / f"case-{name}.json"
    result.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "benchmarks.run", "--case", name, "--work", str(space.root),
            "--runs", str(opts.runs), "--result", str(result)]
    if opts.quick:
        argv.append("--quick")
    number = list(CASES).index(name) + 1
    try:
        subprocess.run(argv, cwd=ROOT, env=child_env(space), timeout=CASE_TIMEOUT,
                       check=False)
    except subprocess.TimeoutExpired:
        return [Row(f"{number} {name}", "s", [], error=f"stopped after {CASE_TIMEOUT:g}s")]
    if not result.exists():
        return [Row(f"{number} {name}", "s", [], error="the case's process wrote no result")]
    return [Row.from_dict(row) for row in json.loads(result.read_text())]


def parse_only(text: str | None) -> list[str]:
    """`--only a,b` as case names in the order of the quality bars; every case without it."""
    if not text:
        return list(CASES)
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in CASES]
    if unknown:
        raise SystemExit(f"--only: unknown case(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(CASES)}")
    return [name for name in CASES if name in wanted]


def main(argv: list[str] | None = None) -> int:
    """Build the data, run the chosen cases, print the table (and write `--json`)."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=__doc__.splitlines()[0],
        epilog="Cases: " + ", ".join(CASES) + ". Nothing is asserted: the table is "
               "for reading.")
    parser.add_argument("--runs", type=int, help=f"runs of each case (default {DEFAULT_RUNS}; 1 "
                                                 "with --quick; start-up does 3 times as many)")
    parser.add_argument("--only", metavar="CASE,CASE", help="run only these cases")
    parser.add_argument("--quick", action="store_true",
                        help="one run each and shorter idle and follow windows (same data)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the raw figures here")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the data in DIR and keep it (reused when already built)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else DEFAULT_RUNS)
    if runs < 1:
        parser.error("--runs must be at least 1")
    opts = Options(runs=runs, quick=args.quick)
    if args.case:  # inside the child process of one case
        rows = run_case(args.case, Workspace(args.work, Sizes()), opts)
        args.result.write_text(json.dumps([row.to_dict() for row in rows]))
        return 0
    names = parse_only(args.only)
    work = args.keep or Path(tempfile.mkdtemp(prefix="traindeck-bench-"))
    began = time.monotonic()
    try:
        print(f"building the data in {work} …", file=sys.stderr, flush=True)
        space = build(work.resolve())
        compile_modules(space)
        print(f"  built in {time.monotonic() - began:.0f}s", file=sys.stderr, flush=True)
        load = os.getloadavg()[0]
        rows: list[Row] = []
        for name in names:
            started = time.monotonic()
            print(f"{name} …", file=sys.stderr, flush=True)
            rows.extend(run_in_child(name, space, opts))
            print(f"  {name} took {time.monotonic() - started:.0f}s", file=sys.stderr,
                  flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    about = machine()
    about["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    took = time.monotonic() - began
    print(f"\nTraindeck benchmarks — {about['date']}, python {about['python']}, "
          f"{about['cores']} cores, GPUs: {about['gpus']}, {runs} run(s) per case"
          f"{' (quick)' if args.quick else ''}, {took:.0f}s in all; load average "
          f"{about['load_average'][0]:.2f} at the start, {about['load_average'][1]:.2f} "
          "at the end\n")
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": about, "runs": runs, "quick": args.quick,
                                         "seconds": took, "cases": names,
                                         "rows": [row.to_dict() for row in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
