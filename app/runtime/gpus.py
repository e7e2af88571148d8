"""GPU inventory: NVML where an NVIDIA driver answers, else the GPUs the settings declare.

A machine without NVIDIA still works (CPU versions), and tests declare GPUs in config.
From NVML each GPU comes with its UUID, memory, utilisation, temperature and the compute
processes on it; a GPU in MIG mode also lists its MIG instances, each with its own UUID
and memory. Processes are told apart as Traindeck's (a running version's ranks and their
children, or processes in its containers) or foreign, so that the scheduler can keep off
a GPU that someone else's notebook fills.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from app.config import Settings
from app.store.models import WHOLE_GPU

log = logging.getLogger(__name__)
MAX_NAMED_PROCESSES = 3
"""Foreign processes a reason names one by one; more are counted."""


@dataclass(frozen=True)
class GpuProcess:
    """A compute process on a GPU; name and user are read from /proc where it is visible."""

    pid: int
    used_mb: int | None = None
    """GPU memory it holds; None where NVML cannot say."""
    name: str = ""
    user: str = ""

    def describe(self) -> str:
        """`pid 4312 (python, user ana)`, or `pid 4312` when /proc does not show it."""
        known = ", ".join(x for x in (self.name, f"user {self.user}" if self.user else "") if x)
        return f"pid {self.pid} ({known})" if known else f"pid {self.pid}"

    def short(self) -> str:
        """`python 4312 (ana)`, or `pid 4312`: for a table cell."""
        if not self.name:
            return f"pid {self.pid}"
        return f"{self.name} {self.pid}" + (f" ({self.user})" if self.user else "")


@dataclass(frozen=True)
class GpuDevice:
    """What the scheduler books for a version: a whole GPU, or one MIG instance of it."""

    index: int
    """NVML index of the GPU (of a MIG instance's parent)."""
    mig_index: int | None = None
    """The MIG instance's slot on its GPU; None for the whole GPU."""
    uuid: str = field(default="", compare=False)
    """`GPU-…` or `MIG-…`; empty for declared GPUs."""

    @property
    def label(self) -> str:
        """`GPU1`, or `GPU0/MIG2` for a MIG instance."""
        return f"GPU{self.index}" + (f"/MIG{self.mig_index}" if self.mig_index is not None
                                     else "")

    @classmethod
    def booked(cls, gpu: int, mig_index: int, uuid: str = "") -> GpuDevice:
        """The device of a `GpuAllocation` row."""
        return cls(gpu, None if mig_index == WHOLE_GPU else mig_index, uuid)

    @property
    def slot(self) -> int:
        """`GpuAllocation.mig_index` of this device."""
        return WHOLE_GPU if self.mig_index is None else self.mig_index

    @property
    def device_id(self) -> str:
        """How CUDA_VISIBLE_DEVICES and a Docker device request name it: the GPU's index
        (in PCI bus order, as NVML and Docker count), a MIG instance's UUID."""
        return self.uuid if self.mig_index is not None and self.uuid else str(self.index)

    def __str__(self) -> str:
        """`1`, `0/MIG2`: the device as `Version.allocated_gpus` lists it."""
        return self.label.removeprefix("GPU")


@dataclass(frozen=True)
class GpuInfo:
    """One GPU (or MIG instance) as the inventory sees it."""

    index: int
    """NVML index of the GPU; for a MIG instance, that of its parent GPU."""
    name: str
    memory_total_mb: int | None = None
    memory_used_mb: int | None = None
    utilization: int | None = None
    source: str = "config"
    """`nvml` when read from the driver, `config` when declared."""
    uuid: str = ""
    """`GPU-…` or `MIG-…` from NVML; empty for declared GPUs."""
    temperature: int | None = None
    """Degrees Celsius."""
    processes: tuple[GpuProcess, ...] = ()
    mig_index: int | None = None
    """The MIG device's slot on its parent; None for a whole GPU."""
    mig_mode: bool = False
    """A whole GPU in MIG mode: usable only through its MIG instances."""

    @property
    def label(self) -> str:
        """`GPU1`, or `GPU0/MIG2` for a MIG instance."""
        return self.device.label

    @property
    def device(self) -> GpuDevice:
        """The allocatable device this is."""
        return GpuDevice(self.index, self.mig_index, self.uuid)

    @property
    def memory_free_mb(self) -> int | None:
        """Memory nobody holds, when NVML said."""
        if self.memory_total_mb is None or self.memory_used_mb is None:
            return None
        return self.memory_total_mb - self.memory_used_mb


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def process_owner(pid: int) -> tuple[str, str]:
    """(command name, user name) of a process, ('', '') where /proc does not show it."""
    proc = Path(f"/proc/{pid}")
    try:
        name = (proc / "comm").read_text().strip()
        uid = proc.stat().st_uid
    except OSError:
        return "", ""
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    return name, user


def _processes(pynvml: Any, handle: Any) -> tuple[GpuProcess, ...]:
    try:
        found = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except pynvml.NVMLError:
        return ()
    out = []
    for proc in found:
        used = getattr(proc, "usedGpuMemory", None)
        out.append(GpuProcess(int(proc.pid), None if used is None else int(used) // 2**20,
                              *process_owner(int(proc.pid))))
    return tuple(out)


def _optional(pynvml: Any, call: Any, *args: Any) -> Any:
    """The call's answer, or None where this GPU does not support it (or it failed)."""
    try:
        return call(*args)
    except pynvml.NVMLError:
        return None


def _device(pynvml: Any, handle: Any, index: int, mig_index: int | None = None) -> GpuInfo:
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    util = _optional(pynvml, pynvml.nvmlDeviceGetUtilizationRates, handle)
    temperature = _optional(pynvml, pynvml.nvmlDeviceGetTemperature, handle,
                            pynvml.NVML_TEMPERATURE_GPU)
    return GpuInfo(
        index=index, name=_text(pynvml.nvmlDeviceGetName(handle)),
        memory_total_mb=int(memory.total) // 2**20, memory_used_mb=int(memory.used) // 2**20,
        utilization=None if util is None else int(util.gpu), source="nvml",
        uuid=_text(_optional(pynvml, pynvml.nvmlDeviceGetUUID, handle) or ""),
        temperature=None if temperature is None else int(temperature),
        processes=_processes(pynvml, handle), mig_index=mig_index,
        mig_mode=mig_index is None and _mig_mode(pynvml, handle),
    )


def _mig_mode(pynvml: Any, handle: Any) -> bool:
    """Whether the GPU runs in MIG mode (False where it cannot)."""
    mode = _optional(pynvml, pynvml.nvmlDeviceGetMigMode, handle)
    return bool(mode) and mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE


def _mig_devices(pynvml: Any, handle: Any, index: int) -> list[GpuInfo]:
    """The MIG instances of a GPU in MIG mode."""
    out = []
    for slot in range(_optional(pynvml, pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            out.append(_device(pynvml, mig, index, mig_index=slot))
        except pynvml.NVMLError:
            continue  # an empty slot
    return out


def _nvml_gpus() -> list[GpuInfo] | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        out: list[GpuInfo] = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                out.append(_device(pynvml, handle, index))
            except pynvml.NVMLError as exc:
                # A GPU fallen off the bus is left out: nothing may be placed on it.
                log.warning("GPU%d: NVML: %s", index, exc)
                continue
            if out[-1].mig_mode:
                out += _mig_devices(pynvml, handle, index)
        return out
    except pynvml.NVMLError:
        return None
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def inventory(settings: Settings) -> list[GpuInfo]:
    """The GPUs of this machine: declared ones win (tests), else NVML, else none.

    MIG instances follow their parent GPU (`mig_index` set); `whole_gpus` leaves them out.
    """
    if settings.gpus is not None:
        return [GpuInfo(index=i, name=f"declared GPU {i}") for i in settings.gpus]
    return _nvml_gpus() or []


def whole_gpus(gpus: Iterable[GpuInfo]) -> list[GpuInfo]:
    """The GPUs themselves, without their MIG instances."""
    return [g for g in gpus if g.mig_index is None]


def allocatable(gpus: Iterable[GpuInfo]) -> list[GpuInfo]:
    """What versions can be given: every MIG instance, and every GPU not in MIG mode (one
    in MIG mode is usable only through its instances)."""
    return [g for g in gpus if not g.mig_mode]


def pool_gpus(settings: Settings, pool_name: str, indices: list[int]) -> list[int]:
    """GPU indices that belong to a pool: dedicated pools own theirs, public gets the rest."""
    pool = settings.pool(pool_name)
    if pool is None:
        return []
    present = set(indices)
    if pool.kind == "slurm":
        return []  # a partition's GPUs are on its nodes, Slurm's to give
    if pool.kind == "dedicated":
        return sorted(present & set(pool.gpus))
    reserved = {g for p in settings.pools if p.kind == "dedicated" for g in p.gpus}
    return sorted(present - reserved)


def nvml_problem() -> str:
    """Why NVML cannot be read here ('' when it can): for checks that need a real GPU."""
    try:
        import pynvml
    except ImportError:
        return "no NVIDIA GPU: pynvml (nvidia-ml-py) is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return f"no NVIDIA GPU: nvmlInit failed ({exc})"
    pynvml.nvmlShutdown()
    return ""


# ---------------------------------------------------------------- whose processes


def _parents() -> dict[int, int]:
    """pid → parent pid of every process this machine shows."""
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def process_tree(roots: Iterable[int]) -> set[int]:
    """`roots` and every process descended from them (those still alive)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), [r for r in roots if r > 0]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


def container_processes(container_ids: Iterable[str]) -> set[int]:
    """Host pids of the processes in these containers (by their cgroup), where visible."""
    ids = [c for c in container_ids if c]
    if not ids:
        return set()
    out = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cgroup = Path(entry.path, "cgroup").read_text()
            except OSError:
                continue
            if any(c in cgroup for c in ids):
                out.add(int(entry.name))
    return out


def handle_pids(handles: Iterable[str | dict[str, Any]]) -> set[int]:
    """Processes of versions, given their executor handles (JSON or parsed): local ranks
    with their children, and what runs in Docker ranks' containers."""
    roots: list[int] = []
    containers: list[str] = []
    for handle in handles:
        data = json.loads(handle) if isinstance(handle, str) else handle
        if not isinstance(data, dict):
            continue
        roots += [int(p) for p in data.get("pids") or []]
        containers += [str(c) for c in data.get("containers") or []]
    return (process_tree(roots) if roots else set()) | container_processes(containers)


def foreign_processes(gpu: GpuInfo, own_pids: set[int]) -> list[GpuProcess]:
    """The processes on `gpu` that are not Traindeck's, the biggest first."""
    found = [p for p in gpu.processes if p.pid not in own_pids]
    return sorted(found, key=lambda p: -(p.used_mb or 0))


def foreign_load(gpu: GpuInfo, own_pids: set[int], min_free_fraction: float) -> str:
    """Why `gpu` is too full of processes outside Traindeck to place a version on ('' when
    it is not): its free memory is below `min_free_fraction` of its total and someone
    else's processes hold memory on it.

    `GPU1: 71 GB used by pid 4312 (python, user ana) outside Traindeck`
    """
    free, total = gpu.memory_free_mb, gpu.memory_total_mb
    foreign = foreign_processes(gpu, own_pids)
    if not foreign or free is None or not total or free >= min_free_fraction * total:
        return ""
    known = [p.used_mb for p in foreign if p.used_mb is not None]
    used = sum(known) if len(known) == len(foreign) else gpu.memory_used_mb or 0
    named = ", ".join(p.describe() for p in foreign[:MAX_NAMED_PROCESSES])
    more = len(foreign) - MAX_NAMED_PROCESSES
    named += f" and {more} more" if more > 0 else ""
    return f"{gpu.label}: {memory_words(used)} used by {named} outside Traindeck"


def memory_words(mb: int) -> str:
    """`71 GB`, `512 MB`: the size in words, as a reason says it."""
    return f"{mb / 1024:.0f} GB" if mb >= 1024 else f"{mb} MB"


# ---------------------------------------------------------------- as JSON


def inventory_json(settings: Settings) -> dict[str, Any]:
    """The inventory as `traindeck gpus --json` prints it."""
    gpus = inventory(settings)
    return {"source": gpus[0].source if gpus else "none",
            "gpus": [asdict(g) | {"label": g.label} for g in gpus]}


GPU_TABLE_HEADER = ["gpu", "uuid", "name", "memory", "util", "temp", "processes"]
"""Columns of `gpu_table_rows`, for `traindeck gpus`."""


def gpu_table_rows(gpus: list[GpuInfo]) -> list[tuple[str, ...]]:
    """One row per GPU and MIG instance: `traindeck gpus` without `--json`."""
    def known(value: int | None, unit: str) -> str:
        return "-" if value is None else f"{value}{unit}"

    return [(g.label, g.uuid or "-", g.name,
             f"{known(g.memory_used_mb, '')}/{known(g.memory_total_mb, ' MiB')}",
             known(g.utilization, "%"), known(g.temperature, "°C"),
             ", ".join(p.short() for p in g.processes) or "-") for g in gpus]
