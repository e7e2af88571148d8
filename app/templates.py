"""Saved job parameters (templates): list, show, save from a version, edit, delete, and
why saved ones can no longer be used as they are."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlmodel import col, select

from app.context import Context
from app.errors import ConflictError, FieldError, NotFoundError
from app.jobs import load_version, save_template, template_body
from app.specs.rules import Catalog, validate_spec
from app.specs.spec import JobSpec, ParamValue, check_name
from app.store.models import Template, utcnow


@dataclass(frozen=True)
class TemplateInfo:
    """A template as the CLI and TUI show it."""

    name: str
    description: str
    spec: dict[str, Any]
    created: datetime
    updated: datetime

    @property
    def engine(self) -> str:
        """The engine label of the saved spec."""
        try:
            return JobSpec.model_validate(self.spec).engine_label
        except ValueError:
            return "?"

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        return {"name": self.name, "description": self.description, "spec": self.spec,
                "created": self.created.isoformat(), "updated": self.updated.isoformat()}

    def to_yaml(self) -> str:
        """The saved spec as YAML."""
        return yaml.safe_dump(self.spec, sort_keys=False, allow_unicode=True)


def _info(row: Template) -> TemplateInfo:
    return TemplateInfo(row.name, row.description, json.loads(row.spec_json), row.created_at,
                        row.updated_at)


def list_templates(ctx: Context) -> list[TemplateInfo]:
    """Every template, by name."""
    with ctx.db.read() as session:
        return [_info(r) for r in session.exec(select(Template).order_by(col(Template.name)))]


def get_template(ctx: Context, name: str) -> TemplateInfo:
    """One template by name."""
    with ctx.db.read() as session:
        row = session.exec(select(Template).where(Template.name == name)).first()
    if row is None:
        raise NotFoundError(f"no job parameters named {name!r}")
    return _info(row)


def save_from_version(
    ctx: Context, name: str, description: str, job: str | None, label: str | None,
    *, replace: bool = False,
) -> None:
    """Save a version's spec as job parameters."""
    if not job:
        raise NotFoundError("--job: name the job whose version to save")
    with ctx.db.read() as session:
        _, version = load_version(session, job, label)
    spec = JobSpec.model_validate(json.loads(version.spec_json))
    save_template(ctx, name, description, spec, version.id, replace=replace)


def delete_template(ctx: Context, name: str) -> None:
    """Remove a template."""
    with ctx.db.write() as session:
        row = session.exec(select(Template).where(Template.name == name)).first()
        if row is None:
            raise NotFoundError(f"no job parameters named {name!r}")
        session.delete(row)


def update_template(
    ctx: Context, name: str, *, new_name: str | None = None, description: str | None = None,
    body: Mapping[str, Any] | None = None, sets: Mapping[str, ParamValue] | None = None,
    base_dir: Path | None = None, source: str | None = None,
) -> TemplateInfo:
    """Change saved job parameters in place and return them as saved.

    `new_name` renames them (refused when taken), `description` replaces theirs, `body`
    replaces the saved spec and `sets` changes run parameters in it. A changed spec is
    checked with every rule a job's spec is (relative paths resolve against `base_dir`,
    default the current folder) and is saved only when valid: a SpecError names each
    field at fault and nothing changes. A save request inside `body` is ignored.
    """
    target = name if new_name is None else new_name
    try:
        check_name(target, "template name")
    except ValueError as exc:
        raise FieldError("name", str(exc)) from None
    current = get_template(ctx, name)
    spec_json: str | None = None
    if body is not None or sets:
        data = dict(current.spec if body is None else body)
        data.pop("save_as_template", None)
        if sets:
            params = data.get("parameters")
            data["parameters"] = {**(params if isinstance(params, Mapping) else {}), **sets}
        spec = validate_spec(data, base_dir or Path.cwd(), ctx.catalog, source)
        spec_json = template_body(ctx, spec)
    with ctx.db.write() as session:
        row = session.exec(select(Template).where(Template.name == name)).first()
        if row is None:
            raise NotFoundError(f"no job parameters named {name!r}")
        if target != name and session.exec(
                select(Template.id).where(Template.name == target)).first() is not None:
            raise ConflictError(f"name: job parameters {target!r} already exist; "
                                "choose another name")
        row.name = target
        if description is not None:
            row.description = description
        if spec_json is not None:
            row.spec_json = spec_json
        row.updated_at = utcnow()
        session.add(row)
    return get_template(ctx, target)


def template_problem(catalog: Catalog, spec: Mapping[str, Any]) -> str:
    """Why saved job parameters cannot be used as they are ('' when they can).

    Only what can disappear from under a template is checked: the engine, preset algorithm,
    datasets, resource pool and topics it names, and the spec format itself.
    """
    try:
        job = JobSpec.model_validate(dict(spec))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        return f"spec no longer valid: {where}: {first['msg']}"
    problems: list[str] = []
    algo = job.algorithm
    if algo.framework is not None:
        fw = algo.framework
        if catalog.engine(fw.engine, fw.engine_version) is None:
            problems.append(f"engine {fw.engine} {fw.engine_version} not in the catalog")
    elif algo.preset is not None:
        preset = catalog.preset(algo.preset.name)
        if preset is None:
            problems.append(f"preset algorithm {algo.preset.name} not found")
        elif catalog.engine(preset.engine, preset.engine_version) is None:
            problems.append(f"engine {preset.engine} {preset.engine_version} "
                            "not in the catalog")
    for ref in job.data.datasets or []:
        known = catalog.has_dataset_version(ref.name, ref.version)
        if known is None:
            problems.append(f"dataset {ref.name} not found")
        elif not known:
            problems.append(f"dataset {ref.name} has no version {ref.version}")
    if not catalog.has_pool(job.resources.pool):
        problems.append(f"resource pool {job.resources.pool} not configured")
    for sub in job.subscriptions:
        if not catalog.has_topic(sub.topic):
            problems.append(f"topic {sub.topic} not configured")
    return "; ".join(problems)
