"""Settings: a YAML file in the config dir, `TRAINDECK_*` environment variables, defaults.

`TRAINDECK_HOME` puts the config file, the database and the default run folders under
one directory (the tests use it); otherwise the platform's usual user dirs are used.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import platformdirs
import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from app.errors import ConfigError

APP_NAME = "traindeck"
CAPABILITY = re.compile(r"(CAP_)?[A-Z][A-Z0-9_]*")
"""A Linux capability as Docker takes it (`NET_ADMIN`, `CAP_NET_ADMIN`, or `ALL`)."""
SIZE = re.compile(r"[1-9][0-9]*[kmg]")
"""A json-file log size as Docker takes it (`100m`)."""
SLURM_WORD = re.compile(r"[A-Za-z0-9_.:,&|\[\]*-]+")
"""A Slurm partition, account, QoS or constraint expression (no spaces, no `=`)."""
SLURM_TIME = re.compile(r"(\d+-)?\d+(:\d+){0,2}|UNLIMITED|INFINITE")
"""A time limit as `sbatch --time` takes it (minutes, m:s, h:m:s, d-h, d-h:m, d-h:m:s)."""
CONFIG_FILE_NAME = "config.yaml"
HOME_ENV = "TRAINDECK_HOME"
"""Environment variable: one folder for the config file, the database and the runs."""


def home_dir() -> Path | None:
    """The folder named by `TRAINDECK_HOME`, if set."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser().resolve() if value else None


def config_dir() -> Path:
    """Where the config file lives."""
    home = home_dir()
    return home if home else Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    """Where the database, supervisor logs and default run folders live."""
    home = home_dir()
    return home if home else Path(platformdirs.user_data_dir(APP_NAME))


def config_file() -> Path:
    """The YAML config file (it need not exist)."""
    explicit = os.environ.get("TRAINDECK_CONFIG")
    return Path(explicit).expanduser() if explicit else config_dir() / CONFIG_FILE_NAME


class EngineSettings(BaseModel):
    """One version of an AI engine that jobs can run on."""

    name: str
    """Engine name as written in specs, e.g. `pytorch`."""
    version: str
    """Engine version as written in specs, e.g. `2.4`."""
    image: str
    """Docker image that carries the engine (runtime `docker`): an official public image,
    pulled when missing."""
    local_image: str | None = None
    """The image `traindeck images build ENGINE` makes here; used instead of `image`
    when present (machines without registry access)."""
    interpreter: str | None = None
    """Interpreter for runtime `local`; None means the Python running Traindeck."""
    single_node: bool = False
    """True when the engine cannot run distributed (node count must be 1)."""
    tensorboard: bool = False
    """True when the engine writes TensorBoard event files by itself."""


class PoolSettings(BaseModel):
    """A resource pool: `public` holds every GPU no dedicated pool reserves; a `slurm`
    pool is a partition of a Slurm cluster (Slurm schedules its versions)."""

    name: str
    """Pool name as written in specs."""
    kind: Literal["public", "dedicated", "slurm"] = "dedicated"
    """Public pools share the machine; dedicated pools own the GPUs they list; slurm
    pools submit each version as one Slurm job."""
    gpus: list[int] = Field(default_factory=list)
    """GPU indices reserved for a dedicated pool (ignored for the other kinds)."""
    description: str = ""
    """Shown in the wizard's pool picker."""
    partition: str | None = None
    """Slurm partition of a `slurm` pool (required there), e.g. `gpu`."""
    account: str | None = None
    """Slurm account charged for the pool's jobs (`sbatch --account`); None: the user's
    default."""
    qos: str | None = None
    """Slurm quality of service (`sbatch --qos`); None: the default."""
    constraint: str | None = None
    """Node features the jobs need (`sbatch --constraint`, e.g. `a100`)."""
    time_limit: str | None = None
    """Time limit of each job in Slurm's format (`30`, `4:00:00`, `2-00:00:00`); None:
    the partition's default."""
    container: Literal["auto", "pyxis", "apptainer", "none"] = "auto"
    """How a slurm pool's versions whose algorithm has an image (an engine's, or a custom
    one) run it on the nodes: `pyxis` (`srun --container-image`, enroot), `apptainer`
    (`apptainer exec`), `none` (the engine's interpreter on the nodes; a custom image is
    refused); `auto`: Pyxis when `srun --help` offers `--container-image`, else Apptainer
    when `apptainer` is on the PATH, else none."""

    _gpus = field_validator("gpus")(classmethod(lambda cls, v: check_gpu_indices(v)))

    @field_validator("partition", "account", "qos", "constraint")
    @classmethod
    def _slurm_word(cls, value: str | None) -> str | None:
        if value is not None and not SLURM_WORD.fullmatch(value):
            raise ValueError(f"{value!r} is not a Slurm name (letters, digits, _.-:,&|[]*)")
        return value

    @field_validator("time_limit")
    @classmethod
    def _slurm_time(cls, value: str | None) -> str | None:
        if value is not None and not SLURM_TIME.fullmatch(value):
            raise ValueError(f"{value!r} is not a Slurm time limit like 30, 4:00:00 or "
                             "2-00:00:00")
        return value

    @model_validator(mode="after")
    def _slurm_needs_partition(self) -> PoolSettings:
        if self.kind == "slurm" and not self.partition:
            raise ValueError(f"pool {self.name}: a slurm pool needs a partition")
        return self


