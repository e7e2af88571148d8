"""Job specs: the YAML format shared by the wizard and the CLI, and every rule on it.

Validation has two stages. The pydantic models check shape and types; `validate_spec`
then checks the rules that need the outside world (engine catalog, pools, topics,
datasets, presets, the file system) and resolves relative paths. Every error names its
field, and validation never writes anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from app.errors import FieldError, SpecError

NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
PARAM_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
VERSION_PATTERN = re.compile(r"V\d{3,}")
S3_PATTERN = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?")
EVENTS = ("OnJobRunning", "OnJobSucceeded", "OnJobFailed")
EventName = Literal["OnJobRunning", "OnJobSucceeded", "OnJobFailed"]
ParamValue = StrictBool | StrictInt | StrictFloat | StrictStr
Runtime = Literal["docker", "local"]


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


class FrameworkSpec(_Strict):
    """A common framework: an AI engine and version running a boot file from a code dir."""

    engine: str
    engine_version: str
    code_dir: str
    boot_file: str

    _coerce = field_validator("engine_version", mode="before")(
        classmethod(lambda cls, v: _engine_version_to_str(v))
    )


class PresetSpec(_Strict):
    """A built-in algorithm, by name."""

    name: str


class ImageSpec(_Strict):
    """A custom image and the command it runs."""

    name: str
    command: list[str] | None = None
    code_dir: str | None = None

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


class ResourcesSpec(_Strict):
    """Resource pool, GPUs per node, node count and runtime."""

    pool: str = "public"
    gpus: int = Field(default=0, ge=0, le=64)
    nodes: int = Field(default=1, ge=1, le=64)
    runtime: Runtime | None = None


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


class JobSpec(_Strict):
    """A complete training job description."""

    name: str
    description: str = Field(default="", max_length=1000)
    data: DataSpec
    algorithm: AlgorithmSpec
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    output: str | None = None
    log_dir: str | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    subscriptions: list[SubscriptionSpec] = Field(default_factory=list)
    save_as_template: TemplateSave | None = None

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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (YAML keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: list[Any] = []
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
        seen.append(key)
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
        elif part.startswith(("function-", "tagged-union")):
            continue
        else:
            if not part.isprintable() or any(c in part for c in ".[] "):
                part = repr(part)
            out += f".{part}" if out else part
    return out


def _shape_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required"
        errors.append(FieldError(_loc_to_field(err["loc"]), msg))
    return errors


def parse_spec(raw: Mapping[str, Any], source: str | None = None) -> JobSpec:
    """Check the shape and types of a raw spec mapping."""
    try:
        return JobSpec.model_validate(dict(raw))
    except ValidationError as exc:
        raise SpecError(_shape_errors(exc), source) from exc


_STAND_INS: dict[str, Any] = {
    "name": "stand-in", "description": "", "data": {"paths": ["-"]},
    "algorithm": {"preset": {"name": "-"}}, "parameters": {}, "resources": {},
    "subscriptions": [],
}
"""Well-formed values put in place of malformed top-level fields, so that the rules on the
rest of a spec can still run. Their own checks are skipped (see `validate_spec`); fields
not listed here are simply left out (they are optional)."""


@dataclass(frozen=True)
class _Parsed:
    """A raw spec after the shape check: what could be read of it, and what could not."""

    spec: JobSpec | None
    """The spec with stand-ins for its malformed fields (None: nothing could be read)."""
    errors: list[FieldError]
    """The shape errors."""
    broken: frozenset[str]
    """Top-level fields that are malformed (their stand-ins must not be checked)."""
    framework: dict[str, str]
    """For a malformed algorithm: the framework fields that are well-formed on their own."""


def _parse_salvaging(raw: Mapping[str, Any]) -> _Parsed:
    """Check the shape; on errors, read what is well-formed so its rules can run too."""
    try:
        return _Parsed(JobSpec.model_validate(dict(raw)), [], frozenset(), {})
    except ValidationError as exc:
        errors = _shape_errors(exc)
        locs = [err["loc"] for err in exc.errors()]
    if any(not loc for loc in locs):
        return _Parsed(None, errors, frozenset(), {})
    broken = {loc[0] for loc in locs}
    data = {k: v for k, v in raw.items() if k not in broken}
    data.update({k: _STAND_INS[k] for k in broken if isinstance(k, str) and k in _STAND_INS})
    try:
        spec: JobSpec | None = JobSpec.model_validate(data)
    except ValidationError:
        spec = None
    framework = _framework_fields(raw.get("algorithm"), locs) if "algorithm" in broken else {}
    return _Parsed(spec, errors, frozenset(k for k in broken if isinstance(k, str)), framework)


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


# ---------------------------------------------------------------- the rules


@dataclass(frozen=True)
class EngineInfo:
    """What validation needs to know of an engine version."""

    name: str
    version: str
    single_node: bool = False


@dataclass(frozen=True)
class ParamSchema:
    """One parameter of a preset algorithm."""

    name: str
    type: Literal["int", "float", "str", "bool"] = "str"
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class PresetInfo:
    """What validation needs to know of a preset algorithm."""

    name: str
    engine: str
    engine_version: str
    params: tuple[ParamSchema, ...] = ()


class Catalog(Protocol):
    """The outside facts a spec is checked against."""

    def engine(self, name: str, version: str) -> EngineInfo | None: ...
    def engine_versions(self, name: str) -> list[str]: ...
    def has_pool(self, name: str) -> bool: ...
    def has_topic(self, name: str) -> bool: ...
    def has_dataset_version(self, name: str, version: str) -> bool | None:
        """True/False, or None when the dataset itself does not exist."""
        ...
    def dataset_local_paths(self, name: str, version: str) -> list[str]: ...
    def preset(self, name: str) -> PresetInfo | None: ...


@dataclass
class StaticCatalog:
    """A catalog held in memory (tests, and the wizard's offline checks)."""

    engines: list[EngineInfo] = field(default_factory=list)
    pools: set[str] = field(default_factory=lambda: {"public"})
    topics: set[str] = field(default_factory=set)
    datasets: dict[str, dict[str, str]] = field(default_factory=dict)
    presets: dict[str, PresetInfo] = field(default_factory=dict)

    def engine(self, name: str, version: str) -> EngineInfo | None:
        return next((e for e in self.engines if e.name == name and e.version == version), None)

    def engine_versions(self, name: str) -> list[str]:
        return [e.version for e in self.engines if e.name == name]

    def has_pool(self, name: str) -> bool:
        return name in self.pools

    def has_topic(self, name: str) -> bool:
        return name in self.topics

    def has_dataset_version(self, name: str, version: str) -> bool | None:
        versions = self.datasets.get(name)
        return None if versions is None else version in versions

    def dataset_local_paths(self, name: str, version: str) -> list[str]:
        uri = self.datasets.get(name, {}).get(version)
        return [uri] if uri and not is_remote(uri) else []

    def preset(self, name: str) -> PresetInfo | None:
        return self.presets.get(name)


def _path_problem(text: str) -> str | None:
    """Why a path string can never name a file here, or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid text"
    if len(encoded) > 4095:
        return "is too long"
    if any(len(part.encode()) > 255 for part in text.split("/")):
        return "has a name longer than 255 bytes"
    return None


def _resolve(text: str, base_dir: Path, where: str, errors: list[FieldError]) -> Path | None:
    """The absolute path a field names, or None after recording why it cannot be one."""
    problem = _path_problem(text)
    if problem:
        errors.append(FieldError(where, f"path {problem}"))
        return None
    try:
        return (base_dir / Path(text).expanduser()).resolve()
    except (RuntimeError, OSError, ValueError) as exc:
        errors.append(FieldError(where, f"cannot resolve {text!r}: {exc}"))
        return None


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def _check_remote(path: str, where: str, errors: list[FieldError]) -> None:
    if path.startswith("obs://"):
        path = "s3://" + path.removeprefix("obs://")
    if not S3_PATTERN.fullmatch(path):
        errors.append(FieldError(where, f"{path!r} is not a valid s3://bucket/prefix location"))


def _check_boot_file(boot_file: str, code_dir: Path, errors: list[FieldError]) -> None:
    where = "algorithm.framework.boot_file"
    problem = _path_problem(boot_file)
    if problem or not boot_file.strip():
        errors.append(FieldError(where, f"path {problem or 'is empty'}"))
        return
    try:
        boot = (code_dir / boot_file).resolve()
    except (RuntimeError, OSError) as exc:
        errors.append(FieldError(where, f"cannot resolve {boot_file!r}: {exc}"))
        return
    if Path(boot_file).is_absolute() or not boot.is_relative_to(code_dir):
        errors.append(FieldError(where, f"{boot_file!r} must be inside the code dir"))
    elif not _is_file(boot):
        errors.append(FieldError(where, f"{boot_file!r} not found in {str(code_dir)!r}"))


def _check_preset_params(
    preset: PresetInfo, params: Mapping[str, Any], errors: list[FieldError]
) -> None:
    known = {p.name: p for p in preset.params}
    for name, value in params.items():
        schema = known.get(name)
        where = f"parameters.{name}"
        if schema is None:
            allowed = ", ".join(known) or "none"
            errors.append(FieldError(where, f"preset {preset.name!r} takes no such parameter "
                                            f"(it takes: {allowed})"))
            continue
        error = check_param_value(schema, value)
        if error:
            errors.append(FieldError(where, error))


def check_param_value(schema: ParamSchema, value: Any) -> str | None:
    """Why `value` does not fit `schema`, or None when it does."""
    kind = schema.type
    number: float | None = None
    if kind == "bool":
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            return "must be true or false"
        return None
    if kind in ("int", "float"):
        try:
            number = int(value) if kind == "int" else float(value)
        except (TypeError, ValueError):
            return f"must be {'an integer' if kind == 'int' else 'a number'}"
        if isinstance(value, bool) or (kind == "int" and isinstance(value, float)):
            return "must be an integer" if kind == "int" else "must be a number"
        if not math.isfinite(number):
            return "must be a finite number"
        if schema.min is not None and number < schema.min:
            return f"must be at least {schema.min:g}"
        if schema.max is not None and number > schema.max:
            return f"must be at most {schema.max:g}"
    if schema.choices and str(value) not in schema.choices:
        return f"must be one of {', '.join(schema.choices)}"
    return None


def validate_spec(
    raw: Mapping[str, Any] | JobSpec,
    base_dir: Path,
    catalog: Catalog,
    source: str | None = None,
) -> JobSpec:
    """Check every rule and return the spec with its local paths made absolute.

    Raises SpecError listing each field at fault, all at once: when some fields are
    malformed (the shape check), the rules still run on every field that is well-formed,
    so one run names every error. Never writes anything.
    """
    if isinstance(raw, JobSpec):
        parsed = _Parsed(raw, [], frozenset(), {})
    else:
        parsed = _parse_salvaging(raw)
    if parsed.spec is None:
        raise SpecError(parsed.errors, source)
    rules = _Rules(parsed.spec, base_dir, catalog, parsed.broken)
    rules.check(parsed.framework)
    errors = parsed.errors + rules.errors
    if errors:
        raise SpecError(errors, source)
    return parsed.spec.model_copy(update=rules.updates)


class _Rules:
    """The rules that need the outside world, run over the well-formed fields of a spec."""

    def __init__(self, spec: JobSpec, base_dir: Path, catalog: Catalog,
                 broken: frozenset[str]) -> None:
        self.spec = spec
        self.base_dir = base_dir
        self.catalog = catalog
        self.broken = broken
        self.errors: list[FieldError] = []
        self.updates: dict[str, Any] = {}
        self.data_dirs: list[Path] = []
        self.single_node = False

    def ok(self, *keys: str) -> bool:
        """True when every top-level field named is well-formed."""
        return not self.broken.intersection(keys)

    def error(self, where: str, message: str) -> None:
        self.errors.append(FieldError(where, message))

    def check(self, framework: Mapping[str, str]) -> None:
        if self.ok("data"):
            self.check_data()
        if self.ok("algorithm"):
            self.check_algorithm()
        elif framework:
            self.check_framework(framework)
        for key in ("output", "log_dir"):
            if self.ok(key):
                self.check_location(key)
        if self.ok("resources"):
            self.check_resources()
        if self.ok("subscriptions"):
            self.check_subscriptions()

    def check_data(self) -> None:
        data, errors = self.spec.data, self.errors
        if data.paths is None:
            for i, ref in enumerate(data.datasets or []):
                known = self.catalog.has_dataset_version(ref.name, ref.version)
                if known is None:
                    self.error(f"data.datasets[{i}].name", f"no dataset {ref.name!r}")
                elif not known:
                    self.error(f"data.datasets[{i}].version",
                               f"dataset {ref.name!r} has no version {ref.version}")
                else:
                    self.data_dirs += [Path(p) for p in
                                       self.catalog.dataset_local_paths(ref.name, ref.version)]
            return
        if (len(data.paths) > 1 and self.ok("algorithm")
                and self.spec.algorithm.framework is None):
            self.error("data.paths", "several paths need a framework algorithm")
        resolved_paths = []
        for i, path in enumerate(data.paths):
            where = f"data.paths[{i}]"
            if is_remote(path):
                _check_remote(path, where, errors)
                resolved_paths.append(path)
                continue
            local = _resolve(path, self.base_dir, where, errors)
            if local is None:
                continue
            if not _is_dir(local):
                self.error(where, f"{str(local)!r} is not an existing directory")
            self.data_dirs.append(local)
            resolved_paths.append(str(local))
        if len(set(resolved_paths)) != len(resolved_paths):
            self.error("data.paths", "a path is listed twice")
        self.updates["data"] = DataSpec(paths=resolved_paths or list(data.paths))

    def check_algorithm(self) -> None:
        algo = self.spec.algorithm
        if algo.framework is not None:
            fields = self.check_framework(algo.framework.model_dump())
            if "code_dir" in fields:
                self.updates["algorithm"] = AlgorithmSpec(framework=algo.framework.model_copy(
                    update={"code_dir": fields["code_dir"]}))
        elif algo.preset is not None:
            preset = self.catalog.preset(algo.preset.name)
            if preset is None:
                self.error("algorithm.preset.name",
                           f"unknown preset algorithm {algo.preset.name!r}")
                return
            if self.ok("parameters"):
                _check_preset_params(preset, self.spec.parameters, self.errors)
            engine = self.catalog.engine(preset.engine, preset.engine_version)
            self.single_node = bool(engine and engine.single_node)
        elif algo.image is not None:
            if self.ok("resources") and self.spec.resources.runtime == "local":
                self.error("resources.runtime", "a custom image needs runtime docker")
            if algo.image.code_dir is not None:
                where = "algorithm.image.code_dir"
                code_dir = _resolve(algo.image.code_dir, self.base_dir, where, self.errors)
                if code_dir is not None and not _is_dir(code_dir):
                    self.error(where, f"{str(code_dir)!r} is not an existing directory")
                self.updates["algorithm"] = AlgorithmSpec(image=algo.image.model_copy(
                    update={"code_dir": str(code_dir)}))

    def check_framework(self, fw: Mapping[str, str]) -> dict[str, str]:
        """Check the framework fields given; return the code dir made absolute when valid."""
        engine, version = fw.get("engine"), fw.get("engine_version")
        if engine is not None:
            info = self.catalog.engine(engine, version) if version is not None else None
            versions = self.catalog.engine_versions(engine)
            if not versions:
                self.error("algorithm.framework.engine", f"unknown engine {engine!r}")
            elif version is not None and info is None:
                self.error("algorithm.framework.engine_version",
                           f"engine {engine!r} has no version {version!r} "
                           f"(known: {', '.join(versions)})")
            self.single_node = bool(info and info.single_node)
        if fw.get("code_dir") is None:
            return {}
        where = "algorithm.framework.code_dir"
        code_dir = _resolve(fw["code_dir"], self.base_dir, where, self.errors)
        if code_dir is None:
            return {}
        if not _is_dir(code_dir):
            self.error(where, f"{str(code_dir)!r} is not an existing directory")
            return {}
        if fw.get("boot_file") is not None:
            _check_boot_file(fw["boot_file"], code_dir, self.errors)
        return {"code_dir": str(code_dir)}

    def check_location(self, key: str) -> None:
        value = getattr(self.spec, key)
        if value is None:
            return
        if not value.strip():
            self.error(key, "must not be empty")
            return
        if is_remote(value):
            _check_remote(value, key, self.errors)
            if key == "output" and self.ok("data"):
                for path in self.spec.data.paths or []:
                    if is_remote(path) and _overlaps(Path(path[5:]), Path(value[5:])):
                        self.error("output", f"must not overlap the data path {path}")
            return
        local = _resolve(value, self.base_dir, key, self.errors)
        if local is None:
            return
        if local.exists() and not _is_dir(local):
            self.error(key, f"{str(local)!r} exists and is not a directory")
        self.updates[key] = str(local)
        if key == "output":
            for data_dir in self.data_dirs:
                if _overlaps(local, data_dir):
                    self.error("output", "must not be, contain or lie inside "
                                         f"the data path {str(data_dir)!r}")

    def check_resources(self) -> None:
        res = self.spec.resources
        if not self.catalog.has_pool(res.pool):
            self.error("resources.pool", f"unknown resource pool {res.pool!r}")
        if self.single_node and res.nodes != 1:
            self.error("resources.nodes", "this engine runs on a single node: nodes must be 1")

    def check_subscriptions(self) -> None:
        topics = [s.topic for s in self.spec.subscriptions]
        for i, sub in enumerate(self.spec.subscriptions):
            if not self.catalog.has_topic(sub.topic):
                self.error(f"subscriptions[{i}].topic", f"unknown topic {sub.topic!r}")
            elif topics.count(sub.topic) > 1 and topics.index(sub.topic) != i:
                self.error(f"subscriptions[{i}].topic",
                           f"topic {sub.topic!r} is subscribed twice")
