"""Code snapshots: a version's code folder, copied once into a content-addressed store.

Layout under the store folder (`snapshots` in Traindeck's data dir):
`objects/ab/cdef…` holds each distinct file content once, named by its SHA-256, read-only
(0444); `snapshots/<id>.json` is a manifest (relative path → hash, mode, size; the git
commit and whether the folder was dirty; what was skipped), and the snapshot's id is the
SHA-256 of that manifest, so two snapshots of an unchanged folder are the same snapshot
and any two share the contents they have in common. A run never sees the store: it gets
a writable copy made by `materialize`.

What is left out follows `.gitignore` rules: `DEFAULT_EXCLUDES`, then the lines of the
folder's own `.traindeckignore` (which may re-include with `!`). Symbolic links are kept
as links when they point inside the folder and skipped (and listed in `skipped`) when they
point outside it; sockets, pipes and devices are skipped too. Empty folders are not kept.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pathspec

from app.errors import TraindeckError

DEFAULT_EXCLUDES = (".git", "__pycache__/", "*.pyc", ".venv/", "runs/",
                    ".ipynb_checkpoints/", ".pytest_cache/", ".mypy_cache/")
"""Left out of every snapshot (`.gitignore` syntax)."""
IGNORE_FILE = ".traindeckignore"
"""The code folder's own exclude file, read after the defaults."""
GIT_TIMEOUT = 10.0
DIFF_LIMIT_BYTES = 1024 * 1024
"""A file larger than this on either side is said to differ, not diffed."""
Change = Literal["added", "removed", "modified"]


class SnapshotError(TraindeckError):
    """A code folder cannot be snapshotted or a snapshot cannot be read or written out."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a snapshot: a content hash, permission bits and size, or a link."""

    hash: str
    mode: int
    size: int
    link: str | None = None
    mtime_ns: int = 0
    """Data snapshots only: the stored object's mtime when it was stored (its check that
    a hard-linked object was not changed in place since)."""


@dataclass(frozen=True)
class GitInfo:
    """The git state of a code folder when it was snapshotted."""

    commit: str | None
    dirty: bool


@dataclass(frozen=True)
class Snapshot:
    """A stored snapshot: its id, where it is stored, and its files by relative path."""

    id: str
    store: Path
    files: dict[str, FileEntry]
    git: GitInfo | None
    skipped: tuple[str, ...]

    @property
    def size(self) -> int:
        """Bytes of all its files."""
        return sum(entry.size for entry in self.files.values())

    @property
    def file_count(self) -> int:
        """How many files (links included) it holds."""
        return len(self.files)

    def content(self, path: str) -> bytes:
        """The bytes of the file at `path` (a link's target text for a link)."""
        entry = self.files[path]
        if entry.link is not None:
            return entry.link.encode("utf-8", "surrogateescape")
        return _object_path(self.store, entry.hash).read_bytes()


def _object_path(store: Path, digest: str) -> Path:
    return store / "objects" / digest[:2] / digest[2:]


def _manifest_path(store: Path, snapshot_id: str) -> Path:
    return store / "snapshots" / f"{snapshot_id}.json"


def _excludes(root: Path, excludes: Sequence[str]) -> pathspec.GitIgnoreSpec:
    lines = list(excludes)
    ignore_file = root / IGNORE_FILE
    if ignore_file.is_file():
        lines += ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def _walk(root: Path, spec: pathspec.GitIgnoreSpec
          ) -> Iterator[tuple[str, Path, os.stat_result | str]]:
    """(relative path, path, its lstat) per kept entry; (…, reason) per skipped one."""
    real_root = os.path.realpath(root)

    def unreadable(error: OSError) -> None:
        raise error  # a folder left out without a word would be a silent hole in the copy

    for top, dirs, names in os.walk(root, onerror=unreadable):
        base = os.path.relpath(top, root)
        base = "" if base == "." else base.replace(os.sep, "/") + "/"
        kept_dirs = []
        for name in sorted(dirs + names):
            rel, path = base + name, Path(top, name)
            info = path.lstat()
            folder = stat.S_ISDIR(info.st_mode)
            if spec.match_file(rel + "/" if folder else rel):
                continue
            if folder:
                kept_dirs.append(name)
            elif stat.S_ISLNK(info.st_mode):
                target = os.path.realpath(path)
                inside = os.path.commonpath([real_root, target]) == real_root
                yield rel, path, info if inside else "a link pointing outside the code folder"
            elif stat.S_ISREG(info.st_mode):
                yield rel, path, info
            else:
                yield rel, path, "not a regular file"
        dirs[:] = kept_dirs


