"""Read models that need nothing but the standard library.

The cold read path (`app.store.quicklist`) builds these without importing SQLModel,
SQLAlchemy or pydantic; `app.queries` builds the same ones from the ORM and re-exports them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

ACTIVE_STATUS_VALUES = frozenset({"initializing", "queued", "running"})
"""`app.store.models.ACTIVE_STATUSES` as text: a version that holds or waits for resources."""
DEFAULT_DESCENDING: dict[str, bool] = {
    "updated": True, "created": True, "name": False, "status": False,
}
"""The natural order of each sort key: newest first for times, A to Z for words."""
DELETED_PARENT = "{label} (deleted)"
"""How a version's parent reads once the parent was deleted."""


def format_resources(gpus: int, nodes: int, runtime: str) -> str:
    """Accelerators per node, times the node count, then the runtime (`2 GPUs · local`,
    two CPU nodes in Docker): the one way the TUI and the CLI write a version's resources."""
    text = (f"{gpus} GPU" + ("s" if gpus > 1 else "")) if gpus else "CPU"
    if nodes > 1:
        text += f" × {nodes}"
    if runtime:
        text += f" · {runtime}"
    return text


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of `value` (None stays None)."""
    return value.isoformat() if value else None


@dataclass(frozen=True)
class JobRow:
    """One line of the job list: a job and its latest version."""

    id: int
    name: str
    description: str
    version: str
    versions: int
    """How many versions the job has now (deleted ones do not count)."""
    status: str
    reason: str
    engine: str
    runtime: str
    gpus: int
    nodes: int
    created: datetime
    updated: datetime
    started: datetime | None
    finished: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        data = asdict(self)
        for key in ("created", "updated", "started", "finished"):
            data[key] = iso(data[key])
        return data


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """Everything about one version."""

    id: int
    job: str
    number: int
    version: str
    parent: str | None
    status: str
    reason: str
    exit_code: int | None
    engine: str
    runtime: str
    pool: str
    gpus: int
    nodes: int
    allocated_gpus: str
    """The devices it held (`0,1`, `0/MIG1`), as `Version.allocated_gpus`."""
    allocated_uuids: str
    """Their NVML UUIDs in the same order ('' for declared GPUs)."""
    output: str
    log_dir: str
    created: datetime
    queued: datetime | None
    started: datetime | None
    finished: datetime | None
    duration: float | None
    metrics: dict[str, float]
    spec_json: str = field(repr=False)
    """The resolved spec as stored (JSON); `spec` is it decoded."""
    code_info: str = field(default="", repr=False)
    """The code snapshot it runs (JSON: folder, size, files, git commit and dirtiness)."""
    _spec: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def spec(self) -> dict[str, Any]:
        """The resolved spec the version runs (decoded when first read: a job screen reads
        every version of the job and shows one)."""
        if self._spec is None:
            object.__setattr__(self, "_spec", json.loads(self.spec_json))
        assert self._spec is not None
        return self._spec

    @property
    def code(self) -> dict[str, Any] | None:
        """The code snapshot it runs (`code_info` decoded), or None."""
        return json.loads(self.code_info) if self.code_info else None

    @property
    def parameters(self) -> dict[str, Any]:
        """The run parameters of the spec."""
        parameters: dict[str, Any] = self.spec.get("parameters", {})
        return parameters

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        data = asdict(self)
        del data["spec_json"], data["_spec"]
        data["code"] = self.code
        for key in ("created", "queued", "started", "finished"):
            data[key] = iso(data[key])
        spec = json.loads(self.spec_json)
        metrics = data.pop("metrics")
        return {**data, "parameters": spec.get("parameters", {}), "metrics": metrics,
                "spec": spec}


def duration_seconds(started: datetime | None, finished: datetime | None,
                     now: datetime | None = None) -> float | None:
    """How long a version ran: from `started` to `finished` (to `now` while it runs)."""
    if started is None:
        return None
    return max(0.0, ((finished or now or datetime.now(UTC)) - started).total_seconds())


def version_from_row(job_name: str, row: Any, metrics: dict[str, float], now: datetime
                     ) -> VersionInfo:
    """A `VersionInfo` from a row of the version's columns (`app.queries._VERSION_COLUMNS`
    and the parent's number, taken by position): the ORM and the cold path both read so."""
    (id_, number, status, reason, exit_code, engine, runtime, pool, gpus, nodes, allocated,
     output, log_dir, created, queued, started, finished, spec_json, code_info,
     allocated_uuids, parent_number) = row
    return VersionInfo(
        id=id_, job=job_name, number=number, version=f"V{number:03d}",
        parent=f"V{parent_number:03d}" if parent_number else None,
        status=status, reason=reason, exit_code=exit_code, engine=engine, runtime=runtime,
        pool=pool, gpus=gpus, nodes=nodes, allocated_gpus=allocated,
        allocated_uuids=allocated_uuids, output=output,
        log_dir=log_dir, created=created, queued=queued, started=started, finished=finished,
        duration=duration_seconds(started, finished, now),
        metrics=metrics, spec_json=spec_json, code_info=code_info,
    )