class TopicSettings(BaseModel):
    """A notification topic: a name and the apprise URLs it sends to."""

    name: str
    """Topic name as written in spec subscriptions."""
    urls: list[str] = Field(default_factory=list)
    """apprise URLs (mailto://, slack://, ntfy://, json://, ...)."""
    description: str = ""
    """Shown in the wizard's topic picker."""


class StorageEndpoint(BaseModel):
    """A named S3-compatible object-storage endpoint (OBS, MinIO, Ceph, or AWS itself).

    No credentials here: they come from the standard AWS configuration (environment
    variables, the shared credentials file, or `profile`), so none reaches the database.
    """

    name: str
    """How `default_endpoint` names it."""
    endpoint_url: str | None = None
    """e.g. `https://obs.cn-north-4.myhuaweicloud.com`; None: the AWS configuration's own."""
    region: str | None = None
    """Signing region; None: the AWS configuration's own."""
    addressing: Literal["path", "virtual"] = "path"
    """`path` (`endpoint/bucket/key`) suits OBS, MinIO and Ceph; `virtual` suits AWS."""
    checksum: Literal["when_required", "when_supported"] = "when_required"
    """Request checksums and response validation; `when_required` for S3-compatibles."""
    profile: str | None = None
    """AWS profile (shared config/credentials files) with this endpoint's keys."""
    buckets: list[str] = Field(default_factory=list)
    """Buckets on this endpoint; other buckets use `default_endpoint`."""


def check_gpu_indices(gpus: list[int] | None) -> list[int] | None:
    """Raise ValueError unless every GPU index is 0 or more and listed once."""
    for index in gpus or []:
        if index < 0:
            raise ValueError(f"GPU index {index} is negative (indices start at 0)")
    duplicates = sorted({i for i in gpus or [] if (gpus or []).count(i) > 1})
    if duplicates:
        raise ValueError(f"GPU index {duplicates[0]} is listed twice")
    return gpus


def _engine(name: str, version: str, image: str, **extra: Any) -> EngineSettings:
    return EngineSettings(name=name, version=version, image=image, **extra)


DEFAULT_ENGINES: list[EngineSettings] = [
    # Official images on Docker Hub where one exists (`traindeck/...` tags are not on any
    # registry: built here); `local_image` is what `traindeck images build` makes.
    _engine("python", "3.11", "python:3.11-slim", local_image="traindeck/python:3.11"),
    # No official image carries 2.13: it runs in the local CPU build (or as processes).
    _engine("pytorch", "2.13", "traindeck/pytorch:cpu", local_image="traindeck/pytorch:cpu"),
    _engine("pytorch", "2.4", "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime"),
    _engine("tensorflow", "2.16", "tensorflow/tensorflow:2.16.1-gpu", tensorboard=True),
    _engine("mxnet", "1.9", "mxnet/python:1.9.1_gpu_cu112_py3", tensorboard=True),
    _engine("scikit-learn", "1.5", "traindeck/sklearn:1.5"),
    _engine("xgboost", "2.1", "traindeck/xgboost:2.1"),
    _engine("caffe", "1.0", "bvlc/caffe:gpu", single_node=True),
]

