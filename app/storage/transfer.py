"""Listing, staging in and uploading: every object under a prefix, multipart and parallel.

Transfers go through boto3's transfer manager, so big files move in parts on several
threads (`TransferOptions` sets the threshold, part size and threads). Staging writes into
a `.partial` folder and moves it into place only when every object has arrived, so a
failed or stopped transfer leaves nothing half-done behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from app.storage.client import S3Location, make_client, storage_error
from app.storage.errors import StorageError, TransferCancelled
from app.storage.names import NameScan, scan_names
from app.storage.progress import ProgressCounter, ProgressFn

MiB = 1024 * 1024
MANIFEST_FILE = "manifest.json"
DATA_DIR = "data"
WAIT_SECONDS = 0.2
StopFn = Callable[[], bool]


@dataclass(frozen=True)
class TransferOptions:
    """Multipart and parallelism settings (S3 needs parts of at least 5 MiB)."""

    multipart_threshold: int = 64 * MiB
    multipart_chunksize: int = 16 * MiB
    max_concurrency: int = 10

    def config(self) -> Any:
        """The boto3 TransferConfig (the classic Python transfer client)."""
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=self.multipart_threshold,
                              multipart_chunksize=self.multipart_chunksize,
                              max_concurrency=self.max_concurrency,
                              preferred_transfer_client="classic")


@dataclass(frozen=True)
class ObjectInfo:
    """One object under a prefix."""

    key: str
    relative: str
    """Its path below the prefix (POSIX)."""
    size: int
    etag: str
    version_id: str = ""
    """The object version to fetch ("" for the current one)."""


@dataclass(frozen=True)
class Pin:
    """The exact objects a dataset version recorded when it was made: relative path →
    (size, ETag, VersionId or ""). Staging fetches these versions, or refuses an object
    that changed when there is no VersionId; `what` names the version ("dataset d V001")."""

    objects: Mapping[str, tuple[int, str, str]]
    what: str

    def select(self, location: S3Location, live: list[ObjectInfo]) -> list[ObjectInfo]:
        """The pinned objects (VersionIds kept); StorageError naming the first object that
        changed or went away, unversioned."""
        now = {obj.relative: obj for obj in live}
        out = []
        for rel, (size, etag, version_id) in sorted(self.objects.items()):
            current = now.get(rel)
            if not version_id and (current is None or current.etag != etag):
                raise StorageError(f"{location.uri_of(location.key(rel))} "
                                   f"{'changed' if current else 'was removed'} since "
                                   f"{self.what} was made")
            out.append(ObjectInfo(location.key(rel), rel, size, etag, version_id))
        return out


@dataclass
class StageResult:
    """What `stage_in` put where."""

    uri: str
    local_dir: Path
    """The folder the training reads: the usable objects, laid out as below the prefix."""
    files: int = 0
    bytes: int = 0
    scan: NameScan = field(default_factory=NameScan)
    reused: bool = False
    """True when an earlier complete copy of the same objects was kept."""
    seconds: float = 0.0


@dataclass
class UploadResult:
    """What `upload_dir` sent."""

    uri: str
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    links: list[str] = field(default_factory=list)
    """Symbolic links found (relative paths): never followed, never uploaded."""


def _endpoint_url(client: Any) -> str | None:
    return getattr(getattr(client, "meta", None), "endpoint_url", None)


def _failed_uri(exc: BaseException, location: S3Location, key: str) -> str:
    """The URI an error names: the location for a missing bucket, else the object."""
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
    return location.uri if code == "NoSuchBucket" else location.uri_of(key)


def list_objects(client: Any, location: S3Location) -> list[ObjectInfo]:
    """Every object under a location (folder markers left out), in key order."""
    out = []
    try:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=location.key_prefix)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                relative = key[len(location.key_prefix):]
                if relative and not key.endswith("/"):
                    out.append(ObjectInfo(key, relative, int(item.get("Size", 0)),
                                          str(item.get("ETag", "")).strip('"')))
    except Exception as exc:
        raise storage_error(exc, location.uri, _endpoint_url(client)) from exc
    return out


class _Tracker:
    """Counts unfinished transfers and keeps the first failure."""

    def __init__(self) -> None:
        self.remaining = 0
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.failure: tuple[BaseException, str, str] | None = None

    def add(self) -> None:
        with self.lock:
            self.remaining += 1

    def done(self, error: BaseException | None, key: str, local: str) -> None:
        with self.lock:
            self.remaining -= 1
            if error is not None and self.failure is None:
                self.failure = (error, key, local)
            if self.remaining <= 0 or self.failure is not None:
                self.changed.set()


class _Subscriber:
    """An s3transfer subscriber for one transfer: gives the size known from the listing
    (saving a HEAD request per object), feeds the progress counter, reports the end."""

    def __init__(self, counter: ProgressCounter, tracker: _Tracker, size: int | None,
                 key: str, local: str) -> None:
        self.counter = counter
        self.tracker = tracker
        self.size = size
        self.key = key
        self.local = local

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        """Tell the transfer the object's size."""
        if self.size is not None:
            future.meta.provide_transfer_size(self.size)

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        """Bytes moved (negative when a part is retried)."""
        self.counter.add(bytes_transferred)

    def on_done(self, future: Any, **kwargs: Any) -> None:
        """The transfer ended (its result is ready, so asking for it does not block)."""
        error: BaseException | None = None
        try:
            future.result()
        except BaseException as exc:
            error = exc
        if error is None:
            self.counter.file_finished()
        self.tracker.done(error, self.key, self.local)


