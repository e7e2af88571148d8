"""Every database table, in one module (SQLModel's advice: no circular imports).

Times are timezone-aware UTC datetimes. JSON payloads (frozen specs, schemas) are stored as
text so that any SQLAlchemy backend works.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.errors import FieldError


def utcnow() -> datetime:
    """The current time in UTC (what the tables store)."""
    return datetime.now(UTC)


class Status(StrEnum):
    """The life of a version."""

    INITIALIZING = "initializing"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def is_final(self) -> bool:
        """True once the version can no longer change status."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.STOPPED})
ACTIVE_STATUSES = frozenset({Status.INITIALIZING, Status.QUEUED, Status.RUNNING})
WHOLE_GPU = -1
"""`GpuAllocation.mig_index` of an allocation of a whole GPU."""


def version_label(number: int) -> str:
    """`V001` for 1: how a version number is shown everywhere."""
    return f"V{number:03d}"


def parse_version_label(label: str) -> int:
    """`V003`, `v3` or `3` → 3; anything else is a FieldError naming `version`."""
    text = label.strip().upper().removeprefix("V")
    if not text.isdigit() or int(text) < 1:
        raise FieldError("version", f"{label!r} is not a version like V001")
    return int(text)



STATUS_EVENTS: dict[str, str] = {
    Status.RUNNING: "OnJobRunning", Status.SUCCEEDED: "OnJobSucceeded",
    Status.FAILED: "OnJobFailed",
}
"""The subscribable event of each status (the source platform's names)."""

