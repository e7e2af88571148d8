"""Turning a version's frozen spec into a LaunchPlan for its executor.

What runs — the boot file called the ModelArts way, a full command, and the variables
the spec adds — comes from `app.specs.invocation`, as an argv list: run parameters
never pass through a shell. Docker ranks, and the ranks of an image in a Slurm pool
with a container runtime (Pyxis, Apptainer), see fixed paths under /traindeck; local
ranks and the other Slurm ranks see host paths. Each rank gets torchrun's
(torchelastic's) rendezvous variables.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from app.compat import shim_path
from app.config import Settings
from app.errors import TraindeckError
from app.presets import preset_definition
from app.procs import free_port
from app.runtime.bootstrap import IGNORE
from app.runtime.executors.base import LaunchPlan, Mount, RankPlan
from app.runtime.executors.slurm import container_runtime
from app.runtime.gpus import GpuDevice
from app.specs.invocation import invocation, rendezvous_env
from app.specs.spec import JobSpec, is_remote
from app.storage import local_output_path
from app.store.models import Version, version_label

IN_CONTAINER = Path("/traindeck")
MASTER_PORT_IN_NETWORK = 29500
INSTANCE_LABEL = "traindeck.instance"
"""Container label naming the Traindeck installation (database) a container belongs to."""
CREATED_LABEL = "traindeck.version_created"
"""Container label holding the version's creation time: tells it from an older version
that had the same id in an earlier database at the same path."""


class PlanError(TraindeckError):
    """The version cannot be planned; the message is its failure reason."""


@dataclass(frozen=True)
class Program:
    """What to run, before paths are mapped for the runtime."""

    interpreter: str | None
    code_dir: Path | None
    entry: list[str]
    image: str | None


def state_dir(settings: Settings, version_id: int) -> Path:
    """Traindeck's own per-version folder (log counters, rank status files, staged data):
    never visible to the ranks, so nothing read back from it was written by a job."""
    return settings.data_dir / "versions" / str(version_id)


def job_dir(settings: Settings, version_id: int) -> Path:
    """The part of a version's folder its ranks may write: a scratch HOME, installed
    packages and the metrics files. Whatever Traindeck reads from it is parsed as data."""
    return state_dir(settings, version_id) / "job"


def work_dir(settings: Settings, version_id: int) -> Path:
    """The version's working folder: a writable copy of its code snapshot, where its ranks
    start (`/traindeck/code` in a container)."""
    return state_dir(settings, version_id) / "code"


def envs_dir(settings: Settings) -> Path:
    """Virtual environments with a `requirements.txt` installed on top of an engine,
    shared by the versions that have the same file (`app.runtime.bootstrap`)."""
    return settings.data_dir / "envs"


def metrics_path(settings: Settings, version_id: int, rank: int) -> Path:
    """The JSON-lines metrics file of a rank (`TRAINDECK_METRICS_FILE`)."""
    return job_dir(settings, version_id) / metrics_file_name(rank)


def instance_tag(settings: Settings) -> str:
    """A short id of this installation (its database), unique on a shared Docker engine.

    Version ids restart at 1 in every database, so container and network names, and the
    labels used to find containers again, carry this tag as well.
    """
    return hashlib.sha1(settings.resolved_database_url.encode()).hexdigest()[:8]


def version_stamp(version: Version) -> str:
    """The value of CREATED_LABEL for a version."""
    return f"{version.created_at.timestamp():.6f}"


def rank_names(settings: Settings, job: str, version: Version) -> tuple[list[str], str]:
    """Container names of a version's ranks and the name of their network.

    Readable in `docker ps` (job and version) and unique per installation; at most 63
    characters, so that each also works as the rank's host name.
    """
    slug = re.sub(r"[^a-z0-9-]", "-", job.lower())[:24].strip("-") or "job"
    base = f"td-{slug}-{version_label(version.number).lower()}-{instance_tag(settings)}"
    return [f"{base}-r{r}" for r in range(rank_count(version))], base


def processes_per_node(version: Version) -> int:
    """The processes each node of a version runs (`resources.processes_per_node`; `gpus`:
    one per GPU of the node)."""
    wanted = (json.loads(version.spec_json or "{}").get("resources") or {}).get(
        "processes_per_node", 1)
    return max(1, version.gpus_requested) if wanted == "gpus" else max(1, int(wanted))


def rank_count(version: Version) -> int:
    """How many ranks (processes: local processes, or containers) a version runs."""
    return max(1, version.nodes) * processes_per_node(version)


def job_log_name(rank: int) -> str:
    """Name of the file of the job's folder in which a container's rank wrapper writes
    the rank's stamped log (the supervisor copies it into the rank's log)."""
    return f"rank{rank}.log"


def job_log_path(settings: Settings, version_id: int, rank: int) -> Path:
    """The host path of a Docker rank's `job_log_name` file."""
    return job_dir(settings, version_id) / job_log_name(rank)


