"""The machine's read models: every GPU with its pools and holder, the queue, and each
Slurm pool's partition (the TUI's GPUs screen, `traindeck pools`, the wizard).

Core code: plain dataclasses out, no Textual. The TUI calls these from thread workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import col, select

from app.config import Settings
from app.runtime.gpus import GpuInfo, pool_gpus
from app.store.db import Database
from app.store.models import GpuAllocation, Job, Status, Version, version_label

if TYPE_CHECKING:
    from app.runtime.executors.slurm import PartitionUsage


# ---------------------------------------------------------------- GPUs and the queue


@dataclass(frozen=True)
class GpuRow:
    """One GPU: where it belongs, who holds it, how busy the driver says it is."""

    index: int
    name: str
    pools: tuple[str, ...]
    holder: str | None = None
    """`job/V003` holding it, or None when free."""
    held_since: datetime | None = None
    memory_used_mb: int | None = None
    memory_total_mb: int | None = None
    utilization: int | None = None
    present: bool = True
    """False for a GPU still allocated but missing from the inventory (config changed)."""


@dataclass(frozen=True)
class QueuedRow:
    """One queued version, in the order the scheduler serves them."""

    position: int
    version_id: int
    job: str
    version: str
    pool: str
    gpus: int
    """GPUs it needs in all (per node × nodes)."""
    queued_at: datetime | None
    reason: str

    @property
    def label(self) -> str:
        """`job/V003`."""
        return f"{self.job}/{self.version}"


@dataclass(frozen=True)
class GpuBoard:
    """Every GPU and every queued version."""

    gpus: list[GpuRow]
    queue: list[QueuedRow]
    source: str
    """`nvml`, `config`, or `none` when this machine has no GPU."""


def gpu_pools(settings: Settings, indices: list[int]) -> dict[int, tuple[str, ...]]:
    """GPU index → names of the pools it serves."""
    out: dict[int, list[str]] = {i: [] for i in indices}
    for pool in settings.pools:
        for gpu in pool_gpus(settings, pool.name, indices):
            out[gpu].append(pool.name)
    return {gpu: tuple(names) for gpu, names in out.items()}


def gpu_board(settings: Settings, db: Database, inventory: list[GpuInfo]) -> GpuBoard:
    """The GPUs of `inventory` with their pools and holders, and the queue in FIFO order."""
    pools = gpu_pools(settings, [g.index for g in inventory])
    with db.read() as session:
        holders: dict[int, tuple[str, datetime]] = {}
        for alloc, name, number in session.exec(
                select(GpuAllocation, Job.name, Version.number)
                .join(Version, col(Version.id) == col(GpuAllocation.version_id))
                .join(Job, col(Job.id) == col(Version.job_id))
                .order_by(col(GpuAllocation.gpu), col(GpuAllocation.mig_index))):
            # A GPU split into MIG instances names every version on one of them.
            holder = f"{name}/{version_label(number)}"
            if alloc.gpu not in holders:
                holders[alloc.gpu] = (holder, alloc.allocated_at)
            elif holder not in holders[alloc.gpu][0].split(", "):
                first, first_since = holders[alloc.gpu]
                holders[alloc.gpu] = (f"{first}, {holder}", first_since)
        queued = session.exec(
            select(Job.name, Version).join(Job, col(Job.id) == col(Version.job_id))
            .where(Version.status == Status.QUEUED.value).order_by(col(Version.id))
        ).all()
    rows = []
    for gpu in inventory:
        label, since = holders.pop(gpu.index, (None, None))
        rows.append(GpuRow(
            index=gpu.index, name=gpu.name, pools=pools.get(gpu.index, ()), holder=label,
            held_since=since, memory_used_mb=gpu.memory_used_mb,
            memory_total_mb=gpu.memory_total_mb, utilization=gpu.utilization,
        ))
    for index, (label, since) in sorted(holders.items()):
        rows.append(GpuRow(index=index, name="not in the inventory", pools=(), holder=label,
                           held_since=since, present=False))
    queue = [
        QueuedRow(position=i + 1, version_id=v.id or 0, job=name,
                  version=version_label(v.number), pool=v.pool,
                  gpus=v.gpus_requested * v.nodes, queued_at=v.queued_at, reason=v.reason)
        for i, (name, v) in enumerate(queued)
    ]
    source = inventory[0].source if inventory else "none"
    return GpuBoard(gpus=rows, queue=queue, source=source)


# ---------------------------------------------------------------- Slurm pools


@dataclass(frozen=True)
class SlurmPoolRow:
    """A Slurm pool and its partition as the controller reports it now."""

    name: str
    partition: str
    usage: PartitionUsage | None
    """None when the controller could not be read (`error` says why)."""
    error: str = ""
    """Why the figures are missing or wrong ('' when they are right)."""
    container: str = "none"
    """How the pool runs a version's image: `pyxis`, `apptainer` or `none`
    (`app.runtime.executors.slurm.container_runtime`)."""

    @property
    def runs(self) -> str:
        """How the pool runs versions, in words (the wizard's pool note)."""
        from app.runtime.executors.slurm import container_words

        return container_words(self.container)

    @property
    def where(self) -> str:
        """`partition gpu, images through apptainer` (`traindeck pools`)."""
        how = {"none": "no container runtime"}.get(self.container,
                                                    f"images through {self.container}")
        return f"partition {self.partition}, {how}"

    @property
    def summary(self) -> str:
        """`partition gpu: 4 of 16 GPU(s) free on 4 node(s), 3 job(s) pending`, or the
        error."""
        usage = self.usage
        if self.error or usage is None:
            return f"partition {self.partition}: {self.error}"
        return (f"partition {self.partition}: {usage.gpus_free} of {usage.gpus_total} GPU(s) "
                f"free on {usage.nodes} node(s), {usage.pending_jobs} job(s) pending")


def slurm_pool_problems(settings: Settings, pool: str, nodes: int,
                        gpus_per_node: int) -> dict[str, str]:
    """Field → why `nodes` nodes with `gpus_per_node` GPUs each can never run in Slurm
    pool `pool`'s partition, as its controller says now; {} when they can, when `pool`
    is not a Slurm pool, or when the controller does not answer (Slurm will say).
    `submit` and `validate` refuse the same, with these words (`app.jobs.prepare_spec`)."""
    from app.runtime.executors.slurm import pool_problems

    return pool_problems(settings.pool(pool), nodes, gpus_per_node)


def slurm_pools(settings: Settings) -> list[SlurmPoolRow]:
    """Each Slurm pool with its partition's nodes, GPUs and pending jobs (`sinfo`,
    `squeue`: a controller round trip per pool, so never on a UI thread)."""
    from app.runtime.executors import ExecutorError
    from app.runtime.executors.slurm import container_runtime, partition_usage

    rows = []
    for pool in settings.pools:
        if pool.kind != "slurm":
            continue
        partition, container = pool.partition or "", container_runtime(pool)
        try:
            usage = partition_usage(partition)
        except ExecutorError as exc:
            rows.append(SlurmPoolRow(pool.name, partition, None, str(exc), container))
            continue
        rows.append(SlurmPoolRow(pool.name, partition, usage, "" if usage.nodes else
                                 "no nodes: is the partition's name right?", container))
    return rows
