"""The rules on a job spec that need the outside world, and the catalog they check against.

`validate_spec` runs after the shape check in `app.specs.spec`: it checks the engine catalog,
pools, topics, datasets, presets and the file system, and resolves relative paths. Every
error names its field, and validation never writes anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from app.errors import FieldError, SpecError
from app.specs.invocation import FOLDERS, placeholder_problem
from app.specs.spec import (
    DataSpec,
    JobSpec,
    ShapeCheck,
    check_shape,
    is_remote,
)

S3_PATTERN = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?")


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
    parsed = ShapeCheck(raw, [], frozenset(), {}) if isinstance(raw, JobSpec) else check_shape(raw)
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
        if self.ok("env") and self.spec.env:
            self.check_command(list(self.spec.env.values()), "env", list(self.spec.env))
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
            self.check_command(algo.framework.command, "algorithm.framework.command")
            if "code_dir" in fields:
                self.updates["algorithm"] = algo.model_copy(update={
                    "framework": algo.framework.model_copy(
                        update={"code_dir": fields["code_dir"]})})
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
            self.check_command(algo.image.command, "algorithm.image.command")
            if self.ok("resources") and self.spec.resources.runtime == "local":
                self.error("resources.runtime", "a custom image needs runtime docker")
            if algo.image.code_dir is not None:
                where = "algorithm.image.code_dir"
                code_dir = _resolve(algo.image.code_dir, self.base_dir, where, self.errors)
                if code_dir is not None and not _is_dir(code_dir):
                    self.error(where, f"{str(code_dir)!r} is not an existing directory")
                self.updates["algorithm"] = algo.model_copy(update={
                    "image": algo.image.model_copy(update={"code_dir": str(code_dir)})})

    def check_command(self, items: list[str] | None, where: str,
                      keys: list[str] | None = None) -> None:
        """Every placeholder of a command's items (or the `env` values, by `keys`) names a
        folder or a run parameter."""
        known = set(FOLDERS) | set(self.spec.parameters)
        for i, item in enumerate(items or []):
            problem = placeholder_problem(item, known)
            # With malformed parameters, an unknown name may be one of them: not reported.
            if problem and (self.ok("parameters") or not problem.startswith("unknown")):
                self.error(f"{where}.{keys[i]}" if keys else f"{where}[{i}]", problem)

    def check_framework(self, fw: Mapping[str, Any]) -> dict[str, str]:
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
