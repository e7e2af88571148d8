"""Containers on Slurm, against the real single-host Slurm (`scripts/ensure-slurm`).

Neither Pyxis/enroot nor Apptainer can be installed here, so two small stand-ins are put
first on the PATH (what is faked, exactly):

* `apptainer`: accepts only `exec [--nv] --no-home --pwd DIR (--bind SRC:DST:ro|rw)...
  IMAGE CMD...`, records its arguments (JSON lines), and runs CMD on this host;
* `srun`: a wrapper of the real `srun`. `srun --help` prints the real help plus Pyxis's
  `--container-image` line; otherwise it takes Pyxis's `--container-image`,
  `--container-mounts` and `--container-workdir` off the command line, records them, and
  runs the real `srun` with the rest, every task under the same stand-in.

The stand-in "container" is this host's root, seen again in a mount namespace of its own
with the binds laid over a fresh `/traindeck` (read-only where asked, as the real runtimes
do), then `chroot` into it: so the ranks really see Traindeck's /traindeck mapping, and
nothing else of Docker's. The image is not pulled: the host's Python stands in for the
image's `python3`. Slurm itself (sbatch, srun, task ids, states) is the real one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import SLURM_PARTITION, write_yaml
from runtime_helpers import cli, point_counts, script_spec, submit

from app.config import PoolSettings
from app.context import Context
from app.errors import FieldError
from app.jobs import resolve_runtime
from app.runtime.executors.base import LaunchPlan, Mount, RankPlan
from app.runtime.executors.slurm import container_argv, container_runtime
from app.specs.spec import JobSpec

NAMESPACE = r"""
set -eu
root=$1 workdir=$2; shift 2
mount -t tmpfs stand-in "$root"
top=$(echo "$root" | cut -d/ -f2)
for d in /*; do
    if [ -L "$d" ]; then cp -P "$d" "$root$d"; continue; fi
    [ -d "$d" ] || continue
    mkdir "$root$d"
    if [ "$d" = "/$top" ]; then mount --bind "$d" "$root$d"; else mount --rbind "$d" "$root$d"; fi
done
while [ "$1" != -- ]; do
    src=${1%%:*} rest=${1#*:}; dst=${rest%%:*} mode=${rest#*:}; shift
    if [ -d "$src" ]; then mkdir -p "$root$dst"
    else mkdir -p "$(dirname "$root$dst")"; touch "$root$dst"; fi
    mount --bind "$src" "$root$dst"
    if [ "$mode" = ro ]; then mount -o remount,bind,ro "$root$dst"; fi
done
shift
exec chroot "$root" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
"""
"""Run CMD with /traindeck bind-mapped: ROOT WORKDIR SRC:DST:MODE... -- CMD..."""

STAND_IN = """\
#!{python}
# A stand-in for a container runtime (see tests/test_runtime_slurm_containers.py).
import json, os, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
NAMESPACE = {namespace!r}
REAL_SRUN = {real_srun!r}
PYTHON = {python!r}


def record(what, **fields):
    with open(os.path.join(HERE, "calls.jsonl"), "a") as f:
        f.write(json.dumps(dict(fields, what=what)) + "\\n")


def contain(workdir, binds, argv):
    root = tempfile.mkdtemp(dir=HERE, prefix="root.")
    py = os.path.join(HERE, "py")  # the image's python3, as it were
    os.environ["PATH"] = py + os.pathsep + os.environ.get("PATH", "")
    os.execvp("unshare", ["unshare", "--mount", "--propagation", "private", "/bin/sh",
                          "-c", NAMESPACE, "stand-in", root, workdir, *binds, "--", *argv])


def fail(message):
    print(f"{{os.path.basename(sys.argv[0])}} stand-in: {{message}}", file=sys.stderr)
    sys.exit(90)


def apptainer(args):
    if args[:1] != ["exec"]:
        fail("only `exec`")
    args, binds, workdir, flags = args[1:], [], "/", []
    while args and args[0].startswith("-"):
        if args[0] in ("--nv", "--no-home"):
            flags.append(args.pop(0))
        elif args[0] in ("--pwd", "--bind") and len(args) > 1:
            option, value, args = args[0], args[1], args[2:]
            if option == "--pwd":
                workdir = value
            elif value.count(":") != 2 or value.rsplit(":", 1)[1] not in ("ro", "rw"):
                fail(f"--bind {{value}}: not SRC:DST:ro|rw")
            else:
                binds.append(value)
        else:
            fail(f"unexpected option {{args[0]}}")
    record("apptainer", image=args[0], flags=flags, pwd=workdir, binds=binds, argv=args[1:])
    contain(workdir, binds, args[1:])


def srun(args):
    if "--help" in args:
        help = subprocess.run([REAL_SRUN, "--help"], capture_output=True, text=True).stdout
        print(help + "      --container-image=[USER@][REGISTRY#]IMAGE[:TAG]|PATH\\n"
              "                              [pyxis] the image to use for the container")
        return
    options, pyxis = [], {{}}
    while args and args[0].startswith("-"):
        name, _, value = args.pop(0).partition("=")
        if name.startswith("--container-"):
            pyxis[name] = value
        else:
            options.append(f"{{name}}={{value}}" if value else name)
    if not pyxis:
        os.execv(REAL_SRUN, [REAL_SRUN, *options, *args])
    record("pyxis", options=pyxis, argv=args)
    binds = [m if m.count(":") == 2 else m + ":rw"
             for m in pyxis["--container-mounts"].split(",")]
    os.execv(REAL_SRUN, [REAL_SRUN, *options, PYTHON, __file__, "--contain",
                         pyxis.get("--container-workdir", "/"), *binds, "--", *args])


if sys.argv[1:2] == ["--contain"]:  # a task of the fake Pyxis srun, on its node
    end = sys.argv.index("--")
    contain(sys.argv[2], sys.argv[3:end], sys.argv[end + 1:])
elif os.path.basename(sys.argv[0]) == "apptainer":
    apptainer(sys.argv[1:])
else:
    srun(sys.argv[1:])
"""

PROBE = """\
    import json, os, sys
    rank = os.environ.get("RANK", "0")  # a job of one process has no rendezvous
    try:
        open("/traindeck/lib/app/written-by-a-rank", "w")
        lib = "writable"
    except OSError:
        lib = "read-only"
    seen = {"rank": rank, "cwd": os.getcwd(), "lib": lib,
            "data": sorted(os.listdir("/traindeck/data")), "home": os.environ["HOME"],
            "world": os.environ.get("WORLD_SIZE"), "master": os.environ.get("MASTER_ADDR"),
            "image": os.environ.get("TRAINDECK_IMAGE")}
    with open(f"/traindeck/output/seen-{rank}.json", "w") as f:
        json.dump(seen, f)
    with open(os.environ["TRAINDECK_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"step": 1, "loss": 0.5}) + "\\n")
    print(f"rank {rank} ran in {os.getcwd()}", flush=True)
    sys.exit(int(os.environ.get("EXIT", "0")))
"""


def stand_ins(folder: Path, *names: str) -> Path:
    """`folder` with the stand-ins `names` (`apptainer`, `srun`) and a `py` folder whose
    `python3`/`python` is this Python's own interpreter (the image's, as it were)."""
    folder.mkdir(parents=True, exist_ok=True)
    real_srun = shutil.which("srun") or "srun"
    python = os.path.realpath(sys._base_executable)
    text = STAND_IN.format(python=python, namespace=NAMESPACE, real_srun=real_srun)
    for name in names:
        (folder / name).write_text(text, encoding="utf-8")
        (folder / name).chmod(0o755)
    (folder / "py").mkdir(exist_ok=True)
    for name in ("python3", "python"):
        if not (folder / "py" / name).exists():
            (folder / "py" / name).symlink_to(python)
    return folder


def calls(folder: Path) -> list[dict[str, Any]]:
    path = folder / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def cluster(monkeypatch: pytest.MonkeyPatch, fakes: Path | None, **pool: Any) -> None:
    """The Slurm pool `cluster` in the config; `fakes` first on the PATH."""
    monkeypatch.setenv("TRAINDECK_POOLS", json.dumps(
        [{"name": "cluster", "kind": "slurm", "partition": SLURM_PARTITION, **pool}]))
    if fakes is not None:
        monkeypatch.setenv("PATH", f"{fakes}{os.pathsep}{os.environ['PATH']}")


def slurm_pool(**fields: Any) -> PoolSettings:
    return PoolSettings(name="cluster", kind="slurm", partition=SLURM_PARTITION, **fields)


# -- without a controller ---------------------------------------------------------------------


def test_the_container_runtime_is_detected_per_pool(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    nothing, apptainer = tmp_path / "nothing", stand_ins(tmp_path / "a", "apptainer")
    both = stand_ins(tmp_path / "b", "apptainer", "srun")
    nothing.mkdir()
    monkeypatch.setenv("PATH", str(nothing))  # no srun, no apptainer
    assert container_runtime(slurm_pool()) == "none"
    assert container_runtime(slurm_pool(container="apptainer")) == "apptainer"  # as set
    real = os.path.dirname(shutil.which("srun") or "/usr/bin/srun")
    monkeypatch.setenv("PATH", f"{apptainer}{os.pathsep}{real}")
    assert container_runtime(slurm_pool()) == "apptainer"
    assert container_runtime(slurm_pool(container="none")) == "none"
    monkeypatch.setenv("PATH", f"{both}{os.pathsep}{real}")
    assert container_runtime(slurm_pool()) == "pyxis"  # srun --help lists --container-image
    assert container_runtime(PoolSettings(name="public", kind="public")) == "none"


def test_the_generated_container_commands(tmp_path: Path) -> None:
    job = tmp_path / "job"
    plan = LaunchPlan(
        job="j", version="V001", version_id=1, image="registry.example.org/lab/train:1",
        workdir="/traindeck/code", ranks=[RankPlan(0, ["python", "x.py"], {}, "r0")],
        mounts=[Mount(tmp_path / "code", "/traindeck/code", read_only=False),
                Mount(job, "/traindeck/job", read_only=False),
                Mount(tmp_path / "data", "/traindeck/data")], user=(0, 0))
    tasks = tmp_path / "slurm-tasks.json"
    app_dir = str(Path(__file__).resolve().parents[1] / "app")
    argv = container_argv("pyxis", plan, tasks, gpus=True)
    assert argv[:3] == [
        "--container-image=registry.example.org#lab/train:1",
        f"--container-mounts={tmp_path}/code:/traindeck/code,{job}:/traindeck/job,"
        f"{tmp_path}/data:/traindeck/data:ro,{app_dir}:/traindeck/lib/app:ro,"
        f"{tasks}:/traindeck/lib/slurm-tasks.json:ro",
        "--container-workdir=/traindeck/code"]
    assert argv[3:7] == ["python3", "-I", "-S", "-c"]
    assert argv[-2:] == ["/traindeck/lib", "/traindeck/lib/slurm-tasks.json"]
    argv = container_argv("apptainer", plan, tasks, gpus=True)
    assert argv[:6] == ["apptainer", "exec", "--nv", "--no-home", "--pwd", "/traindeck/code"]
    assert argv[6:16:2] == ["--bind"] * 5
    assert f"{app_dir}:/traindeck/lib/app:ro" in argv and f"{job}:/traindeck/job:rw" in argv
    assert argv[16:18] == ["docker://registry.example.org/lab/train:1", "python3"]
    assert "--nv" not in container_argv("apptainer", plan, tasks, gpus=False)
    sif = LaunchPlan(**{**plan.__dict__, "image": "/images/train.sif"})
    assert "/images/train.sif" in container_argv("apptainer", sif, tasks, gpus=False)
    odd = LaunchPlan(**{**plan.__dict__, "mounts": [Mount(tmp_path / "a,b", "/traindeck/data")]})
    with pytest.raises(Exception, match=r"a,b: a path with ',' or ':' cannot be mounted"):
        container_argv("pyxis", odd, tasks, gpus=False)


def test_a_custom_image_needs_a_container_runtime_in_a_slurm_pool(
        ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = JobSpec.model_validate({
        "name": "img", "data": {"paths": [str(tmp_path)]}, "output": str(tmp_path / "o"),
        "algorithm": {"image": {"name": "lab/train:1", "command": ["python", "t.py"]}},
        "resources": {"pool": "cluster"}})
    def with_pool(**fields: Any) -> Context:
        return Context(ctx.settings.model_copy(update={"pools": [
            *ctx.settings.pools, slurm_pool(**fields)]}), ctx.db)

    with pytest.raises(FieldError, match=r"resources.pool: pool 'cluster' is a Slurm "
                       r"partition without a container runtime \(Pyxis or Apptainer\)"):
        resolve_runtime(with_pool(container="none"), spec)
    resolved = resolve_runtime(with_pool(container="apptainer"), spec)
    assert resolved.resources.runtime == "docker"  # as the spec's rules want it


# -- against the real Slurm ------------------------------------------------------------------


def test_an_engines_image_runs_through_apptainer_with_the_docker_mapping(
        slurm: None, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fakes = stand_ins(tmp_path / "fakes", "apptainer")
    cluster(monkeypatch, fakes)
    assert "images through apptainer" in cli("pools").stdout
    spec = script_spec(tmp_path, "boxed", PROBE,
                       resources={"pool": "cluster", "processes_per_node": 2})
    submitted = submit(spec)
    done = cli("wait", "boxed", "--timeout", "120", timeout=150, check=False)
    shown = json.loads(cli("show", "boxed", "--json").stdout)["versions"][-1]
    assert done.returncode == 0, (shown, (tmp_path / "fakes").iterdir())
    assert (shown["status"], shown["runtime"]) == ("succeeded", "slurm")
    logs = cli("logs", "boxed").stdout
    for rank in (0, 1):
        assert logs.count(f"rank {rank} ran in /traindeck/code") == 1  # exactly once
        seen = json.loads((tmp_path / "boxed" / "out" / "V001" / f"seen-{rank}.json").read_text())
        assert seen == {"rank": str(rank), "cwd": "/traindeck/code", "lib": "read-only",
                        "data": ["sample.csv"], "home": "/traindeck/job/home", "world": "2",
                        "master": seen["master"], "image": "python:3.11-slim"}
    assert point_counts(Context.open(), submitted["id"])["loss"][0] == 2
    recorded = calls(fakes)
    assert len(recorded) == 2  # one per task
    for call in recorded:
        assert call["image"] == "docker://python:3.11-slim" and call["pwd"] == "/traindeck/code"
        assert call["flags"] == ["--no-home"]  # no GPUs asked for: no --nv
        targets = {b.split(":")[1]: b.split(":")[2] for b in call["binds"]}
        assert targets == {"/traindeck/code": "rw", "/traindeck/data": "ro",
                           "/traindeck/output": "rw", "/traindeck/job": "rw",
                           "/traindeck/lib/app": "ro", "/traindeck/lib/slurm-tasks.json": "ro"}


def test_a_custom_image_runs_through_pyxis_and_its_exit_code_arrives(
        slurm: None, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fakes = stand_ins(tmp_path / "fakes", "srun")
    cluster(monkeypatch, fakes)
    rows = json.loads(cli("pools", "--json").stdout)
    assert rows[-1]["container"] == "pyxis"
    code = tmp_path / "custom" / "code"
    code.mkdir(parents=True)
    (code / "train.py").write_text(textwrap.dedent(PROBE), encoding="utf-8")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sample.csv").write_text("x\n1\n", encoding="utf-8")
    spec = write_yaml(tmp_path / "custom.yaml", {
        "name": "custom", "data": {"paths": [str(tmp_path / "data")]},
        "algorithm": {"image": {"name": "lab/train:1", "code_dir": str(code),
                                "command": ["python", "/traindeck/code/train.py"]}},
        "env": {"EXIT": "3"}, "output": str(tmp_path / "custom" / "out"),
        "resources": {"pool": "cluster"}})
    submit(spec)
    cli("wait", "custom", "--timeout", "120", timeout=150, check=False)
    shown = json.loads(cli("show", "custom", "--json").stdout)["versions"][-1]
    assert (shown["status"], shown["exit_code"]) == ("failed", 3), shown
    assert "rank 0 ran in /traindeck/code" in cli("logs", "custom").stdout
    seen = json.loads((tmp_path / "custom" / "out" / "V001" / "seen-0.json").read_text())
    assert (seen["lib"], seen["image"]) == ("read-only", "lab/train:1")
    assert seen["world"] is None  # one process: none of torchrun's variables
    (call,) = calls(fakes)
    assert call["what"] == "pyxis" and call["options"]["--container-image"] == "lab/train:1"
    assert call["options"]["--container-workdir"] == "/traindeck/code"
    assert call["argv"][:4] == ["python3", "-I", "-S", "-c"]


def test_submit_and_validate_refuse_what_the_partition_can_never_give(
        slurm: None, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster(monkeypatch, None)
    spec = script_spec(tmp_path, "big", "print(1)\n", nodes=2,
                       resources={"pool": "cluster"})
    for command in ("validate", "submit"):
        done = cli(command, str(spec), check=False)
        assert done.returncode != 0
        assert done.stderr.splitlines() == [
            f"error: {spec}: resources.nodes: partition {SLURM_PARTITION} has 1 node(s); "
            "2 asked for"], done.stderr
    assert cli("show", "big", check=False).returncode != 0  # no job made


def test_stop_of_a_running_container_version(
        slurm: None, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ranks in the container get the stop's SIGTERM (Slurm's signal to the step,
    passed on by the stand-in as a runtime does) and the version ends `stopped`."""
    cluster(monkeypatch, stand_ins(tmp_path / "fakes", "apptainer"))
    spec = script_spec(tmp_path, "held", "import time\nprint('ready', flush=True)\n"
                       "time.sleep(600)\n", resources={"pool": "cluster"})
    submit(spec)
    try:
        deadline = time.monotonic() + 60
        while "ready" not in cli("logs", "held").stdout:
            assert time.monotonic() < deadline, "the rank did not start in 60s"
            time.sleep(0.5)
        cli("stop", "held", "--version", "V001")
        cli("wait", "held", "--timeout", "60", timeout=90, check=False)
        shown = json.loads(cli("show", "held", "--json").stdout)["versions"][-1]
        assert (shown["status"], shown["reason"]) == ("stopped", "stopped by user"), shown
    finally:
        subprocess.run(["scancel", "--name=traindeck:held:V001"], capture_output=True,
                       timeout=30)