def _git_info(folder: Path) -> GitInfo | None:
    """The commit and dirtiness of the work tree `folder` is in (None: not one, or no git)."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT,
                                  env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    if git("rev-parse", "--is-inside-work-tree") != "true":
        return None
    status = git("status", "--porcelain", "--", ".")
    return GitInfo(git("rev-parse", "--verify", "-q", "HEAD"), bool(status) or status is None)


def _store_file(store: Path, path: Path) -> tuple[str, int]:
    """Put the file's content into the store (once): its hash and size."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if _object_path(store, digest).exists():
        return digest, _object_path(store, digest).stat().st_size
    # Hash again while copying: the stored bytes are what the name says even if the file
    # changed meanwhile.
    tmp_dir = store / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    with open(path, "rb") as source, tempfile.NamedTemporaryFile(dir=tmp_dir, delete=False) as out:
        while chunk := source.read(1 << 20):
            hasher.update(chunk)
            out.write(chunk)
    digest = hasher.hexdigest()
    target = _object_path(store, digest)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(out.name, 0o444)
    os.replace(out.name, target)
    return digest, target.stat().st_size


def _write_manifest(store: Path, manifest: dict[str, object]) -> str:
    """Store the manifest (once); its id."""
    data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    snapshot_id = hashlib.sha256(data).hexdigest()
    target = _manifest_path(store, snapshot_id)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
            out.write(data)
        os.chmod(out.name, 0o444)
        os.replace(out.name, target)
    return snapshot_id


def take_snapshot(code_dir: Path, store: Path, *, limit_bytes: int,
                  excludes: Sequence[str] = DEFAULT_EXCLUDES) -> Snapshot:
    """Snapshot `code_dir` into `store`; SnapshotError names the folder when it is missing
    or larger than `limit_bytes` once excludes are applied (nothing is stored then)."""
    root = Path(code_dir)
    if not root.is_dir():
        raise SnapshotError(f"code folder {root} does not exist or is not a folder")
    try:
        found = list(_walk(root, _excludes(root, excludes)))
    except OSError as error:
        raise SnapshotError(f"code folder {root} cannot be read: {error}") from None
    kept = [(rel, path, info) for rel, path, info in found if not isinstance(info, str)]
    skipped = tuple(f"{rel}: {info}, skipped" for rel, _, info in found if isinstance(info, str))
    total = sum(info.st_size for _, _, info in kept if stat.S_ISREG(info.st_mode))
    if total > limit_bytes:
        from app.formatting import human_bytes

        raise SnapshotError(
            f"code folder {root} is {human_bytes(total)}, over the snapshot limit of "
            f"{human_bytes(limit_bytes)} (setting code_snapshot_limit); exclude large files "
            f"in {IGNORE_FILE}")
    files: dict[str, FileEntry] = {}
    try:
        for rel, path, info in kept:
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(path)
                if os.path.isabs(target):  # keep the copy's link inside the copy
                    target = os.path.relpath(os.path.realpath(path), os.path.realpath(path.parent))
                files[rel] = FileEntry(_link_hash(target), 0o777, 0, target)
            else:
                digest, size = _store_file(store, path)
                files[rel] = FileEntry(digest, stat.S_IMODE(info.st_mode), size)
        git = _git_info(root)
        manifest: dict[str, object] = {"files": {rel: _entry_json(e) for rel, e in files.items()},
                    "git": None if git is None else {"commit": git.commit, "dirty": git.dirty},
                    "skipped": list(skipped)}
        snapshot_id = _write_manifest(store, manifest)
    except OSError as error:
        raise SnapshotError(f"snapshot of code folder {root} into {store} failed: {error}"
                            ) from None
    return Snapshot(snapshot_id, store, files, git, skipped)


def _link_hash(target: str) -> str:
    """A link's stand-in content hash (a target that is not UTF-8 is hashed as its bytes)."""
    return hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()


def _entry_json(entry: FileEntry) -> dict[str, object]:
    if entry.link is not None:
        return {"link": entry.link}
    out: dict[str, object] = {"hash": entry.hash, "mode": entry.mode, "size": entry.size}
    if entry.mtime_ns:
        out["mtime"] = entry.mtime_ns
    return out


def load_snapshot(store: Path, snapshot_id: str) -> Snapshot:
    """The snapshot `snapshot_id` of `store`; SnapshotError when it is not there."""
    try:
        manifest = json.loads(_manifest_path(store, snapshot_id).read_bytes())
    except (OSError, ValueError) as error:
        raise SnapshotError(f"code snapshot {snapshot_id} cannot be read from {store}: "
                            f"{error}") from None
    files = {}
    for rel, raw in manifest["files"].items():
        link = raw.get("link")
        files[rel] = (FileEntry(_link_hash(link), 0o777, 0, link)
                      if link is not None else FileEntry(raw["hash"], raw["mode"], raw["size"],
                                                         None, raw.get("mtime", 0)))
    git = manifest.get("git")
    return Snapshot(snapshot_id, store, files,
                    None if git is None else GitInfo(git["commit"], git["dirty"]),
                    tuple(manifest.get("skipped", ())))


