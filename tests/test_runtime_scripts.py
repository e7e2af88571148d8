"""Scripts written the ways real ones are run unchanged through `traindeck submit`, as
local processes and in Docker containers: a strict argparse script called by a full
command, one configured only through its environment, and a ModelArts-style one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import write_yaml
from runtime_helpers import cli, log_text, script_spec, submit, wait

from app.context import Context
from app.store.models import Version

RUNTIMES = ["local", pytest.param("docker", marks=pytest.mark.docker)]

STRICT_ARGPARSE = """\
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("epochs", type=int)
parser.add_argument("batch", type=int)
parser.add_argument("--dry-run", action="store_true")
parser.add_argument("--save", required=True)
args = parser.parse_args()  # any argument it does not know is an error
keys = ["GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "GROUP_WORLD_SIZE",
        "TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS",
        "LOCAL_WORLD_SIZE", "WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
        "PET_NNODES"]
with open(args.save, "w") as f:
    json.dump({"args": vars(args), "cwd": os.getcwd(), "python": sys.executable,
               "env": {k: os.environ.get(k) for k in keys}}, f)
"""

FROM_ENVIRONMENT = """\
import json, os, sys
assert sys.argv[1:] == [], sys.argv
config = {k: os.environ[k] for k in ("MY_EPOCHS", "MY_NAME", "DATA_URL", "TRAIN_URL",
                                     "TRAINDECK_DATA_URL", "TRAINDECK_TRAIN_URL")}
with open(os.path.join(os.environ["TRAIN_URL"], "config.json"), "w") as f:
    json.dump(config, f)
"""

MODELARTS_STYLE = """\
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("--data_url", required=True)
parser.add_argument("--train_url", required=True)
parser.add_argument("--lr", type=float, default=0.01)
args = parser.parse_args()
with open(args.data_url + "sample.csv") as src, open(args.train_url + "copy.csv", "w") as dst:
    dst.write(src.read() + f"lr={args.lr}\\n")
"""


def run_script(ctx: Context, request: pytest.FixtureRequest, tmp: Path, name: str,
               source: str, runtime: str, parameters: dict[str, Any] | None = None,
               **changes: Any) -> Version:
    """Submit a script through the CLI with spec changes (`framework=` merges into the
    framework block) and wait until it ends; it must succeed."""
    if runtime == "docker":
        request.getfixturevalue("engine")  # the image present, containers removed after
    spec_file = script_spec(tmp, name, source, runtime, parameters=parameters)
    raw = yaml.safe_load(spec_file.read_text())
    raw["algorithm"]["framework"].update(changes.pop("framework", {}))
    if "algorithm_compat" in changes:
        raw["algorithm"]["compat"] = changes.pop("algorithm_compat")
    raw["algorithm"]["framework"] = {k: v for k, v in raw["algorithm"]["framework"].items()
                                     if v is not None}
    raw.update(changes)
    submit(write_yaml(spec_file, raw))
    version = wait(ctx, name)
    assert version.status == "succeeded", log_text(version)
    return version


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_strict_argparse_script_called_by_a_command(
        ctx: Context, request: pytest.FixtureRequest, tmp_path: Path, runtime: str) -> None:
    command = ["python", "train.py", "{epochs}", "{batch}", "--dry-run",
               "--save", "{train_url}result.json"]
    version = run_script(ctx, request, tmp_path, f"strict-{runtime}", STRICT_ARGPARSE, runtime,
                         {"epochs": 5, "batch": 32}, framework={"boot_file": None,
                                                                "command": command})
    result = json.loads((Path(version.output) / "result.json").read_text())
    output = "/traindeck/output" if runtime == "docker" else version.output
    assert result["args"] == {"epochs": 5, "batch": 32, "dry_run": True,
                              "save": f"{output}/result.json"}
    # The version's own copy of the code folder (its snapshot) is the working folder.
    code = ctx.settings.data_dir / "versions" / str(version.id) / "code"
    assert result["cwd"] == ("/traindeck/code" if runtime == "docker" else str(code))
    if runtime == "local":  # `python` is the engine's interpreter, found first on PATH
        assert Path(result["python"]).parent == Path(sys.executable).parent
    # One process gets none of torchrun's variables: a script that runs distributed when
    # it finds RANK (nanoGPT's `ddp = int(os.environ.get('RANK', -1)) != -1`) runs as when
    # started by hand. (A distributed version's ranks get them all: see below.)
    assert result["env"] == dict.fromkeys(result["env"])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_script_configured_by_its_environment(
        ctx: Context, request: pytest.FixtureRequest, tmp_path: Path, runtime: str) -> None:
    version = run_script(ctx, request, tmp_path, f"env-{runtime}", FROM_ENVIRONMENT, runtime,
                         {"ignored": 1}, framework={"arguments": "none"},
                         env={"MY_EPOCHS": 3, "MY_NAME": "a b; $(id) `id`"})
    config = json.loads((Path(version.output) / "config.json").read_text())
    data = "/traindeck/data/" if runtime == "docker" else f"{tmp_path}/env-{runtime}/data/"
    output = "/traindeck/output/" if runtime == "docker" else f"{version.output}/"
    assert config == {"MY_EPOCHS": "3", "MY_NAME": "a b; $(id) `id`", "DATA_URL": data,
                      "TRAIN_URL": output, "TRAINDECK_DATA_URL": data,
                      "TRAINDECK_TRAIN_URL": output}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_modelarts_script_joins_folders_with_plus(
        ctx: Context, request: pytest.FixtureRequest, tmp_path: Path, runtime: str) -> None:
    version = run_script(ctx, request, tmp_path, f"ma-{runtime}", MODELARTS_STYLE, runtime,
                         {"lr": 0.5})
    assert (Path(version.output) / "copy.csv").read_text() == "x,y\n1,0\nlr=0.5\n"


TORCHRUN_SCRIPT = """\
import json, os, sys
import torch
import torch.distributed as dist
dist.init_process_group("gloo")
total = torch.tensor([dist.get_rank() + 1])
dist.all_reduce(total)
if dist.get_rank() == 0:
    with open(os.environ["TRAIN_URL"] + "torchrun.json", "w") as f:
        json.dump({"world": dist.get_world_size(), "sum": int(total), "args": sys.argv[1:],
                   "group_rank": os.environ["GROUP_RANK"]}, f)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_a_torchrun_command_runs_locally(ctx: Context, request: pytest.FixtureRequest,
                                         tmp_path: Path) -> None:
    pytest.importorskip("torch")
    command = ["torchrun", "--standalone", "--nproc_per_node=2", "train.py", "{epochs}"]
    version = run_script(ctx, request, tmp_path, "torchrun", TORCHRUN_SCRIPT, "local",
                         {"epochs": 50}, framework={"boot_file": None, "command": command,
                                                    "engine": "pytorch",
                                                    "engine_version": "2.13"})
    result = json.loads((Path(version.output) / "torchrun.json").read_text())
    assert result == {"world": 2, "sum": 3, "args": ["50"], "group_rank": "0"}


