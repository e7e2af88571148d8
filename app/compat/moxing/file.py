"""`mox.file`: ModelArts' file functions on local paths and `s3://` / `obs://` URLs.

Covered: copy, copy_parallel, exists, is_directory, list_directory, glob, make_dirs,
mk_dir, remove, rename, read, write, append, File, stat, get_size, walk. Every other name
(`set_auth`, `shift`, ...) raises NotImplementedError. `obs://` is treated as S3; see
`moxing._s3` for how the endpoint and credentials are found.
"""

from __future__ import annotations

import fnmatch
import glob as _glob
import io
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, NamedTuple

from . import _s3
from ._unsupported import unsupported

__all__ = [
    "File", "append", "copy", "copy_parallel", "exists", "get_size", "glob",
    "is_directory", "list_directory", "make_dirs", "mk_dir", "read", "remove", "rename",
    "stat", "walk", "write",
]
__getattr__ = unsupported("moxing.file", ", ".join(__all__))


class FileStat(NamedTuple):
    """What `stat` returns (the fields ModelArts scripts read)."""

    length: int
    mtime_nsec: int
    is_directory: bool


def _join(url: str, rel: str) -> str:
    return f"{url.rstrip('/')}/{rel}" if rel else url


def exists(url: str) -> bool:
    """Whether a file or a folder is at `url`."""
    if not _s3.is_remote(url):
        return os.path.exists(url)
    _, bucket, key = _s3.split(url)
    return _s3.head(bucket, key) is not None or _s3.is_dir(bucket, key)


def is_directory(url: str) -> bool:
    """Whether `url` is a folder (in object storage: a prefix with objects below it)."""
    if not _s3.is_remote(url):
        return os.path.isdir(url)
    _, bucket, key = _s3.split(url)
    return _s3.is_dir(bucket, key)


def _tree(url: str, recursive: bool) -> tuple[list[str], list[str]]:
    """(folders, files) below `url` as sorted relative paths."""
    if _s3.is_remote(url):
        _, bucket, key = _s3.split(url)
        return _s3.relatives(bucket, key, recursive)
    if not os.path.isdir(url):
        raise NotADirectoryError(f"moxing shim: {url} is not a folder")
    folders: list[str] = []
    files: list[str] = []
    for top, dirs, names in os.walk(url):
        rel = os.path.relpath(top, url)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        folders += [prefix + d for d in dirs]
        files += [prefix + n for n in names]
        if not recursive:
            break
    return sorted(folders), sorted(files)


def list_directory(url: str, recursive: bool = False, remove_sep: bool = False) -> list[str]:
    """Names of the files and folders in `url` (every path below it when recursive)."""
    folders, files = _tree(url, recursive)
    return sorted(folders + files)