def metrics_file_name(rank: int) -> str:
    """Name of the JSON-lines metrics file of a rank, inside the job folder."""
    return f"metrics.rank{rank}.jsonl"


def preset_program(settings: Settings, name: str, runtime: str) -> Program:
    """What the planner runs for preset `name`: the engine's interpreter and image.

    `runtime` is `docker` or `local`; both get the same program (the planner maps the
    code folder into the container). Raises PlanError when the preset or its engine is
    gone, with a reason a user can act on.
    """
    preset = preset_definition(name)
    if preset is None:
        raise PlanError(f"preset algorithm {name!r} is not shipped with this Traindeck")
    engine = settings.engine(preset.engine, preset.engine_version)
    if engine is None:
        raise PlanError(f"preset {name} needs engine {preset.engine} "
                        f"{preset.engine_version}, which is not configured")
    if not (preset.code_dir / preset.boot_file).is_file():
        raise PlanError(f"preset {name}: {preset.code_dir / preset.boot_file} is missing "
                        "(a broken install?)")
    return Program(engine.interpreter, preset.code_dir, [preset.boot_file], engine.image)


def _program(settings: Settings, spec: JobSpec, runtime: str) -> Program:
    algo = spec.algorithm
    if algo.framework is not None:
        fw = algo.framework
        engine = settings.engine(fw.engine, fw.engine_version)
        if engine is None:
            raise PlanError(f"engine {fw.engine} {fw.engine_version} is no longer configured")
        entry = [fw.boot_file] if fw.boot_file is not None else []  # else fw.command
        return Program(engine.interpreter, Path(fw.code_dir), entry, engine.image)
    if algo.preset is not None:
        return preset_program(settings, algo.preset.name, runtime)
    image = algo.image
    assert image is not None
    code = Path(image.code_dir) if image.code_dir else None
    return Program(None, code, list(image.command or []), image.name)


def _working_copy(settings: Settings, version: Version) -> Path:
    """The version's working folder, written from its code snapshot on first use (a
    restarted start finds it there)."""
    from app.store.snapshot import SnapshotError, load_snapshot, materialize

    folder = work_dir(settings, version.id or 0)
    if not folder.is_dir():
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            materialize(load_snapshot(settings.data_dir / "snapshots", version.code_snapshot),
                        partial)
        except (SnapshotError, OSError) as exc:
            raise PlanError(f"code snapshot {version.code_snapshot[:12]}: {exc}") from exc
        partial.rename(folder)
    return folder


def _data_dirs(spec: JobSpec, data_paths: list[str]) -> list[Path]:
    """The local data folders: those `app.storage.prepare_data` returned (object storage
    staged), else the spec's own local paths."""
    paths = data_paths or spec.data.paths or []
    remote = [p for p in paths if is_remote(p)]
    if remote:
        raise PlanError(f"{remote[0]}: object-storage data must be staged first")
    return [Path(p) for p in paths]


