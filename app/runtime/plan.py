"""Turning a version's frozen spec into a LaunchPlan for its executor.

The boot file is called the ModelArts way — `<python> <boot_file> --data_url=<data>
--train_url=<output> --name=value ...` — as an argv list: run parameters never pass
through a shell. Docker ranks see fixed paths under /traindeck; local ranks see host
paths. Each rank gets torchrun-compatible rendezvous variables.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.errors import TraindeckError
from app.models import Version, version_label
from app.runtime.executors.base import LaunchPlan, Mount, RankPlan
from app.runtime.procs import free_port
from app.spec import JobSpec, format_parameter, is_remote
from app.storage import local_output_path

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
    """Traindeck's own per-version folder: metrics files, bootstrap, HOME, packages."""
    return settings.data_dir / "versions" / str(version_id)


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
    return [f"{base}-r{r}" for r in range(max(1, version.nodes))], base


def metrics_file_name(rank: int) -> str:
    """Name of the JSON-lines metrics file of a rank, inside the state dir."""
    return f"metrics.rank{rank}.jsonl"


def _program(settings: Settings, spec: JobSpec, runtime: str, presets_dir: Path | None
             ) -> Program:
    algo = spec.algorithm
    if algo.framework is not None:
        fw = algo.framework
        engine = settings.engine(fw.engine, fw.engine_version)
        if engine is None:
            raise PlanError(f"engine {fw.engine} {fw.engine_version} is no longer configured")
        return Program(engine.interpreter, Path(fw.code_dir), [fw.boot_file], engine.image)
    if algo.preset is not None:
        from app.presets import preset_program

        return preset_program(settings, algo.preset.name, runtime)
    image = algo.image
    assert image is not None
    code = Path(image.code_dir) if image.code_dir else None
    return Program(None, code, list(image.command or []), image.name)


def _data_dirs(spec: JobSpec, data_paths: list[str]) -> list[Path]:
    """The local data folders: those `app.storage.prepare_data` returned (object storage
    staged), else the spec's own local paths."""
    paths = data_paths or spec.data.paths or []
    remote = [p for p in paths if is_remote(p)]
    if remote:
        raise PlanError(f"{remote[0]}: object-storage data must be staged first")
    return [Path(p) for p in paths]


def build_plan(
    settings: Settings, job: str, version: Version, spec: JobSpec, gpus: list[int],
    dataset_paths: list[str] | None = None, presets_dir: Path | None = None,
) -> LaunchPlan:
    """The LaunchPlan of a version; creates its output, log and state folders."""
    runtime = version.runtime or "local"
    label = version_label(version.number)
    program = _program(settings, spec, runtime, presets_dir)
    data_dirs = _data_dirs(spec, dataset_paths or [])
    state = state_dir(settings, version.id or 0)
    output = local_output_path(version.output, state)  # an s3:// output goes up at the end
    for folder in (output, Path(version.log_dir), state, state / "home", state / "pkgs"):
        folder.mkdir(parents=True, exist_ok=True)
    needs_bootstrap = bool(program.code_dir and (program.code_dir / "requirements.txt").is_file())
    if needs_bootstrap:
        shutil.copy(Path(__file__).with_name("bootstrap.py"), state / "bootstrap.py")

    docker = runtime == "docker"
    mounts: list[Mount] = []
    if docker:
        if not program.image:
            raise PlanError("no Docker image for this algorithm")
        code_at = str(IN_CONTAINER / "code") if program.code_dir else None
        if program.code_dir:
            mounts.append(Mount(program.code_dir, str(code_at), read_only=True))
        if len(data_dirs) == 1:
            mounts.append(Mount(data_dirs[0], str(IN_CONTAINER / "data")))
        else:
            mounts += [Mount(d, str(IN_CONTAINER / "data" / str(i)))
                       for i, d in enumerate(data_dirs)]
        mounts.append(Mount(output, str(IN_CONTAINER / "output"), read_only=False))
        mounts.append(Mount(state, str(IN_CONTAINER / "state"), read_only=False))
        data_url, train_url = str(IN_CONTAINER / "data"), str(IN_CONTAINER / "output")
        state_at, workdir = IN_CONTAINER / "state", code_at or "/"
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
        train_url, state_at = str(output), state
        workdir = str(program.code_dir or output)
        python = program.interpreter or sys.executable
        code_at = str(program.code_dir) if program.code_dir else None

    if program.interpreter is not None or spec.algorithm.image is None:
        entry = [python, str(Path(code_at or "") / program.entry[0]), *program.entry[1:]]
    else:
        entry = list(program.entry)
    args = [f"--data_url={data_url}", f"--train_url={train_url}"]
    args += [f"--{name}={format_parameter(value)}" for name, value in spec.parameters.items()]
    argv = entry + args
    if needs_bootstrap:
        argv = [python, str(state_at / "bootstrap.py"), str(state_at / "pkgs"), "--", *argv]

    nodes = max(1, version.nodes)
    per_rank = len(gpus) // nodes if gpus else 0
    names, network = rank_names(settings, job, version)
    net = network if docker and nodes > 1 else None
    master_addr = names[0] if net else "127.0.0.1"
    master_port = MASTER_PORT_IN_NETWORK if docker else free_port()
    ranks = []
    for rank in range(nodes):
        rank_gpus = gpus[rank * per_rank:(rank + 1) * per_rank]
        env = {
            "TRAINDECK_JOB": job, "TRAINDECK_VERSION": label,
            "TRAINDECK_METRICS_FILE": str(state_at / metrics_file_name(rank)),
            "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
            "WORLD_SIZE": str(nodes), "RANK": str(rank), "NODE_RANK": str(rank),
            "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "PYTHONUNBUFFERED": "1",
        }
        if docker:
            env["HOME"] = str(IN_CONTAINER / "state" / "home")
        else:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, rank_gpus))
        ranks.append(RankPlan(rank=rank, argv=argv, env=env, name=names[rank], gpus=rank_gpus))

    return LaunchPlan(
        job=job, version=label, version_id=version.id or 0,
        image=program.image if docker else None, workdir=workdir, mounts=mounts, ranks=ranks,
        user=(os.getuid(), os.getgid()), shm_size=settings.docker_shm_size, network=net,
        labels={INSTANCE_LABEL: instance_tag(settings), CREATED_LABEL: version_stamp(version)},
        cpus=spec.resources.cpus, memory=spec.resources.memory_bytes,
        network_mode=spec.resources.network,
    )
