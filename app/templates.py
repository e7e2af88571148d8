"""Saved job parameters (templates): list, show, save from a version, delete."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from sqlmodel import col, select

from app.context import Context
from app.errors import NotFoundError
from app.jobs import load_version, save_template
from app.models import Template
from app.spec import JobSpec


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
