"""The create-job wizard's checks: the CLI's rules on the form's raw spec, and where each
error is shown.

`check_raw_spec` calls only the core and runs in the wizard's thread worker; `locate` maps
a spec field path to the step and field (or row) that shows its error. No Textual here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import select

from app.context import Context
from app.errors import FieldError, SpecError, TraindeckError
from app.jobs import modified_spec, prepare_spec, spec_diff
from app.machine import slurm_pool_problems
from app.specs.rules import validate_spec
from app.specs.spec import JobSpec
from app.store.models import Job, Template
from app.tui.wizard.model import mapping_of


@dataclass(frozen=True)
class Location:
    """Where a field error is shown: the step (0: no step), the target id, a row of a list."""

    step: int
    target: str
    row: int | str | None = None


_TARGETS: dict[str, tuple[int, str]] = {
    "name": (1, "name"),
    "description": (1, "description"),
    "data": (2, "data-kind"),
    "data.datasets": (2, "datasets"),
    "data.paths": (2, "paths"),
    "algorithm": (2, "algo-kind"),
    "algorithm.framework": (2, "algo-kind"),
    "algorithm.framework.engine": (2, "engine"),
    "algorithm.framework.engine_version": (2, "engine-version"),
    "algorithm.framework.code_dir": (2, "code-dir"),
    "algorithm.framework.boot_file": (2, "boot-file"),
    "algorithm.preset": (2, "preset"),
    "algorithm.image": (2, "image-name"),
    "algorithm.image.command": (2, "image-command"),
    "algorithm.image.code_dir": (2, "image-code-dir"),
    "algorithm.framework.command": (2, "command"),
    "algorithm.framework.arguments": (2, "arguments"),
    "algorithm.image.arguments": (2, "arguments"),
    "algorithm.compat": (2, "compat-moxing"),
    "algorithm.requirements": (2, "requirements-ignore"),
    "env": (2, "env"),
    "parameters": (2, "params"),
    "--set": (2, "params"),
    "output": (2, "output"),
    "metrics": (2, "log-metrics"),
    "metrics.log_patterns": (2, "log-patterns"),
    "log_dir": (2, "log-dir"),
    "resources": (3, "pool"),
    "resources.gpus": (3, "gpus"),
    "resources.nodes": (3, "nodes"),
    "resources.runtime": (3, "runtime"),
    "resources.processes_per_node": (3, "processes"),
    "resources.cpus": (3, "cpus"),
    "resources.memory": (3, "memory"),
    "resources.network": (3, "network"),
    "subscriptions": (4, "topic"),
    "subscriptions.events": (4, "events"),
    "save_as_template": (4, "save-template"),
    "save_as_template.name": (4, "template-name"),
    "save_as_template.description": (4, "template-description"),
}

LIST_TARGETS = ("datasets", "paths", "params", "env", "log-patterns")
"""Targets that are row lists: their errors go beside a row or under the list."""


def locate(path: str) -> Location:
    """Which step and widget show the error of the dotted field `path`.

    `data.paths[2]` and `data.datasets[0].version` name a row by index;
    `parameters.lr` names a parameter row by name and `parameters#3` by index.
    """
    match = re.match(r"(data\.(?:datasets|paths)|metrics\.log_patterns)\[(\d+)\]", path)
    if match:
        step, target = _TARGETS[match.group(1)]
        return Location(step, target, int(match.group(2)))
    match = re.fullmatch(r"(parameters|env)(?:#(\d+)|\.(.+))", path)
    if match:
        row: int | str = int(match.group(2)) if match.group(2) else match.group(3)
        return Location(2, "params" if match.group(1) == "parameters" else "env", row)
    plain = re.sub(r"\[\d+\]", "", path)
    while plain:
        if plain in _TARGETS:
            return Location(*_TARGETS[plain])
        plain = plain.rpartition(".")[0]
    return Location(0, "general")



@dataclass(frozen=True)
class SpecCheck:
    """The outcome of checking the wizard's fields."""

    errors: list[FieldError]
    spec: JobSpec | None = None
    """The prepared spec, when every field is valid and the check was a full one."""
    parent_spec: JobSpec | None = None
    diff: list[tuple[str, Any, Any]] = field(default_factory=list)


def top_key(path: str) -> str:
    """`data.paths[1]` → `data`."""
    return re.split(r"[.\[#]", path, maxsplit=1)[0]


def as_field_error(exc: Exception) -> FieldError:
    """A core error as a FieldError, taking the field from a `field: message` prefix."""
    if isinstance(exc, FieldError):
        return exc
    match = re.match(r"([a-z_][\w.\[\]]*): (.*)", str(exc), re.DOTALL)
    if match and top_key(match.group(1)) in JobSpec.model_fields:
        return FieldError(match.group(1), match.group(2))
    return FieldError("", str(exc))


def _related(a: str, b: str) -> bool:
    """True when one field path is the other or lies inside it."""
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((short + ".", short + "["))


