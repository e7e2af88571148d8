"""Dataset versions are immutable: a job pinned to V001 reads exactly V001's files.

Real folders, real supervisors and ranks (local processes, and Docker containers with
TRAINDECK_REQUIRE_DOCKER=1), a real S3 server on loopback. Each job lists and hashes its
data folder into its output; the test compares that with the files V001 was made of.
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from s3server import S3Server, put_objects

from app.context import Context
from app.datasets import check_changes, create_dataset, data_store
from app.jobs import submit
from app.queries import version_events
from app.runtime.control import wait_final
from app.runtime.launcher import dataset_paths
from app.specs.spec import JobSpec
from app.store.models import DatasetVersion, Version

HASH_DATA = """\
import hashlib, json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
data, out = args["data_url"], args["train_url"]
seen = {}
for top, _, names in os.walk(data):
    for name in names:
        path = os.path.join(top, name)
        with open(path, "rb") as f:
            seen[os.path.relpath(path, data)] = hashlib.sha256(f.read()).hexdigest()
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "seen.json"), "w") as f:
    json.dump(seen, f)
print(f"hashed {len(seen)} files", flush=True)
"""
V001_FILES = {"keep.csv": b"k,1\n", "rewrite.csv": b"r,1\n", "append.csv": b"a,1\n",
              "delete.csv": b"d,1\n", "sub/replace.csv": b"p,1\n"}


def sha(body: bytes) -> str:
    """The SHA-256 of `body` in hex."""
    return hashlib.sha256(body).hexdigest()


def make_folder(base: Path, files: dict[str, bytes]) -> Path:
    """A folder holding `files` (relative path → content)."""
    base.mkdir(parents=True, exist_ok=True)
    for rel, body in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(body)
    return base


def rewrite_as_new_file(path: Path, body: bytes) -> None:
    """Replace a file the way editors do: a new file renamed over the old name."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(body)
    os.replace(fresh, path)


def change_folder(folder: Path, *, in_place: bool) -> None:
    """Every kind of change: rewritten, deleted, added, replaced, and (`in_place`) appended."""
    rewrite_as_new_file(folder / "rewrite.csv", b"r,2 a new version\n")
    (folder / "delete.csv").unlink()
    (folder / "added.csv").write_bytes(b"new\n")
    (folder / "sub" / "replace.csv").unlink()
    (folder / "sub" / "replace.csv").write_bytes(b"p,2\n")
    if in_place:
        with open(folder / "append.csv", "ab") as f:
            f.write(b"a,2\n")


def run_job(ctx: Context, tmp_path: Path, name: str, dataset: str, runtime: str = "local"
            ) -> Version:
    """Submit a job reading `dataset` V001 that hashes its data folder; the final version."""
    code = make_folder(tmp_path / f"code-{name}", {"train.py": textwrap.dedent(HASH_DATA).encode()})
    spec = {"name": name, "data": {"datasets": [{"name": dataset, "version": "V001"}]},
            "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                        "code_dir": str(code), "boot_file": "train.py"}},
            "output": str(tmp_path / f"out-{name}"), "log_dir": str(tmp_path / f"logs-{name}"),
            "resources": {"runtime": runtime}}
    submit(ctx, spec, tmp_path)
    return wait_final(ctx, name, None, 90)


def seen(version: Version) -> dict[str, str]:
    """What the job found in its data folder: relative path → SHA-256."""
    assert version.status == "succeeded", version.reason
    return json.loads((Path(version.output) / "seen.json").read_text())


def expected() -> dict[str, str]:
    """V001's files, as the job must see them."""
    return {rel: sha(body) for rel, body in V001_FILES.items()}


