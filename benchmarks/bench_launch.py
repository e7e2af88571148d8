"""Launch overhead: how long from "submit" to the first line a trivial job prints.

Docker: a container running `python3 -c "print('hello')"` in traindeck/python:3.11,
started by Traindeck (`traindeck submit` as a new process, and `app.jobs.submit` called in
this process as the TUI does) versus `docker run --rm` of the same image and command.
The first line counts when it is in the version's rank log (that is where `logs -f`
and the TUI read it), or on `docker run`'s stdout.

Local: the same one-line script as a Traindeck version with runtime local versus
running it directly with the same interpreter.

Slurm (where a controller answers; partition `debug` or `TRAINDECK_BENCH_PARTITION`): the
same script as a version in a Slurm pool of that partition versus the same script
submitted by hand, `sbatch` of a batch script that runs `srun PYTHON train.py`; the first
line counts when it is in the rank log, or in the by-hand job's output file.

Runs are interleaved (one of each scenario per round, the order rotated each round) so
that a machine whose load changes treats every scenario alike; the table shows the
median and the fastest of N rounds and each median's ratio to its baseline. Nothing is
asserted. Run with ``.venv/bin/python benchmarks/bench_launch.py [--runs N] [--no-docker]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Run as a plain script from anywhere, without installing the project.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

IMAGE = "traindeck/python:3.11"
SCRIPT = "print('hello', flush=True)"
POLL = 0.002
TIMEOUT = 60.0
SLURM_POOL = "bench-slurm"
"""The Slurm pool the slurm scenarios submit to."""


def traindeck_command() -> list[str]:
    """The installed console script beside this interpreter, else `python -m app.cli.main`."""
    beside = Path(sys.executable).parent / "traindeck"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "app.cli.main"]


def first_stdout_line(argv: list[str]) -> float:
    """Seconds from starting `argv` to its first stdout line (then it is waited for)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.wait(TIMEOUT)
    if not line:
        raise RuntimeError(f"{argv[0]} printed nothing")
    return elapsed


def slurm_partition() -> str | None:
    """The partition the slurm scenarios use, when its controller says it is up."""
    partition = os.environ.get("TRAINDECK_BENCH_PARTITION", "debug")
    if shutil.which("sinfo") is None:
        return None
    done = subprocess.run(["sinfo", "-h", "-p", partition, "-o", "%a"], capture_output=True,
                          text=True, timeout=30, check=False)
    return partition if done.stdout.strip() == "up" else None


def slurm_pools(partition: str) -> str:
    """`TRAINDECK_POOLS` with the slurm scenarios' pool."""
    return json.dumps([{"name": "public", "kind": "public"},
                       {"name": SLURM_POOL, "kind": "slurm", "partition": partition}])


def wait_first_rank_line(log: Path, started: float, line: bytes = b" hello\n") -> float:
    """Seconds from `started` until the rank log holds a line of the job's own output."""
    deadline = started + TIMEOUT
    while time.perf_counter() < deadline:
        try:
            text = log.read_bytes()
        except FileNotFoundError:
            text = b""
        if line in text:  # "<stamp> hello": the job's line, not a [traindeck] one
            return time.perf_counter() - started
        time.sleep(POLL)
    raise RuntimeError(f"no output in {log} after {TIMEOUT:g}s")


class Bench:
    """One Traindeck home and the specs the scenarios submit."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0
        self.data = folder / "data"
        self.code = folder / "code"
        self.data.mkdir()
        self.code.mkdir()
        (self.data / "rows.csv").write_text("x,y\n1,2\n")  # a data path must hold data
        (self.code / "train.py").write_text(SCRIPT + "\n")

    def spec(self, runtime: str) -> tuple[str, Path, dict[str, object]]:
        """A new job name, its rank-0 log path and its raw spec."""
        self.count += 1
        name = f"bench-{runtime}-{self.count}"
        algorithm: dict[str, object]
        if runtime == "docker":
            algorithm = {"image": {"name": IMAGE, "command": ["python3", "-c", SCRIPT]}}
        else:
            algorithm = {"framework": {"engine": "python", "engine_version": "3.11",
                                       "code_dir": str(self.code), "boot_file": "train.py"}}
        raw: dict[str, object] = {
            "name": name, "data": {"paths": [str(self.data)]}, "algorithm": algorithm,
            "output": str(self.folder / "out" / name),
            "log_dir": str(self.folder / "logs" / name),
            "resources": {"pool": SLURM_POOL} if runtime == "slurm" else {"runtime": runtime}}
        return name, self.folder / "logs" / name / "V001" / "rank-0.log", raw

    def via_cli(self, runtime: str) -> float:
        """`traindeck submit` as a new process (a cold command, as a user types it)."""
        name, log, raw = self.spec(runtime)
        path = self.folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        started = time.perf_counter()
        subprocess.run([*traindeck_command(), "submit", str(path)], check=True,
                       stdout=subprocess.DEVNULL)
        elapsed = wait_first_rank_line(log, started)
        self.settle(name)
        return elapsed

    def in_process(self, runtime: str) -> float:
        from app.jobs import submit

        name, log, raw = self.spec(runtime)
        ctx = self.context()
        started = time.perf_counter()
        submit(ctx, raw, self.folder)
        elapsed = wait_first_rank_line(log, started)
        self.settle(name)
        return elapsed

    def by_hand_slurm(self, partition: str) -> float:
        """`sbatch` of a script that runs the job's script under `srun`, as a user would
        write it: seconds to the first line in the job's output file."""
        self.count += 1
        out = self.folder / "logs" / f"by-hand-{self.count}.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        script = self.folder / "by-hand.sh"
        script.write_text("#!/bin/sh\nexec " + shlex.join(
            ["srun", sys.executable, str(self.code / "train.py")]) + "\n")
        started = time.perf_counter()
        job = subprocess.run(["sbatch", "--parsable", f"--partition={partition}",
                              f"--output={out}", f"--chdir={self.folder}", str(script)],
                             check=True, capture_output=True, text=True).stdout.split(";")[0]
        elapsed = wait_first_rank_line(out, started, b"hello\n")
        deadline = time.perf_counter() + TIMEOUT
        while subprocess.run(["squeue", "-h", "-j", job.strip()], capture_output=True,
                             text=True, check=False).stdout.strip():
            if time.perf_counter() > deadline:  # so that runs never overlap
                raise RuntimeError(f"Slurm job {job.strip()} did not end")
            time.sleep(0.05)
        return elapsed

    def context(self) -> object:
        from app.context import Context

        if not hasattr(self, "_ctx"):
            self._ctx = Context.open()
        return self._ctx

    def settle(self, name: str) -> None:
        """Wait until the version is over, so that runs never overlap."""
        from app.runtime.control import wait_final

        wait_final(self.context(), name, None, TIMEOUT)  # type: ignore[arg-type]


