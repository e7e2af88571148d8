"""Job specs: the YAML format shared by the wizard and the CLI, and its shape check.

Validation has two stages. The pydantic models here check shape and types; `validate_spec`
in `app.specs.rules` then checks the rules that need the outside world. Every error names
its field, and validation never writes anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from app.errors import FieldError, SpecError
from app.formatting import MEMORY_PATTERN, memory_bytes

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
PARAM_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
VERSION_PATTERN = re.compile(r"V\d{3,}")
EVENTS = ("OnJobRunning", "OnJobSucceeded", "OnJobFailed")
EventName = Literal["OnJobRunning", "OnJobSucceeded", "OnJobFailed"]
ParamValue = StrictBool | StrictInt | StrictFloat | StrictStr
Runtime = Literal["docker", "local"]
ArgumentStyle = Literal["modelarts", "plain", "none"]
"""How run parameters and folders reach the script: `modelarts` (`--data_url=<dir>/
--train_url=<dir>/ --name=value`), `plain` (`--name=value` only) or `none`."""
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_ENV = frozenset({
    "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "NODE_RANK", "LOCAL_RANK",
    "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE",
    "ROLE_NAME", "DATA_URL", "TRAIN_URL", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
})
"""Variables Traindeck sets for every rank (besides any `TRAINDECK_*`/`TORCHELASTIC_*`)."""


def check_name(value: str, what: str = "name") -> str:
    """Raise ValueError unless `value` is a valid job/template name."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 letters, digits, '-' or '_', starting with a letter"
        )
    return value