def _copy(source: Path, dest: Path) -> None:
    """Copy a file, in the kernel where possible (copy_file_range shares blocks on
    file systems with reflinks), else through user space."""
    with open(source, "rb") as src, open(dest, "wb") as dst:
        try:
            remaining = os.fstat(src.fileno()).st_size
            while remaining > 0:
                copied = os.copy_file_range(src.fileno(), dst.fileno(), remaining)
                if copied == 0:
                    break
                remaining -= copied
            return
        except (AttributeError, OSError):  # not offered here, or across file systems
            src.seek(0)
            dst.seek(0)
            dst.truncate()
            shutil.copyfileobj(src, dst, 1 << 20)


def materialize(snapshot: Snapshot, dest: Path) -> None:
    """Write a writable working copy of `snapshot` into `dest` (made if missing; must be
    empty): copies, never links, so that a run changing its files leaves the store intact."""
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise SnapshotError(f"cannot write code snapshot {snapshot.id[:12]} into {dest}: "
                                "the folder is not empty")
        for rel, entry in snapshot.files.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if entry.link is not None:
                os.symlink(entry.link, target)
                continue
            _copy(_object_path(snapshot.store, entry.hash), target)
            os.chmod(target, entry.mode | stat.S_IWUSR | stat.S_IRUSR)
    except OSError as error:
        raise SnapshotError(f"cannot write code snapshot {snapshot.id[:12]} into {dest}: "
                            f"{error}") from None


# ---------------------------------------------------------------- data snapshots
#
# A dataset version's folder goes into the same store, but by HARD LINK where the store and
# the folder share a file system (else by copy, which `_copy` makes a reflink where it can).
# A hard link is the same file under a second name: no bytes are copied and the user's file
# deleted, renamed or replaced by a new file (what editors and most tools do) leaves the
# stored object as it was. But a file changed IN PLACE (appended to, rewritten through the
# same inode) changes the stored object too. So a data snapshot records each object's size
# and mtime as stored, and `verify_data` / `materialize_data` re-hash an object whose size or
# mtime moved and refuse, naming the file, when its content is no longer what was recorded:
# a run never reads changed data under a pinned version's name.


def _hash_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _owned_copy(info: os.stat_result) -> bool:
    """True for an object the store wrote itself: one name, read-only."""
    return info.st_nlink == 1 and not info.st_mode & 0o222


def _store_data_file(store: Path, path: Path) -> FileEntry:
    """Put a data file into the store by hard link (else by copy); its entry."""
    before = path.stat()
    tmp_dir = store / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"data-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        try:
            os.link(path, tmp)  # follows a link to a file: the target is stored
            linked = True
        except OSError:  # another file system, or protected_hardlinks: copy it
            _copy(path, tmp)
            os.chmod(tmp, 0o444)
            linked = False
        digest = _hash_file(tmp)
        stored = tmp.stat()
        if linked and (stored.st_size, stored.st_mtime_ns) != (before.st_size,
                                                              before.st_mtime_ns):
            raise SnapshotError(f"{path} changed while the dataset version was made; "
                                "make the version again once nothing writes to the folder")
        target = _object_path(store, digest)
        try:
            existing = target.stat()
        except FileNotFoundError:
            existing = None
        # An object already there is kept when it is provably this content; a hard-linked
        # one may have been changed in place since, and is then replaced.
        if existing is not None and (_owned_copy(existing) or os.path.samefile(target, tmp)
                                     or _hash_file(target) == digest):
            tmp.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        info = target.stat()
    finally:
        tmp.unlink(missing_ok=True)
    return FileEntry(digest, stat.S_IMODE(before.st_mode), info.st_size, None, info.st_mtime_ns)


def take_data_snapshot(folder: Path, store: Path, files: Mapping[str, int],
                       progress: Callable[[int, int], None] | None = None) -> Snapshot:
    """Snapshot the files `files` (relative POSIX path → size) of a dataset folder into
    `store`, by hard link where possible (see above); no size limit. `progress(bytes done,
    bytes in all)` hears of each file. SnapshotError names the folder or the file that
    could not be stored (objects already stored stay: they are shared and harmless)."""
    root = Path(folder)
    entries: dict[str, FileEntry] = {}
    done, total = 0, sum(files.values())
    try:
        for rel in sorted(files):
            entries[rel] = _store_data_file(store, root / rel)
            done += files[rel]
            if progress is not None:
                progress(min(done, total), total)
        snapshot_id = _write_manifest(store, {"files": {rel: _entry_json(e)
                                                        for rel, e in entries.items()},
                                              "git": None, "skipped": [], "data": True})
    except OSError as error:
        raise SnapshotError(f"snapshot of dataset folder {root} into {store} failed: "
                            f"{error}") from None
    return Snapshot(snapshot_id, store, entries, None, ())


