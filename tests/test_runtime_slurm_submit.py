"""A user's path to a Slurm pool, against the real single-host Slurm
(`scripts/ensure-slurm`): a `kind: slurm` pool in the config, `traindeck submit`, and
what arrives back. Skips without a controller, fails when `TRAINDECK_REQUIRE_SLURM=1`.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
from helpers import SLURM_PARTITION, traindeck_executable
from runtime_helpers import cli, point_counts, script_spec, submit

from app.context import Context

POOLS = json.dumps([{"name": "cluster", "kind": "slurm", "partition": SLURM_PARTITION}])

GLOO_BOOT = """\
    import json, os
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")  # MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)
    print(f"rank {rank} of {world} all-reduced {total.item():g}", flush=True)
    with open(os.environ["TRAINDECK_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"step": 1, "reduced": total.item(), "rank": rank}) + "\\n")
    dist.destroy_process_group()
"""


@pytest.fixture
def cluster(slurm: None, home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose config has the Slurm pool `cluster` (partition `debug`)."""
    monkeypatch.setenv("TRAINDECK_POOLS", POOLS)
    return home


def test_two_ranks_rendezvous_with_torch_distributed_and_report_back(
        cluster: Path, tmp_path: Path) -> None:
    spec = script_spec(tmp_path, "gloo", GLOO_BOOT,
                       resources={"pool": "cluster", "processes_per_node": 2})
    submitted = submit(spec)
    done = cli("wait", "gloo", "--timeout", "150", timeout=180, check=False)
    shown = json.loads(cli("show", "gloo", "--json").stdout)["versions"][-1]
    assert done.returncode == 0, shown
    assert (shown["status"], shown["runtime"]) == ("succeeded", "slurm")
    logs = cli("logs", "gloo").stdout
    for rank in (0, 1):
        assert f"rank {rank} of 2 all-reduced 3" in logs  # 1 + 2, from both ranks
    ctx = Context.open()
    assert point_counts(ctx, submitted["id"])["reduced"][0] == 2  # one point per rank


def test_a_folder_the_nodes_do_not_see_fails_the_version_naming_path_and_node(
        cluster: Path, tmp_path: Path) -> None:
    """Traindeck's folders (home, code, logs) lie in `hidden`, a folder that only this
    test's processes see filled (a bind mount in a mount namespace of their own): the
    Slurm job, started by slurmd, sees it empty, as a node that does not share the
    path would. The version fails saying which path and which node, before any rank
    starts."""
    hidden, staged = tmp_path / "hidden", tmp_path / "staged"
    spec = script_spec(hidden, "unseen", "print('never printed', flush=True)\n",
                       resources={"pool": "cluster"})
    hidden.rename(staged)
    hidden.mkdir()
    script = (f"mount --bind {shlex.quote(str(staged))} {shlex.quote(str(hidden))} && "
              f"{shlex.join([traindeck_executable(), 'submit', str(spec)])} >&2 && "
              f"{shlex.join([traindeck_executable(), 'wait', 'unseen', '--timeout', '90'])} "
              f">&2; {shlex.join([traindeck_executable(), 'show', 'unseen', '--json'])}")
    env = {**os.environ, "TRAINDECK_HOME": str(hidden / "home")}
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=150, env=env, check=False)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)["versions"][-1]
    node = socket.gethostname().split(".")[0]
    assert shown["status"] == "failed", shown
    assert shown["reason"].startswith(f"node {node} does not see {hidden}/"), shown["reason"]
    assert "Traindeck's folder of the version" in shown["reason"]
    assert shown["reason"].endswith(f"share it with the nodes of partition {SLURM_PARTITION}")
    assert not any(hidden.iterdir())  # as Slurm saw it: nothing was written there
