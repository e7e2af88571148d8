"""Models: named, versioned results of succeeded training versions.

"Create model" takes a succeeded version (no other status) and records, as a new model
version (V001, V002, ...), where it came from (`job/V003`), its engine, its final
metrics, its run parameters and its artifact: the training output, referenced where it
lies, or copied under the data dir (`models/<name>/<V00n>`) so that it survives the
job's deletion. Files are copied into a staging folder first and renamed into place in
the same step that writes the rows, so a failure leaves neither half.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, delete, select

from app.config import Settings
from app.context import Context
from app.errors import ConflictError, FieldError, NotFoundError
from app.specs.spec import check_name, is_remote
from app.store.db import Database
from app.store.models import (
    MetricSummary,
    Model,
    ModelVersion,
    Status,
    Version,
    version_label,
)


def models_dir(settings: Settings) -> Path:
    """Where copied model artifacts live."""
    return settings.data_dir / "models"


def create_model_refusal(status: str, label: str) -> str | None:
    """Why a version in `status` cannot become a model (None when it can)."""
    if status == Status.SUCCEEDED.value:
        return None
    return f"create model: only succeeded versions ({label} is {status})"


@dataclass(frozen=True)
class ModelVersionInfo:
    """One version of a model."""

    model: str
    version: str
    number: int
    source: str
    """`job/V003` of the training version it came from."""
    source_version_id: int | None
    engine: str
    artifact: str
    copied: bool
    metrics: dict[str, float]
    parameters: dict[str, Any]
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        data = asdict(self)
        data["created"] = self.created.isoformat()
        return data


@dataclass(frozen=True)
class ModelInfo:
    """A model and (for `get_model`) its versions, oldest first."""

    name: str
    description: str
    created: datetime
    version_count: int
    latest: str | None
    versions: list[ModelVersionInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For `--json`."""
        return {"name": self.name, "description": self.description,
                "created": self.created.isoformat(), "version_count": self.version_count,
                "latest": self.latest, "versions": [v.to_dict() for v in self.versions]}


