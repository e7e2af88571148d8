"""GPU admission: atomic across processes, first come first served, and self-explaining.

Each decision runs in one write transaction (SQLite: `BEGIN IMMEDIATE`, so decisions of
different supervisors are serialised) and the `gpu_allocations` primary key makes a
double booking impossible even if two decisions raced.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, update
from sqlmodel import Session, col, delete, func, select

from app.config import Settings
from app.context import Context
from app.runtime.gpus import (
    GpuDevice,
    GpuInfo,
    allocatable,
    foreign_load,
    handle_pids,
    inventory,
    pool_gpus,
)
from app.store.models import (
    ACTIVE_STATUSES,
    GpuAllocation,
    Job,
    Status,
    Version,
    version_label,
)


@dataclass(frozen=True)
class Admission:
    """The outcome of one scheduling attempt."""

    granted: list[GpuDevice] | None
    """The devices when admitted (empty for CPU versions); None when not (yet)."""
    reason: str = ""
    """Why not: what the version waits for, or why it can never run."""
    impossible: bool = False
    """True when waiting cannot help (the pool is too small)."""


def _labels(session: Session, version_ids: set[int]) -> dict[int, str]:
    """`job/V00n` of each version, in one query."""
    rows = session.exec(
        select(Version.id, Job.name, Version.number)
        .join(Version, col(Version.job_id) == col(Job.id))
        .where(col(Version.id).in_(version_ids))
    ).all()
    found = {vid: f"{name}/{version_label(number)}" for vid, name, number in rows}
    return {vid: found.get(vid, f"version {vid}") for vid in version_ids}


def try_admit(ctx: Context, version_id: int) -> Admission:
    """Allocate the version's GPUs if it is its turn and they are free."""
    # NVML and /proc are read before the lock that every other decision waits for.
    devices = _devices(ctx, version_id)
    own = own_pids(ctx) if any(d.processes for d in devices) else set()
    with ctx.db.write() as session:
        admission, new = _assess(ctx, session, version_id, devices, own)
        granted = admission.granted
        if new and granted:
            session.exec(insert(GpuAllocation), params=[
                {"gpu": d.index, "mig_index": d.slot, "uuid": d.uuid,
                 "version_id": version_id} for d in granted])
            uuids = ",".join(d.uuid for d in granted) if any(d.uuid for d in granted) else ""
            session.exec(update(Version).where(col(Version.id) == version_id)
                         .values(allocated_gpus=",".join(map(str, granted)),
                                 allocated_uuids=uuids))
    return admission


def peek_admission(ctx: Context, version_id: int) -> Admission:
    """What `try_admit` would decide now, read without the write lock; allocates nothing.

    A new supervisor asks once before its first decision: the statements a process runs
    for the first time cost it several milliseconds to prepare, better spent here than
    inside the write lock that every other supervisor's decision waits for.
    """
    devices = _devices(ctx, version_id)
    own = own_pids(ctx) if any(d.processes for d in devices) else set()
    with ctx.db.read() as session:
        return _assess(ctx, session, version_id, devices, own)[0]


def gpu_shortage(settings: Settings, pool: str, gpus: int, nodes: int) -> str:
    """Why `pool` can never give `gpus` per node times `nodes` here ('' when it can, and for
    a Slurm pool: Slurm decides); the words `submit`, `validate` and the wizard use."""
    found = settings.pool(pool)
    if gpus <= 0 or found is None or found.kind == "slurm":
        return ""
    have = len(_in_pool(settings, pool, inventory(settings)))
    if gpus * nodes <= have:
        return ""
    asked = f"{gpus} GPU(s)" if nodes == 1 else f"{gpus} GPU(s) × {nodes} nodes"
    return f"pool {pool} has {have or 'no'} GPU(s) on this machine; {asked} asked for"


def _devices(ctx: Context, version_id: int) -> list[GpuInfo]:
    """The GPUs to decide on: the inventory (NVML is not asked for a version that needs
    no GPU)."""
    if ctx.settings.gpus is None:
        with ctx.db.read() as session:
            wanted = session.exec(select(Version.gpus_requested)
                                  .where(Version.id == version_id)).first()
        if not wanted:
            return []
    return inventory(ctx.settings)


def own_pids(ctx: Context) -> set[int]:
    """Processes of Traindeck's active versions (their ranks with their children, what
    runs in their containers): anything else on a GPU is foreign."""
    with ctx.db.read() as session:
        handles = list(session.exec(select(Version.handle).where(
            col(Version.status).in_([s.value for s in ACTIVE_STATUSES]),
            Version.handle != "")))
    return handle_pids(handles)


def _in_pool(settings: Settings, pool: str, devices: list[GpuInfo]) -> list[GpuInfo]:
    """The allocatable devices of `pool`: MIG instances belong to their GPU's pool."""
    found = allocatable(devices)
    indices = set(pool_gpus(settings, pool, sorted({d.index for d in found})))
    return [d for d in found if d.index in indices]


def _foreign(ctx: Context, free: list[GpuInfo], own: set[int]) -> dict[GpuDevice, str]:
    """Free devices that processes outside Traindeck fill, each with the reason in words."""
    found = {d.device: foreign_load(d, own, ctx.settings.gpu_min_free_fraction)
             for d in free if d.processes}
    return {device: reason for device, reason in found.items() if reason}


