"""Code snapshots on real folders: a git work tree with a dirty file, excludes, links, the
size limit, writable copies that cannot touch the store, shared storage, and compare."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import SNAPSHOT_LIMIT as LIMIT
from helpers import write_files as write

from app.store.snapshot import (
    SnapshotError,
    changed_files,
    file_diff,
    load_snapshot,
    materialize,
    take_snapshot,
)

MiB = 1024 * 1024


def git(folder: Path, *args: str) -> str:
    """Run git in `folder` with a fixed identity; its output."""
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com",
                           "-c", "init.defaultBranch=main", *args], cwd=folder, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def objects(store: Path) -> list[Path]:
    """The content files of a store."""
    return sorted(p for p in (store / "objects").rglob("*") if p.is_file())


def test_git_work_tree_commit_and_dirty(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {"train.py": "print(1)\n", "util.py": "X = 1\n"})
    git(code, "init")
    git(code, "add", ".")
    git(code, "commit", "-m", "first")
    head = git(code, "rev-parse", "HEAD")
    clean = take_snapshot(code, tmp_path / "store", limit_bytes=LIMIT)
    assert clean.git is not None and (clean.git.commit, clean.git.dirty) == (head, False)
    assert sorted(clean.files) == ["train.py", "util.py"]  # .git/ is left out

    (code / "train.py").write_text("print(2)\n")
    dirty = take_snapshot(code, tmp_path / "store", limit_bytes=LIMIT)
    assert dirty.git is not None and (dirty.git.commit, dirty.git.dirty) == (head, True)
    assert load_snapshot(tmp_path / "store", dirty.id) == dirty

    plain = take_snapshot(write(tmp_path / "plain", {"a.py": ""}), tmp_path / "store",
                          limit_bytes=LIMIT)
    assert plain.git is None

    git(code, "worktree", "add", str(tmp_path / "tree"))  # there `.git` is a file
    tree = take_snapshot(tmp_path / "tree", tmp_path / "store", limit_bytes=LIMIT)
    assert sorted(tree.files) == ["train.py", "util.py"]
    assert tree.git is not None and (tree.git.commit, tree.git.dirty) == (head, False)


def test_excludes_defaults_and_traindeckignore(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {
        "train.py": "", "pkg/__init__.py": "", "pkg/__pycache__/m.cpython-311.pyc": b"\0",
        "old.pyc": b"\0", "keep.pyc": b"\0", "runs/Dec01/events.out": b"\0",
        "sub/runs/x": "", ".venv/bin/python": "", "data/big.bin": b"\0" * 100,
        "notes/draft.md": "", "notes/README.md": "",
        ".traindeckignore": "# large and private\ndata/\nnotes/*\n!notes/README.md\n!keep.pyc\n",
    })
    snapshot = take_snapshot(code, tmp_path / "store", limit_bytes=LIMIT)
    assert sorted(snapshot.files) == [".traindeckignore", "keep.pyc", "notes/README.md",
                                      "pkg/__init__.py", "train.py"]


def test_links_inside_are_kept_and_outside_skipped(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("outside")
    code = write(tmp_path / "code", {"conf/base.yaml": "lr: 1\n"})
    (code / "config.yaml").symlink_to("conf/base.yaml")
    (code / "absolute.yaml").symlink_to(code / "conf" / "base.yaml")
    (code / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (code / "conf_dir").symlink_to(tmp_path)
    snapshot = take_snapshot(code, tmp_path / "store", limit_bytes=LIMIT)
    assert sorted(snapshot.files) == ["absolute.yaml", "conf/base.yaml", "config.yaml"]
    assert snapshot.skipped == ("conf_dir: a link pointing outside the code folder, skipped",
                                "leak.txt: a link pointing outside the code folder, skipped")
    copy = tmp_path / "copy"
    materialize(snapshot, copy)
    assert os.readlink(copy / "config.yaml") == "conf/base.yaml"
    assert os.readlink(copy / "absolute.yaml") == "conf/base.yaml"  # made relative
    assert (copy / "absolute.yaml").read_text() == "lr: 1\n"


def test_over_the_limit_names_folder_and_sizes(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {"train.py": "", "weights.bin": b"\0" * (3 * MiB)})
    store = tmp_path / "store"
    with pytest.raises(SnapshotError) as raised:
        take_snapshot(code, store, limit_bytes=2 * MiB)
    assert str(raised.value) == (
        f"code folder {code} is 3.0 MiB, over the snapshot limit of 2.0 MiB (setting "
        "code_snapshot_limit); exclude large files in .traindeckignore")
    assert not store.exists()  # nothing stored
    (code / ".traindeckignore").write_text("*.bin\n")
    assert sorted(take_snapshot(code, store, limit_bytes=2 * MiB).files) == [
        ".traindeckignore", "train.py"]
    with pytest.raises(SnapshotError, match=f"code folder {tmp_path / 'none'} does not exist"):
        take_snapshot(tmp_path / "none", store, limit_bytes=LIMIT)


def test_materialized_copy_is_writable_and_leaves_the_store_intact(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {"train.py": "print('v1')\n", "lib/model.py": "A = 1\n"})
    (code / "run.sh").write_text("#!/bin/sh\n")
    (code / "run.sh").chmod(0o755)
    store = tmp_path / "store"
    snapshot = take_snapshot(code, store, limit_bytes=LIMIT)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in objects(store))

    work = tmp_path / "work" / "V001"
    materialize(snapshot, work)
    assert (work / "lib" / "model.py").read_text() == "A = 1\n"
    assert os.access(work / "run.sh", os.X_OK) and os.access(work / "train.py", os.W_OK)
    with open(work / "train.py", "r+") as handle:  # changed in place, as a job may do
        handle.write("PRINT")
    (work / "lib" / "model.py").write_text("A = 2\n")
    (work / "runs").mkdir()

    again = tmp_path / "again"
    materialize(load_snapshot(store, snapshot.id), again)
    assert (again / "train.py").read_text() == "print('v1')\n"
    assert (again / "lib" / "model.py").read_text() == "A = 1\n"
    with pytest.raises(SnapshotError, match=f"into {work}: the folder is not empty"):
        materialize(snapshot, work)


def test_snapshots_of_one_folder_share_storage(tmp_path: Path) -> None:
    code = write(tmp_path / "code", {f"m{i}.py": f"N = {i}\n" for i in range(5)})
    store = tmp_path / "store"
    first = take_snapshot(code, store, limit_bytes=LIMIT)
    assert (first.file_count, first.size) == (5, 30)
    assert take_snapshot(code, store, limit_bytes=LIMIT).id == first.id
    assert len(objects(store)) == 5
    (code / "m0.py").write_text("N = 10\n")
    (code / "copy.py").write_text("N = 1\n")  # the same content as m1.py
    second = take_snapshot(code, store, limit_bytes=LIMIT)
    assert second.id != first.id
    assert len(objects(store)) == 6
    assert load_snapshot(store, first.id).content("m0.py") == b"N = 0\n"
    with pytest.raises(SnapshotError, match="code snapshot nope cannot be read"):
        load_snapshot(store, "nope")


def test_changed_files_and_diff(tmp_path: Path) -> None:
    store = tmp_path / "store"
    code = write(tmp_path / "code", {"train.py": "lr = 0.1\nepochs = 3\n", "old.py": "",
                                     "model.bin": b"\0\1", "same.py": "x\n"})
    a = take_snapshot(code, store, limit_bytes=LIMIT)
    write(code, {"train.py": "lr = 0.2\nepochs = 3\n", "new.py": "print()", "model.bin": b"\0\2"})
    (code / "old.py").unlink()
    (code / "same.py").chmod(0o755)
    b = take_snapshot(code, store, limit_bytes=LIMIT)
    assert changed_files(a, b) == [("model.bin", "modified"), ("new.py", "added"),
                                   ("old.py", "removed"), ("same.py", "modified"),
                                   ("train.py", "modified")]
    assert file_diff(a, b, "train.py") == (
        "--- a/train.py\n+++ b/train.py\n@@ -1,2 +1,2 @@\n-lr = 0.1\n+lr = 0.2\n epochs = 3\n")
    assert file_diff(a, b, "new.py") == (
        "--- a/new.py\n+++ b/new.py\n@@ -0,0 +1 @@\n+print()\n\\ No newline at end of file\n")
    assert file_diff(a, b, "model.bin") == "Binary files a/model.bin and b/model.bin differ\n"
    assert file_diff(a, b, "same.py") == "old mode 644\nnew mode 755\n"
    assert file_diff(a, a, "train.py") == ""
