"""Creating and changing jobs and versions: the write side of the core.

Every function here validates first and writes after, inside one transaction, so bad
input never leaves anything half-written. What a version goes through once it exists
(labels, status changes, events, removal) is `app.lifecycle`, shared with the runtime.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from app.context import Context
from app.errors import ConflictError, FieldError, NotFoundError, SpecError
from app.lifecycle import (
    RUNTIME_EVENT,
    code_folder,
    load_version,
    parse_version_label,
    record_event,
    set_status,
    version_paths,
)
from app.readmodels import leaf_fields
from app.specs.rules import validate_spec
from app.specs.spec import (
    PARAM_NAME_PATTERN,
    JobSpec,
    ParamValue,
    ResourcesSpec,
    check_name,
    is_remote,
)
from app.store.models import (
    Job,
    Status,
    Template,
    Version,
    utcnow,
    version_label,
)

if TYPE_CHECKING:
    from app.store.snapshot import Snapshot

Launcher = Callable[[Context, int], None]
"""Starts whatever runs a new version (the supervisor); tests may pass a no-op."""


@dataclass(frozen=True)
class VersionRef:
    """Which version was created."""

    job: str
    version: str
    version_id: int
    status: str

    def to_dict(self) -> dict[str, Any]:
        """For `--json` output."""
        return {"job": self.job, "version": self.version, "id": self.version_id,
                "status": self.status}


def default_locations(ctx: Context, job: str) -> tuple[str, str]:
    """Output and log folders for a spec that names none."""
    base = ctx.settings.resolved_runs_dir / job
    return str(base / "output"), str(base / "logs")


_runtime_notes: dict[str, str] = {}
"""Why `auto` chose local processes, by job name: said in the next version's events."""


def resolve_runtime(ctx: Context, spec: JobSpec) -> JobSpec:
    """Fill in `resources.runtime` when the spec leaves it to the settings.

    `auto` is Docker when the engine's image is present (or its registry knows it: it
    is pulled when the version starts), else local processes, with the reason kept for
    the version's events. Quick: a ping and image inspects; no pull is attempted.
    """
    _runtime_notes.pop(spec.name, None)
    if _slurm_pool(ctx, spec):
        from app.runtime.executors.slurm import container_runtime

        pool = ctx.settings.pool(spec.resources.pool)
        if spec.algorithm.image is not None and container_runtime(pool) == "none":
            raise FieldError("resources.pool", f"pool {spec.resources.pool!r} is a Slurm "
                             "partition without a container runtime (Pyxis or Apptainer): "
                             "its ranks run the engine's interpreter on the nodes, a custom "
                             "image cannot run there")
        # Slurm starts the ranks (in the pool's container runtime when the algorithm
        # has an image): the spec keeps the runtime that passes the spec's rules.
        resources = spec.resources.model_copy(update={
            "runtime": "docker" if spec.algorithm.image is not None else "local"})
        return spec.model_copy(update={"resources": resources})
    if spec.resources.runtime is not None:
        return spec
    runtime: str = ctx.settings.default_runtime
    if spec.algorithm.image is not None:
        runtime = "docker"  # a custom image has no local equivalent
    elif runtime == "auto":
        runtime, note = _auto_runtime(ctx, spec)
        if note:
            _runtime_notes[spec.name] = note
    resources = spec.resources.model_copy(update={"runtime": runtime})
    return spec.model_copy(update={"resources": resources})


def _slurm_pool(ctx: Context, spec: JobSpec) -> bool:
    pool = ctx.settings.pool(spec.resources.pool)
    return pool is not None and pool.kind == "slurm"