def check_raw_spec(
    ctx: Context, raw: Mapping[str, Any], base_dir: Path, *,
    local_errors: Sequence[FieldError] = (), modify_from: tuple[str, str] | None = None,
    template: str | None = None, full: bool = False,
) -> SpecCheck:
    """Check the wizard's raw spec with the CLI's rules (reads the file system and the DB).

    Every field's error comes at once: `validate_spec` runs the rules on whatever fields
    are well-formed. `local_errors` are the form's own findings (a blank field); a core
    finding on the same field, or one inside or around it, is dropped. `full` also fills
    defaults and the runtime (and the parent diff for modify), as creating the version
    will. `template` names the saved job parameters being edited: the spec is checked as
    their new body (no defaults filled, the job name need not be free).
    """
    core: list[FieldError] = []
    spec = parent = None
    diff: list[tuple[str, Any, Any]] = []
    try:
        checked = validate_spec(raw, base_dir, ctx.catalog)
        if full and not local_errors:
            if template is not None:
                spec = checked
            elif modify_from is not None:
                parent, spec, _ = modified_spec(ctx, *modify_from, raw=raw, base_dir=base_dir)
                # Saving job parameters is an act of the parent's creation, not a setting
                # it runs with: its disappearance is no change.
                diff = [row for row in spec_diff(parent, spec)
                        if not (row[0].startswith("save_as_template.") and row[2] is None)]
            else:
                spec = prepare_spec(ctx, raw, base_dir)
    except SpecError as exc:
        core += exc.errors
    except TraindeckError as exc:
        core.append(as_field_error(exc))
    core += _name_conflicts(ctx, raw, {top_key(e.field) for e in core}, modify_from, template)
    if not any(e.field.startswith("resources") for e in core):
        core += gpu_shortage(ctx, raw)
    errors = list(local_errors)
    for error in map(_inner_field, core):
        if not any(_related(error.field, e.field) for e in errors):
            errors.append(error)
    return SpecCheck(errors) if errors else SpecCheck([], spec, parent, diff)


def gpu_shortage(ctx: Context, raw: Mapping[str, Any]) -> list[FieldError]:
    """The GPUs asked for that the chosen pool cannot give on this machine (what `submit`
    refuses), as an error on `resources.gpus`; for a Slurm pool, the nodes and GPUs per
    node its partition can never give, beside each field."""
    from app.runtime.scheduler import gpu_shortage as shortage

    resources = mapping_of(raw.get("resources"))
    gpus, nodes, pool = resources.get("gpus"), resources.get("nodes", 1), resources.get("pool")
    if not (isinstance(gpus, int) and isinstance(nodes, int) and nodes > 0
            and isinstance(pool, str)):
        return []
    found = shortage(ctx.settings, pool, gpus, nodes)
    slurm = slurm_pool_problems(ctx.settings, pool, nodes, gpus)
    return [FieldError(at, message) for at, message in slurm.items()] + (
        [FieldError("resources.gpus", found)] if found else [])


def _inner_field(error: FieldError) -> FieldError:
    """`resources: processes_per_node: …` (a rule across fields) as the inner field's error,
    when the wizard shows that field."""
    match = re.match(r"(\w+): (.*)", error.message, re.DOTALL)
    inner = f"{error.field}.{match.group(1)}" if match else ""
    return FieldError(inner, match.group(2)) if match and inner in _TARGETS else error


def _name_conflicts(
    ctx: Context, data: Mapping[str, Any], at_fault: set[str],
    modify_from: tuple[str, str] | None, template: str | None,
) -> list[FieldError]:
    out = []
    name, save = data.get("name"), data.get("save_as_template")
    with ctx.db.read() as session:
        if (modify_from is None and template is None and "name" not in at_fault
                and isinstance(name, str)
                and session.exec(select(Job.id).where(Job.name == name)).first() is not None):
            out.append(FieldError("name", f"job {name!r} already exists: open it and "
                                          "modify a version to run it again"))
        if "save_as_template" not in at_fault and isinstance(save, Mapping):
            taken = save.get("name")
            if taken != template and session.exec(
                    select(Template.id).where(Template.name == taken)).first():
                out.append(FieldError("save_as_template.name",
                                      f"job parameters {taken!r} already exist"))
    return out


def short_message(message: str, base_dir: Path) -> str:
    """A message with `base_dir` written as `.` (shorter on a narrow terminal)."""
    base = str(base_dir).rstrip("/")
    if not base:
        return message
    message = message.replace(base + "/", "./")
    return re.sub(re.escape(base) + r"(?![\w/.-])", ".", message)



def left_out_fields(given: Mapping[str, Any], shown: Mapping[str, Any]) -> list[str]:
    """Fields of a spec file that the wizard's fields could not take (so they are gone)."""
    def leaves(data: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(data, Mapping) and data:
            out: dict[str, Any] = {}
            for key, value in data.items():
                out.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
            return out
        return {prefix: data}

    have = leaves(shown)
    gone = []
    for path, value in leaves(given).items():
        if value in (None, "", [], {}) or path in have:
            continue
        if not any(p.startswith((path + ".", path + "[")) for p in have):
            gone.append(path)
    return gone