def _version_info(model: Model, row: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(
        model=model.name, version=version_label(row.number), number=row.number,
        source=row.source_label, source_version_id=row.source_version_id, engine=row.engine,
        artifact=row.artifact_uri, copied=row.copied, metrics=json.loads(row.metrics_json),
        parameters=json.loads(row.parameters_json), created=row.created_at,
    )


def _check_model_name(name: str) -> None:
    try:
        check_name(name, "model name")
    except ValueError as exc:
        raise FieldError("name", str(exc)) from exc


def _source(ctx: Context, job: str, label: str) -> tuple[Version, dict[str, float]]:
    from app.lifecycle import load_version

    with ctx.db.read() as session:
        _, version = load_version(session, job, label)
        metrics = {r.name: r.value for r in session.exec(
            select(MetricSummary).where(MetricSummary.version_id == version.id))}
    return version, metrics


def _stage_copy(ctx: Context, output: str) -> Path:
    if is_remote(output):
        raise ConflictError(f"create model: --copy needs a local output; {output} is in "
                            "object storage")
    source = Path(output)
    if not source.is_dir():
        raise ConflictError(f"create model: output {output} no longer exists")
    root = models_dir(ctx.settings)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{uuid.uuid4().hex}"
    try:
        shutil.copytree(source, staging, symlinks=True)
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConflictError(f"create model: copying {output} failed: {exc}") from exc
    return staging


def create_model(
    ctx: Context, name: str, job: str, label: str, *, copy: bool = False,
    description: str = "",
) -> ModelVersionInfo:
    """Record a new version of model `name` (created if new) from a succeeded version.

    Refuses any version that has not succeeded, naming its status. With `copy` the
    output's files are copied under the data dir; otherwise the output is referenced.
    """
    _check_model_name(name)
    version, metrics = _source(ctx, job, label)
    source_label = f"{job}/{version_label(version.number)}"
    refusal = create_model_refusal(version.status, version_label(version.number))
    if refusal:
        raise ConflictError(refusal)
    if not copy and not is_remote(version.output) and not Path(version.output).is_dir():
        raise ConflictError(f"create model: output {version.output} of {source_label} "
                            "no longer exists")
    parameters = json.loads(version.spec_json).get("parameters", {})
    staging = _stage_copy(ctx, version.output) if copy else None
    try:
        with ctx.db.write() as session:
            if session.get(Version, version.id) is None:
                raise NotFoundError(f"{source_label} was deleted meanwhile")
            model = session.exec(select(Model).where(Model.name == name)).first()
            if model is None:
                model = Model(name=name, description=description)
                session.add(model)
                session.flush()
            number = _next_number(session, model.id or 0)
            artifact = version.output
            if staging is not None:
                target = models_dir(ctx.settings) / name / version_label(number)
                if target.exists():
                    raise ConflictError(f"create model: {target} already exists")
                target.parent.mkdir(parents=True, exist_ok=True)
                staging.rename(target)
                staging, artifact = target, str(target)
            row = ModelVersion(
                model_id=model.id or 0, number=number, source_version_id=version.id,
                source_label=source_label, engine=version.engine, artifact_uri=artifact,
                copied=copy, metrics_json=json.dumps(metrics, sort_keys=True),
                parameters_json=json.dumps(parameters, sort_keys=True),
            )
            session.add(row)
            session.flush()
            info = _version_info(model, row)
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return info


def _next_number(session: Session, model_id: int) -> int:
    # The UPDATE takes the write lock first, so concurrent creators get distinct numbers.
    session.exec(update(Model).where(col(Model.id) == model_id)
                 .values(last_version_number=Model.last_version_number + 1))
    return int(session.exec(select(Model.last_version_number)
                            .where(Model.id == model_id)).one())


def list_models(db: Database) -> list[ModelInfo]:
    """Every model with its version count and latest version, by name."""
    with db.read() as session:
        models = list(session.exec(select(Model).order_by(col(Model.name))))
        rows = session.exec(select(ModelVersion.model_id, ModelVersion.number)).all()
    numbers: dict[int, list[int]] = {}
    for model_id, number in rows:
        numbers.setdefault(model_id, []).append(number)
    out = []
    for model in models:
        have = numbers.get(model.id or 0, [])
        out.append(ModelInfo(model.name, model.description, model.created_at, len(have),
                             version_label(max(have)) if have else None))
    return out


def get_model(db: Database, name: str) -> ModelInfo:
    """A model with all its versions."""
    with db.read() as session:
        model = session.exec(select(Model).where(Model.name == name)).first()
        if model is None:
            raise NotFoundError(f"model {name!r} not found")
        rows = list(session.exec(select(ModelVersion).where(ModelVersion.model_id == model.id)
                                 .order_by(col(ModelVersion.number))))
    versions = [_version_info(model, r) for r in rows]
    return ModelInfo(model.name, model.description, model.created_at, len(versions),
                     versions[-1].version if versions else None, versions)


def delete_model(ctx: Context, name: str, label: str | None = None) -> list[str]:
    """Delete a model (or one of its versions) and the artifacts copied for it.

    Referenced training outputs are left alone. Returns the deleted version labels.
    """
    number = None
    if label is not None:
        from app.store.models import parse_version_label

        number = parse_version_label(label)
    with ctx.db.write() as session:
        model = session.exec(select(Model).where(Model.name == name)).first()
        if model is None:
            raise NotFoundError(f"model {name!r} not found")
        query = select(ModelVersion).where(ModelVersion.model_id == model.id)
        if number is not None:
            query = query.where(ModelVersion.number == number)
        rows = list(session.exec(query))
        if number is not None and not rows:
            raise NotFoundError(f"model {name!r} has no version {label}")
        copied = [Path(r.artifact_uri) for r in rows if r.copied]
        session.exec(delete(ModelVersion).where(  # type: ignore[call-overload]
            col(ModelVersion.id).in_([r.id for r in rows])))
        if number is None:
            session.delete(model)
    root = models_dir(ctx.settings).resolve()
    for path in copied:
        if path.resolve().is_relative_to(root):
            shutil.rmtree(path, ignore_errors=True)
    if number is None:
        folder = root / name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return [version_label(r.number) for r in sorted(rows, key=lambda r: r.number)]


__all__ = [
    "ModelInfo",
    "ModelVersionInfo",
    "create_model",
    "create_model_refusal",
    "delete_model",
    "get_model",
    "list_models",
    "models_dir",
]