def _assess(ctx: Context, session: Session, version_id: int, devices: list[GpuInfo],
            own: set[int]) -> tuple[Admission, bool]:
    """The decision for `version_id`, and whether it grants GPUs not yet allocated."""
    # The columns, not the ORM object: a first load of a mapped class costs a new
    # process (every supervisor) several milliseconds.
    version = session.exec(
        select(Version.gpus_requested, Version.nodes, Version.pool)
        .where(Version.id == version_id)).first()
    if version is None:
        return Admission(None, "version deleted", impossible=True), False
    requested, nodes, pool = version
    needed = requested * nodes
    settings_pool = ctx.settings.pool(pool)
    if needed == 0 or (settings_pool is not None and settings_pool.kind == "slurm"):
        # Slurm queues and places a Slurm pool's versions itself
        return Admission([]), False
    held_by_me = sorted(session.exec(
        select(GpuAllocation.gpu, GpuAllocation.mig_index, GpuAllocation.uuid)
        .where(GpuAllocation.version_id == version_id)).all())
    if len(held_by_me) >= needed:
        return Admission([GpuDevice.booked(*row) for row in held_by_me[:needed]]), False
    candidates = _in_pool(ctx.settings, pool, devices)
    if needed > len(candidates):
        return Admission(None, f"asks for {needed} GPU(s) but pool {pool} has "
                               f"{len(candidates)}", impossible=True), False
    ahead = (
        select(Version.id).where(
            col(Version.status).in_([Status.INITIALIZING.value, Status.QUEUED.value]),
            Version.pool == pool, Version.gpus_requested > 0,
            col(Version.id) < version_id,
        ).where(~col(Version.id).in_(select(GpuAllocation.version_id).distinct()))
    )
    first_ahead = session.exec(ahead.order_by(col(Version.id)).limit(1)).first()
    holders = {GpuDevice.booked(gpu, mig): holder for gpu, mig, holder in session.exec(
        select(GpuAllocation.gpu, GpuAllocation.mig_index, GpuAllocation.version_id)
        .where(col(GpuAllocation.gpu).in_({d.index for d in candidates}))
    ).all()}
    free = [d for d in candidates if d.device not in holders]
    foreign = _foreign(ctx, free, own)
    free = [d for d in free if d.device not in foreign]
    if first_ahead is not None or len(free) < needed:
        count_ahead = (session.exec(select(func.count()).select_from(ahead.subquery())).one()
                       if first_ahead is not None else 0)
        return Admission(None, _waiting_reason(
            session, needed, pool, len(free), holders, first_ahead, count_ahead,
            list(foreign.values()))), False
    return Admission([d.device for d in free[:needed]]), True


def _waiting_reason(
    session: Session, needed: int, pool: str, free: int, holders: dict[GpuDevice, int],
    first_ahead: int | None, count_ahead: int, foreign: list[str],
) -> str:
    """Why a version waits, naming who holds the GPUs (Traindeck's versions and processes
    outside it) and who is ahead in the queue."""
    parts = [f"waiting for {needed} GPU(s) in pool {pool}: {free} free"]
    labels = _labels(session, set(holders.values()) | (
        {first_ahead} if first_ahead is not None else set()))
    for device, holder in sorted(holders.items(),
                                 key=lambda item: (item[0].index, item[0].slot)):
        parts.append(f"{device.label} held by {labels[holder]}")
    parts += foreign
    if first_ahead is not None:
        ahead = f"{count_ahead} earlier version(s) first ({labels[first_ahead]}"
        parts.append(ahead + (", ...)" if count_ahead > 1 else ")"))
    return "; ".join(parts)


def release(ctx: Context, version_id: int) -> None:
    """Give back every GPU the version holds."""
    with ctx.db.write() as session:
        session.exec(delete(GpuAllocation).where(col(GpuAllocation.version_id) == version_id))


def release_finished(ctx: Context) -> int:
    """Free GPUs still held by final versions (a supervisor that died while finishing)."""
    final = [s.value for s in Status if s.is_final]
    stale_query = (
        select(GpuAllocation.version_id)
        .join(Version, col(Version.id) == col(GpuAllocation.version_id))
        .where(col(Version.status).in_(final))
    )
    with ctx.db.read() as session:
        # Every CLI start comes here: look first, so that it takes no write lock.
        if not session.exec(stale_query.limit(1)).first():
            return 0
    with ctx.db.write() as session:
        stale = session.exec(
            select(GpuAllocation.version_id).join(
                Version, col(Version.id) == col(GpuAllocation.version_id))
            .where(col(Version.status).in_(final))
        ).all()
        if stale:
            session.exec(delete(GpuAllocation).where(col(GpuAllocation.version_id).in_(stale)))
    return len(stale)


def wake_queued(ctx: Context, exclude: int | None = None) -> int:
    """Ask every waiting version's supervisor to look at the GPUs again now."""
    from app.runtime.signals import WAKE_SIGNAL, signal_supervisor

    woken = 0
    for version in queued_supervisors(ctx):
        if version.id != exclude and version.gpus_requested > 0:
            woken += signal_supervisor(version, WAKE_SIGNAL)
    return woken


def queued_supervisors(ctx: Context) -> list[Version]:
    """Queued versions, oldest first (to wake them when GPUs are released)."""
    with ctx.db.read() as session:
        return list(session.exec(
            select(Version).where(col(Version.status).in_(
                [Status.QUEUED.value, Status.INITIALIZING.value]))
            .order_by(col(Version.id))
        ))