MOXING_SCRIPT = """\
import argparse
import moxing as mox
parser = argparse.ArgumentParser()
parser.add_argument("--data_url", required=True)
parser.add_argument("--train_url", required=True)
args, _ = parser.parse_known_args()
mox.file.copy_parallel(args.data_url, "cache/data")
assert mox.file.exists("cache/data/sample.csv"), mox.file.list_directory("cache/data")
mox.file.write(args.train_url + "seen.txt", ",".join(mox.file.list_directory("cache/data")))
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_modelarts_script_using_moxing(
        ctx: Context, request: pytest.FixtureRequest, tmp_path: Path, runtime: str) -> None:
    version = run_script(ctx, request, tmp_path, f"mox-{runtime}", MOXING_SCRIPT, runtime,
                         algorithm_compat="moxing")
    assert (Path(version.output) / "seen.txt").read_text() == "sample.csv"


WRITES_AND_PRINTS = """\
import os, sys
os.makedirs("runs/exp", exist_ok=True)  # as SummaryWriter() and checkpoints do
with open("runs/exp/checkpoint.txt", "w") as f:
    f.write("weights")
for epoch in range(1, 4):
    print(f"epoch {epoch} | loss: {1 / epoch:.3f} | Train-accuracy={0.5 + epoch / 10}")
"""


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_script_writing_into_its_folder_and_printing_metrics(
        ctx: Context, request: pytest.FixtureRequest, tmp_path: Path, runtime: str) -> None:
    version = run_script(ctx, request, tmp_path, f"prints-{runtime}", WRITES_AND_PRINTS,
                         runtime, framework={"arguments": "none"})
    assert not (tmp_path / f"prints-{runtime}" / "code" / "runs").exists()  # the user's folder
    work = ctx.settings.data_dir / "versions" / str(version.id) / "code"
    assert (work / "runs" / "exp" / "checkpoint.txt").read_text() == "weights"
    from app.queries import version_info

    metrics = version_info(ctx.db, f"prints-{runtime}").metrics
    assert metrics["loss"] == pytest.approx(0.333) and metrics["Train-accuracy"] == 0.8


def test_a_failing_script_says_why(ctx: Context, tmp_path: Path) -> None:
    spec = script_spec(tmp_path, "why", STRICT_ARGPARSE)  # the default ModelArts arguments
    submit(spec)
    version = wait(ctx, "why")
    assert version.status == "failed"
    assert version.reason.startswith("exit code 2: train.py: error: ")
    assert "unrecognized arguments: --data_url=" in version.reason or \
           "the following arguments are required" in version.reason


PER_PROCESS = """\
import json, os
keys = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK",
        "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"]
name = os.environ["TRAIN_URL"] + f"rank{os.environ['RANK']}.json"
with open(name, "w") as f:
    json.dump({k: os.environ.get(k) for k in keys}, f)