def _auto_runtime(ctx: Context, spec: JobSpec) -> tuple[str, str]:
    """`(runtime, why local)` for a framework or preset spec under `auto`."""
    from app.images import engine_image, pull_problem
    from app.runtime.dockerhost import reachable_client

    algo = spec.algorithm
    if algo.framework is not None:
        engine = ctx.settings.engine(algo.framework.engine, algo.framework.engine_version)
    else:
        preset = ctx.catalog.preset(algo.preset.name) if algo.preset else None
        engine = ctx.settings.engine(preset.engine, preset.engine_version) if preset else None
    if engine is None:
        return "local", ""
    client = reachable_client(ctx.settings)
    if client is None:
        return "local", "no Docker engine answers: running as local processes"
    try:
        if engine_image(client, engine) is not None:
            return "docker", ""
        problem = pull_problem(client, engine.image)
    finally:
        client.close()
    if problem is None:
        return "docker", ""
    return "local", (f"docker image {engine.image} not available ({problem}): "
                     "running as local processes")


def prepare_spec(
    ctx: Context, raw: Mapping[str, Any] | JobSpec, base_dir: Path, source: str | None = None
) -> JobSpec:
    """Validate a spec and fill in its defaults; raises SpecError naming each bad field."""
    spec = validate_spec(raw, base_dir, ctx.catalog, source)
    from app.runtime.scheduler import gpu_shortage

    res = spec.resources
    shortage = gpu_shortage(ctx.settings, res.pool, res.gpus, res.nodes)
    if shortage:
        raise SpecError([FieldError("resources.gpus", shortage)], source)
    from app.runtime.executors.slurm import pool_problems

    # What a Slurm pool's partition can never give, in the wizard's words
    # (`app.machine.slurm_pool_problems`).
    beyond = pool_problems(ctx.settings.pool(res.pool), res.nodes, res.gpus)
    if beyond:
        raise SpecError([FieldError(at, message) for at, message in beyond.items()], source)
    output, log_dir = default_locations(ctx, spec.name)
    spec = spec.model_copy(update={"output": spec.output or output,
                                   "log_dir": spec.log_dir or log_dir})
    return resolve_runtime(ctx, spec)


def version_code(ctx: Context, spec: JobSpec, parent_id: int | None = None, *,
                 fresh: bool = False) -> tuple[str, str]:
    """The code snapshot a new version runs: its id and info (JSON), or ("", "") when
    its algorithm has no code folder.

    A version made from a parent runs the parent's snapshot (so it re-runs the code as
    it was) unless `fresh` asks for the folder as it is now, or the folder changed.
    """
    folder = code_folder(spec)
    if folder is None:
        return "", ""
    if parent_id is not None and not fresh:
        with ctx.db.read() as session:
            parent = session.get(Version, parent_id)
        if (parent is not None and parent.code_snapshot
                and json.loads(parent.code_info or "{}").get("folder") == folder):
            return parent.code_snapshot, parent.code_info
    from app.store.snapshot import DEFAULT_EXCLUDES, take_snapshot

    root = Path(folder).resolve()
    inside = [f"/{Path(p).resolve().relative_to(root)}/" for p in (spec.output, spec.log_dir)
              if p and not is_remote(p) and Path(p).resolve().is_relative_to(root)
              and Path(p).resolve() != root]
    snap = take_snapshot(Path(folder), ctx.settings.data_dir / "snapshots",
                         limit_bytes=ctx.settings.code_snapshot_limit,
                         excludes=(*DEFAULT_EXCLUDES, *inside))
    info = {"folder": folder, "size": snap.size, "files": snap.file_count,
            "git_commit": snap.git.commit if snap.git else None,
            "git_dirty": snap.git.dirty if snap.git else None,
            "skipped": list(snap.skipped)}
    return snap.id, json.dumps(info)


def version_snapshots(ctx: Context, job: str, labels: list[str]) -> dict[str, Snapshot]:
    """The code snapshots of versions `labels` of `job` (a version without one, or with
    none stored, is left out)."""
    from app.store.snapshot import load_snapshot

    numbers = [parse_version_label(label) for label in labels]
    with ctx.db.read() as session:
        rows = session.exec(
            select(Version.number, Version.code_snapshot)
            .join(Job, col(Job.id) == col(Version.job_id))
            .where(Job.name == job, col(Version.number).in_(numbers))).all()
    store = ctx.settings.data_dir / "snapshots"
    return {version_label(number): load_snapshot(store, snapshot_id)
            for number, snapshot_id in rows if snapshot_id}