def test_a_local_job_reads_the_pinned_files_after_the_folder_changed(
        ctx: Context, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", V001_FILES)
    calls: list[tuple[int, int]] = []
    info = create_dataset(ctx, "pinned", str(folder), progress=lambda *done: calls.append(done))
    total = sum(map(len, V001_FILES.values()))
    assert info.file_count == 5 and len(calls) == 5 and calls[-1] == (total, total)
    with ctx.db.read() as session:
        row = session.get(DatasetVersion, 1)
    assert row is not None and row.snapshot
    # Same file system: the store holds the very files, by hard link (nothing copied).
    store = data_store(ctx.settings)
    stored = store / "objects" / sha(b"k,1\n")[:2] / sha(b"k,1\n")[2:]
    assert os.path.samefile(stored, folder / "keep.csv")
    change_folder(folder, in_place=False)
    os.utime(folder / "keep.csv", (1, 1))  # moves the stored object's mtime: re-hashed, same
    version = run_job(ctx, tmp_path, "reader", "pinned")
    assert seen(version) == expected()
    view = ctx.settings.data_dir / "versions" / str(version.id) / "data-0"
    assert sorted(p.relative_to(view).as_posix() for p in view.rglob("*.csv")) == \
        sorted(V001_FILES)
    (drift,) = check_changes(ctx, "pinned")
    assert (drift.added, drift.removed, drift.modified) == \
        (["added.csv"], ["delete.csv"], ["rewrite.csv", "sub/replace.csv"])


def test_a_copied_snapshot_survives_changes_in_place(ctx: Context, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(ctx.settings.data_dir).st_dev:
        pytest.skip("needs a second file system (/dev/shm) to force copies")
    folder = make_folder(shm / f"traindeck-test-{os.getpid()}-{tmp_path.name}", V001_FILES)
    try:
        create_dataset(ctx, "copied", str(folder))
        stored = data_store(ctx.settings) / "objects" / sha(b"a,1\n")[:2] / sha(b"a,1\n")[2:]
        assert stored.stat().st_nlink == 1 and not stored.stat().st_mode & 0o222
        change_folder(folder, in_place=True)
        assert seen(run_job(ctx, tmp_path, "copy-reader", "copied")) == expected()
    finally:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()


def test_a_file_changed_in_place_is_refused_by_name(ctx: Context, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", V001_FILES)
    create_dataset(ctx, "linked", str(folder))
    change_folder(folder, in_place=True)  # the hard-linked object changes with it
    version = run_job(ctx, tmp_path, "refused", "linked")
    assert version.status == "failed"
    assert version.reason.startswith("dataset linked V001: append.csv was changed in place "
                                     "after the version was made")
    # A touch alone (same content) is no change.
    os.utime(folder / "keep.csv", (1, 1))
    (drift,) = check_changes(ctx, "linked")
    assert "keep.csv" not in drift.modified and "append.csv" in drift.modified


def test_a_version_made_before_snapshots_reads_the_live_folder_with_a_warning(
        ctx: Context, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", V001_FILES)
    create_dataset(ctx, "legacy", str(folder))
    with ctx.db.write() as session:
        row = session.get(DatasetVersion, 1)
        assert row is not None
        row.snapshot = ""
        session.add(row)
    change_folder(folder, in_place=False)
    version = run_job(ctx, tmp_path, "live", "legacy")
    assert seen(version) == {rel: sha((folder / rel).read_bytes())
                             for rel in ["keep.csv", "rewrite.csv", "append.csv", "added.csv",
                                         "sub/replace.csv"]}
    warnings = [e.message for e in version_events(ctx.db, version.id or 0)
                if e.kind == "warning"]
    assert warnings == [f"dataset legacy V001 was made before dataset versions were pinned: "
                        f"the job reads {folder} as it is now (not pinned)"]
    spec = JobSpec.model_validate(json.loads(version.spec_json))
    assert dataset_paths(ctx, spec) == [str(folder)]  # the recorded location, no event


@pytest.mark.docker
def test_a_docker_job_reads_the_pinned_files(engine: Any, ctx: Context,
                                             tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", V001_FILES)
    create_dataset(ctx, "boxed", str(folder))
    change_folder(folder, in_place=False)
    assert seen(run_job(ctx, tmp_path, "boxed-reader", "boxed", "docker")) == expected()


# ---------------------------------------------------------------- object storage




S3_FILES = {"rewrite.csv": b"r,1\n", "delete.csv": b"d,1\n", "keep.csv": b"k,1\n"}


def change_bucket(server: S3Server, bucket: str) -> None:
    """Overwrite, delete and add objects under `p/`."""
    put_objects(server, bucket, {"p/rewrite.csv": b"r,2 overwritten\n", "p/added.csv": b"n\n"})
    server.client().delete_object(Bucket=bucket, Key="p/delete.csv")


def test_a_versioned_bucket_stages_the_pinned_object_versions(
        ctx: Context, tmp_path: Path, s3: S3Server) -> None:
    client = s3.client()
    client.create_bucket(Bucket="versioned")
    client.put_bucket_versioning(Bucket="versioned",
                                 VersioningConfiguration={"Status": "Enabled"})
    put_objects(s3, "versioned", {f"p/{rel}": body for rel, body in S3_FILES.items()})
    create_dataset(ctx, "remote", "s3://versioned/p")
    change_bucket(s3, "versioned")
    assert seen(run_job(ctx, tmp_path, "s3-reader", "remote")) == \
        {rel: sha(body) for rel, body in S3_FILES.items()}


def test_an_unversioned_bucket_refuses_a_changed_object_by_name(
        ctx: Context, tmp_path: Path, s3: S3Server) -> None:
    put_objects(s3, "plain", {f"p/{rel}": body for rel, body in S3_FILES.items()})
    create_dataset(ctx, "plain", "s3://plain/p")
    put_objects(s3, "plain", {"p/added.csv": b"n\n"})  # added objects are left out
    assert seen(run_job(ctx, tmp_path, "plain-ok", "plain")) == \
        {rel: sha(body) for rel, body in S3_FILES.items()}
    change_bucket(s3, "plain")
    version = run_job(ctx, tmp_path, "plain-refused", "plain")
    assert (version.status, version.reason) == \
        ("failed", "s3://plain/p/delete.csv was removed since dataset plain V001 was made")
    put_objects(s3, "plain", {"p/delete.csv": b"d,1\n"})
    version = run_job(ctx, tmp_path, "plain-refused-2", "plain")
    assert version.reason == "s3://plain/p/rewrite.csv changed since dataset plain V001 was made"