class Job(SQLModel, table=True):
    """A training job: a name, and the versions run under it."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_updated_at", "updated_at"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=64)
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_version_number: int = 0
    """Counter behind version numbers: bumped in the same transaction as the insert."""
    latest_version_id: int | None = Field(default=None)
    """Denormalised so that the job list needs no per-row subquery."""


class Version(SQLModel, table=True):
    """One run of a job: V001, V002, ..."""

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("job_id", "number", name="uq_versions_job_number"),
        Index("ix_versions_status", "status"),
        Index("ix_versions_output", "output"),
        Index("ix_versions_log_dir", "log_dir"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id", index=True)
    number: int
    parent_id: int | None = Field(default=None, foreign_key="versions.id")
    status: str = Status.INITIALIZING.value
    reason: str = ""
    """Why the version is in its status (a failure's cause, what a queued version waits for)."""
    spec_json: str
    """The frozen, resolved spec this version runs (JSON)."""
    engine: str = ""
    """`name version` or the custom image, for lists."""
    runtime: str = ""
    pool: str = "public"
    gpus_requested: int = 0
    nodes: int = 1
    output: str = ""
    log_dir: str = ""
    """Folder of this version's rank logs."""
    created_at: datetime = Field(default_factory=utcnow)
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    allocated_gpus: str = ""
    """Comma-separated devices held while running: GPU indices, `0/MIG1` for a MIG instance."""
    allocated_uuids: str = ""
    """NVML UUIDs of those devices in the same order (`GPU-…`, `MIG-…`); empty for GPUs
    declared in the settings."""
    executor: str = ""
    """Executor kind that runs it (`docker` or `local`)."""
    handle: str = ""
    """Executor's handle (JSON): container ids or process ids, to find the run again."""
    supervisor_pid: int | None = None
    supervisor_host: str = ""
    stop_requested: bool = False
    code_snapshot: str = ""
    """Id of the snapshot of the code folder the version runs (`app.store.snapshot`);
    empty when its algorithm has no code folder."""
    code_info: str = ""
    """The snapshot's folder, size, file count and git commit/dirtiness (JSON)."""


class MetricPointRow(SQLModel, table=True):
    """One metric value at one step."""

    __tablename__ = "metric_points"
    __table_args__ = (Index("ix_metric_points_version_name_step", "version_id", "name", "step"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="versions.id")
    name: str
    step: int
    value: float
    wall_time: float | None = None


class MetricSummary(SQLModel, table=True):
    """A version's final value of one metric."""

    __tablename__ = "metric_summaries"

    version_id: int = Field(foreign_key="versions.id", primary_key=True)
    name: str = Field(primary_key=True)
    value: float


class Event(SQLModel, table=True):
    """A status change or a notable happening in a version's life."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_time", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="versions.id", index=True)
    time: datetime = Field(default_factory=utcnow)
    kind: str = "info"
    """`status`, `info`, `warning`, `error` or `notification`."""
    status: str | None = None
    """The new status, for `status` events."""
    message: str = ""


class Dataset(SQLModel, table=True):
    """A named dataset with versions."""

    __tablename__ = "datasets"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    last_version_number: int = 0


class DatasetVersion(SQLModel, table=True):
    """One version of a dataset: a local folder or an s3:// prefix and its manifest summary."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "number", name="uq_dataset_versions"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="datasets.id", index=True)
    number: int
    uri: str
    description: str = ""
    file_count: int = 0
    total_bytes: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    snapshot: str = ""
    """The data snapshot of a local folder (its id in the snapshot store) that jobs pinned
    to this version read; "" for object storage and for versions made before snapshots."""


class Template(SQLModel, table=True):
    """Saved job parameters: a named spec to fill the wizard in one step."""

    __tablename__ = "templates"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    description: str = ""
    spec_json: str
    source_version_id: int | None = Field(default=None, foreign_key="versions.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class EngineRow(SQLModel, table=True):
    """The engine catalog, mirrored from the settings."""

    __tablename__ = "engines"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_engines_name_version"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    version: str
    image: str
    interpreter: str | None = None
    single_node: bool = False
    tensorboard: bool = False


class PresetAlgorithm(SQLModel, table=True):
    """A built-in algorithm: code shipped with Traindeck and its parameter schema."""

    __tablename__ = "preset_algorithms"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    description: str = ""
    engine: str
    engine_version: str
    code_dir: str
    boot_file: str
    params_schema_json: str = "[]"


class ResourcePool(SQLModel, table=True):
    """A resource pool, mirrored from the settings."""

    __tablename__ = "resource_pools"

    name: str = Field(primary_key=True)
    kind: str = "public"
    gpus: str = ""
    description: str = ""


class Topic(SQLModel, table=True):
    """A notification topic, mirrored from the settings (URLs stay in the config file)."""

    __tablename__ = "topics"

    name: str = Field(primary_key=True)
    description: str = ""
    url_count: int = 0


class GpuAllocation(SQLModel, table=True):
    """A GPU (or one MIG instance of it) held by a running version: the primary key makes
    double booking impossible."""

    __tablename__ = "gpu_allocations"

    gpu: int = Field(primary_key=True)
    """NVML index of the GPU (of the MIG instance's parent)."""
    mig_index: int = Field(default=WHOLE_GPU, primary_key=True)
    """The MIG instance's slot on its GPU; WHOLE_GPU (-1: a key column is never NULL) for
    the whole GPU."""
    uuid: str = ""
    """NVML UUID of the device (`GPU-…`, `MIG-…`); empty for declared GPUs."""
    version_id: int = Field(foreign_key="versions.id", index=True)
    allocated_at: datetime = Field(default_factory=utcnow)


class Model(SQLModel, table=True):
    """A registered model with versions."""

    __tablename__ = "models"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    last_version_number: int = 0


class ModelVersion(SQLModel, table=True):
    """One version of a model, made from a succeeded training version."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "number", name="uq_model_versions"),)

    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    number: int
    source_version_id: int | None = Field(default=None, foreign_key="versions.id")
    source_label: str = ""
    """`job/V003`, kept when the source version is deleted."""
    engine: str = ""
    artifact_uri: str = ""
    copied: bool = False
    metrics_json: str = "{}"
    parameters_json: str = "{}"
    created_at: datetime = Field(default_factory=utcnow)


class TensorBoardSession(SQLModel, table=True):
    """A TensorBoard server started for one or more versions."""

    __tablename__ = "tensorboard_sessions"

    id: int | None = Field(default=None, primary_key=True)
    version_ids: str = ""
    logdir: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    pid: int | None = None
    started_at: datetime = Field(default_factory=utcnow)
    stopped_at: datetime | None = None
    idle_timeout_s: int = 3600


class AppState(SQLModel, table=True):
    """Small key/value state of the app (when the TUI was last open, ...)."""

    __tablename__ = "app_state"

    key: str = Field(primary_key=True)
    value: str = ""