def _insert_version(
    session: Session, ctx: Context, job: Job, spec: JobSpec, parent_id: int | None,
    code: tuple[str, str] = ("", ""),
) -> Version:
    # Bump the job's counter first: the UPDATE takes the write lock (a row lock elsewhere),
    # so concurrent submitters are serialised and numbers come out distinct and gap-free.
    session.exec(
        update(Job).where(col(Job.id) == job.id)
        .values(last_version_number=Job.last_version_number + 1, updated_at=utcnow())
    )
    number = session.exec(select(Job.last_version_number).where(Job.id == job.id)).one()
    label = version_label(number)
    output, log_dir = version_paths(ctx, spec, label)
    _refuse_shared_folders(session, job.id, output, log_dir)
    stored = spec.model_copy(update={"save_as_template": None})
    version = Version(
        job_id=job.id or 0, number=number, parent_id=parent_id,
        spec_json=json.dumps(stored.to_dict()),
        engine=spec.engine_label, pool=spec.resources.pool,
        runtime="slurm" if _slurm_pool(ctx, spec) else spec.resources.runtime or "",
        gpus_requested=spec.resources.gpus, nodes=spec.resources.nodes, output=output,
        log_dir=log_dir, code_snapshot=code[0], code_info=code[1],
    )
    session.add(version)
    session.flush()
    session.exec(update(Job).where(col(Job.id) == job.id).values(latest_version_id=version.id))
    parent = f" from {version_label(_number_of(session, parent_id))}" if parent_id else ""
    record_event(session, version.id or 0, f"{label} created{parent}", "status",
                 Status.INITIALIZING.value)
    note = _runtime_notes.pop(spec.name, "") if spec.resources.runtime == "local" else ""
    if note:
        record_event(session, version.id or 0, note, RUNTIME_EVENT)
    return version


def _refuse_shared_folders(session: Session, job_id: int | None, output: str,
                           log_dir: str) -> None:
    """Two jobs must never write into the same version folders (`<output>/V001`, ...)."""
    for field, path, column in (("output", output, Version.output),
                                ("log_dir", log_dir, Version.log_dir)):
        if not path:
            continue
        query = (select(Job.name, Version.number)
                 .join(Version, col(Version.job_id) == col(Job.id)).where(column == path))
        if job_id is not None:
            query = query.where(col(Version.job_id) != job_id)
        clash = session.exec(query).first()
        if clash is not None:
            raise ConflictError(
                f"{field}: {path!r} is already used by {clash[0]}/{version_label(clash[1])}; "
                "give this job its own folder"
            )


def _number_of(session: Session, version_id: int | None) -> int:
    return session.exec(select(Version.number).where(Version.id == version_id)).one()


def template_body(ctx: Context, spec: JobSpec) -> str:
    """The spec a template keeps: without the save request, and without output and log
    folders that were only the source job's defaults (a job made from the template gets
    its own)."""
    output, log_dir = default_locations(ctx, spec.name)
    update: dict[str, Any] = {"save_as_template": None}
    if spec.output == output:
        update["output"] = None
    if spec.log_dir == log_dir:
        update["log_dir"] = None
    return json.dumps(spec.model_copy(update=update).to_dict())


def _save_template(
    session: Session, ctx: Context, spec: JobSpec, source_version_id: int | None
) -> None:
    if spec.save_as_template is None:
        return
    name = spec.save_as_template.name
    _refuse_taken_template(session, name)
    session.add(Template(
        name=name, description=spec.save_as_template.description,
        spec_json=template_body(ctx, spec), source_version_id=source_version_id,
    ))


