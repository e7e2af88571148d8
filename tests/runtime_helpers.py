"""Helpers shared by the runtime test modules: spec files for real runs, the `traindeck`
command, waiting on versions, reading their logs and metrics, tiny wheels and engines.

Import as `from runtime_helpers import ...` (general helpers are in `helpers.py`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import sysconfig
import textwrap
import time
import zipfile
from pathlib import Path
from typing import Any

from helpers import noop_launcher, traindeck_executable, write_yaml

from app.context import Context
from app.logs import split_timestamp
from app.models import Status, Version
from app.runtime.control import wait_final
from app.runtime.executors.local import proc_stat

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_jobs"
LOGREG = SAMPLES / "logreg"
BLOBS = SAMPLES / "data" / "blobs"
FOUR_METRICS = ("accuracy", "precision", "recall", "f1")
STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")

# Written by script-based jobs: argv and environment of each rank, as JSON.
ECHO_BOOT = """\
import json, os, sys
rank = os.environ.get("RANK", "0")
out = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--train_url=")][0]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, f"argv-{rank}.json"), "w") as f:
    json.dump(sys.argv, f)
with open(os.path.join(out, f"env-{rank}.json"), "w") as f:
    json.dump(dict(os.environ), f)
print(f"rank {rank} echoed", flush=True)
"""


RENDEZVOUS_BOOT = ECHO_BOOT + """\
import socket, time
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
if rank == "0":
    server = socket.create_server((addr, port))
    conn, _ = server.accept()
    print("rank 0 got", conn.recv(100).decode(), flush=True)
else:
    for _ in range(100):
        try:
            sock = socket.create_connection((addr, port))
            break
        except OSError:
            time.sleep(0.1)
    sock.sendall(b"hello from rank 1")
    print("rank 1 sent", flush=True)
