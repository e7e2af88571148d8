"""Runs a version in a Slurm pool as one Slurm job (`sbatch`), every rank under `srun`.

Slurm schedules, Traindeck watches. The job's batch script is two fixed lines: a check
that the node sees Traindeck's folders (`SEES_FOLDERS`; a version whose folder a node
does not see fails naming both), then `exec srun CHECK PYTHON -P -c RUNNER TRAINDECK_ROOT
TASKS.json >>slurm.out 2>&1`, every word of it fixed text or a path Traindeck chose,
quoted with `shlex.quote`; what the ranks run (argv, environment, log and status files)
travels in the JSON file, so run parameters never pass through a shell. Each task of the
step reads its rank's entry (`SLURM_PROCID`) and becomes the local rank wrapper
(`app.runtime.rankrun`, through `app.runtime.slurmtask`) for it, with the torchrun
variables taken from Slurm's task ids and `MASTER_ADDR` the first node of the
allocation. The wrapper writes the stamped log and the exit status file into
Traindeck's folder, which the nodes share with the host that submits, exactly as a
local rank does.

In a pool with a container runtime (`container_runtime`: Pyxis or Apptainer), a version
whose algorithm has an image runs each task in it (`container_argv`), planned with
Docker's /traindeck mapping: the image's `python3` runs the same task code
(`app.runtime.slurmtask`) from Traindeck's package mounted read-only, and the wrapper
writes the log and the status file into the job's folder, as in Docker
(`logs_in_job_folder`: the supervisor copies the log).

The handle is the Slurm job id, so any supervisor (or `reconcile`) adopts the job
again. How a job ended comes from the ranks' status files, and from Slurm's state
(`squeue`, or `sacct` once the controller has forgotten the job) for what the ranks
cannot say themselves: the time limit, a node failure, memory, preemption.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.runtime.executors.base import Executor, ExecutorError, Handle, LaunchPlan, RankExit
from app.runtime.executors.docker import WRAPPER_LIB
from app.runtime.executors.local import STOP_MARGIN_SECONDS, status_path
from app.runtime.rankrun import SPAWN_FAILED, read_status
from app.runtime.slurmtask import RUNNER, first_host

if TYPE_CHECKING:
    from app.config import PoolSettings, Settings

TASKS_FILE = "slurm-tasks.json"
JOB_IN_CONTAINER = "/traindeck/job"
"""Where a container sees the job's folder (as `app.runtime.plan` maps it for Docker)."""
TASKS_IN_CONTAINER = "/traindeck/lib/slurm-tasks.json"
"""Where a container task sees the tasks file (read-only, beside Traindeck's package)."""
SCRIPT_FILE = "slurm-batch.sh"
OUTPUT_FILE = "slurm.out"
"""srun's own messages (not the ranks' output, which goes to their logs)."""
COMMAND_SECONDS = 30.0
"""How long one Slurm command may take before the controller counts as unreachable."""
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "RESIZING",
          "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SIGNALING",
          "STAGE_OUT", "STOPPED"}
"""Slurm job states of a job that has not ended."""
SETTLE_SECONDS = 10.0
"""How long `poll` waits for Slurm to end a job whose ranks have all ended."""
ENDED_BY_SLURM = {
    "TIMEOUT": "time limit reached (Slurm TIMEOUT)",
    "NODE_FAIL": "a node of the job failed (Slurm NODE_FAIL)",
    "OUT_OF_MEMORY": "out of memory (Slurm OUT_OF_MEMORY)",
    "PREEMPTED": "preempted by another job (Slurm PREEMPTED)",
    "BOOT_FAIL": "a node failed to boot (Slurm BOOT_FAIL)",
    "DEADLINE": "deadline reached (Slurm DEADLINE)",
}
"""Final states in which Slurm, not the ranks, ended the job: the failure reason."""
TRAINDECK_ROOT = str(Path(__file__).resolve().parents[3])
"""The folder `app` is imported from: the tasks import it from there too."""
UNSHARED_EXIT = 100
"""Exit code of a batch script or task whose node does not see folder n of the
handle's `shared` list: this plus n."""
SEES_FOLDERS = (f'i={UNSHARED_EXIT}; while [ "$1" != -- ]; do [ -d "$1" ] || exit $i; '
                'i=$((i+1)); shift; done; shift; exec "$@"')
