"""Diffs of snapshot files for people: names and contents that are not UTF-8, links to
such names, files too large to diff, and the snapshots of a job's versions."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import SNAPSHOT_LIMIT as LIMIT
from helpers import write_files as write

from app.store.snapshot import (
    changed_files,
    file_diff,
    load_snapshot,
    materialize,
    shown_path,
    take_snapshot,
)


def test_names_and_contents_that_are_not_utf8(tmp_path: Path) -> None:
    store, code = tmp_path / "store", tmp_path / "code"
    code.mkdir()
    raw = os.fsencode(code)
    with open(raw + b"/caf\xe9.py", "wb") as handle:
        handle.write(b"NAME = 'caf\xe9'\n")
    os.symlink(b"caf\xe9.py", raw + b"/link.py")
    a = take_snapshot(code, store, limit_bytes=LIMIT)
    with open(raw + b"/caf\xe9.py", "wb") as handle:
        handle.write(b"NAME = 'na\xefve'\n")
    b = take_snapshot(code, store, limit_bytes=LIMIT)
    name = os.fsdecode(b"caf\xe9.py")
    assert changed_files(load_snapshot(store, a.id), b) == [(name, "modified")]
    assert shown_path(name) == "caf\\xe9.py"
    assert file_diff(a, b, name) == ("--- a/caf\\xe9.py\n+++ b/caf\\xe9.py\n@@ -1 +1 @@\n"
                                     "-NAME = 'caf\ufffd'\n+NAME = 'na\ufffdve'\n")
    materialize(b, tmp_path / "copy")
    assert os.readlink(os.fsencode(tmp_path / "copy") + b"/link.py") == b"caf\xe9.py"


def test_a_file_over_the_limit_is_said_to_differ(tmp_path: Path) -> None:
    store = tmp_path / "store"
    code = write(tmp_path / "code", {"big.txt": "a\n" * 1000, "small.txt": "x\n"})
    a = take_snapshot(code, store, limit_bytes=LIMIT)
    write(code, {"big.txt": "b\n" * 1000, "small.txt": "y\n"})
    b = take_snapshot(code, store, limit_bytes=LIMIT)
    assert file_diff(a, b, "big.txt", limit_bytes=1024) == (
        "Files a/big.txt and b/big.txt differ (2.0 KiB; diffs are shown up to 1.0 KiB)\n")
    assert file_diff(a, b, "small.txt", limit_bytes=1024).endswith("-x\n+y\n")
