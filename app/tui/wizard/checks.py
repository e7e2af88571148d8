"""Shared pieces of the create-job wizard: what it offers, how it checks, where errors go.

`load_choices` and `check_raw_spec` call only the core and run in the wizard's thread
workers; `locate` maps a spec field path to the step and widget that shows its error;
`StepIndicator` and `field_row` are the small building blocks of its layout.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from sqlmodel import col, select
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Label, Static

from app.catalog import preset_info, unavailable_reason
from app.config import data_dir
from app.context import Context
from app.errors import FieldError, SpecError, TraindeckError
from app.jobs import default_locations, load_version, modified_spec, prepare_spec, spec_diff
from app.models import Dataset, DatasetVersion, Job, PresetAlgorithm, Template, version_label
from app.overview import SlurmPoolRow, slurm_pool_problems, slurm_pools, template_problem
from app.spec import JobSpec
from app.spec_rules import PresetInfo, validate_spec
from app.templates import list_templates

# ---------------------------------------------------------------- what the wizard offers


@dataclass(frozen=True)
class TemplateChoice:
    """Saved job parameters, as the wizard offers them (or edits them)."""

    name: str
    description: str
    spec: dict[str, Any]
    problem: str = ""
    """Why they cannot be used as they are (an engine or dataset gone); '' when they can."""


@dataclass(frozen=True)
class PresetChoice:
    """A preset algorithm with its parameter schema."""

    name: str
    description: str
    info: PresetInfo


@dataclass(frozen=True)
class WizardChoices:
    """Everything the wizard lists from the database, read once when it opens."""

    templates: list[TemplateChoice] = field(default_factory=list)
    datasets: dict[str, list[str]] = field(default_factory=dict)
    """Dataset name → its version labels, oldest first."""
    presets: list[PresetChoice] = field(default_factory=list)
    version: str = "V001"
    """The label the new version will get."""
    parent_spec: dict[str, Any] | None = None
    """For modify: the spec of the version it starts from."""
    unavailable: dict[tuple[str, str], str] = field(default_factory=dict)
    """(engine, version) → why it cannot run as local processes here, with the fix."""
    docker_answers: bool = True
    """Whether a Docker engine answered (under `auto`, versions run locally when not)."""
    default_name: str = ""
    """The name a new job gets when its name is left blank ('' for modify)."""
    starter: dict[str, Any] = field(default_factory=dict)
    """What a new job starts from: a preset that runs here, on sample data when no
    dataset is registered (so that pressing Next through the defaults makes a job that
    succeeds)."""
    slurm: dict[str, SlurmPoolRow] = field(default_factory=dict)
    """Slurm pool name → its partition as the controller reported it when the wizard
    opened (the pool picker shows its free GPUs)."""


def pool_label(name: str, kind: str, choices: WizardChoices) -> str:
    """A pool as the picker offers it: `public (public)`, `cluster (slurm, 2 GPU(s) free)`."""
    row = choices.slurm.get(name)
    if row is None:
        return f"{name} ({kind})"
    if row.usage is None:
        return f"{name} (slurm, controller not answering)"
    return f"{name} (slurm, {row.usage.gpus_free} GPU(s) free)" if row.usage.nodes else (
        f"{name} (slurm, no nodes)")


# ---------------------------------------------------------------- where an error is shown


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


# ---------------------------------------------------------------- reading and checking


def load_choices(ctx: Context, modify_from: tuple[str, str] | None) -> WizardChoices:
    """Read templates (each with its catalog check), datasets, presets and (for modify)
    the parent version."""
    catalog = ctx.catalog
    templates = [TemplateChoice(t.name, t.description, _own_locations(ctx, t.spec),
                                template_problem(catalog, t.spec))
                 for t in list_templates(ctx)]
    datasets: dict[str, list[str]] = {}
    with ctx.db.read() as session:
        rows = session.exec(
            select(Dataset.name, DatasetVersion.number)
            .join(DatasetVersion, col(DatasetVersion.dataset_id) == col(Dataset.id),
                  isouter=True)
            .order_by(col(Dataset.name), col(DatasetVersion.number))
        ).all()
        for name, number in rows:
            datasets.setdefault(name, [])
            if number is not None:
                datasets[name].append(version_label(number))
        presets = [
            PresetChoice(row.name, row.description, preset_info(row))
            for row in session.exec(select(PresetAlgorithm).order_by(col(PresetAlgorithm.name)))
        ]
        version, parent, default_name = "V001", None, ""
        if modify_from is not None:
            job, source = load_version(session, *modify_from)
            version = version_label(job.last_version_number + 1)
            parent = json.loads(source.spec_json)
            parent.pop("save_as_template", None)
        else:
            taken = set(session.exec(select(Job.name).where(
                col(Job.name).startswith("trainjob-"))))
            default_name = next(f"trainjob-{n}" for n in range(1, len(taken) + 2)
                                if f"trainjob-{n}" not in taken)
    unavailable = {(e.name, e.version): reason for e in ctx.settings.engines
                   if (reason := unavailable_reason(ctx.settings, e.name, e.version))}
    starter = _starter(presets, unavailable, bool(datasets)) if modify_from is None else {}
    return WizardChoices(templates, datasets, presets, version, parent, unavailable,
                         _docker_answers(ctx) if unavailable else True, default_name, starter,
                         {row.name: row for row in slurm_pools(ctx.settings)})


def _starter(presets: Sequence[PresetChoice], unavailable: Mapping[tuple[str, str], str],
             have_datasets: bool) -> dict[str, Any]:
    """A new job's first fields: the first preset that runs here with its defaults, and
    (with no dataset registered) the sample data; empty when no preset runs here."""
    preset = next((p for p in presets
                   if (p.info.engine, p.info.engine_version) not in unavailable), None)
    if preset is None:
        return {}
    starter: dict[str, Any] = {
        "algorithm": {"preset": {"name": preset.name}},
        "parameters": {p.name: p.default for p in preset.info.params if p.default is not None},
    }
    if not have_datasets:
        starter["data"] = {"paths": [str(sample_data_dir())]}
    return starter


SAMPLE_ROWS = 200


def sample_data_dir() -> Path:
    """A small two-class CSV (two gaussian blobs; label last) under Traindeck's data folder,
    written once, that the preset algorithms train on out of the box."""
    folder = data_dir() / "samples" / "two-blobs"
    file = folder / "train.csv"
    if not file.is_file():
        rng, lines = random.Random(7), ["x1,x2,label"]
        for i in range(SAMPLE_ROWS):
            centre = 1.5 if i % 2 else -1.5
            lines.append(f"{rng.gauss(centre, 1):.6f},{rng.gauss(centre, 1):.6f},{i % 2}")
        folder.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(".partial")
        partial.write_text("\n".join(lines) + "\n")
        partial.replace(file)
    return folder


def _docker_answers(ctx: Context) -> bool:
    """Whether the Docker engine answers (a ping; asked only when it matters)."""
    from app.runtime.dockerhost import docker_reachable

    return ctx.settings.default_runtime != "auto" or docker_reachable(ctx.settings)


def _own_locations(ctx: Context, spec: dict[str, Any]) -> dict[str, Any]:
    """A saved spec without the default output and log folders of the job it came from.

    Those defaults are named after that job; left in, a new job would write into them.
    """
    defaults = default_locations(ctx, str(spec.get("name", "")))
    return {k: v for k, v in spec.items()
            if not (k in ("output", "log_dir") and v in defaults)}


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


# ---------------------------------------------------------------- small widgets


class StepIndicator(Horizontal):
    """The wizard's steps in one line; the current one stands out, done ones are ticked."""

    DEFAULT_CSS = """
    StepIndicator {
        height: 1;
        width: 1fr;
        padding: 0 1;
    }
    StepIndicator > .step-label {
        color: $text-muted;
    }
    StepIndicator > .step-label.-done {
        color: $text-success;
    }
    StepIndicator > .step-label.-current {
        background: $accent;
        color: $text;
        text-style: bold;
    }
    StepIndicator > .step-sep {
        color: $text-muted;
        padding: 0 1;
    }
    """

    current: reactive[int] = reactive(1)
    """The step being shown, from 1."""
    compact: reactive[bool] = reactive(False)
    """True when the titles do not fit: only the current step's is written out."""

    def __init__(self, titles: Sequence[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.titles = tuple(titles)

    def compose(self) -> ComposeResult:
        for number, title in enumerate(self.titles, 1):
            if number > 1:
                yield Label("›", classes="step-sep")
            yield Label(f" {number} {title} ", id=f"step-label-{number}", classes="step-label")

    @property
    def full_width(self) -> int:
        """Cells the indicator needs with every title written out."""
        return sum(len(t) + 4 for t in self.titles) + 3 * (len(self.titles) - 1) + 2

    def on_resize(self) -> None:
        self.compact = self.size.width < self.full_width

    def watch_compact(self) -> None:
        self.watch_current(self.current)

    def watch_current(self, current: int) -> None:
        for number, title in enumerate(self.titles, 1):
            label = self.query_one(f"#step-label-{number}", Label)
            label.set_class(number == current, "-current")
            label.set_class(number < current, "-done")
            mark = "✓" if number < current else str(number)
            full = number == current or not self.compact
            label.update(f" {mark} {title} " if full else f" {mark} ")


def field_row(label: str, control: Widget, target: str, *, row_id: str | None = None) -> Widget:
    """A labelled field: the label, the control, and a note showing its hint or error."""
    return Horizontal(Label(label, classes="field-label"), control,
                      Static("", id=f"{target}-note", classes="field-note", markup=False),
                      id=row_id, classes="field")


def list_field(label: str, rows: Widget, row_id: str) -> Widget:
    """A labelled row list (its rows show their own errors)."""
    return Horizontal(Label(label, classes="field-label"), rows, id=row_id,
                      classes="field list-field")


def text_of(value: Any) -> str:
    """A raw spec value as field text (None is empty)."""
    return "" if value is None else str(value)


def mapping_of(value: Any) -> Mapping[str, Any]:
    """A raw spec value as a mapping (anything else is empty)."""
    return value if isinstance(value, Mapping) else {}


HINTS = {
    # What each field shows beside it while it has no error.
    "name": "letters, digits, - or _; starts with a letter",
    "version": "generated; cannot be changed",
    "engine": "the framework your code is written for",
    "code-dir": "a requirements.txt here is installed first",
    "boot-file": "run with --data_url and --train_url",
    "image-command": "split like a shell would; no shell runs it",
    "command": "instead of a boot file; {data_url}, {train_url}, {param}",
    "arguments": "modelarts with a boot file, none with a command",
    "compat-moxing": "import moxing works on local and s3:// paths",
    "requirements-ignore": "run on the engine's packages alone",
    "fresh-code": "off: the new version runs its parent's code snapshot",
    "image-code-dir": "optional; mounted read-only",
    "output": "empty dir, not the data dir; blank: default",
    "log-dir": "blank: a folder under the runs folder",
    "gpus": "0 = CPU spec",
    "nodes": "1 = single machine, more = distributed",
    "processes": "a number, or gpus: one process per GPU",
    "cpus": "cores, e.g. 4 or 0.5",
    "memory": "e.g. 16g or 512m",
    "network": "Docker network of a single-node version",
    "runtime": "docker: in a container; local: a process",
    "topic": "this job's events are sent to the topic",
    "events": "running, succeeded, failed",
    "template-name": "how the saved job parameters are named",
}

LOG_METRICS_HINTS = {
    # What each choice of numbers-from-the-log does.
    "default": "name=value and name: value pairs on a line",
    "patterns": "your regexes replace the default rules",
    "off": "no metrics are read from the log",
}

ARGUMENT_HINTS = {
    # What each `arguments:` choice appends to the command.
    "default": HINTS["arguments"],
    "modelarts": "appends --data_url=… --train_url=… --name=value",
    "plain": "appends --name=value per parameter only",
    "none": "appends nothing: use {placeholders}",
}

TEMPLATE_MODE_HINTS = {
    # Editing saved job parameters: what the fields mean there.
    "name": "the job name they fill in",
    "version": "each job made from them gets its own versions",
    "template-name": "their name; a new one must be free",
    "template-description": "shown in the list and in the wizard's picker",
}


def template_label(template: TemplateChoice) -> Text:
    """How the picker lists saved job parameters: name, description, and what is broken."""
    label = Text(template.name)
    if template.description:
        label.append(f" — {template.description}")
    if template.problem:
        label = Text("⚠ ") + label
        label.append(f"  ({template.problem})", style="italic")
    return label
