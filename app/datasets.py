"""Datasets and their versions (V001, V002, ...): the write and read side.

A version points at a local folder or an `s3://bucket/prefix` and records, when it is
made, a manifest summary (file count, total size) in the database. The full manifest
(each file's size, mtime and SHA-256, or ETag and VersionId) is kept beside the database,
so `check_changes` can say what was added, removed or modified since.

Versions are immutable: a local folder is snapshotted into the content-addressed store
(`app.store.snapshot.take_data_snapshot`, hard links where possible) and a job pinned to
the version reads a view of that snapshot (`pinned_folder`); an object-storage version is
staged as the recorded object versions, or refused when an object changed (`s3_pins`).
Every function checks first and writes after, in one transaction; numbers are bumped like
job versions.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.context import Context
from app.errors import ConflictError, FieldError, NotFoundError, TraindeckError
from app.formatting import human_bytes
from app.specs.spec import check_name, is_remote
from app.storage import (
    Pin,
    S3Location,
    StorageError,
    client_for,
    list_objects,
    scan_names,
)
from app.storage.names import describe_skipped, walk_files
from app.store.db import Database
from app.store.models import (
    ACTIVE_STATUSES,
    Dataset,
    DatasetVersion,
    Event,
    Job,
    Version,
    parse_version_label,
    version_label,
)
from app.store.snapshot import (
    SnapshotError,
    load_snapshot,
    materialize_data,
    take_data_snapshot,
)

MANIFESTS_DIR = "datasets"
DESCRIPTION_MAX = 1000
SHOWN_CHANGES = 5
Progress = Callable[[int, int], None] | None
"""A snapshot's progress callback: (bytes done, bytes in all)."""


# ---------------------------------------------------------------- manifests


FileState = tuple[int, str, str]
"""A file in a manifest: (size, mtime_ns or ETag, SHA-256 or VersionId; "" unknown)."""


@dataclass
class Manifest:
    """Every file of a dataset version: relative path → `FileState`."""

    uri: str
    files: dict[str, FileState] = field(default_factory=dict)

    @property
    def file_count(self) -> int:
        """How many files."""
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        """Their total size."""
        return sum(state[0] for state in self.files.values())

    @property
    def usable(self) -> int:
        """How many files training will read (the 255 rule leaves the others out)."""
        return len(scan_names(self.files).usable)

    def skipped_lines(self) -> list[str]:
        """Warnings about files training will skip."""
        return describe_skipped(scan_names(self.files), self.uri)


def take_manifest(settings: Any, uri: str) -> Manifest:
    """List a local folder (sizes and mtimes; no hashes) or an object-storage prefix
    (ETags, and VersionIds when the bucket is versioned); StorageError/OSError on failure."""
    manifest = Manifest(uri)
    if is_remote(uri):
        location = S3Location.parse(uri)
        client = client_for(uri, settings)
        objects = list_objects(client, location)
        versions = _version_ids(client, location) if objects else {}
        for obj in objects:
            manifest.files[obj.relative] = (obj.size, obj.etag, versions.get(obj.key, ""))
    else:
        for rel, info in walk_files(Path(uri)):
            manifest.files[rel] = (info.st_size, str(info.st_mtime_ns), "")
    return manifest


def _version_ids(client: Any, location: S3Location) -> dict[str, str]:
    """Key → VersionId of the current objects under a location of a versioned bucket
    ({} when the bucket is not versioned, or says nothing about it)."""
    try:
        status = client.get_bucket_versioning(Bucket=location.bucket).get("Status")
        if status not in ("Enabled", "Suspended"):
            return {}
        out = {}
        pages = client.get_paginator("list_object_versions").paginate(
            Bucket=location.bucket, Prefix=location.key_prefix)
        for page in pages:
            for item in page.get("Versions", []):
                if item.get("IsLatest") and item.get("VersionId") not in (None, "null"):
                    out[item["Key"]] = item["VersionId"]
        return out
    except Exception:  # not allowed, or not offered by this storage: ETags still pin
        return {}


def manifest_path(settings: Any, version_id: int) -> Path:
    """Where the full manifest of a dataset version is kept."""
    return Path(settings.data_dir) / MANIFESTS_DIR / f"{version_id}.json.gz"


