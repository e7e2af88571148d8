"""Datasets: versions of local folders and s3:// prefixes, manifests, drift, delete rules,
and the `traindeck datasets` commands."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import count_rows, noop_launcher
from s3server import S3Server, put_objects

from app.catalog import DbCatalog
from app.context import Context
from app.datasets import (
    add_version,
    check_changes,
    check_dataset_name,
    check_description,
    create_dataset,
    delete_dataset,
    get_dataset,
    list_datasets,
    manifest_path,
)
from app.errors import ConflictError, FieldError, NotFoundError
from app.jobs import set_status, submit
from app.store.models import Status

LONG = "n" * 300




def make_folder(base: Path, files: dict[str, bytes]) -> Path:
    """A folder holding `files` (relative path → content)."""
    for rel, body in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    base.mkdir(parents=True, exist_ok=True)
    return base


# ---------------------------------------------------------------- core


def test_local_dataset_versions_and_manifest(ctx: Context, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = make_folder(tmp_path / "v1", {"train/a.csv": b"12345", "test/b.csv": b"678"})
    info = create_dataset(ctx, "mnist", str(v1), "digits")
    assert (info.dataset, info.version, info.uri) == ("mnist", "V001", str(v1))
    assert (info.file_count, info.total_bytes, info.warnings) == (2, 8, ())
    v2 = make_folder(tmp_path / "v2", {"a.csv": b"1"})
    monkeypatch.chdir(tmp_path)  # a relative path is taken from the current folder
    second = add_version(ctx, "mnist", "v2", "smaller")
    assert (second.version, second.uri, second.file_count) == ("V002", str(v2), 1)

    shown = get_dataset(ctx.db, "mnist")
    assert [v.version for v in shown.versions] == ["V001", "V002"]
    assert shown.description == "digits" and shown.versions[1].description == "smaller"
    listed = list_datasets(ctx.db)
    assert [(d.name, d.versions, d.latest.version if d.latest else None)
            for d in listed] == [("mnist", 2, "V002")]
    assert json.loads(json.dumps(shown.to_dict(), default=str))["versions"][0]["remote"] is False
    catalog = DbCatalog(ctx.db, ctx.settings)
    assert catalog.has_dataset_version("mnist", "V002") is True
    assert catalog.has_dataset_version("mnist", "V003") is False
    assert catalog.dataset_local_paths("mnist", "V001") == [str(v1)]


def test_version_numbers_are_distinct_under_concurrency(ctx: Context, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", {"x.bin": b"x"})
    create_dataset(ctx, "shared", str(folder))
    labels: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            labels.append(add_version(ctx, "shared", str(folder)).version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(labels) == [f"V{n:03d}" for n in range(2, 10)]


def test_bad_input_names_the_field_and_writes_nothing(ctx: Context, tmp_path: Path) -> None:
    empty = make_folder(tmp_path / "empty", {})
    good = make_folder(tmp_path / "good", {"a": b"a"})
    before = count_rows(ctx.db)
    cases: list[tuple[Callable[[], Any], type[Exception], str]] = [
        (lambda: create_dataset(ctx, "9bad", str(good)), FieldError, "name: dataset name"),
        (lambda: create_dataset(ctx, "ok", str(tmp_path / "missing")), FieldError,
         "path: "),
        (lambda: create_dataset(ctx, "ok", str(empty)), FieldError, "holds no files"),
        (lambda: create_dataset(ctx, "ok", "s3://Bad_Bucket/x"), FieldError,
         "path: 's3://Bad_Bucket/x' is not a valid"),
        (lambda: create_dataset(ctx, "ok", str(good), "d" * 1001), FieldError,
         "description: "),
        (lambda: add_version(ctx, "nope", str(good)), NotFoundError, "dataset 'nope'"),
        (lambda: delete_dataset(ctx, "nope"), NotFoundError, "dataset 'nope' not found"),
    ]
    for call, error, text in cases:
        with pytest.raises(error) as caught:
            call()
        assert text in str(caught.value) and "\n" not in str(caught.value)
    assert count_rows(ctx.db) == before
    create_dataset(ctx, "ok", str(good))
    with pytest.raises(ConflictError, match="name: dataset 'ok' already exists"):
        create_dataset(ctx, "ok", str(good))
    with pytest.raises(NotFoundError, match="has no version V007"):
        delete_dataset(ctx, "ok", "V007")
    with pytest.raises(FieldError, match="version: 'latest' is not a version"):
        delete_dataset(ctx, "ok", "latest")


def test_the_checks_the_tui_runs_as_one_types_are_the_create_checks() -> None:
    check_dataset_name("mnist-train_2")
    check_description("d" * 1000)
    for call, field in ((lambda: check_dataset_name("9lives"), "name"),
                        (lambda: check_dataset_name("a" * 65), "name"),
                        (lambda: check_description("d" * 1001), "description")):
        with pytest.raises(FieldError) as caught:
            call()
        assert caught.value.field == field


def test_drift_is_reported(ctx: Context, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", {"a.csv": b"aaa", "b.csv": b"bb", "c.csv": b"c"})
    create_dataset(ctx, "drifty", str(folder))
    (drift,) = check_changes(ctx, "drifty")
    assert not drift.changed and "unchanged (3 files" in drift.describe()
    (folder / "a.csv").write_bytes(b"aaaa")
    (folder / "b.csv").unlink()
    (folder / "new.csv").write_bytes(b"n")
    (drift,) = check_changes(ctx, "drifty", "V001")
    assert drift.changed and drift.detailed
    assert (drift.added, drift.removed, drift.modified) == (["new.csv"], ["b.csv"], ["a.csv"])
    assert (drift.files_before, drift.files_now, drift.bytes_before, drift.bytes_now) == \
        (3, 3, 6, 6)
    assert "1 added: new.csv; 1 removed: b.csv; 1 modified: a.csv" in drift.describe()
    # Without the full manifest the summary still shows a change of size or count.
    for path in (ctx.settings.data_dir / "datasets").iterdir():
        path.unlink()
    (folder / "more.csv").write_bytes(b"more")
    (drift,) = check_changes(ctx, "drifty")
    assert drift.changed and not drift.detailed and drift.files_now == 4
    (folder.rename(tmp_path / "gone"))
    (drift,) = check_changes(ctx, "drifty")
    assert drift.error and "cannot check" in drift.describe()


def _submit_using(ctx: Context, tmp_path: Path, job: str, dataset: str, version: str) -> None:
    code = make_folder(tmp_path / f"code-{job}", {"train.py": b"print('hi')\n"})
    spec = {"name": job, "data": {"datasets": [{"name": dataset, "version": version}]},
            "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                        "code_dir": str(code), "boot_file": "train.py"}},
            "output": str(tmp_path / f"out-{job}"), "resources": {"runtime": "local"}}
    submit(ctx, spec, tmp_path, launcher=noop_launcher)


def test_delete_refuses_while_an_active_version_reads_it(ctx: Context, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", {"a.csv": b"a"})
    create_dataset(ctx, "inuse", str(folder))
    add_version(ctx, "inuse", str(folder))
    _submit_using(ctx, tmp_path, "trainer", "inuse", "V001")
    with pytest.raises(ConflictError) as caught:
        delete_dataset(ctx, "inuse", "V001")
    assert "V001 by trainer/V001 (initializing)" in str(caught.value)
    with pytest.raises(ConflictError, match="trainer/V001"):
        delete_dataset(ctx, "inuse")
    assert delete_dataset(ctx, "inuse", "V002") == ["V002"]  # not in use
    manifest = manifest_path(ctx.settings, 1)
    assert manifest.exists()
    set_status(ctx, 1, Status.FAILED, "test")
    assert delete_dataset(ctx, "inuse") == ["V001"]
    assert list_datasets(ctx.db) == [] and not manifest.exists()


def test_s3_dataset_versions(ctx: Context, s3: S3Server) -> None:
    put_objects(s3, "datasets", {"cifar/v1/a.bin": b"aaaa", "cifar/v1/b/c.bin": b"cc",
                                 f"cifar/v1/{LONG}": b"x", "cifar/v10/other": b"o"})
    info = create_dataset(ctx, "cifar", "s3://datasets/cifar/v1/")
    assert (info.uri, info.file_count, info.total_bytes, info.remote) == \
        ("s3://datasets/cifar/v1", 3, 7, True)
    assert len(info.warnings) == 1 and "skipped 1 data file(s)" in info.warnings[0]
    catalog = DbCatalog(ctx.db, ctx.settings)
    assert catalog.has_dataset_version("cifar", "V001")
    assert catalog.dataset_local_paths("cifar", "V001") == []
    put_objects(s3, "datasets", {"cifar/v1/new.bin": b"n"})
    (drift,) = check_changes(ctx, "cifar")
    assert drift.added == ["new.bin"] and drift.files_now == 4
    with pytest.raises(FieldError, match=r"^path: s3://missing-bucket/x: no such bucket$"):
        add_version(ctx, "cifar", "s3://missing-bucket/x")
    with pytest.raises(FieldError, match="holds no files"):
        add_version(ctx, "cifar", "s3://datasets/nothing")
    put_objects(s3, "datasets", {f"only-long/{LONG}": b"x"})
    with pytest.raises(FieldError, match="no usable data files"):
        add_version(ctx, "cifar", "s3://datasets/only-long")
    assert [v.version for v in get_dataset(ctx.db, "cifar").versions] == ["V001"]


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `traindeck ARGS...` in process: (exit code, stdout, stderr)."""
    from app.cli import main as cli_main

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli_main.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_round_trip(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "d", {"a.csv": b"abc", "b/c.csv": b"de"})
    code, out, _ = cli("datasets", "create", "flowers", "--path", str(folder),
                       "--description", "petals")
    assert code == 0 and out.strip() == f"created dataset flowers V001: {folder} (2 files, 5 B)"
    code, out, _ = cli("datasets", "add-version", "flowers", "--path", str(folder), "--json")
    assert code == 0 and json.loads(out)["version"] == "V002"
    code, out, _ = cli("datasets", "--json", "list")
    assert code == 0 and json.loads(out)[0]["latest"]["version"] == "V002"
    code, out, _ = cli("datasets", "list")
    assert code == 0 and "flowers" in out and "petals" in out
    code, out, _ = cli("datasets", "show", "flowers")
    assert code == 0 and "V001" in out and "V002" in out
    code, out, _ = cli("datasets", "show", "flowers", "--json")
    assert [v["file_count"] for v in json.loads(out)["versions"]] == [2, 2]
    code, out, _ = cli("datasets", "check", "flowers", "-v", "V001")
    assert code == 0 and "unchanged (2 files" in out
    os.remove(folder / "a.csv")
    code, out, _ = cli("datasets", "check", "flowers", "--all", "--json")
    assert [d["changed"] for d in json.loads(out)] == [True, True]
    code, out, _ = cli("datasets", "check", "flowers")
    assert out.startswith("flowers V002  changed") and "1 removed: a.csv" in out

    code, _, err = cli("datasets", "delete", "flowers", "--version", "V001")
    assert code == 1 and err == "error: delete dataset flowers V001: add --yes to confirm\n"
    code, out, _ = cli("datasets", "delete", "flowers", "--version", "V001", "--yes", "--json")
    assert code == 0 and json.loads(out) == {"dataset": "flowers", "deleted": ["V001"],
                                             "dataset_deleted": False}
    code, out, _ = cli("datasets", "delete", "flowers", "--yes")
    assert code == 0 and out == "deleted dataset flowers V002\n"


def test_cli_errors_are_one_line(cli: Callable[..., tuple[int, str, str]], tmp_path: Path
                                 ) -> None:
    code, _, err = cli("datasets", "create", "x", "--path", str(tmp_path / "none"))
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("error: path: ") and "is not an existing directory" in err
    code, _, err = cli("datasets", "show", "ghost")
    assert (code, err) == (1, "error: dataset 'ghost' not found\n")
    code, _, err = cli("datasets", "add-version", "ghost", "--path", str(tmp_path))
    assert (code, err) == (1, "error: dataset 'ghost' not found\n")