def walk(url: str, topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
    """Like os.walk: (folder URL, its folder names, its file names) for every folder."""
    if not _s3.is_remote(url):
        yield from os.walk(url, topdown=topdown)
        return
    folders, files = _tree(url, True)
    children: dict[str, tuple[list[str], list[str]]] = {"": ([], [])}
    for rel in folders:
        children[rel] = ([], [])
    for rel, kind in [(f, 0) for f in folders] + [(f, 1) for f in files]:
        parent, _, name = rel.rpartition("/")
        children[parent][kind].append(name)
    order = sorted(children, key=lambda rel: (rel.count("/") + bool(rel), rel))
    for rel in order if topdown else reversed(order):
        yield _join(url, rel), *children[rel]


def glob(url: str) -> list[str]:
    """The paths or URLs matching a pattern with `*`, `?` and `[...]` (none crossing `/`)."""
    if not _s3.is_remote(url):
        return sorted(_glob.glob(url))
    scheme, bucket, pattern = _s3.split(url)
    literal = pattern[:min([pattern.find(c) for c in "*?[" if c in pattern] or [len(pattern)])]
    base = literal.rpartition("/")[0]
    folders, files = _s3.relatives(bucket, base, True)
    wanted = pattern.split("/")
    found = []
    for rel in folders + files:
        key = f"{base}/{rel}" if base else rel
        parts = key.split("/")
        if len(parts) == len(wanted) and all(map(fnmatch.fnmatchcase, parts, wanted)):
            found.append(f"{scheme}{bucket}/{key}")
    return sorted(found)


def make_dirs(url: str) -> None:
    """Create the folder `url` and its parents (in object storage: a `key/` marker)."""
    if not _s3.is_remote(url):
        os.makedirs(url, exist_ok=True)
        return
    _, bucket, key = _s3.split(url)
    if key:
        _s3.write(bucket, key + "/", b"")


mk_dir = make_dirs


def _read_bytes(url: str) -> bytes:
    if _s3.is_remote(url):
        _, bucket, key = _s3.split(url)
        return _s3.read(bucket, key, url)
    with open(url, "rb") as handle:
        return handle.read()


def read(url: str, client_id: Any = None, binary: bool = False) -> bytes | str:
    """The file's content: bytes when binary, else UTF-8 text."""
    data = _read_bytes(url)
    return data if binary else data.decode("utf-8")


def write(url: str, content: bytes | str, binary: bool = False, append: bool = False) -> None:
    """Write `content` (text as UTF-8) to the file, replacing it or appending to it."""
    data = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    if _s3.is_remote(url):
        _, bucket, key = _s3.split(url)
        before = _read_bytes(url) if append and exists(url) else b""
        _s3.write(bucket, key, before + data)
        return
    os.makedirs(os.path.dirname(url) or ".", exist_ok=True)
    with open(url, "ab" if append else "wb") as handle:
        handle.write(data)


def append(url: str, content: bytes | str, binary: bool = False) -> None:
    """Append `content` to the file."""
    write(url, content, binary=binary, append=True)


class _Upload(io.BytesIO):
    """A write buffer that becomes the object when closed."""

    def __init__(self, url: str, initial: bytes) -> None:
        super().__init__(initial)
        self.seek(0, io.SEEK_END)
        self.url = url

    def close(self) -> None:
        if not self.closed:
            write(self.url, self.getvalue(), binary=True)
        super().close()


def File(url: str, mode: str = "r", **options: Any) -> IO[Any]:  # moxing names it like a class
    """An open file object for `url` (usable in `with`); text modes use UTF-8."""
    if not _s3.is_remote(url):
        return open(url, mode, encoding=None if "b" in mode else "utf-8")
    if "r" in mode and "+" not in mode:
        raw: io.BytesIO = io.BytesIO(_read_bytes(url))
    elif mode.strip("bt") in ("w", "a", "x"):
        initial = _read_bytes(url) if "a" in mode and exists(url) else b""
        raw = _Upload(url, initial)
    else:
        raise ValueError(f"moxing shim: mode {mode!r} is not supported for {url}")
    return raw if "b" in mode else io.TextIOWrapper(raw, encoding="utf-8")


def copy(src_url: str, dst_url: str, client_id: Any = None, **options: Any) -> None:
    """Copy one file, between any two of local paths and object storage."""
    src_remote, dst_remote = _s3.is_remote(src_url), _s3.is_remote(dst_url)
    if not dst_remote:
        os.makedirs(os.path.dirname(dst_url) or ".", exist_ok=True)
    if not src_remote and not dst_remote:
        shutil.copyfile(src_url, dst_url)
        return
    if src_remote and not os.path.basename(src_url.rstrip("/")):
        raise IsADirectoryError(f"moxing shim: {src_url} is a bucket, not a file")
    client = _s3.client()
    if not src_remote:
        _, bucket, key = _s3.split(dst_url)
        client.upload_file(src_url, bucket, key)
        return
    _, src_bucket, src_key = _s3.split(src_url)
    if _s3.head(src_bucket, src_key) is None:
        raise FileNotFoundError(f"moxing shim: no such object {src_url}")
    if dst_remote:
        _, bucket, key = _s3.split(dst_url)
        client.copy({"Bucket": src_bucket, "Key": src_key}, bucket, key)
    else:
        client.download_file(src_bucket, src_key, dst_url)


def copy_parallel(src_url: str, dst_url: str, file_list: list[str] | None = None,
                  threads: int = 16, is_processing: bool = True, use_queue: bool = True,
                  **options: Any) -> None:
    """Copy a folder (every file below it, or only `file_list`'s relative paths) or a file."""
    if not is_directory(src_url):
        copy(src_url, dst_url)
        return
    files = file_list if file_list is not None else _tree(src_url, True)[1]
    if not _s3.is_remote(dst_url):
        os.makedirs(dst_url, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(lambda rel: copy(_join(src_url, rel), _join(dst_url, rel)), files))


def remove(url: str, recursive: bool = False) -> None:
    """Delete a file, or a folder and everything below it when recursive."""
    folder = is_directory(url)
    if folder and not recursive:
        raise IsADirectoryError(f"moxing shim: {url} is a folder; pass recursive=True")
    if not _s3.is_remote(url):
        if folder:
            shutil.rmtree(url)
        else:
            os.remove(url)
        return
    _, bucket, key = _s3.split(url)
    keys = [o["Key"] for o in _s3.objects(bucket, key + "/")] if folder and key else []
    if _s3.head(bucket, key) is not None:
        keys.append(key)
    elif not folder:
        raise FileNotFoundError(f"moxing shim: no such object {url}")
    _s3.delete(bucket, keys)


def rename(src_url: str, dst_url: str) -> None:
    """Move a file or a folder (in object storage: copy, then delete the source)."""
    if not _s3.is_remote(src_url) and not _s3.is_remote(dst_url):
        os.makedirs(os.path.dirname(dst_url.rstrip("/")) or ".", exist_ok=True)
        shutil.move(src_url, dst_url)
        return
    copy_parallel(src_url, dst_url)
    remove(src_url, recursive=True)


def stat(url: str) -> FileStat:
    """Size, modification time (ns) and whether `url` is a folder."""
    if not _s3.is_remote(url):
        info = os.stat(url)
        return FileStat(info.st_size, info.st_mtime_ns, os.path.isdir(url))
    _, bucket, key = _s3.split(url)
    meta = _s3.head(bucket, key)
    if meta is not None:
        return FileStat(int(meta["ContentLength"]),
                        int(meta["LastModified"].timestamp() * 1e9), False)
    if _s3.is_dir(bucket, key):
        return FileStat(0, 0, True)
    raise FileNotFoundError(f"moxing shim: no such object {url}")


def get_size(url: str, recursive: bool = False) -> int:
    """A file's size; a folder's is the sum of the files below it."""
    if not is_directory(url):
        return stat(url).length
    return sum(stat(_join(url, rel)).length for rel in _tree(url, True)[1])
