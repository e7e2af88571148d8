"""System metrics of a running version: its GPUs' utilisation and memory, its processes'
CPU and resident memory, sampled every `system_metrics_seconds` by its supervisor.

They are stored as metric points under `sys/` (`sys/gpu0/util`, `sys/gpu0/memory_mb`,
`sys/gpu0/mig1/memory_mb` for a MIG instance, `sys/cpu_percent`, `sys/rss_mb`), so the
metrics tab plots them as it plots the script's own. When the run ends, a GPU that
stayed at 0% the whole time gets a warning event: the script most likely never used
CUDA. GPUs are read from NVML (Docker's devices are the same NVML indices; a MIG
instance is read by its UUID, and has no utilisation NVML can report); processes from
/proc (a local rank and its children, or what runs in the version's containers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select as core_select
from sqlmodel import col, func, select

from app.context import Context
from app.lifecycle import record_event
from app.readmodels import gpu_summary_of
from app.runtime.gpus import GpuDevice, handle_pids
from app.store.db import Database
from app.store.models import GpuAllocation, MetricPointRow

log = logging.getLogger(__name__)
PREFIX = "sys/"
MIN_SAMPLES_FOR_WARNING = 2
"""A run sampled fewer times than this says too little about its GPUs to warn."""
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _cpu_and_rss(pid: int) -> tuple[int, int] | None:
    """(CPU ticks used so far, resident bytes) of a process, None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return int(stat[11]) + int(stat[12]), resident * _PAGE


class Sampler:
    """Samples one version while it runs: `Sampler(ctx, vid, handle).start()`, then
    `.stop()` when its ranks have ended. Never raises into the supervisor."""

    def __init__(self, ctx: Context, version_id: int, handle: dict[str, Any] | str | None,
                 interval: float | None = None) -> None:
        self.ctx = ctx
        self.version_id = version_id
        self.handle = json.loads(handle) if isinstance(handle, str) and handle else handle
        self.interval = ctx.settings.system_metrics_seconds if interval is None else interval
        self.gpu_util: dict[str, list[int]] = {}
        """Each sampled device's utilisation readings so far, by its label (`GPU0`)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: Any = None
        self._gpus: dict[GpuDevice, Any] = {}
        self._ticks: dict[int, int] = {}
        self._last = 0.0
        self._step = 0

    def start(self) -> Sampler:
        """Begin sampling in a daemon thread (nothing when the interval is 0)."""
        if self.interval <= 0:
            return self
        with self.ctx.db.read() as session:
            gpus = [GpuDevice.booked(*row) for row in sorted(session.exec(
                select(GpuAllocation.gpu, GpuAllocation.mig_index, GpuAllocation.uuid)
                .where(GpuAllocation.version_id == self.version_id)).all())]
            last = session.exec(select(func.max(MetricPointRow.step)).where(
                MetricPointRow.version_id == self.version_id,
                col(MetricPointRow.name).startswith(PREFIX))).one()
        self._step = 0 if last is None else last + 1  # a restarted supervisor goes on
        if gpus:
            self._open_nvml(gpus)
        self._read_processes()  # the baseline CPU time is measured from
        self._thread = threading.Thread(target=self._run, name="sys-metrics", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling; warn about every GPU that stayed at 0% the whole run."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 10)
        if self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
            self._nvml = None
        idle = [label for label, values in self.gpu_util.items()
                if len(values) >= MIN_SAMPLES_FOR_WARNING and not any(values)]
        if idle:
            with self.ctx.db.write() as session:
                for label in idle:
                    record_event(session, self.version_id,
                                 f"{label} stayed at 0% for the whole run: is the script "
                                 "using CUDA?", "warning")

    def _open_nvml(self, gpus: list[GpuDevice]) -> None:
        try:
            import pynvml
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            log.info("no GPU metrics: NVML: %s", exc)
            return
        self._nvml = pynvml
        for gpu in gpus:
            try:
                self._gpus[gpu] = (pynvml.nvmlDeviceGetHandleByIndex(gpu.index)
                                   if gpu.mig_index is None or not gpu.uuid
                                   else pynvml.nvmlDeviceGetHandleByUUID(gpu.uuid))
            except pynvml.NVMLError as exc:
                log.warning("%s: no metrics: NVML: %s", gpu.label, exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception:  # a bad sample must not end the sampling or the supervisor
                log.exception("system metrics sample failed")

    def _read_processes(self) -> tuple[float | None, int | None]:
        """(CPU % since the last read, resident bytes) of the version's processes."""
        pids = handle_pids([self.handle]) if self.handle else set()
        now = time.monotonic()
        ticks: dict[int, int] = {}
        rss = 0
        for pid in pids:
            found = _cpu_and_rss(pid)
            if found is not None:
                ticks[pid], resident = found
                rss += resident
        elapsed = now - self._last
        cpu = None
        if ticks and self._last and elapsed > 0:
            used = sum(t - self._ticks.get(pid, 0) for pid, t in ticks.items())
            cpu = max(0.0, 100.0 * used / _TICKS / elapsed)
        self._ticks, self._last = ticks, now
        return cpu, (rss if ticks else None)

    def sample(self) -> dict[str, float]:
        """Read and store one sample now; returns what was stored."""
        values: dict[str, float] = {}
        nvml = self._nvml
        for gpu, handle in self._gpus.items():
            name = f"{PREFIX}{gpu.label.lower()}"
            try:
                util = (int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                        if gpu.mig_index is None else None)  # NVML has none for MIG
                used = int(nvml.nvmlDeviceGetMemoryInfo(handle).used) // 2**20
            except nvml.NVMLError as exc:
                log.warning("%s: NVML: %s", gpu.label, exc)
                continue
            values[f"{name}/memory_mb"] = used
            if util is not None:
                self.gpu_util.setdefault(gpu.label, []).append(util)
                values[f"{name}/util"] = util
        cpu, rss = self._read_processes()
        if cpu is not None:
            values[f"{PREFIX}cpu_percent"] = round(cpu, 1)
        if rss is not None:
            values[f"{PREFIX}rss_mb"] = round(rss / 2**20, 1)
        if values:
            wall = time.time()
            with self.ctx.db.write() as session:
                session.add_all([MetricPointRow(version_id=self.version_id, name=name,
                                                step=self._step, value=value, wall_time=wall)
                                 for name, value in values.items()])
            self._step += 1
        return values


def gpu_summary(db: Database, version_ids: Iterable[int]) -> dict[int, dict[str, float]]:
    """Per version: `gpu_memory_peak_mb` and `gpu_util_mean` (`gpu_summary_of`) of its
    `sys/gpu…` samples, for the comparison page."""
    with db.read() as session:
        rows = session.connection().execute(
            core_select(col(MetricPointRow.version_id), col(MetricPointRow.name),
                        func.max(MetricPointRow.value), func.avg(MetricPointRow.value),
                        func.count())
            .where(col(MetricPointRow.version_id).in_(list(version_ids)),
                   col(MetricPointRow.name).startswith(f"{PREFIX}gpu"))
            .group_by(col(MetricPointRow.version_id), col(MetricPointRow.name))).all()
    return gpu_summary_of(rows)