DEFAULT_POOLS: list[PoolSettings] = [
    PoolSettings(name="public", kind="public", description="Every GPU of this machine"),
]


class Settings(BaseSettings):
    """Every Traindeck setting. Environment variables use the `TRAINDECK_` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="TRAINDECK_", extra="forbid", env_nested_delimiter="__"
    )

    database_url: str | None = None
    """Any SQLAlchemy URL; default: SQLite `traindeck.db` in the data dir."""
    runs_dir: Path | None = None
    """Default folder for outputs and logs of specs that give relative paths."""
    gpus: list[int] | None = None
    """GPU indices to use when NVML finds no NVIDIA driver (e.g. `[0, 1]`)."""
    gpu_min_free_fraction: float = Field(default=0.25, ge=0, le=1)
    """A GPU on which processes outside Traindeck leave less than this share of its memory
    free is given to no version until they are gone (0: never keep off a GPU)."""
    system_metrics_seconds: float = Field(default=5.0, ge=0)
    """How often a running version's GPU utilisation and memory, CPU and resident memory
    are sampled (`sys/` metrics); 0 turns the sampling off."""
    default_runtime: Literal["auto", "docker", "local"] = "auto"
    """Runtime for specs that name none: `auto` is docker when an engine is reachable."""
    docker_host: str | None = None
    """Docker engine URL; default: the docker SDK's own (DOCKER_HOST or the local socket)."""
    docker_shm_size: str = "2g"
    """Shared memory for each training container (PyTorch data loaders need plenty)."""
    docker_cap_drop: list[str] = Field(default_factory=lambda: ["ALL"])
    """Linux capabilities taken from training containers: all of them by default (the
    ranks run as your own uid and need none); `[]` keeps Docker's default set."""
    docker_cap_add: list[str] = Field(default_factory=list)
    """Capabilities given back to training containers despite `docker_cap_drop`, e.g.
    `[SYS_PTRACE]` for py-spy or `[IPC_LOCK]` for RDMA memory pinning."""
    docker_no_new_privileges: bool = True
    """`no-new-privileges`: no process in a training container gains privileges
    (set-uid programs, file capabilities)."""
    docker_pids_limit: int | None = Field(default=4096, ge=1)
    """Processes and threads a training container may hold at once (a fork bomb stops
    there); None: no limit."""
    docker_log_max_size: str = "100m"
    """Size of each json-file log of a training container (Traindeck keeps the real log
    in its own files; the engine's copy only buffers what the log pump has not read)."""
    docker_log_max_file: int = Field(default=3, ge=1, le=100)
    """json-file log files kept per training container, so the engine's copy is bounded
    by `docker_log_max_size * docker_log_max_file`."""
    stop_grace_seconds: float = Field(default=10.0, gt=0)
    """Seconds between SIGTERM and SIGKILL when a version is stopped."""
    code_snapshot_limit: int = 200 * 1024 * 1024
    """Largest code folder (bytes, after `.traindeckignore` and the default excludes) that
    a version snapshots; a larger one is refused with its size."""
    engines: list[EngineSettings] = Field(default_factory=lambda: list(DEFAULT_ENGINES))
    """The engine catalog."""
    pools: list[PoolSettings] = Field(default_factory=lambda: list(DEFAULT_POOLS))
    """Resource pools; a `public` pool always exists."""
    topics: list[TopicSettings] = Field(default_factory=list)
    """Notification topics."""
    theme: str = "textual-dark"
    """TUI theme name (built-in or from a themes/ YAML file)."""
    storage_endpoints: list[StorageEndpoint] = Field(default_factory=list)
    """Named object-storage endpoints (credentials stay in the AWS configuration)."""
    default_endpoint: str | None = None
    """Endpoint of buckets no endpoint lists; None: the standard AWS configuration alone."""
    storage_connect_timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for an object-storage endpoint to accept a connection."""
    storage_read_timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for an object-storage endpoint to answer (each read of a reply)."""
    storage_max_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts of one object-storage request in all; a hung endpoint fails after about
    `storage_max_attempts * (storage_connect_timeout + storage_read_timeout)` seconds."""

    _gpus = field_validator("gpus")(classmethod(lambda cls, v: check_gpu_indices(v)))

    @field_validator("docker_cap_drop", "docker_cap_add")
    @classmethod
    def _capabilities(cls, names: list[str]) -> list[str]:
        for name in names:
            if not CAPABILITY.fullmatch(name):
                raise ValueError(f"{name!r} is not a capability name (like NET_ADMIN)")
        return names

    @field_validator("docker_log_max_size")
    @classmethod
    def _log_size(cls, size: str) -> str:
        if not SIZE.fullmatch(size):
            raise ValueError(f"{size!r} is not a size like 100m (k, m or g)")
        return size

    @field_validator("storage_endpoints")
    @classmethod
    def _unique_endpoints(cls, endpoints: list[StorageEndpoint]) -> list[StorageEndpoint]:
        names = [e.name for e in endpoints]
        if len(names) != len(set(names)):
            raise ValueError("a storage endpoint name appears twice")
        buckets = [b for e in endpoints for b in e.buckets]
        if len(buckets) != len(set(buckets)):
            raise ValueError("a bucket is listed by two storage endpoints")
        return endpoints

    @field_validator("default_endpoint")
    @classmethod
    def _known_endpoint(cls, name: str | None, info: ValidationInfo) -> str | None:
        known = [e.name for e in info.data.get("storage_endpoints") or []]
        if name is not None and name not in known:
            raise ValueError(f"no storage endpoint named {name!r} "
                             f"(known: {', '.join(known) or 'none'})")
        return name

    @field_validator("pools")
    @classmethod
    def _ensure_public_pool(cls, pools: list[PoolSettings]) -> list[PoolSettings]:
        if not any(p.kind == "public" for p in pools):
            pools = [*DEFAULT_POOLS, *pools]
        names = [p.name for p in pools]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"duplicate pool names: {', '.join(sorted(duplicates))}")
        return pools

    @field_validator("engines")
    @classmethod
    def _unique_engines(cls, engines: list[EngineSettings]) -> list[EngineSettings]:
        keys = [(e.name, e.version) for e in engines]
        if len(keys) != len(set(keys)):
            raise ValueError("an engine name and version appear twice")
        return engines

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=config_file()),
        )

    @property
    def data_dir(self) -> Path:
        """Folder of the database and supervisor state."""
        return data_dir()

    @property
    def resolved_runs_dir(self) -> Path:
        """Folder for outputs and logs that specs leave to the default."""
        return (self.runs_dir or data_dir() / "runs").expanduser()

    @property
    def resolved_database_url(self) -> str:
        """The database URL in force."""
        return self.database_url or f"sqlite:///{data_dir() / 'traindeck.db'}"

    def engine(self, name: str, version: str) -> EngineSettings | None:
        """The catalog entry for an engine name and version, if any."""
        return next((e for e in self.engines if e.name == name and e.version == version), None)

    def pool(self, name: str) -> PoolSettings | None:
        """The pool of that name, if any."""
        return next((p for p in self.pools if p.name == name), None)

    def topic(self, name: str) -> TopicSettings | None:
        """The topic of that name, if any."""
        return next((t for t in self.topics if t.name == name), None)


def load_settings() -> Settings:
    """Read the settings, turning any invalid value into a ConfigError naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"{_source_of(first['loc'])}: {where}: {first['msg']}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{config_file()}: {where}invalid YAML") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{config_file()}: {exc}") from exc


def _source_of(loc: tuple[int | str, ...]) -> str:
    """Where a bad value came from: the environment variable that set it, else the file.

    Environment variables win over the file, so one set for the field is the culprit.
    """
    if loc and isinstance(loc[0], str):
        prefix = f"TRAINDECK_{loc[0]}".upper()
        names = sorted(n for n in os.environ
                       if n.upper() == prefix or n.upper().startswith(prefix + "__"))
        if names:
            return f"environment variable {names[0]}"
    return str(config_file())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once)."""
    return load_settings()