def build_plan(
    settings: Settings, job: str, version: Version, spec: JobSpec, gpus: list[GpuDevice],
    dataset_paths: list[str] | None = None,
) -> LaunchPlan:
    """The LaunchPlan of a version; creates its output, log and state folders."""
    runtime = version.runtime or "local"
    label = version_label(version.number)
    program = _program(settings, spec, runtime)
    if version.code_snapshot:
        program = replace(program, code_dir=_working_copy(settings, version))
    data_dirs = _data_dirs(spec, dataset_paths or [])
    state = state_dir(settings, version.id or 0)
    job_files = job_dir(settings, version.id or 0)
    output = local_output_path(version.output, state)  # an s3:// output goes up at the end
    for folder in (output, Path(version.log_dir), job_files / "home"):
        folder.mkdir(parents=True, exist_ok=True)
    needs_bootstrap = bool(program.code_dir and (program.code_dir / "requirements.txt").is_file())
    install = spec.algorithm.requirements != "ignore"  # else bootstrap only says so
    bootstrap = Path(__file__).with_name("bootstrap.py")

    # A Slurm pool with a container runtime runs the image as Docker would, with the
    # same /traindeck mapping (`app.runtime.executors.slurm.container_argv`).
    docker = runtime == "docker" or bool(
        runtime == "slurm" and program.image
        and container_runtime(settings.pool(version.pool)) != "none")
    mounts: list[Mount] = []
    if docker:
        if not program.image:
            raise PlanError("no Docker image for this algorithm")
        code_at = str(IN_CONTAINER / "code") if program.code_dir else None
        if program.code_dir:
            # The version's own copy of its code is its working folder; a preset's code
            # is Traindeck's and stays read-only.
            mounts.append(Mount(program.code_dir, str(code_at),
                                read_only=not version.code_snapshot))
        if len(data_dirs) == 1:
            mounts.append(Mount(data_dirs[0], str(IN_CONTAINER / "data")))
        else:
            mounts += [Mount(d, str(IN_CONTAINER / "data" / str(i)))
                       for i, d in enumerate(data_dirs)]
        mounts.append(Mount(output, str(IN_CONTAINER / "output"), read_only=False))
        # Of Traindeck's own folder the ranks see only the job part: nothing the
        # supervisor reads back as control data is writable from a container.
        mounts.append(Mount(job_files, str(IN_CONTAINER / "job"), read_only=False))
        if needs_bootstrap:
            # Environments are shared by versions of the same image only: a job cannot
            # plant packages in the environments of local runs (or of other images).
            mounts.append(Mount(bootstrap, str(IN_CONTAINER / "bootstrap.py")))
            if install:
                envs = envs_dir(settings) / ("docker-" + hashlib.sha1(
                    program.image.encode()).hexdigest()[:12])
                envs.mkdir(parents=True, exist_ok=True)
                mounts.append(Mount(envs, str(IN_CONTAINER / "envs"), read_only=False))
            bootstrap, envs = IN_CONTAINER / "bootstrap.py", IN_CONTAINER / "envs"
        if spec.algorithm.compat:
            mounts.append(Mount(shim_path(), str(IN_CONTAINER / "compat")))
        data_url, train_url = str(IN_CONTAINER / "data"), str(IN_CONTAINER / "output")
        job_at, workdir = IN_CONTAINER / "job", code_at or "/"
        python = "python"
    else:
        if len(data_dirs) == 1:
            data_url = str(data_dirs[0])
        else:
            # Several data paths: one folder of links, so the script always gets one dir.
            links = state / "data"
            links.mkdir(exist_ok=True)
            for i, d in enumerate(data_dirs):
                link = links / str(i)
                if not link.is_symlink():
                    link.symlink_to(d, target_is_directory=True)
            data_url = str(links)
        train_url, job_at = str(output), job_files
        envs = envs_dir(settings) / "local"
        workdir = str(program.code_dir or output)
        python = program.interpreter or sys.executable
        code_at = str(program.code_dir) if program.code_dir else None

    boot = ([python, str(Path(code_at or "") / program.entry[0]), *program.entry[1:]]
            if program.entry and spec.algorithm.image is None else [])
    call = invocation(spec, boot, data_url, train_url)
    argv = call.argv
    if needs_bootstrap:
        argv = [python, str(bootstrap), str(envs) if install else IGNORE, "--", *argv]

    nodes, per_node = max(1, version.nodes), processes_per_node(version)
    world = nodes * per_node
    per_rank = len(gpus) // world if gpus else 0
    names, network = rank_names(settings, job, version)
    net = network if runtime == "docker" and world > 1 else None
    master_addr = names[0] if net else "127.0.0.1"
    master_port = MASTER_PORT_IN_NETWORK if runtime == "docker" or world == 1 else free_port()
    ranks = []
    for rank in range(world):
        rank_gpus = gpus[rank * per_rank:(rank + 1) * per_rank]
        env = {
            **call.env, "TRAINDECK_JOB": job, "TRAINDECK_VERSION": label,
            "TRAINDECK_METRICS_FILE": str(job_at / metrics_file_name(rank)),
            # One process gets none: a script that runs distributed when it finds RANK
            # (nanoGPT, Hugging Face's) runs as when started by hand.
            **(rendezvous_env(rank, nodes, per_node, master_addr, master_port, network)
               if world > 1 else {}),
            "PYTHONUNBUFFERED": "1",
        }
        if docker:
            env["HOME"] = str(IN_CONTAINER / "job" / "home")
            env["TRAINDECK_IMAGE"] = program.image or ""
        else:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(d.device_id for d in rank_gpus)
            # CUDA's own order puts the fastest card first; NVML's and Docker's indices
            # (what was granted) follow the PCI bus.
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
            # A `command` (torchrun, accelerate) finds the engine's tools first.
            env["PATH"] = os.pathsep.join([str(Path(python).parent),
                                           os.environ.get("PATH", os.defpath)])
        if spec.algorithm.compat:  # the moxing shim, before the spec's own PYTHONPATH
            shims = str(IN_CONTAINER / "compat") if docker else str(shim_path())
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (shims, env.get("PYTHONPATH", "")) if p)
        log = (job_at / job_log_name(rank) if docker
               else Path(version.log_dir) / f"rank-{rank}.log")
        ranks.append(RankPlan(rank=rank, argv=argv, env=env, name=names[rank],
                              gpus=[d.device_id for d in rank_gpus], log=str(log)))

    return LaunchPlan(
        job=job, version=label, version_id=version.id or 0,
        image=program.image if docker else None, workdir=workdir, mounts=mounts, ranks=ranks,
        user=(os.getuid(), os.getgid()), shm_size=settings.docker_shm_size, network=net,
        labels={INSTANCE_LABEL: instance_tag(settings), CREATED_LABEL: version_stamp(version)},
        state_dir=str(state),
        # The spec's limits are per node: its processes share them.
        cpus=spec.resources.cpus / per_node if spec.resources.cpus else None,
        memory=(spec.resources.memory_bytes or 0) // per_node or None,
        network_mode=spec.resources.network,
    )