def row(name: str, times: list[float], baseline: list[float] | None) -> list[str]:
    median = statistics.median(times)
    ratio = f"{median / statistics.median(baseline):.2f}x" if baseline else "1.00x (base)"
    return [name, f"{median:.3f}", f"{min(times):.3f}", ratio]


def print_table(rows: list[list[str]]) -> None:
    header = ["scenario", "median s", "best s", "vs baseline"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))


DOCKER_BASELINE = "docker run --rm"
LOCAL_BASELINE = "python3 train.py (direct)"
SLURM_BASELINE = "sbatch + srun (by hand)"


def scenarios(bench: Bench, docker: bool, slurm: str | None = None
              ) -> dict[str, Callable[[], float]]:
    """Every scenario by name, each returning seconds to the first line; baselines first.
    `slurm` is the partition of the slurm scenarios (None: none), whose pool must be in
    `TRAINDECK_POOLS` (`slurm_pools`)."""
    found: dict[str, Callable[[], float]] = {}
    if docker:
        found = {
            DOCKER_BASELINE: lambda: first_stdout_line(
                ["docker", "run", "--rm", IMAGE, "python3", "-c", SCRIPT]),
            "traindeck submit, docker": lambda: bench.via_cli("docker"),
            "app.jobs.submit, docker": lambda: bench.in_process("docker"),
        }
    found.update({
        LOCAL_BASELINE: lambda: first_stdout_line(
            [sys.executable, str(bench.code / "train.py")]),
        "traindeck submit, local": lambda: bench.via_cli("local"),
        "app.jobs.submit, local": lambda: bench.in_process("local"),
    })
    if slurm is not None:
        found.update({
            SLURM_BASELINE: lambda: bench.by_hand_slurm(slurm),
            "traindeck submit, slurm": lambda: bench.via_cli("slurm"),
            "app.jobs.submit, slurm": lambda: bench.in_process("slurm"),
        })
    return found


def round_order(names: list[str], round_number: int) -> list[str]:
    """The scenarios of one round, rotated by the round's number: each takes every place
    in turn (what ran just before a scenario changes its time by tens of ms here)."""
    shift = round_number % len(names) if names else 0
    return names[shift:] + names[:shift]


def baseline_of(name: str) -> str | None:
    """The baseline scenario a scenario is compared with (None for a baseline)."""
    if name in (DOCKER_BASELINE, LOCAL_BASELINE, SLURM_BASELINE):
        return None
    return {"docker": DOCKER_BASELINE, "slurm": SLURM_BASELINE}.get(
        name.rpartition(", ")[2], LOCAL_BASELINE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--no-docker", action="store_true", help="no Docker scenarios")
    parser.add_argument("--no-slurm", action="store_true", help="no Slurm scenarios")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="traindeck-bench-launch-"))
    os.environ["TRAINDECK_HOME"] = str(folder / "home")
    docker = not args.no_docker and shutil.which("docker") is not None
    slurm = None if args.no_slurm else slurm_partition()
    if slurm is not None:
        os.environ["TRAINDECK_POOLS"] = slurm_pools(slurm)
    bench = Bench(folder)
    found = scenarios(bench, docker, slurm)
    times: dict[str, list[float]] = {name: [] for name in found}
    try:
        for run in found.values():  # warm-up: caches, images, .pyc files
            run()
        for round_number in range(args.runs):
            for name in round_order(list(found), round_number):
                times[name].append(found[name]())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"launch overhead: submit -> first output line, {args.runs} rounds, "
          f"{os.cpu_count()} CPUs")
    rows = []
    for name, values in times.items():
        base = baseline_of(name)
        rows.append(row(name, values, times[base] if base else None))
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