def _run_transfers(
    client: Any, options: TransferOptions,
    jobs: Sequence[tuple[str, str, str, str, int | None] | tuple[str, str, str, str, int | None,
                                                                  dict[str, str]]],
    total: int, progress: ProgressFn | None, should_stop: StopFn | None,
    describe: Callable[[BaseException, str, str], StorageError], osutil: Any = None,
) -> None:
    """Run `(direction, bucket, key, local path, size[, extra args])` transfers on one
    transfer manager.

    Waits for all of them, checking `should_stop` as it goes. The first failure cancels
    the others and is raised, described by `describe(error, key, local path)`. `osutil`
    (an s3transfer OSUtils) opens the local files.
    """
    from boto3.s3.transfer import create_transfer_manager

    counter = ProgressCounter(total, progress, files=len(jobs))
    tracker = _Tracker()
    manager = create_transfer_manager(client, options.config(), osutil)
    futures: list[Any] = []

    def abandon() -> None:
        # Each future is cancelled on its own: this s3transfer's `shutdown(cancel=True)`
        # passes its arguments on in the wrong order.
        for future in futures:
            future.cancel()
        manager.shutdown()

    def interrupted() -> bool:
        return tracker.failure is not None or (should_stop is not None and should_stop())

    try:
        for direction, bucket, key, local, size, *extra in jobs:
            if interrupted():
                break
            tracker.add()
            subscribers = [_Subscriber(counter, tracker, size, key, local)]
            if direction == "down":
                futures.append(manager.download(bucket, key, local, subscribers=subscribers,
                                                extra_args=extra[0] if extra else None))
            else:
                futures.append(manager.upload(local, bucket, key, subscribers=subscribers))
        while tracker.remaining > 0 and not interrupted():
            tracker.changed.wait(WAIT_SECONDS)
            tracker.changed.clear()
    except BaseException:
        abandon()
        raise
    failure = tracker.failure
    if failure is None and not (should_stop is not None and should_stop()):
        manager.shutdown()
        counter.finish()
        return
    abandon()
    if failure is not None:
        error, key, local = failure
        raise describe(error, key, local) from error
    raise TransferCancelled("stopped while transferring")


