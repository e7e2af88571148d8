"""What the create-job wizard offers, read once when it opens (in a thread worker).

`load_choices` reads the saved job parameters, datasets, presets, the parent version
(modify) and the Slurm partitions into one `WizardChoices`; a new job starts from
`WizardChoices.starter`. Plain data: no Textual here.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from sqlmodel import col, select

from app.catalog import preset_info, unavailable_reason
from app.config import data_dir
from app.context import Context
from app.jobs import default_locations, load_version
from app.machine import SlurmPoolRow, slurm_pools
from app.specs.rules import PresetInfo
from app.store.models import Dataset, DatasetVersion, Job, PresetAlgorithm, version_label
from app.templates import list_templates, template_problem


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

    @property
    def defaults(self) -> dict[str, Any]:
        """Its parameters that have a default, with that default."""
        return {p.name: p.default for p in self.info.params if p.default is not None}


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
        "parameters": preset.defaults,
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



def template_label(template: TemplateChoice) -> Text:
    """How the picker lists saved job parameters: name, description, and what is broken."""
    label = Text(template.name)
    if template.description:
        label.append(f" — {template.description}")
    if template.problem:
        label = Text("⚠ ") + label
        label.append(f"  ({template.problem})", style="italic")
    return label