def verify_data(snapshot: Snapshot, what: str) -> None:
    """SnapshotError naming the first file of a data snapshot whose stored object was
    changed in place (or is gone) since the snapshot was taken; `what` names the version."""
    for rel, entry in snapshot.files.items():
        path = _object_path(snapshot.store, entry.hash)
        try:
            info = path.stat()
            if (info.st_size, info.st_mtime_ns) == (entry.size, entry.mtime_ns):
                continue
            if info.st_size == entry.size and _hash_file(path) == entry.hash:
                continue  # touched, or replaced by an equal copy: same content
        except OSError as error:
            raise SnapshotError(f"{what}: the stored copy of {rel} cannot be read: "
                                f"{error.strerror or error}") from None
        raise SnapshotError(
            f"{what}: {rel} was changed in place after the version was made (its stored "
            "copy is a hard link to the original file), so the version's data is gone; "
            "make a new dataset version")


def materialize_data(snapshot: Snapshot, dest: Path, what: str) -> Path:
    """The read-only view of a data snapshot at `dest`: hard links from the store (copies
    across file systems), made once and reused; every object is verified first
    (`verify_data`). SnapshotError names the file or the folder."""
    dest = Path(dest)
    verify_data(snapshot, what)
    if dest.is_dir():
        return dest
    partial = dest.with_name(dest.name + ".partial")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for rel, entry in snapshot.files.items():
            target = partial / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            source = _object_path(snapshot.store, entry.hash)
            try:
                os.link(source, target)
            except OSError:
                _copy(source, target)
                os.chmod(target, 0o444)
        os.replace(partial, dest)
    except OSError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise SnapshotError(f"{what}: cannot write its data into {dest}: "
                            f"{error.strerror or error}") from None
    return dest


def changed_files(a: Snapshot, b: Snapshot) -> list[tuple[str, Change]]:
    """The files that differ from `a` to `b`, sorted by path."""
    changes: list[tuple[str, Change]] = []
    for path in sorted(a.files.keys() | b.files.keys()):
        if path not in b.files:
            changes.append((path, "removed"))
        elif path not in a.files:
            changes.append((path, "added"))
        elif a.files[path] != b.files[path]:
            changes.append((path, "modified"))
    return changes


def shown_path(path: str) -> str:
    """`path` fit to print: bytes of a name that is not UTF-8 (which Python keeps as lone
    surrogates) written as `\\xNN`."""
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that did not come from a byte
        return path.encode("utf-8", "backslashreplace").decode("ascii")
    return raw.decode("utf-8", "backslashreplace")


def _text(snapshot: Snapshot, path: str) -> list[str] | None:
    """The file's lines ([] when absent), or None when it is binary (a NUL byte early on);
    bytes that are not UTF-8 read as U+FFFD."""
    if path not in snapshot.files:
        return []
    data = snapshot.content(path)
    if b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace").splitlines(keepends=True)


def file_diff(a: Snapshot, b: Snapshot, path: str, limit_bytes: int = DIFF_LIMIT_BYTES) -> str:
    """A unified diff of `path` from `a` to `b` ("" when equal); a binary file, or one over
    `limit_bytes` on either side, is said to differ instead."""
    from app.formatting import human_bytes

    before, after = a.files.get(path), b.files.get(path)
    shown = shown_path(path)
    header = ""
    if before is not None and after is not None and before.mode != after.mode:
        header = f"old mode {before.mode:o}\nnew mode {after.mode:o}\n"
    if before is not None and after is not None and before.hash == after.hash:
        return header
    largest = max(entry.size for entry in (before, after) if entry is not None)
    if largest > limit_bytes:
        return header + (f"Files a/{shown} and b/{shown} differ ({human_bytes(largest)}; "
                         f"diffs are shown up to {human_bytes(limit_bytes)})\n")
    old, new = _text(a, path), _text(b, path)
    if old is None or new is None:
        return header + f"Binary files a/{shown} and b/{shown} differ\n"
    lines = difflib.unified_diff(old, new, f"a/{shown}", f"b/{shown}")
    no_newline = "\n\\ No newline at end of file\n"
    return header + "".join(line if line.endswith("\n") else line + no_newline for line in lines)