"""`sh -c` text that checks the folders given as arguments up to `--`, then runs the rest:
fixed text, the paths are arguments, so nothing Traindeck writes is read as shell."""
QUEUE_REASONS = {
    "Resources": "waiting for resources in partition {p}",
    "Priority": "waiting behind higher-priority jobs in partition {p}",
    "None": "waiting to be scheduled in partition {p}",
    "Dependency": "waiting for a job it depends on",
    "BeginTime": "waiting for its start time",
    "JobHeldUser": "held by its user (scontrol release)",
    "JobHeldAdmin": "held by an administrator",
    "PartitionDown": "partition {p} is down",
    "PartitionInactive": "partition {p} is inactive",
    "PartitionNodeLimit": "more nodes than partition {p} allows",
    "PartitionTimeLimit": "its time limit is above partition {p}'s",
    "ReqNodeNotAvail": "the nodes it needs are not available",
    "Reservation": "waiting for its reservation",
}
"""Slurm's pending reasons (`squeue %r`) in words; `{p}` is the partition."""


@dataclass(frozen=True)
class SlurmState:
    """What Slurm says about a job."""

    state: str
    """The base state: `PENDING`, `RUNNING`, `TIMEOUT`, ... (`CANCELLED by 0` → `CANCELLED`)."""
    reason: str
    partition: str

    @property
    def active(self) -> bool:
        """True while the job has not ended."""
        return self.state in ACTIVE