def _refuse_taken_template(session: Session, name: str) -> None:
    if session.exec(select(Template.id).where(Template.name == name)).first() is not None:
        raise ConflictError(f"save_as_template.name: job parameters {name!r} already exist")


def _refuse_taken_name(session: Session, name: str) -> None:
    if session.exec(select(Job.id).where(Job.name == name)).first() is not None:
        raise ConflictError(
            f"name: job {name!r} already exists; to run it again use "
            f"`traindeck modify {name} --from V001`"
        )


def check_new_job(ctx: Context, spec: JobSpec) -> None:
    """Refuse, as `submit` would and with its words, a prepared spec whose job cannot be
    created now: a taken name, folders another job writes into, a taken template name.
    `validate` runs this, so that it and `submit` agree."""
    output, log_dir = version_paths(ctx, spec, version_label(1))
    with ctx.db.read() as session:
        _refuse_taken_name(session, spec.name)
        _refuse_shared_folders(session, None, output, log_dir)
        if spec.save_as_template is not None:
            _refuse_taken_template(session, spec.save_as_template.name)


def _launch(ctx: Context, ref: VersionRef, launcher: Launcher | None) -> VersionRef:
    """Start the version's supervisor; a failure to start is recorded on the version."""
    if launcher is None:
        from app.runtime.launcher import launch

        launcher = launch
    try:
        launcher(ctx, ref.version_id)
    except OSError as exc:
        set_status(ctx, ref.version_id, Status.FAILED, f"could not start the supervisor: {exc}")
        return VersionRef(ref.job, ref.version, ref.version_id, Status.FAILED.value)
    return ref


def submit(
    ctx: Context, raw: Mapping[str, Any] | JobSpec, base_dir: Path, source: str | None = None,
    *, launcher: Launcher | None = None,
) -> VersionRef:
    """Create a new job from a spec and start its first version (V001)."""
    spec = prepare_spec(ctx, raw, base_dir, source)
    with ctx.db.read() as session:  # refused before the code is copied
        _refuse_taken_name(session, spec.name)
    code = version_code(ctx, spec)
    with ctx.db.write() as session:
        _refuse_taken_name(session, spec.name)
        job = Job(name=spec.name, description=spec.description)
        session.add(job)
        session.flush()
        version = _insert_version(session, ctx, job, spec, None, code)
        _save_template(session, ctx, spec, version.id)
        ref = VersionRef(job.name, version_label(version.number), version.id or 0,
                         version.status)
    return _launch(ctx, ref, launcher)


JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
"""A number exactly as JSON writes one (no leading zeros, no `+`, no bare `.5`)."""


def coerce_parameter(text: str) -> ParamValue:
    """A `--set` value typed on the command line, by one rule: a JSON number is a number
    (`10` int, `0.1` and `1e-3` float), `true` / `false` are booleans, and anything else
    is the text as typed (`010`, `1:30`, `no`, `null`, `.5` stay strings)."""
    if text in ("true", "false"):
        return text == "true"
    if JSON_NUMBER.fullmatch(text):
        value = json.loads(text)
        if not (isinstance(value, float) and not math.isfinite(value)):
            return value  # type: ignore[no-any-return]
    return text


def parse_assignments(items: list[str], field: str = "--set") -> dict[str, ParamValue]:
    """`["lr=0.1", "steps=5"]` → `{"lr": 0.1, "steps": 5}`, with errors naming the item."""
    out: dict[str, ParamValue] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise FieldError(field, f"{item!r} must be name=value")
        if not PARAM_NAME_PATTERN.fullmatch(name):
            raise FieldError(f"parameters.{name}", "not a valid parameter name")
        if name in out:
            raise FieldError(f"parameters.{name}", "given twice")
        out[name] = coerce_parameter(value)
    return out


