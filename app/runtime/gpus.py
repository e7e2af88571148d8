"""GPU inventory: NVML where an NVIDIA driver answers, else the GPUs the settings declare.

A machine without NVIDIA still works (CPU versions), and tests declare GPUs in config.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as the inventory sees it."""

    index: int
    name: str
    memory_total_mb: int | None = None
    memory_used_mb: int | None = None
    utilization: int | None = None
    source: str = "config"
    """`nvml` when read from the driver, `config` when declared."""


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
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                util: int | None = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:
                util = None
            out.append(GpuInfo(
                index=index, name=name.decode() if isinstance(name, bytes) else str(name),
                memory_total_mb=int(memory.total) // 2**20,
                memory_used_mb=int(memory.used) // 2**20, utilization=util, source="nvml",
            ))
        return out
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()


def inventory(settings: Settings) -> list[GpuInfo]:
    """The GPUs of this machine: declared ones win (tests), else NVML, else none."""
    if settings.gpus is not None:
        return [GpuInfo(index=i, name=f"declared GPU {i}") for i in settings.gpus]
    return _nvml_gpus() or []


def pool_gpus(settings: Settings, pool_name: str, indices: list[int]) -> list[int]:
    """GPU indices that belong to a pool: dedicated pools own theirs, public gets the rest."""
    pool = settings.pool(pool_name)
    if pool is None:
        return []
    present = set(indices)
    if pool.kind == "dedicated":
        return sorted(present & set(pool.gpus))
    reserved = {g for p in settings.pools if p.kind == "dedicated" for g in p.gpus}
    return sorted(present - reserved)