"""


def cli(*args: str, timeout: float = 90, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed `traindeck` command (environment inherited: TRAINDECK_HOME...)."""
    done = subprocess.run([traindeck_executable(), *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"traindeck {' '.join(args)} -> {done.returncode}\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def logreg_spec(base: Path, name: str, runtime: str = "local", **params: Any) -> Path:
    """A spec file running the logistic-regression sample (small and quick by default)."""
    parameters: dict[str, Any] = {"train_steps": 30, "lr": 0.1, "log_every": 5, "seed": 7}
    parameters.update(params)
    return write_yaml(base / f"{name}.yaml", {
        "name": name,
        "data": {"paths": [str(BLOBS)]},
        "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                    "code_dir": str(LOGREG), "boot_file": "train.py"}},
        "parameters": parameters,
        "output": str(base / name / "out"),
        "log_dir": str(base / name / "logs"),
        "resources": {"runtime": runtime},
    })


def injected(step: int) -> str:
    """The failure reason of the logistic-regression sample failing at `step`."""
    return (f"exit code 3: train.py: error: injected failure at step {step} "
            f"(fail_at_step={step})")


def script_spec(base: Path, name: str, source: str, runtime: str = "local", *,
                parameters: dict[str, Any] | None = None, nodes: int = 1, gpus: int = 0,
                files: dict[str, str] | None = None,
                resources: dict[str, Any] | None = None) -> Path:
    """A spec whose boot file is `source` (in a code dir of its own); `resources` adds
    to (or replaces) the spec's resources."""
    code = base / name / "code"
    data = base / name / "data"
    code.mkdir(parents=True)
    data.mkdir(parents=True)
    (data / "sample.csv").write_text("x,y\n1,0\n", encoding="utf-8")  # empty data fails
    (code / "train.py").write_text(textwrap.dedent(source), encoding="utf-8")
    for file_name, text in (files or {}).items():
        (code / file_name).write_text(text, encoding="utf-8")
    return write_yaml(base / f"{name}.yaml", {
        "name": name,
        "data": {"paths": [str(data)]},
        "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                    "code_dir": str(code), "boot_file": "train.py"}},
        "parameters": parameters or {},
        "output": str(base / name / "out"),
        "log_dir": str(base / name / "logs"),
        "resources": {"runtime": runtime, "nodes": nodes, "gpus": gpus, **(resources or {})},
    })


def submit(spec: Path) -> dict[str, Any]:
    """`traindeck submit --json SPEC`."""
    return json.loads(cli("submit", "--json", str(spec)).stdout)


def submit_in_process(ctx: Context, spec: Path) -> int:
    """`app.jobs.submit` with the default launcher; returns the version id."""
    from app.jobs import submit as core_submit
    from app.spec import load_spec_file

    raw, base = load_spec_file(spec)
    return core_submit(ctx, raw, base, str(spec)).version_id


def wait(ctx: Context, job: str, timeout: float = 90) -> Version:
    """The version once final."""
    return wait_final(ctx, job, None, timeout)


def current(ctx: Context, job: str) -> Version:
    """The latest version of `job` as stored now."""
    from app.jobs import load_version

    with ctx.db.read() as session:
        return load_version(session, job, None)[1]


def wait_status(ctx: Context, job: str, status: Status, timeout: float = 60,
                predicate: Any = None) -> Version:
    """Poll until the version has `status` (and `predicate(version)` holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        version = current(ctx, job)
        if version.status == status.value and (predicate is None or predicate(version)):
            return version
        if Status(version.status).is_final:
            raise AssertionError(f"{job} ended {version.status}: {version.reason}")
        time.sleep(0.1)
    raise AssertionError(f"{job} never reached {status.value}")


def wait_for(check: Any, timeout: float = 30, what: str = "condition") -> Any:
    """Poll `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def show(job: str) -> dict[str, Any]:
    """`traindeck show JOB --json`: the latest version's record."""
    return json.loads(cli("show", job, "--json").stdout)["versions"][-1]


def log_text(version: Version, rank: int = 0) -> str:
    """A rank's log file."""
    return (Path(version.log_dir) / f"rank-{rank}.log").read_text(encoding="utf-8")


def log_lines(version: Version, rank: int = 0) -> list[str]:
    """A rank's log lines without their timestamps (every line must carry one)."""
    lines = log_text(version, rank).splitlines()
    assert all(STAMPED.match(line) for line in lines), lines
    return [split_timestamp(line)[1] for line in lines]


def running_pids(version: Version) -> list[int]:
    """The local rank pids of a running version (from its handle)."""
    return list(json.loads(version.handle)["pids"])


def same_process_alive(pid: int, start_time: int) -> bool:
    """True while `pid` still names the process that started at `start_time`."""
    stat = proc_stat(pid)
    return stat is not None and stat[2] == start_time and stat[0] not in ("Z", "X")


def point_counts(ctx: Context, version_id: int) -> dict[str, tuple[int, int]]:
    """Per metric: (points, distinct steps) stored for a version."""
    from sqlalchemy import func
    from sqlmodel import select

    from app.models import MetricPointRow

    with ctx.db.read() as session:
        rows = session.exec(
            select(MetricPointRow.name, func.count(), func.count(MetricPointRow.step.distinct()))
            .where(MetricPointRow.version_id == version_id).group_by(MetricPointRow.name)
        ).all()
    return {name: (total, distinct) for name, total, distinct in rows}


def submit_gpu_version(ctx: Context, base: Path, name: str, gpus: int = 1) -> int:
    """`app.jobs.submit` of a script asking for `gpus` GPUs with a launcher that starts
    nothing; returns the version id."""
    from app.jobs import submit as core_submit
    from app.spec import load_spec_file

    raw, spec_base = load_spec_file(script_spec(base, name, "print('hi')\n", gpus=gpus))
    return core_submit(ctx, raw, spec_base, launcher=noop_launcher).version_id


def tiny_wheel(folder: Path, name: str = "tinypkg", version: str = "1.0") -> Path:
    """A pure-Python wheel of one module whose `VALUE` is its version."""
    files = {
        f"{name}/__init__.py": f"VALUE = {version!r}\n".encode(),
        f"{name}-{version}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def digest(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{path},sha256={digest(data)},{len(data)}\n"
                     for path, data in files.items()) + f"{name}-{version}.dist-info/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{name}-{version}.dist-info/RECORD", record)
    return wheel


def engine_with(folder: Path, *wheels: Path) -> str:
    """An engine's interpreter: a virtual environment with `wheels` installed in its own
    site-packages, which also sees this interpreter's packages (pip, pyyaml)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    [site] = folder.glob("lib/python*/site-packages")
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:  # a pure-Python wheel unpacked is installed
            archive.extractall(site)
    (site / "tests_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(folder / "bin" / "python")