def is_remote(path: str) -> bool:
    """True for object-storage locations (`s3://` or `obs://`)."""
    return path.startswith(("s3://", "obs://"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetRef(_Strict):
    """A dataset and one of its versions."""

    name: str
    version: str

    @field_validator("version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if not VERSION_PATTERN.fullmatch(value):
            raise ValueError(f"version {value!r} must look like V001")
        return value


class DataSpec(_Strict):
    """Where the training data comes from: datasets, or storage paths — exactly one."""

    datasets: list[DatasetRef] | None = None
    paths: list[str] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DataSpec:
        given = [n for n in ("datasets", "paths") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("give exactly one data source: datasets or paths (not empty)")
        return self


def _engine_version_to_str(value: Any) -> Any:
    # YAML reads `engine_version: 2.4` as a float; engine versions are names, not numbers.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _scalar_to_str(value: Any) -> Any:
    """A number or boolean as the text a process sees (`true`/`false` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _command_items(items: Any) -> Any:
    # `[torchrun, train.py, 50]`: YAML reads 50 as a number; argv items are text.
    return [_scalar_to_str(v) for v in items] if isinstance(items, list) else items


def _check_items(items: list[str] | None) -> list[str] | None:
    if items is not None and any("\x00" in item for item in items):
        raise ValueError("an item holds a NUL character")
    return items


def _check_command(items: list[str] | None) -> list[str] | None:
    if items is not None and (not items or not items[0].strip()):
        raise ValueError("needs at least a program to run as its first item")
    return _check_items(items)


def _env_name(name: str) -> str:
    if not ENV_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"variable name {name!r} must start with a letter or '_' and hold "
                         "only letters, digits or '_'")
    if name in RESERVED_ENV or name.startswith(("TRAINDECK_", "TORCHELASTIC_")):
        raise ValueError(f"{name} is set by Traindeck for the ranks: choose another name")
    return name


def _env_value(value: str) -> str:
    if "\x00" in value:
        raise ValueError("holds a NUL character")
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]
EnvValue = Annotated[str, BeforeValidator(_scalar_to_str), AfterValidator(_env_value)]
"""An `env:` value: text; numbers and booleans are turned into text."""


class FrameworkSpec(_Strict):
    """A common framework: an AI engine and version running a boot file, or a full
    command, from a code dir."""

    engine: str
    engine_version: str
    code_dir: str
    boot_file: str | None = None
    command: list[str] | None = None
    arguments: ArgumentStyle | None = None
    """None: `modelarts` with a boot file, `none` with a command."""

    _coerce = field_validator("engine_version", mode="before")(
        classmethod(lambda cls, v: _engine_version_to_str(v))
    )
    _items = field_validator("command", mode="before")(
        classmethod(lambda cls, v: _command_items(v)))
    _command = field_validator("command")(classmethod(lambda cls, v: _check_command(v)))

    @model_validator(mode="wrap")
    @classmethod
    def _boot_file_or_command(cls, data: Any, handler: ValidatorFunctionWrapHandler
                              ) -> FrameworkSpec:
        missing = isinstance(data, Mapping) and all(
            data.get(key) is None for key in ("boot_file", "command"))
        try:
            spec: FrameworkSpec = handler(data)
        except ValidationError as exc:
            if not missing:
                raise
            # Reported beside the other errors of the block, as a missing field would be.
            raise ValidationError.from_exception_data(exc.title, [
                *exc.errors(),  # type: ignore[list-item]
                {"type": "missing", "loc": ("boot_file",), "input": data}]) from None
        if missing:
            raise ValidationError.from_exception_data(
                cls.__name__, [{"type": "missing", "loc": ("boot_file",), "input": data}])
        if spec.boot_file is not None and spec.command is not None:
            raise ValueError("give a boot_file or a command, not both")
        return spec

    @property
    def argument_style(self) -> ArgumentStyle:
        """The arguments convention in effect (the default depends on boot file/command)."""
        return self.arguments or ("none" if self.command is not None else "modelarts")


class PresetSpec(_Strict):
    """A built-in algorithm, by name."""

    name: str


class ImageSpec(_Strict):
    """A custom image and the command it runs."""

    name: str
    command: list[str] | None = None
    code_dir: str | None = None
    arguments: ArgumentStyle | None = None
    """None: `modelarts`."""

    _items = field_validator("command", mode="before")(
        classmethod(lambda cls, v: _command_items(v)))
    _command = field_validator("command")(classmethod(lambda cls, v: _check_items(v)))

    @property
    def argument_style(self) -> ArgumentStyle:
        """The arguments convention in effect."""
        return self.arguments or "modelarts"

    @field_validator("name")
    @classmethod
    def _image_name(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError(f"image name {value!r} is empty or has spaces")
        return value


class AlgorithmSpec(_Strict):
    """Where the training code comes from — exactly one of the three sources."""

    framework: FrameworkSpec | None = None
    preset: PresetSpec | None = None
    image: ImageSpec | None = None
    compat: Literal["moxing"] | None = None
    """`moxing`: Traindeck's moxing shim is importable by the run (ModelArts scripts)."""
    requirements: Literal["install", "ignore"] | None = None
    """What a requirements.txt in the code dir does: `install` (None: the default) puts it
    into an environment on top of the engine before the run; `ignore` leaves it alone."""

    @model_validator(mode="after")
    def _exactly_one(self) -> AlgorithmSpec:
        given = [n for n in ("framework", "preset", "image") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one algorithm source: framework, preset or image")
        return self

    @property
    def kind(self) -> str:
        """`framework`, `preset` or `image`."""
        if self.framework is not None:
            return "framework"
        return "preset" if self.preset is not None else "image"


MEMORY_MINIMUM = 6 * 1024 * 1024
"""Docker refuses a memory limit below 6 MiB."""


class ResourcesSpec(_Strict):
    """Resource pool, GPUs per node, node count, runtime, and per-node limits."""

    pool: str = "public"
    gpus: int = Field(default=0, ge=0, le=64)
    nodes: int = Field(default=1, ge=1, le=64)
    runtime: Runtime | None = None
    processes_per_node: Literal["gpus"] | Annotated[int, Field(ge=1, le=64)] | None = None
    """Processes started on each node (None: 1); `gpus`: one per GPU, each seeing its
    own GPU, as `torchrun --nproc_per_node` would start them."""
    cpus: float | None = Field(default=None, gt=0, le=1024)
    """CPU cores each node may use, e.g. `4` or `0.5` (Docker `--cpus`); None: no limit."""
    memory: str | None = None
    """Memory each node may use: bytes or a number with `k`, `m` or `g` (`8g`);
    None: no limit."""
    network: Literal["bridge", "none", "host"] | None = None
    """Docker network of a single-node version: `bridge` (the default), `none` (no
    network at all) or `host`. Multi-node versions have their own network (bridge)."""

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is not None:
            if not MEMORY_PATTERN.fullmatch(value):
                raise ValueError(f"{value!r} is not a size like 512m or 8g")
            if memory_bytes(value) < MEMORY_MINIMUM:
                raise ValueError(f"{value!r} is below the 6m Docker needs at least")
        return value

    @field_validator("network")
    @classmethod
    def _single_node_network(cls, value: str | None, info: Any) -> str | None:
        if value not in (None, "bridge") and info.data.get("nodes", 1) > 1:
            raise ValueError(f"a multi-node version runs on its own bridge network, "
                             f"not {value!r}")
        return value

    @property
    def memory_bytes(self) -> int | None:
        """`memory` in bytes (None: no limit)."""
        return memory_bytes(self.memory) if self.memory is not None else None

    @model_validator(mode="after")
    def _processes_fit_gpus(self) -> ResourcesSpec:
        wanted = self.processes_per_node
        if wanted == "gpus" and self.gpus == 0:
            raise ValueError("processes_per_node: gpus needs resources.gpus of 1 or more")
        if isinstance(wanted, int) and self.gpus and self.gpus % wanted:
            raise ValueError(f"processes_per_node: {self.gpus} GPU(s) per node cannot be "
                             f"shared evenly by {wanted} processes")
        return self


class SubscriptionSpec(_Strict):
    """Events of this job to send to a notification topic."""

    topic: str
    events: list[EventName] = Field(min_length=1)

    @field_validator("events")
    @classmethod
    def _no_duplicates(cls, events: list[str]) -> list[str]:
        if len(set(events)) != len(events):
            raise ValueError("an event is listed twice")
        return events


class TemplateSave(_Strict):
    """Save these settings as job parameters (a template) under a name."""

    name: str
    description: str = ""

    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v, "template name")))


def _log_pattern(pattern: str) -> str:
    from app.metrics_log import check_log_pattern  # only specs that have patterns need it

    check_log_pattern(pattern)
    return pattern


class MetricsSpec(_Strict):
    """Where metrics come from besides the files a script writes (see `app.metrics_log`)."""

    log_patterns: list[Annotated[str, AfterValidator(_log_pattern)]] | None = Field(
        default=None, max_length=20)
    """Regular expressions that replace the default rules for numbers in the log (None:
    the defaults; `[]`: no metrics from the log)."""


class JobSpec(_Strict):
    """A complete training job description."""

    name: str
    description: str = Field(default="", max_length=1000)
    data: DataSpec
    algorithm: AlgorithmSpec
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    env: dict[EnvName, EnvValue] | None = None
    """Extra environment variables for every rank (never passed through a shell)."""
    output: str | None = None
    log_dir: str | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)
    save_as_template: TemplateSave | None = None
    metrics: MetricsSpec | None = None

    _name = field_validator("name")(classmethod(lambda cls, v: check_name(v, "job name")))

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, params: dict[str, Any]) -> dict[str, Any]:
        for name, value in params.items():
            if not PARAM_NAME_PATTERN.fullmatch(name):
                raise ValueError(
                    f"parameter name {name!r} must start with a letter or '_' and hold only "
                    "letters, digits, '_', '.' or '-'"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"parameter {name!r} is not a finite number")
            if isinstance(value, str) and "\x00" in value:
                raise ValueError(f"parameter {name!r} holds a NUL character")
        return params

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (what the YAML file and the database hold)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        """The spec as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @property
    def engine_label(self) -> str:
        """`pytorch 2.4`, `preset:name` or the image name, for lists."""
        algo = self.algorithm
        if algo.framework is not None:
            return f"{algo.framework.engine} {algo.framework.engine_version}"
        if algo.preset is not None:
            return f"preset {algo.preset.name}"
        return algo.image.name if algo.image else ""


def format_parameter(value: ParamValue) -> str:
    """A run parameter as the boot file sees it (`true`/`false` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------- reading YAML


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """A safe loader that refuses a key given twice in one mapping (YAML keeps the last);
    libyaml's parser where PyYAML has it (several times faster on big specs)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()  # a set: a list made 40k keys take 19 s (quadratic)
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # merged keys may be overridden by the mapping's own
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    loader.flatten_mapping(node)  # standard merge keys (`<<: *defaults`) stay allowed
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse spec YAML text into a mapping; errors name the source and line."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else "YAML"
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError([FieldError(where, problem)], source) from exc
    except yaml.YAMLError as exc:
        raise SpecError([FieldError("", f"invalid YAML: {exc}")], source) from exc
    except RecursionError as exc:
        raise SpecError([FieldError("", "YAML nested too deeply")], source) from exc
    if not isinstance(data, dict):
        raise SpecError([FieldError("", "a spec must be a YAML mapping")], source)
    return data


def load_spec_file(path: Path) -> tuple[dict[str, Any], Path]:
    """Read a spec file: its raw mapping and the folder relative paths resolve against."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([FieldError("", exc.strerror or str(exc))], str(path)) from exc
    except UnicodeDecodeError as exc:
        raise SpecError([FieldError("", "not UTF-8 text")], str(path)) from exc
    return parse_yaml(text, str(path)), path.resolve().parent


def _loc_to_field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")) or part == "[key]":
            continue
        else:
            if not part.isprintable() or any(c in part for c in ".[] "):
                part = repr(part)
            out += f".{part}" if out else part
    return out


_PARAM_TYPES = frozenset({"bool", "int", "float", "str"})
"""The members of a run parameter's type, as pydantic names them in an error's location."""


def _shape_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    seen_params: set[tuple[int | str, ...]] = set()
    for err in exc.errors():
        loc = err["loc"]
        if len(loc) == 3 and loc[0] == "parameters" and loc[2] in _PARAM_TYPES:
            # One line for a run parameter, not one per type it could have been.
            if loc[:2] not in seen_params:
                seen_params.add(loc[:2])
                kind = type(err["input"]).__name__
                errors.append(FieldError(_loc_to_field(loc[:2]),
                                         f"must be a number, a string or true/false, "
                                         f"not a {kind}"))
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required"
        errors.append(FieldError(_loc_to_field(err["loc"]), msg))
    return errors


_STAND_INS: dict[str, Any] = {
    "name": "stand-in", "description": "", "data": {"paths": ["-"]},
    "algorithm": {"preset": {"name": "-"}}, "parameters": {}, "resources": {},
    "subscriptions": [],
}
"""Well-formed values put in place of malformed top-level fields, so that the rules on the
rest of a spec can still run. Their own checks are skipped (see `validate_spec`); fields
not listed here are simply left out (they are optional)."""


@dataclass(frozen=True)
class ShapeCheck:
    """A raw spec after the shape check: what could be read of it, and what could not."""

    spec: JobSpec | None
    """The spec with stand-ins for its malformed fields (None: nothing could be read)."""
    errors: list[FieldError]
    """The shape errors."""
    broken: frozenset[str]
    """Top-level fields that are malformed (their stand-ins must not be checked)."""
    framework: dict[str, str]
    """For a malformed algorithm: the framework fields that are well-formed on their own."""


def check_shape(raw: Mapping[str, Any]) -> ShapeCheck:
    """Check the shape; on errors, read what is well-formed so its rules can run too."""
    try:
        return ShapeCheck(JobSpec.model_validate(dict(raw)), [], frozenset(), {})
    except ValidationError as exc:
        errors = _shape_errors(exc)
        locs = [err["loc"] for err in exc.errors()]
    if any(not loc for loc in locs):
        return ShapeCheck(None, errors, frozenset(), {})
    broken = {loc[0] for loc in locs}
    data = {k: v for k, v in raw.items() if k not in broken}
    data.update({k: _STAND_INS[k] for k in broken if isinstance(k, str) and k in _STAND_INS})
    try:
        spec: JobSpec | None = JobSpec.model_validate(data)
    except ValidationError:
        spec = None
    framework = _framework_fields(raw.get("algorithm"), locs) if "algorithm" in broken else {}
    return ShapeCheck(spec, errors, frozenset(k for k in broken if isinstance(k, str)), framework)


def _framework_fields(algo: Any, locs: list[tuple[int | str, ...]]) -> dict[str, str]:
    """The well-formed fields of a malformed `algorithm.framework` block (else nothing)."""
    if not isinstance(algo, Mapping) or not isinstance(algo.get("framework"), Mapping):
        return {}
    if any(key in algo for key in ("preset", "image")):
        return {}  # two sources: which one is meant is unknown
    bad = {loc[2] for loc in locs if loc[:2] == ("algorithm", "framework") and len(loc) > 2}
    if any(loc in (("algorithm",), ("algorithm", "framework")) for loc in locs):
        return {}
    out = {}
    for key, value in algo["framework"].items():
        if key in FrameworkSpec.model_fields and key not in bad:
            value = _engine_version_to_str(value) if key == "engine_version" else value
            if isinstance(value, str):
                out[key] = value
    return out