@dataclass(frozen=True)
class EventInfo:
    """One event of a version."""

    time: datetime
    kind: str
    status: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        return {"time": iso(self.time), "kind": self.kind, "status": self.status,
                "message": self.message}


@dataclass(frozen=True)
class Comparison:
    """Versions side by side: parameters and final metrics, with the best value marked."""

    job: str
    versions: list[str]
    version_ids: list[int]
    statuses: list[str]
    parameter_names: list[str]
    differing: list[str]
    parameters: dict[str, list[Any]]
    metric_names: list[str]
    metrics: dict[str, list[float | None]]
    best: dict[str, tuple[int, ...]]
    """Per metric, the indices of the versions holding the best value (all of a tie)."""
    goals: dict[str, str]
    reasons: list[str] = field(default_factory=list)
    """Why each version is in its status (a failure's cause), or ''."""
    spec_changes: dict[str, list[Any]] = field(default_factory=dict)
    """The other fields of the spec that differ between the versions (the command, the
    environment, resources...), by dotted path; None where a version has no such field."""

    def to_dict(self) -> dict[str, Any]:
        """For `--json`: per metric, the labels of the versions with the best value."""
        data = asdict(self)
        data["best"] = {
            name: [self.versions[i] for i in indices] for name, indices in self.best.items()
        }
        return data


def leaf_fields(data: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping (a spec) as its leaf values by dotted path (`resources.gpus`)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(leaf_fields(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def gpu_summary_of(rows: Iterable[tuple[int, str, float, float, int]]
                   ) -> dict[int, dict[str, float]]:
    """Per version: `gpu_memory_peak_mb` (the most any one of its GPUs held) and
    `gpu_util_mean` (% over all its GPUs' samples), from (version id, `sys/gpu…` name,
    max, mean, count) of its samples of each name."""
    out: dict[int, dict[str, float]] = {}
    weighted: dict[int, tuple[float, int]] = {}
    for vid, name, peak, mean, count in rows:
        summary = out.setdefault(vid, {})
        if name.endswith("/memory_mb"):
            summary["gpu_memory_peak_mb"] = max(summary.get("gpu_memory_peak_mb", 0.0), peak)
        elif name.endswith("/util"):
            total, n = weighted.get(vid, (0.0, 0))
            weighted[vid] = (total + mean * count, n + count)
    for vid, (total, n) in weighted.items():
        out[vid]["gpu_util_mean"] = round(total / n, 1)
    return out


GPU_COMPARE_ROWS = (("gpu_memory_peak_mb", "GPU memory peak (MiB)"),
                    ("gpu_util_mean", "GPU utilisation mean (%)"))
"""The `gpu_summary_of` figures a comparison shows, with their row titles."""


def gpu_compare_rows(summary: dict[int, dict[str, float]], version_ids: list[int]
                     ) -> list[tuple[str, list[float | None]]]:
    """The GPU rows of a comparison (the CLI's table and the TUI's compare screen): each
    `GPU_COMPARE_ROWS` title with every version's figure from `gpu_summary_of` (None where
    it has none); a row no version has a figure for is left out."""
    rows = [(title, [summary.get(vid, {}).get(key) for vid in version_ids])
            for key, title in GPU_COMPARE_ROWS]
    return [(title, values) for title, values in rows
            if any(value is not None for value in values)]