def _slurm(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a Slurm command; ExecutorError when it is missing, hangs or (`check`) fails."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_SECONDS,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise ExecutorError(f"slurm: {argv[0]} not found (is Slurm installed here?)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ExecutorError(f"slurm: {argv[0]} did not answer in {COMMAND_SECONDS:.0f}s"
                            ) from exc
    if check and done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ExecutorError(f"slurm: {argv[0]}: {lines[-1] if lines else 'failed'}")
    return done


def job_state(job_id: str) -> SlurmState | None:
    """Slurm's state of a job: from the controller (`squeue`), else from accounting
    (`sacct`); None when neither knows it."""
    done = _slurm(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%r|%P"], check=False)
    if done.returncode != 0 and "Invalid job id" not in done.stderr:
        lines = done.stderr.strip().splitlines()
        raise ExecutorError(f"slurm: squeue: {lines[-1] if lines else 'failed'}")
    line = done.stdout.strip().splitlines()[:1]
    if not line:
        acct = _slurm(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,Reason,Partition"],
                      check=False)
        line = acct.stdout.strip().splitlines()[:1] if acct.returncode == 0 else []
    if not line:
        return None
    state, reason, partition = [*line[0].split("|"), "", ""][:3]
    return SlurmState(state.split()[0] if state else "UNKNOWN", reason, partition)


@dataclass(frozen=True)
class PartitionUsage:
    """A partition as `traindeck pools` shows it: from the controller, now."""

    nodes: int
    gpus_total: int
    gpus_allocated: int
    pending_jobs: int
    gpus_per_node: int = 0
    """The most GPUs one node of the partition has."""
    max_nodes: int | None = None
    """The most nodes one job may have there (the partition's limit); None: no limit."""

    @property
    def gpus_free(self) -> int:
        """GPUs no job holds now."""
        return max(0, self.gpus_total - self.gpus_allocated)


def _gpu_count(gres: str) -> int:
    """GPUs in a `sinfo` gres field (`gpu:a100:4(S:0-1),shard:8` → 4)."""
    items = re.sub(r"\([^)]*\)", "", gres).split(",")
    return sum(int(i.rsplit(":", 1)[1]) for i in items
               if i.startswith("gpu:") and i.rsplit(":", 1)[1].isdigit())


def partition_usage(partition: str) -> PartitionUsage:
    """Nodes, GPUs in all and allocated, pending jobs and job limits of a partition."""
    rows = [line.split("|") for line in _slurm(
        ["sinfo", "-h", "-N", "-p", partition, "-O", "NodeHost:|,Gres:|,GresUsed:|,Size:|"]
    ).stdout.splitlines() if line.strip()]
    nodes = {row[0].strip(): row for row in rows if len(row) >= 4}
    pending = _slurm(["squeue", "-h", "-t", "PD", "-p", partition, "-o", "%i"]).stdout.split()
    sizes = {row[3].strip().rpartition("-")[2] for row in nodes.values()}
    limit = max((int(size) for size in sizes if size.isdigit()), default=None)
    return PartitionUsage(
        len(nodes), sum(_gpu_count(r[1]) for r in nodes.values()),
        sum(_gpu_count(r[2]) for r in nodes.values()), len(pending),
        max((_gpu_count(r[1]) for r in nodes.values()), default=0),
        None if "infinite" in sizes or not sizes else limit)


def partition_problems(usage: PartitionUsage, partition: str, nodes: int,
                       gpus_per_node: int) -> dict[str, str]:
    """Field → why a version of `nodes` nodes with `gpus_per_node` GPUs each can never run
    in the partition (its node count, its job size limit, its biggest node); {} when it
    can."""
    problems = {}
    most = min(usage.nodes, usage.max_nodes or usage.nodes)
    if nodes > most:
        limit = (f"allows at most {most} node(s) per job" if most < usage.nodes
                 else f"has {most} node(s)")
        problems["resources.nodes"] = f"partition {partition} {limit}; {nodes} asked for"
    if gpus_per_node > usage.gpus_per_node:
        have = (f"at most {usage.gpus_per_node} GPU(s) on a node" if usage.gpus_per_node
                else "no GPUs")
        problems["resources.gpus"] = (f"partition {partition} has {have}; {gpus_per_node} "
                                      "per node asked for")
    return problems


def ended_on(job_id: str) -> tuple[int | None, str]:
    """A job's exit code (its batch script's) and node list, from the controller
    (`scontrol show job`); (None, "") when it has forgotten the job."""
    done = _slurm(["scontrol", "-o", "show", "job", job_id], check=False)
    fields = dict(word.split("=", 1) for word in done.stdout.split() if "=" in word)
    code = fields.get("ExitCode", "").split(":")[0]
    return (int(code) if code.isdigit() else None), fields.get("NodeList", "")


def shared_folders(plan: LaunchPlan) -> list[tuple[str, str]]:
    """`(what, path)` of the folders every node of the job must see, as the submitting
    host sees them: Traindeck's own, the version's, the code and the logs; in a
    container (`plan.image`), what is mounted there instead of the code, logs and
    Python (a mounted file: its folder)."""
    if plan.image:
        mounted = [(f"the folder mounted at {m.target}",
                    str(m.host if m.host.is_dir() else m.host.parent)) for m in plan.mounts]
        folders = [("Traindeck's folder of the version", plan.state_dir), *mounted,
                   ("Traindeck's code", TRAINDECK_ROOT)]
    else:
        folders = [("Traindeck's folder of the version", plan.state_dir),
                   ("the code folder", plan.workdir),
                   *(("the log folder", str(Path(r.log).parent)) for r in plan.ranks),
                   ("Traindeck's code", TRAINDECK_ROOT),
                   ("Traindeck's Python", str(Path(sys.executable).parent))]
    unique: dict[str, str] = {}
    for what, path in folders:
        if path:
            unique.setdefault(path, what)
    return [(what, path) for path, what in unique.items()]


def unshared_reason(handle: Handle) -> str:
    """Why the job ended before its ranks could start when a node did not see one of
    the shared folders (exit code `UNSHARED_EXIT` + n), else ""."""
    shared = handle.get("shared") or []
    code, nodes = ended_on(handle["job_id"])
    if code is None or not UNSHARED_EXIT <= code < UNSHARED_EXIT + len(shared):
        return ""
    what, path = shared[code - UNSHARED_EXIT]
    where = f"node {nodes}" if first_host(nodes) == nodes else f"a node of {nodes}"
    return (f"{where} does not see {path} ({what}): share it with the nodes of "
            f"partition {handle.get('partition', '?')}")


@functools.lru_cache(maxsize=8)
def _detect_container(path: str) -> str:
    """The container runtime the nodes offer, as `srun --help` and `path` (the PATH)
    tell: `pyxis`, `apptainer` or `none`."""
    try:
        done = subprocess.run(["srun", "--help"], capture_output=True, text=True,
                              timeout=COMMAND_SECONDS, stdin=subprocess.DEVNULL)
        if "--container-image" in done.stdout + done.stderr:
            return "pyxis"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "apptainer" if shutil.which("apptainer", path=path) else "none"


def container_runtime(pool: PoolSettings | None) -> str:
    """How a Slurm pool's versions run an image: the pool's `container` setting, or for
    `auto` what this host offers (Pyxis, else Apptainer, else `none`: no container)."""
    if pool is None or pool.kind != "slurm":
        return "none"
    if pool.container != "auto":
        return pool.container
    return _detect_container(os.environ.get("PATH", os.defpath))


def container_words(runtime: str) -> str:
    """How a pool with that container runtime runs a version, for `traindeck pools` and
    the wizard's pool note."""
    return {"pyxis": "images run through Pyxis (srun --container-image)",
            "apptainer": "images run through Apptainer (apptainer exec)"}.get(
        runtime, "no container runtime: the engine's interpreter runs on the nodes")


def pool_problems(pool: PoolSettings | None, nodes: int, gpus_per_node: int
                  ) -> dict[str, str]:
    """Field → why `nodes` nodes with `gpus_per_node` GPUs each can never run in Slurm
    pool `pool`'s partition, as its controller says now; {} when they can, when `pool`
    is not a Slurm pool, or when the controller does not answer (Slurm will say)."""
    if pool is None or pool.kind != "slurm" or not pool.partition:
        return {}
    try:
        usage = partition_usage(pool.partition)
    except ExecutorError:
        return {}
    return partition_problems(usage, pool.partition, nodes, gpus_per_node) if usage.nodes else {}


def _image_ref(runtime: str, image: str) -> str:
    """`image` as Pyxis or Apptainer names it: a file (`/…`, `….sif`, `….sqsh`) as it
    is; a registry name as `docker://NAME` for Apptainer, `HOST#NAME` for Pyxis."""
    if image.startswith(("/", "./")) or image.endswith((".sif", ".sqsh")):
        return image
    if runtime == "apptainer":
        return f"docker://{image}"
    host, sep, rest = image.partition("/")
    return f"{host}#{rest}" if sep and ("." in host or ":" in host) else image


def container_argv(runtime: str, plan: LaunchPlan, tasks: Path, gpus: bool) -> list[str]:
    """What each task of a container version runs on its node: Pyxis's `srun` options,
    or `apptainer exec`, then the image's `python3` running the task (Traindeck's
    package read-only at `/traindeck/lib/app`, the tasks file beside it), with the
    plan's mounts (Docker's /traindeck mapping)."""
    mounts = [(str(m.host), m.target, m.read_only) for m in plan.mounts]
    mounts += [(str(Path(TRAINDECK_ROOT) / "app"), f"{WRAPPER_LIB}/app", True),
               (str(tasks), TASKS_IN_CONTAINER, True)]
    bad = next((host for host, _, _ in mounts if re.search(r"[,:]", host)), None)
    if bad is not None:
        raise ExecutorError(f"slurm: {bad}: a path with ',' or ':' cannot be mounted into "
                            f"a container by {runtime}")
    inner = ["python3", "-I", "-S", "-c", RUNNER, WRAPPER_LIB, TASKS_IN_CONTAINER]
    image = _image_ref(runtime, plan.image or "")
    if runtime == "pyxis":
        binds = ",".join(f"{h}:{t}{':ro' if ro else ''}" for h, t, ro in mounts)
        return [f"--container-image={image}", f"--container-mounts={binds}",
                f"--container-workdir={plan.workdir}", *inner]
    binds_args = [a for h, t, ro in mounts for a in ("--bind", f"{h}:{t}:{'ro' if ro else 'rw'}")]
    return ["apptainer", "exec", *(["--nv"] if gpus else []), "--no-home",
            "--pwd", plan.workdir, *binds_args, image, *inner]


def _statuses(handle: Handle) -> str:
    """The folder of a job's rank status files: the job's folder in a container, else
    Traindeck's folder of the version."""
    return str(handle.get("statuses") or handle["state"])


class SlurmExecutor(Executor):
    """Submits a version as one Slurm job; its ranks write their own logs."""

    kind = "slurm"

    def __init__(self, settings: Settings | None = None, pool: PoolSettings | None = None,
                 gpus_per_node: int = 0) -> None:
        self.settings = settings
        self.pool = pool
        self.gpus_per_node = gpus_per_node

    def _pool(self) -> PoolSettings:
        if self.pool is not None:
            return self.pool
        pools = [p for p in (self.settings.pools if self.settings else []) if p.kind == "slurm"]
        if len(pools) != 1:
            raise ExecutorError("resources.pool: name a slurm pool (config `pools`, kind "
                                f"slurm); {len(pools)} configured")
        return pools[0]

    def _container(self, plan: LaunchPlan) -> str:
        """The container runtime that runs the plan (`none`: the plan has no image)."""
        if not plan.image:
            return "none"
        runtime = container_runtime(self._pool())
        if runtime == "none":
            raise ExecutorError(f"resources.pool: pool {self._pool().name} has no container "
                                "runtime (Pyxis or Apptainer) for image " + plan.image)
        return runtime

    def sbatch_argv(self, plan: LaunchPlan, script: Path) -> list[str]:
        """`sbatch` and its options for a plan (every value one argv word)."""
        pool = self._pool()
        env = plan.ranks[0].env
        nodes = int(env.get("GROUP_WORLD_SIZE", "1"))
        per_node = int(env.get("LOCAL_WORLD_SIZE", str(len(plan.ranks))))
        name = re.sub(r"[^A-Za-z0-9._:-]", "_", f"traindeck:{plan.job}:{plan.version}")
        argv = ["sbatch", "--parsable", f"--job-name={name}", f"--partition={pool.partition}",
                f"--nodes={nodes}", f"--ntasks-per-node={per_node}", "--no-requeue",
                # The script sends srun's own messages to OUTPUT_FILE: sbatch would
                # read `%` in a path as a pattern (and `%%` does not escape it).
                f"--chdir={plan.state_dir if plan.image else plan.workdir}",
                "--output=/dev/null"]
        argv += [f"--{flag}={value}" for flag, value in (
            ("account", pool.account), ("qos", pool.qos), ("constraint", pool.constraint),
            ("time", pool.time_limit)) if value]
        if self.gpus_per_node:
            argv.append(f"--gres=gpu:{self.gpus_per_node}")
        if plan.cpus:
            argv.append(f"--cpus-per-task={math.ceil(plan.cpus)}")
        if plan.memory:
            argv.append(f"--mem={math.ceil(plan.memory * per_node / 2 ** 20)}M")
        return [*argv, str(script)]

    def start(self, plan: LaunchPlan) -> Handle:
        """Write the tasks file and the batch script, submit; raise ExecutorError with
        sbatch's own words when Slurm refuses the job."""
        grace = self.settings.stop_grace_seconds if self.settings is not None else 10.0
        state = Path(plan.state_dir)
        state.mkdir(parents=True, exist_ok=True)
        runtime = self._container(plan)
        # In a container, a rank's wrapper writes its log and its status into the job's
        # folder (mounted at /traindeck/job, as in Docker): the supervisor copies the log.
        job_files = next((m.host for m in plan.mounts if m.target == JOB_IN_CONTAINER),
                         None) if runtime != "none" else None
        statuses = job_files or state
        ranks = []
        for rank in plan.ranks:
            status_path(statuses, rank.rank).unlink(missing_ok=True)
            status = (f"{JOB_IN_CONTAINER}/{status_path('', rank.rank).name}" if job_files
                      else str(status_path(state, rank.rank)))
            # Slurm says which GPUs a node's processes may use (`slurm_rank_env`).
            env = {k: v for k, v in rank.env.items() if k != "CUDA_VISIBLE_DEVICES"}
            ranks.append({"argv": rank.argv, "env": env, "log": rank.log, "status": status})
        tasks = state / TASKS_FILE
        tasks.write_text(json.dumps({"workdir": plan.workdir, "grace": grace, "ranks": ranks}),
                         encoding="utf-8")
        shared = shared_folders(plan)
        cpus = [f"--cpus-per-task={math.ceil(plan.cpus)}"] if plan.cpus else []
        # The batch node, then every task's node, checks that it sees the shared folders
        # before anything there is touched (exit UNSHARED_EXIT + n where it does not):
        # with Pyxis, the task is in the container already, so the batch node only.
        sees = ["/bin/sh", "-c", SEES_FOLDERS, "sh", *(path for _, path in shared), "--"]
        task = ([*sees, sys.executable, "-P", "-c", RUNNER, TRAINDECK_ROOT, str(tasks)]
                if runtime == "none" else
                [*([] if runtime == "pyxis" else sees),
                 *container_argv(runtime, plan, tasks, bool(self.gpus_per_node))])
        script = state / SCRIPT_FILE
        script.write_text("#!/bin/sh\n# Written by Traindeck: every word is quoted.\n"
                          + shlex.join([*sees, "true"]) + " || exit $?\nexec "
                          + shlex.join(["srun", *cpus, *task])
                          + f" >>{shlex.quote(str(state / OUTPUT_FILE))} 2>&1\n",
                          encoding="utf-8")
        out = _slurm(self.sbatch_argv(plan, script)).stdout.strip()
        job_id = out.split(";")[0]
        if not job_id.isdigit():
            raise ExecutorError(f"slurm: sbatch said {out!r}, not a job id")
        return {"kind": self.kind, "job_id": job_id, "ranks": len(plan.ranks),
                "state": str(state), "shared": shared, "partition": self._pool().partition,
                **({"container": runtime, "statuses": str(job_files)} if job_files else {})}

    def queue_reason(self, handle: Handle) -> str | None:
        """Why Slurm holds the job, in words ("waiting for resources in partition gpu:
        1 job ahead"); None once it runs or has ended."""
        info = job_state(handle["job_id"])
        if info is None or info.state != "PENDING":
            return None
        key = info.reason.split(",")[0]
        words = QUEUE_REASONS.get(key)
        if words is None:
            limit = ("QOS" if key.startswith("QOS") else "account"
                     if key.startswith("Assoc") else "")
            return (f"{limit} limit reached (Slurm reason {key})" if limit
                    else f"Slurm: {info.reason}")
        words = words.format(p=info.partition)
        if key in ("Resources", "Priority"):
            ahead = self._ahead(handle["job_id"], info.partition)
            words += f": {ahead} job{'s' if ahead != 1 else ''} ahead" if ahead else ""
        return words

    @staticmethod
    def _ahead(job_id: str, partition: str) -> int:
        """Pending jobs of the partition that Slurm would start before this one."""
        rows = [line.split("|") for line in _slurm(
            ["squeue", "-h", "-t", "PD", "-p", partition, "-o", "%i|%Q"]).stdout.split()]
        mine = next(((int(p), int(i)) for i, p in rows if i == job_id), None)
        if mine is None:
            return 0
        return sum((-int(p), int(i)) < (-mine[0], mine[1]) for i, p in rows)

    def poll(self, handle: Handle) -> list[RankExit | None]:
        """Per rank: None while the job may still run it, else how it ended: its status
        file, with Slurm's reason where Slurm ended the job."""
        info = job_state(handle["job_id"])
        statuses = [read_status(status_path(_statuses(handle), r)) for r in range(handle["ranks"])]
        settle = time.monotonic() + SETTLE_SECONDS
        while (info is not None and info.active and None not in statuses
               and time.monotonic() < settle):
            # Every rank has ended, the job not yet: wait for Slurm's final word (a time
            # limit's SIGTERM reaches the ranks before the job reads TIMEOUT).
            time.sleep(0.2)
            info = job_state(handle["job_id"])
        ended = info is None or not info.active
        why = ENDED_BY_SLURM.get(info.state, "") if info else ""
        if ended and not why and info is not None and info.state == "FAILED" and all(
                s is None for s in statuses):
            why = unshared_reason(handle)
        result: list[RankExit | None] = []
        for rank, status in enumerate(statuses):
            if status is None and ended:
                # Read again: the wrapper may have written it just before the job ended.
                status = read_status(status_path(_statuses(handle), rank))
            if status is None and not ended:
                result.append(None)
            elif status is None:
                lost = ("cancelled (Slurm CANCELLED)" if info and info.state == "CANCELLED"
                        else f"the rank ended without a status (Slurm job {handle['job_id']} "
                        f"{info.state if info else 'unknown to Slurm'})")
                result.append(RankExit(rank=rank, exit_code=-1, error=why or lost))
            else:
                code, log_error = status
                error = why or (log_error if code == SPAWN_FAILED else "")
                result.append(RankExit(rank=rank, exit_code=code, error=error,
                                       log_error=log_error))
        return result

    def wait_any(self, handle: Handle, timeout: float) -> None:
        """Return when a rank records its end, or after `timeout` seconds (Slurm itself
        is asked only by `poll`, so a busy controller is not asked all the time)."""
        def done() -> int:
            return sum(status_path(_statuses(handle), r).exists() for r in range(handle["ranks"]))

        before, deadline = done(), time.monotonic() + timeout
        while time.monotonic() < deadline and done() == before:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def stop(self, handle: Handle, grace: float) -> None:
        """A queued job is cancelled; a running one's ranks get SIGTERM (their wrappers
        kill what still runs after the grace period), and the job is cancelled for good
        if it has not ended `grace` + a margin later."""
        job_id = handle["job_id"]
        info = job_state(job_id)
        if info is None or not info.active:
            return
        if info.state == "PENDING":
            _slurm(["scancel", job_id])
            return
        _slurm(["scancel", "--signal=TERM", job_id], check=False)
        deadline = time.monotonic() + max(0.0, grace) + STOP_MARGIN_SECONDS
        while time.monotonic() < deadline:
            info = job_state(job_id)
            if info is None or not info.active:
                return
            time.sleep(0.5)
        _slurm(["scancel", job_id], check=False)

    def cleanup(self, handle: Handle) -> None:
        """Nothing to remove: Slurm forgets ended jobs by itself (the tasks file and the
        batch script stay in the version's folder, for a look after the fact)."""

    def logs_in_job_folder(self, handle: Handle) -> bool:
        """A job run in containers logs into the job's folder, as in Docker."""
        return bool(handle.get("statuses"))

    def adoptable(self, handle: Handle) -> bool:
        """True when Slurm knows the job, or every rank has recorded how it ended."""
        if handle.get("kind") != self.kind or not handle.get("job_id"):
            return False
        return job_state(handle["job_id"]) is not None or all(
            read_status(status_path(_statuses(handle), r)) is not None
            for r in range(handle["ranks"]))