print("process", os.environ["RANK"], "of", os.environ["WORLD_SIZE"], flush=True)
"""


def test_one_process_per_gpu(ctx: Context, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """`processes_per_node: gpus` starts one process per GPU, each with its own GPU and
    torchrun's per-process variables (local runs: GPUs are declared, there is no driver
    here, and a Docker engine without the NVIDIA runtime cannot hand devices out)."""
    monkeypatch.setenv("TRAINDECK_GPUS", "[0, 1, 2]")
    spec_file = script_spec(tmp_path, "per-gpu", PER_PROCESS, gpus=2)
    raw = yaml.safe_load(spec_file.read_text())
    raw["resources"]["processes_per_node"] = "gpus"
    raw["algorithm"]["framework"]["arguments"] = "none"
    submit(write_yaml(spec_file, raw))
    version = wait(ctx, "per-gpu")
    assert version.status == "succeeded", log_text(version)
    seen = [json.loads((Path(version.output) / f"rank{r}.json").read_text()) for r in (0, 1)]
    granted = version.allocated_gpus.split(",")
    assert [s["CUDA_VISIBLE_DEVICES"] for s in seen] == granted  # one GPU each
    assert {s["CUDA_DEVICE_ORDER"] for s in seen} == {"PCI_BUS_ID"}  # as NVML numbers them
    assert [(s["RANK"], s["LOCAL_RANK"]) for s in seen] == [("0", "0"), ("1", "1")]
    assert {(s["WORLD_SIZE"], s["LOCAL_WORLD_SIZE"], s["NODE_RANK"]) for s in seen} == \
           {("2", "2", "0")}
    logs = sorted(p.name for p in Path(version.log_dir).glob("rank-*.log"))
    assert logs == ["rank-0.log", "rank-1.log"]


def test_processes_that_cannot_share_the_gpus_are_refused(tmp_path: Path) -> None:
    spec_file = script_spec(tmp_path, "uneven", PER_PROCESS, gpus=3)
    raw = yaml.safe_load(spec_file.read_text())
    raw["resources"]["processes_per_node"] = 2
    result = cli("validate", str(write_yaml(spec_file, raw)), check=False)
    assert result.returncode != 0
    assert "processes_per_node: 3 GPU(s) per node cannot be shared evenly by 2 processes" \
        in result.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_two_processes_per_node_without_gpus(
        ctx: Context, request: pytest.FixtureRequest, tmp_path: Path, runtime: str) -> None:
    version = run_script(ctx, request, tmp_path, f"two-{runtime}", PER_PROCESS, runtime,
                         framework={"arguments": "none"},
                         resources={"runtime": runtime, "processes_per_node": 2})
    seen = [json.loads((Path(version.output) / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(s["RANK"], s["LOCAL_RANK"], s["WORLD_SIZE"]) for s in seen] == [
        ("0", "0", "2"), ("1", "1", "2")]


LIMITS = """\
import json, os, resource
soft, _ = resource.getrlimit(resource.RLIMIT_AS)
with open(os.environ["TRAIN_URL"] + "limits.json", "w") as f:
    json.dump({"cores": len(os.sched_getaffinity(0)), "address_space": soft}, f)
"""


def test_local_limits_apply_to_the_rank(ctx: Context, request: pytest.FixtureRequest,
                                        tmp_path: Path) -> None:
    version = run_script(ctx, request, tmp_path, "limited", LIMITS, "local",
                         framework={"arguments": "none"},
                         resources={"runtime": "local", "cpus": 1, "memory": "2g"})
    seen = json.loads((Path(version.output) / "limits.json").read_text())
    assert seen == {"cores": 1, "address_space": 2 * 1024 ** 3}
    assert ("[traindeck] limits per rank: 1 CPU(s) (CPU affinity), 2.0 GiB memory "
            "(address space of each process; not applied to GPU ranks)") in log_text(version)


@pytest.mark.slow
def test_a_plain_torchrun_command_on_two_nodes_joins_one_job(ctx: Context, tmp_path: Path
                                                             ) -> None:
    """As Kubeflow's PyTorchJob runs it: `torchrun train.py` on each node, with nothing
    else on the command line; torchrun takes the nodes from the PET_* variables."""
    pytest.importorskip("torch")
    spec_file = script_spec(tmp_path, "torchrun-nodes", TORCHRUN_SCRIPT, nodes=2)
    raw = yaml.safe_load(spec_file.read_text())
    raw["algorithm"]["framework"].update(
        {"boot_file": None, "command": ["torchrun", "train.py"], "engine": "pytorch",
         "engine_version": "2.13"})
    raw["algorithm"]["framework"] = {k: v for k, v in raw["algorithm"]["framework"].items()
                                     if v is not None}
    submit(write_yaml(spec_file, raw))
    version = wait(ctx, "torchrun-nodes", timeout=180)
    assert version.status == "succeeded", log_text(version)
    result = json.loads((Path(version.output) / "torchrun.json").read_text())
    assert (result["world"], result["sum"]) == (2, 3)  # one job of two processes