def _save_manifest(settings: Any, version_id: int, manifest: Manifest) -> None:
    path = manifest_path(settings, version_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt", encoding="utf-8") as f:
            json.dump({"uri": manifest.uri, "files": manifest.files}, f)
    except OSError as exc:
        raise TraindeckError(f"{path}: {exc.strerror or exc}") from exc


def _load_manifest(settings: Any, version_id: int) -> Manifest | None:
    try:
        with gzip.open(manifest_path(settings, version_id), "rt", encoding="utf-8") as f:
            data = json.load(f)
        return Manifest(data["uri"], {k: (int(v[0]), str(v[1]), str(v[2]) if len(v) > 2
                                          else "") for k, v in data["files"].items()})
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


# ---------------------------------------------------------------- views


@dataclass(frozen=True)
class DatasetVersionInfo:
    """One dataset version, as lists and `--json` show it."""

    dataset: str
    version: str
    uri: str
    description: str
    file_count: int
    total_bytes: int
    created: datetime
    warnings: tuple[str, ...] = ()
    """Only right after creation: files training will skip, and why."""

    @property
    def remote(self) -> bool:
        """True for object-storage versions."""
        return is_remote(self.uri)

    def to_dict(self) -> dict[str, Any]:
        """For `--json` output."""
        data = asdict(self)
        data["remote"] = self.remote
        data["warnings"] = list(self.warnings)
        return data


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset in the list: its latest version at a glance."""

    name: str
    description: str
    created: datetime
    versions: int
    latest: DatasetVersionInfo | None

    def to_dict(self) -> dict[str, Any]:
        """For `--json` output."""
        return {"name": self.name, "description": self.description, "created": self.created,
                "versions": self.versions,
                "latest": self.latest.to_dict() if self.latest else None}


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset and every version of it."""

    name: str
    description: str
    created: datetime
    versions: list[DatasetVersionInfo]

    def to_dict(self) -> dict[str, Any]:
        """For `--json` output."""
        return {"name": self.name, "description": self.description, "created": self.created,
                "versions": [v.to_dict() for v in self.versions]}


def _info(name: str, row: DatasetVersion, warnings: tuple[str, ...] = ()
          ) -> DatasetVersionInfo:
    return DatasetVersionInfo(name, version_label(row.number), row.uri, row.description,
                              row.file_count, row.total_bytes, row.created_at, warnings)


# ---------------------------------------------------------------- checks


def check_dataset_name(name: str) -> None:
    """FieldError naming `name` unless it is a valid dataset name (the job name rules)."""
    try:
        check_name(name, "dataset name")
    except ValueError as exc:
        raise FieldError("name", str(exc)) from exc


def check_description(description: str) -> None:
    """FieldError naming `description` when it is too long."""
    if len(description) > DESCRIPTION_MAX:
        raise FieldError("description", f"must be at most {DESCRIPTION_MAX} characters")


def normalize_location(path: str) -> str:
    """An `s3://bucket/prefix` as given (trailing `/` dropped) or an absolute local folder
    (a relative one is taken from the current folder); FieldError naming `path` otherwise."""
    if not path.strip():
        raise FieldError("path", "must not be empty")
    if is_remote(path):
        try:
            return S3Location.parse(path).uri
        except StorageError as exc:
            raise FieldError("path", str(exc)) from exc
    local = Path(path).expanduser().resolve()
    if not local.is_dir():
        raise FieldError("path", f"{local} is not an existing directory")
    return str(local)


def _manifest_for(ctx: Context, uri: str) -> Manifest:
    try:
        manifest = take_manifest(ctx.settings, uri)
    except StorageError as exc:
        raise FieldError("path", str(exc)) from exc
    except OSError as exc:
        raise FieldError("path", f"{uri}: {exc.strerror or exc}") from exc
    if manifest.file_count == 0:
        raise FieldError("path", f"{uri} holds no files")
    if manifest.usable == 0:
        raise FieldError("path", f"{uri} holds no usable data files (every name is longer "
                                 "than 255 characters)")
    return manifest


def _snapshot(ctx: Context, uri: str, manifest: Manifest, progress: Progress) -> str:
    """Snapshot a local folder's files into the store (object storage: nothing); the
    snapshot's id, with each file's SHA-256 written into `manifest`."""
    if is_remote(uri):
        return ""
    try:
        snap = take_data_snapshot(Path(uri), data_store(ctx.settings),
                                  {rel: state[0] for rel, state in manifest.files.items()},
                                  progress)
    except SnapshotError as exc:
        raise FieldError("path", str(exc)) from exc
    for rel, entry in snap.files.items():
        manifest.files[rel] = (entry.size, manifest.files[rel][1], entry.hash)
    return snap.id


def data_store(settings: Any) -> Path:
    """The content-addressed store that dataset (and code) snapshots share."""
    return Path(settings.data_dir) / "snapshots"


def _insert_version(session: Session, ctx: Context, dataset: Dataset, uri: str,
                    description: str, manifest: Manifest, snapshot: str) -> DatasetVersion:
    # The UPDATE takes the write lock first, so concurrent callers get distinct numbers.
    session.exec(update(Dataset).where(col(Dataset.id) == dataset.id)
                 .values(last_version_number=Dataset.last_version_number + 1))
    number = session.exec(select(Dataset.last_version_number)
                          .where(Dataset.id == dataset.id)).one()
    row = DatasetVersion(dataset_id=dataset.id or 0, number=number, uri=uri,
                         description=description, file_count=manifest.file_count,
                         total_bytes=manifest.total_bytes, snapshot=snapshot)
    session.add(row)
    session.flush()
    _save_manifest(ctx.settings, row.id or 0, manifest)
    return row


# ---------------------------------------------------------------- writes


def create_dataset(ctx: Context, name: str, path: str, description: str = "",
                   *, progress: Progress = None
                   ) -> DatasetVersionInfo:
    """Create a dataset with its first version (V001) at `path` (a local folder is
    snapshotted; `progress(bytes done, bytes in all)` hears how far)."""
    check_dataset_name(name)
    check_description(description)
    uri = normalize_location(path)
    with ctx.db.read() as session:
        if session.exec(select(Dataset.id).where(Dataset.name == name)).first() is not None:
            raise _exists(name)
    manifest = _manifest_for(ctx, uri)
    snapshot = _snapshot(ctx, uri, manifest, progress)
    try:
        with ctx.db.write() as session:
            if session.exec(select(Dataset.id).where(Dataset.name == name)).first():
                raise _exists(name)
            dataset = Dataset(name=name, description=description)
            session.add(dataset)
            session.flush()
            row = _insert_version(session, ctx, dataset, uri, "", manifest, snapshot)
    except IntegrityError as exc:
        raise _exists(name) from exc
    return _info(name, row, tuple(manifest.skipped_lines()))


def _exists(name: str) -> ConflictError:
    return ConflictError(f"name: dataset {name!r} already exists; add a version with "
                         f"`traindeck datasets add-version {name} --path P`")


def add_version(ctx: Context, name: str, path: str, description: str = "",
                *, progress: Progress = None
                ) -> DatasetVersionInfo:
    """Add the next version of a dataset at `path` (snapshotted, as `create_dataset`)."""
    check_description(description)
    uri = normalize_location(path)
    _get_dataset(ctx.db, name)
    manifest = _manifest_for(ctx, uri)
    snapshot = _snapshot(ctx, uri, manifest, progress)
    with ctx.db.write() as session:
        dataset = session.exec(select(Dataset).where(Dataset.name == name)).first()
        if dataset is None:
            raise NotFoundError(f"dataset {name!r} not found")
        row = _insert_version(session, ctx, dataset, uri, description, manifest, snapshot)
    return _info(name, row, tuple(manifest.skipped_lines()))


def active_users(session: Session, name: str, numbers: set[int] | None = None
                 ) -> list[tuple[str, str]]:
    """Active training versions reading dataset `name` (any version, or those numbered
    in `numbers`): `(job/V003 (running), dataset version)` pairs."""
    rows = session.exec(
        select(Job.name, Version.number, Version.status, Version.spec_json)
        .join(Job, col(Job.id) == col(Version.job_id))
        .where(col(Version.status).in_([s.value for s in ACTIVE_STATUSES]))
    ).all()
    users = []
    for job, number, status, spec_json in rows:
        try:
            refs = (json.loads(spec_json).get("data") or {}).get("datasets") or []
        except (ValueError, AttributeError):
            continue
        for ref in refs:
            if not isinstance(ref, dict) or ref.get("name") != name:
                continue
            try:
                used = parse_version_label(str(ref.get("version", "")))
            except FieldError:
                continue
            if numbers is None or used in numbers:
                users.append((f"{job}/{version_label(number)} ({status})",
                              version_label(used)))
    return users


def delete_dataset(ctx: Context, name: str, label: str | None = None) -> list[str]:
    """Delete one version (or, with no label, the whole dataset); returns the labels.

    Refused while an active training version reads it, naming each such version.
    """
    with ctx.db.write() as session:
        dataset = session.exec(select(Dataset).where(Dataset.name == name)).first()
        if dataset is None:
            raise NotFoundError(f"dataset {name!r} not found")
        query = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
        if label is not None:
            query = query.where(DatasetVersion.number == parse_version_label(label))
        rows = list(session.exec(query.order_by(col(DatasetVersion.number))))
        if label is not None and not rows:
            raise NotFoundError(f"dataset {name!r} has no version {label.upper()}")
        users = active_users(session, name, {r.number for r in rows})
        if users:
            used = "; ".join(f"{version} by {who}" for who, version in users)
            raise ConflictError(f"dataset {name!r} is in use by active training versions: "
                                f"{used}; stop them or let them end first")
        for row in rows:
            session.delete(row)
        if label is None:
            session.flush()
            session.delete(dataset)
    for row in rows:
        manifest_path(ctx.settings, row.id or 0).unlink(missing_ok=True)
    return [version_label(r.number) for r in rows]


# ---------------------------------------------------------------- reads


def _get_dataset(db: Database, name: str) -> Dataset:
    with db.read() as session:
        dataset = session.exec(select(Dataset).where(Dataset.name == name)).first()
    if dataset is None:
        raise NotFoundError(f"dataset {name!r} not found")
    return dataset


def get_dataset(db: Database, name: str) -> DatasetInfo:
    """A dataset and its versions, oldest first."""
    dataset = _get_dataset(db, name)
    with db.read() as session:
        rows = session.exec(select(DatasetVersion)
                            .where(DatasetVersion.dataset_id == dataset.id)
                            .order_by(col(DatasetVersion.number))).all()
    return DatasetInfo(dataset.name, dataset.description, dataset.created_at,
                       [_info(dataset.name, r) for r in rows])


def list_datasets(db: Database) -> list[DatasetSummary]:
    """Every dataset with its version count and latest version, by name."""
    with db.read() as session:
        datasets = session.exec(select(Dataset).order_by(col(Dataset.name))).all()
        rows = session.exec(select(DatasetVersion)
                            .order_by(col(DatasetVersion.number))).all()
    by_dataset: dict[int, list[DatasetVersion]] = {}
    for row in rows:
        by_dataset.setdefault(row.dataset_id, []).append(row)
    out = []
    for ds in datasets:
        versions = by_dataset.get(ds.id or 0, [])
        latest = _info(ds.name, versions[-1]) if versions else None
        out.append(DatasetSummary(ds.name, ds.description, ds.created_at, len(versions),
                                  latest))
    return out




# ---------------------------------------------------------------- drift


@dataclass(frozen=True)
class Drift:
    """How a dataset version's files differ from its manifest."""

    dataset: str
    version: str
    uri: str
    files_before: int
    bytes_before: int
    files_now: int
    bytes_now: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    detailed: bool = True
    """False when only the summary could be compared (the full manifest is gone)."""
    error: str | None = None
    """Why the files could not be listed now (then nothing else is known)."""

    @property
    def changed(self) -> bool:
        """True when anything differs (or the files cannot be read)."""
        return bool(self.error or self.added or self.removed or self.modified
                    or self.files_now != self.files_before
                    or self.bytes_now != self.bytes_before)

    def describe(self) -> str:
        """One line for people."""
        head = f"{self.dataset} {self.version}"
        if self.error:
            return f"{head}  cannot check: {self.error}"
        if not self.changed:
            return f"{head}  unchanged ({self.files_now} files, {human_bytes(self.bytes_now)})"
        parts = [f"{self.files_now} files (was {self.files_before}), "
                 f"{human_bytes(self.bytes_now)} (was {human_bytes(self.bytes_before)})"]
        for what, names in (("added", self.added), ("removed", self.removed),
                            ("modified", self.modified)):
            if names:
                shown = ", ".join(names[:SHOWN_CHANGES])
                more = f" and {len(names) - SHOWN_CHANGES} more" \
                    if len(names) > SHOWN_CHANGES else ""
                parts.append(f"{len(names)} {what}: {shown}{more}")
        return f"{head}  changed: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """For `--json` output."""
        return {**asdict(self), "changed": self.changed}


def check_changes(ctx: Context, name: str, label: str | None = None, *,
                  every: bool = False) -> list[Drift]:
    """Compare the live files with the manifest of one version (default: the latest; with
    `every`, each version) and report the drift, by content where sizes match."""
    info = get_dataset(ctx.db, name)
    versions = info.versions if every or label is not None else info.versions[-1:]
    if label is not None:
        number = parse_version_label(label)
        versions = [v for v in versions if v.version == version_label(number)]
        if not versions:
            raise NotFoundError(f"dataset {name!r} has no version {version_label(number)}")
    with ctx.db.read() as session:
        ids = {version_label(r.number): r.id or 0 for r in session.exec(
            select(DatasetVersion).join(Dataset, col(Dataset.id) == col(
                DatasetVersion.dataset_id)).where(Dataset.name == name))}
    return [_drift(ctx, v, ids.get(v.version, 0)) for v in versions]


def _drift(ctx: Context, version: DatasetVersionInfo, version_id: int) -> Drift:
    def drift(files_now: int = 0, bytes_now: int = 0, **found: Any) -> Drift:
        return Drift(version.dataset, version.version, version.uri, version.file_count,
                     version.total_bytes, files_now, bytes_now, **found)

    try:
        now = take_manifest(ctx.settings, version.uri)
    except StorageError as exc:
        return drift(error=str(exc))
    except OSError as exc:
        return drift(error=f"{version.uri}: {exc.strerror or exc}")
    before = _load_manifest(ctx.settings, version_id)
    if before is None:
        return drift(now.file_count, now.total_bytes, detailed=False)
    old, new = before.files, now.files
    return drift(now.file_count, now.total_bytes,
                 added=sorted(new.keys() - old.keys()),
                 removed=sorted(old.keys() - new.keys()),
                 modified=[k for k in sorted(new.keys() & old.keys())
                           if _modified(version.uri, k, old[k], new[k])])


def _modified(uri: str, rel: str, old: FileState, new: FileState) -> bool:
    """True when a file's content differs: by size, ETag, or (mtime moved) SHA-256."""
    if old[0] != new[0]:
        return True
    if old[1] == new[1]:
        return False
    if is_remote(uri) or not old[2]:
        return True
    try:
        with open(Path(uri) / rel, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest() != old[2]
    except OSError:
        return True


# ---------------------------------------------------------------- pinning


def pinned_source(ctx: Context, name: str, row: DatasetVersion, view: Path,
                  version_id: int) -> str:
    """Where training version `version_id` reads dataset version `row` from: a snapshotted
    folder's read-only view at `view` (made on first use; SnapshotError when a file was
    changed in place), an object-storage URI (staged with `s3_pins`), or, for a version
    made before snapshots, the live folder, with a warning event saying it is not pinned."""
    what = f"dataset {name} {version_label(row.number)}"
    if row.snapshot:
        snap = load_snapshot(data_store(ctx.settings), row.snapshot)
        return str(materialize_data(snap, view, what))
    if not is_remote(row.uri) or _load_manifest(ctx.settings, row.id or 0) is None:
        _warn_once(ctx, version_id, f"{what} was made before dataset versions were "
                   f"pinned: the job reads {row.uri} as it is now (not pinned)")
    return row.uri


def _warn_once(ctx: Context, version_id: int, message: str) -> None:
    with ctx.db.write() as session:
        if session.exec(select(Event.id).where(Event.version_id == version_id,
                                               Event.message == message)).first() is None:
            session.add(Event(version_id=version_id, message=message, kind="warning"))


def s3_pins(ctx: Context, refs: list[tuple[str, str]]) -> list[Pin | None]:
    """For each (dataset, version) in `refs`: the objects an object-storage version
    recorded (what staging must fetch), else None."""
    out: list[Pin | None] = []
    with ctx.db.read() as session:
        for name, label in refs:
            row = session.exec(
                select(DatasetVersion).join(Dataset, col(Dataset.id) == col(
                    DatasetVersion.dataset_id))
                .where(Dataset.name == name,
                       DatasetVersion.number == parse_version_label(label))).first()
            manifest = (_load_manifest(ctx.settings, row.id or 0)
                        if row is not None and is_remote(row.uri) else None)
            out.append(None if manifest is None or row is None else
                       Pin(manifest.files, f"dataset {name} {version_label(row.number)}"))
    return out