def _fingerprint(objects: list[ObjectInfo]) -> str:
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(f"{obj.relative}\0{obj.size}\0{obj.etag}\0{obj.version_id}\n".encode())
    return digest.hexdigest()


def _reusable(dest_dir: Path, uri: str, fingerprint: str) -> bool:
    try:
        stored = json.loads((dest_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (stored.get("uri") == uri and stored.get("fingerprint") == fingerprint
            and (dest_dir / DATA_DIR).is_dir())


def stage_in(
    uri: str, dest_dir: Path, progress: ProgressFn | None = None, *, client: Any = None,
    endpoint: Any = None, transfer: TransferOptions | None = None,
    should_stop: StopFn | None = None, pin: Pin | None = None,
) -> StageResult:
    """Download every usable object under `uri` into `dest_dir/data` (with `pin`: the
    pinned objects, as they were when the dataset version was made).

    Objects whose names break the 255 rule (and keys that cannot be local files) are
    skipped and listed in the result's `scan`. A complete earlier copy of the same
    objects in `dest_dir` is reused. Raises StorageError with a reason a user can act on
    (no such bucket, access denied, endpoint unreachable, disk full) and
    TransferCancelled when `should_stop` turns true; either way `dest_dir` is left empty.
    """
    started = time.monotonic()
    location = S3Location.parse(uri)
    client = client or make_client(endpoint)
    objects = list_objects(client, location)
    if pin is not None:
        objects = pin.select(location, objects)
    scan = scan_names([o.relative for o in objects])
    usable_names = set(scan.usable)
    usable = [o for o in objects if o.relative in usable_names]
    total = sum(o.size for o in usable)
    fingerprint = _fingerprint(usable)
    result = StageResult(location.uri, dest_dir / DATA_DIR, len(usable), total, scan)
    if _reusable(dest_dir, location.uri, fingerprint):
        result.reused = True
        if progress is not None:
            on_files = getattr(progress, "on_files", None)
            if on_files is not None:
                on_files(len(usable), len(usable))
            progress(total, total)
        return result

    shutil.rmtree(dest_dir, ignore_errors=True)
    partial = dest_dir / ".partial"
    try:
        (partial / "objects").mkdir(parents=True)
        free = shutil.disk_usage(partial).free
    except OSError as exc:
        raise storage_error(exc, location.uri, local=str(dest_dir)) from exc
    if total > free:
        shutil.rmtree(dest_dir, ignore_errors=True)
        from app.formatting import human_bytes

        raise StorageError(f"disk full while staging {location.uri}: it needs "
                           f"{human_bytes(total)} and {dest_dir.parent} has "
                           f"{human_bytes(free)} free")
    # Objects download under short numbered names (the transfer's temporary names
    # add a suffix, which a 255-byte name cannot take), then move into place.
    jobs = [("down", location.bucket, o.key, str(partial / "objects" / str(i)), o.size,
             {"VersionId": o.version_id} if o.version_id else {})
            for i, o in enumerate(usable)]

    def describe(exc: BaseException, key: str, local: str) -> StorageError:
        error = storage_error(exc, _failed_uri(exc, location, key), _endpoint_url(client),
                              str(dest_dir))
        if "disk full" in str(error):
            return StorageError(f"disk full while staging {location.uri} into {dest_dir}")
        return error

    try:
        _run_transfers(client, transfer or TransferOptions(), jobs, total, progress,
                       should_stop, describe)
        data = partial / DATA_DIR
        data.mkdir()
        for i, obj in enumerate(usable):
            target = data / obj.relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial / "objects" / str(i), target)
        os.replace(data, dest_dir / DATA_DIR)
        shutil.rmtree(partial)
        (dest_dir / MANIFEST_FILE).write_text(json.dumps(
            {"uri": location.uri, "fingerprint": fingerprint, "files": len(usable),
             "bytes": total}), encoding="utf-8")
    except BaseException as exc:
        shutil.rmtree(dest_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise describe(exc, location.key_prefix, str(dest_dir)) from exc
        raise
    result.seconds = time.monotonic() - started
    return result


def local_files(root: Path, links: list[str] | None = None) -> list[tuple[Path, str]]:
    """Every regular file under `root`, with its POSIX path relative to `root`, sorted.

    Symbolic links are never followed, wherever they point (a job could otherwise have a
    host file it cannot read uploaded for it); their relative paths go to `links`.
    """
    out = []
    for folder, dirs, files in os.walk(root):  # does not descend into linked folders
        dirs.sort()
        base = Path(folder)
        for name in [*dirs, *files]:
            path = base / name
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue  # vanished while walking
            if stat.S_ISLNK(mode):
                if links is not None:
                    links.append(path.relative_to(root).as_posix())
            elif stat.S_ISREG(mode) and name in files:
                out.append((path, path.relative_to(root).as_posix()))
    if links is not None:
        links.sort()
    return sorted(out, key=lambda item: item[1])


def open_no_follow(root: Path, path: str) -> BinaryIO:
    """Open the regular file `path` (under `root`) for reading without following a
    symbolic link anywhere below `root`: a link swapped in after the walk fails to open
    (ELOOP, ENOTDIR) instead of being read through."""
    parts = Path(path).relative_to(root).parts
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        # Non-blocking, so a FIFO planted under the name cannot hang the upload.
        inner = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(inner).st_mode):
        os.close(inner)
        raise OSError(errno.EINVAL, "not a regular file", path)
    os.set_blocking(inner, True)
    return os.fdopen(inner, "rb")


def _no_follow_osutil(root: Path) -> Any:
    """An s3transfer OSUtils whose uploads read files through `open_no_follow`."""
    from s3transfer.utils import OSUtils

    class NoFollow(OSUtils):  # type: ignore[misc]
        def open(self, filename: str, mode: str) -> Any:
            if mode == "rb":
                return open_no_follow(root, filename)
            return super().open(filename, mode)

    return NoFollow()


def upload_dir(
    local_dir: Path, uri: str, progress: ProgressFn | None = None, *, client: Any = None,
    endpoint: Any = None, transfer: TransferOptions | None = None,
    seen: dict[str, tuple[int, int]] | None = None, should_stop: StopFn | None = None,
) -> UploadResult:
    """Upload every file under `local_dir` to the same relative keys under `uri`.

    Big files go up in parts. With `seen` (relative path → (size, mtime_ns)), files
    unchanged since an earlier call are left out, and `seen` is updated — for logs that
    are synced again and again. Symbolic links are skipped (listed in the result's
    `links`) and no file is read through one. Raises StorageError with a reason a user
    can act on, and TransferCancelled when `should_stop` turns true.
    """
    started = time.monotonic()
    location = S3Location.parse(uri)
    client = client or make_client(endpoint)
    result = UploadResult(location.uri)
    todo: list[tuple[Path, str, tuple[int, int]]] = []
    for path, relative in local_files(local_dir, result.links):
        try:
            info = path.lstat()
        except OSError:
            continue  # vanished while walking
        state = (info.st_size, info.st_mtime_ns)
        if seen is not None and seen.get(relative) == state:
            continue
        todo.append((path, relative, state))
    jobs = [("up", location.bucket, location.key(rel), str(path), state[0])
            for path, rel, state in todo]
    total = sum(state[0] for _, _, state in todo)

    def describe(exc: BaseException, key: str, local: str) -> StorageError:
        return storage_error(exc, _failed_uri(exc, location, key), _endpoint_url(client),
                             local)

    if jobs:
        _run_transfers(client, transfer or TransferOptions(), jobs, total, progress,
                       should_stop, describe, _no_follow_osutil(local_dir))
    if seen is not None:
        seen.update({rel: state for _, rel, state in todo})
    result.files, result.bytes = len(todo), total
    result.seconds = time.monotonic() - started
    return result