def modified_spec(
    ctx: Context, job_name: str, from_label: str, sets: Mapping[str, ParamValue] | None = None,
    raw: Mapping[str, Any] | None = None, base_dir: Path | None = None,
    source: str | None = None, adds: Mapping[str, ParamValue] | None = None,
) -> tuple[JobSpec, JobSpec, int]:
    """The parent's spec and the validated spec of a new version made from it.

    `sets` changes run parameters the job has (its own or its preset's) and resource
    fields (`resources.gpus=0`); a name that is neither is refused: `adds` adds run
    parameters.
    """
    with ctx.db.read() as session:
        _, parent = load_version(session, job_name, from_label)
    parent_spec = JobSpec.model_validate(json.loads(parent.spec_json))
    if raw is not None:
        data = dict(raw)
        if data.get("name", job_name) != job_name:
            raise SpecError([FieldError("name", f"must stay {job_name!r} for a new version")],
                            source)
        data["name"] = job_name
        base = base_dir or Path.cwd()
    else:
        data = parent_spec.to_dict()
        data.pop("save_as_template", None)
        base = base_dir or Path.cwd()
    params = {**data.get("parameters", {})}
    for name, value in (sets or {}).items():
        section, _, field = name.partition(".")
        if section == "resources" and field in ResourcesSpec.model_fields:
            data["resources"] = {**(data.get("resources") or {}), field: value}
        elif name in params or name in _preset_parameters(ctx, data):
            params[name] = value
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            raise FieldError(f"parameters.{name}", f"not a parameter of {job_name}; to add "
                             f"it use --add {name}={text}")
    if sets or adds:
        data["parameters"] = {**params, **(adds or {})}
    new_spec = prepare_spec(ctx, data, base, source)
    return parent_spec, new_spec, parent.id or 0


def _preset_parameters(ctx: Context, data: Mapping[str, Any]) -> set[str]:
    """The parameter names of the spec's preset algorithm (none for other algorithms)."""
    preset = ((data.get("algorithm") or {}).get("preset") or {}).get("name")
    info = ctx.catalog.preset(preset) if isinstance(preset, str) else None
    return {p.name for p in info.params} if info else set()


def create_version(
    ctx: Context, job_name: str, spec: JobSpec, parent_id: int | None,
    *, launcher: Launcher | None = None, fresh_code: bool = False,
) -> VersionRef:
    """Insert a new version of an existing job with an already validated spec, and launch
    it (`fresh_code`: snapshot the code folder again rather than run the parent's)."""
    code = version_code(ctx, spec, parent_id, fresh=fresh_code)
    with ctx.db.write() as session:
        job = session.exec(select(Job).where(Job.name == job_name)).first()
        if job is None:
            raise NotFoundError(f"job {job_name!r} not found")
        version = _insert_version(session, ctx, job, spec, parent_id, code)
        _save_template(session, ctx, spec, version.id)
        ref = VersionRef(job.name, version_label(version.number), version.id or 0,
                         version.status)
    return _launch(ctx, ref, launcher)


def spec_diff(old: JobSpec, new: JobSpec) -> list[tuple[str, Any, Any]]:
    """Every leaf field that differs, as `(dotted.path, old, new)`; missing is None."""
    a, b = leaf_fields(old.to_dict()), leaf_fields(new.to_dict())
    return [(k, a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def save_template(
    ctx: Context, name: str, description: str, spec: JobSpec,
    source_version_id: int | None = None, *, replace: bool = False,
) -> None:
    """Save job parameters (a template) under `name`."""
    try:
        check_name(name, "template name")
    except ValueError as exc:
        raise FieldError("name", str(exc)) from None
    body = template_body(ctx, spec)
    with ctx.db.write() as session:
        row = session.exec(select(Template).where(Template.name == name)).first()
        if row is not None and not replace:
            raise ConflictError(f"name: job parameters {name!r} already exist")
        row = row or Template(name=name, spec_json=body)
        row.description, row.spec_json, row.updated_at = description, body, utcnow()
        row.source_version_id = source_version_id
        session.add(row)
