"""One task of a version's Slurm job step: it becomes the rank wrapper of its rank.

Standard library only (with `app.runtime.rankrun` and `app.logs`, stdlib too), and
Python 3.8 or newer: a task runs with the engine's interpreter on a node, or, in a
pool with a container runtime, with the image's `python3` inside the container, where
Traindeck's package is mounted read-only at `/traindeck/lib/app` as in Docker.

The tasks file (written by `app.runtime.executors.slurm`) lists each rank's argv,
environment, log and status file; the task takes the entry of `SLURM_PROCID`, adds the
torchrun variables derived from Slurm's task ids, and runs the wrapper.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

MASTER_PORT_BASE = 20000
"""`MASTER_PORT` is this plus the job id modulo 20000: the same on every node, and
different for jobs that share a node."""
RUNNER = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from app.runtime.slurmtask import run_task; "
          "raise SystemExit(run_task(sys.argv[2]))")
"""The Python each task runs: the folder holding `app` and the tasks file come as
arguments."""


def first_host(nodelist: str) -> str:
    """The first host of a Slurm host list (`gpu[03-05,9],cpu1` → `gpu03`)."""
    match = re.match(r"([^,\[]*)(?:\[([^,\-\]]+))?", nodelist.strip())
    return (match.group(1) + (match.group(2) or "")) if match else ""


def slurm_rank_env(env: Mapping[str, str]) -> dict[str, str]:
    """The torchrun variables of the task whose Slurm environment is `env` (none for a
    job of one task), and the GPUs it sees."""
    rank, world = env["SLURM_PROCID"], env["SLURM_NTASKS"]
    nodes = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or "1"
    node = env.get("SLURM_NODEID", "0")
    master = first_host(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or "")
    port = str(MASTER_PORT_BASE + int(env.get("SLURM_JOB_ID") or 0) % 20000)
    local, per_node = int(env.get("SLURM_LOCALID", "0")), int(world) // int(nodes)
    # Slurm grants a node's GPUs to the whole step: each process of a node that has
    # as many GPUs as processes (or a multiple) sees its own share, as locally.
    gpus = [g for g in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    share = len(gpus) // per_node if per_node and len(gpus) % per_node == 0 else 0
    out = {"CUDA_VISIBLE_DEVICES": (",".join(gpus[local * share:(local + 1) * share])
                                    if share else ",".join(gpus))}
    if world == "1":  # one process gets none of torchrun's variables, as locally
        return out
    return {
        "RANK": rank, "LOCAL_RANK": str(local), "WORLD_SIZE": world,
        "NODE_RANK": node, "GROUP_RANK": node, "ROLE_RANK": rank, "ROLE_WORLD_SIZE": world,
        "GROUP_WORLD_SIZE": nodes, "LOCAL_WORLD_SIZE": str(per_node),
        "MASTER_ADDR": master or "127.0.0.1", "MASTER_PORT": port,
        "PET_NNODES": nodes, "PET_NODE_RANK": node,
        "PET_MASTER_ADDR": master or "127.0.0.1", "PET_MASTER_PORT": port, **out,
    }


def run_task(tasks_file: str) -> int:
    """One task of the job's step: become the rank wrapper of rank `SLURM_PROCID`."""
    from app.runtime import rankrun

    tasks = json.loads(Path(tasks_file).read_text(encoding="utf-8"))
    task = tasks["ranks"][int(os.environ["SLURM_PROCID"])]
    env = {**os.environ, **task["env"], **slurm_rank_env(os.environ)}
    os.environ.clear()
    os.environ.update(env)  # the rank inherits it
    os.chdir(tasks["workdir"])
    return rankrun.run(Path(task["log"]), Path(task["status"]), float(tasks["grace"]),
                       task["argv"])
