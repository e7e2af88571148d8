"""A version's data in and results out: what the supervisor calls around a run.

* `prepare_data` before the plan: local data folders pass through after the 255 scan,
  object-storage locations are staged into the version's cache; `DataError(reason)`
  when the version cannot run ("no usable data files", "s3://b/p: no such bucket", ...).
* `LogSyncer` (or `sync_logs`) while it runs: the log folder goes up every N seconds.
* `finalize_outputs` (`upload_output`, then `sync_logs` once more) when it ends, however
  it ends.

While data is staged or the output (and the last logs) go up, the transfer's progress is
kept in `transfer.json` in the version's state dir (`progress.TransferFile`), which the
TUI reads for its progress bar; the file goes away when the transfer ends.

`log(line)` writes a line to the version's log; `event(message, kind)` records an event
(kind `info` or `warning`), the shape of the supervisor's own `_note` and `_event`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.formatting import human_bytes
from app.specs.spec import is_remote
from app.storage.client import client_for
from app.storage.errors import DataError, StorageError, TransferCancelled
from app.storage.names import NameScan, describe_skipped, name_too_long, scan_local, walk_files
from app.storage.progress import (
    Fanout,
    ProgressFn,
    ProgressLog,
    TransferFile,
    transfer_path,
)
from app.storage.transfer import (
    Pin,
    StopFn,
    TransferOptions,
    local_files,
    stage_in,
    upload_dir,
)

LogFn = Callable[[str], None]
EventFn = Callable[[str, str], None]
NO_USABLE_FILES = "no usable data files"
UPLOADED_SUFFIX = ".uploaded.json"
"""Beside a local output folder: what its last complete upload sent (`output_uploaded`)."""
DEFAULT_SYNC_SECONDS = 30.0

_log = logging.getLogger("traindeck.storage")


def local_output_path(output: str, state_dir: Path) -> Path:
    """Where a version writes its output: the output itself when local, else a folder in
    its state dir that `upload_output` sends to the object-storage output at the end."""
    return state_dir / "output" if is_remote(output) else Path(output)


def _uploaded_marker(local_output: Path) -> Path:
    return local_output.with_name(local_output.name + UPLOADED_SUFFIX)


def _listing(local_output: Path) -> str:
    """A digest of the files under `local_output` (paths, sizes, modification times)."""
    digest = hashlib.sha256()
    for path, relative in local_files(local_output):
        try:
            info = path.lstat()
        except OSError:
            continue
        digest.update(f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def output_uploaded(local_output: Path) -> bool:
    """True when the files in `local_output` are exactly those an `upload_output` sent
    (none changed, came or went since); False when anything there never went up."""
    try:
        stored = json.loads(_uploaded_marker(local_output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(stored, dict) and stored.get("listing") == _listing(local_output)


def remote_log_uri(spec_log_dir: str | None, label: str) -> str | None:
    """The object-storage folder of a version's logs (`<log_dir>/<V00n>`), if remote."""
    if not spec_log_dir or not is_remote(spec_log_dir):
        return None
    return f"{spec_log_dir.rstrip('/')}/{label}"


@dataclass
class _Options:
    endpoints: Sequence[Any] | None = None
    transfer: TransferOptions | None = None
    client_options: Any = None

    def client(self, settings: Any, uri: str) -> Any:
        return client_for(uri, settings, endpoints=self.endpoints,
                          options=self.client_options)


def data_ready(sources: Sequence[str]) -> bool:
    """True when `sources` need no preparation: all local, with a usable file among them.

    Quick (the walk stops at the first usable file), for a fast path that starts a
    version itself: it does so only then, and leaves the rest to `prepare_data` in the
    supervisor (staging, the 255 report, failing with "no usable data files").
    """
    if any(is_remote(s) for s in sources):
        return False
    for source in sources:
        try:
            for rel, _ in walk_files(Path(source)):
                if not name_too_long(rel.rsplit("/", 1)[-1]):
                    return True
        except OSError:
            return False
    return False


def prepare_data(
    settings: Any, sources: Sequence[str], cache_dir: Path, log: LogFn, event: EventFn,
    *, progress: ProgressFn | None = None, should_stop: StopFn | None = None,
    endpoints: Sequence[Any] | None = None, transfer: TransferOptions | None = None,
    client_options: Any = None, progress_file: Path | None = None,
    pins: Sequence[Pin | None] | None = None,
) -> list[Path]:
    """The local data folders of a version, in the order of `sources`.

    `sources` are the spec's data paths or its datasets' version URIs. Object-storage
    ones are staged into `cache_dir/<i>` (a complete earlier copy is reused). Files whose
    names break the 255 rule are skipped, with a log warning and a `warning` event naming
    the count and the first few. Raises DataError when a source cannot be read or no
    usable file remains, and TransferCancelled when `should_stop` turns true.

    Staging progress goes to `progress_file` (default: `transfer.json` beside
    `cache_dir`, that is in the version's state dir) while it runs. `pins[i]`, when set,
    pins the objects of `sources[i]` (see `Pin`).
    """
    opts = _Options(endpoints, transfer, client_options)
    progress_file = progress_file or transfer_path(cache_dir.parent)
    out: list[Path] = []
    usable = 0
    skipped = NameScan()
    for i, source in enumerate(sources):
        if is_remote(source):
            pin = pins[i] if pins is not None and i < len(pins) else None
            path, scan, count = _stage(settings, source, cache_dir / str(i), log, event,
                                       progress, should_stop, opts, progress_file, pin)
        else:
            path = Path(source)
            try:
                scan, _ = scan_local(path)
            except OSError as exc:
                raise DataError(f"{source}: {exc.strerror or exc}") from exc
            count = len(scan.usable)  # a local folder is used as it is: nothing to log
        for line in describe_skipped(scan, source):
            log(f"warning: {line}")
            event(line, "warning")
        if count == 0:
            log(f"warning: {source}: {NO_USABLE_FILES}")
        skipped.merge(scan)
        usable += count
        out.append(path)
    if usable == 0:
        detail = ""
        if skipped.too_long:
            detail = (f" ({len(skipped.too_long)} skipped: names longer than 255 "
                      "characters)")
        elif skipped.unsafe:
            detail = f" ({len(skipped.unsafe)} skipped: keys that cannot be local files)"
        raise DataError(NO_USABLE_FILES + detail)
    return out


def _stage(settings: Any, source: str, dest: Path, log: LogFn, event: EventFn,
           progress: ProgressFn | None, should_stop: StopFn | None, opts: _Options,
           progress_file: Path, pin: Pin | None = None) -> tuple[Path, NameScan, int]:
    log(f"staging {source} into {dest}")
    try:
        client = opts.client(settings, source)
        with TransferFile(progress_file, "staging", source) as shown:
            result = stage_in(source, dest,
                              ProgressLog(log, f"staging {source}",
                                          then=Fanout(shown, progress)),
                              client=client, transfer=opts.transfer, should_stop=should_stop,
                              pin=pin)
    except StorageError as exc:
        raise DataError(str(exc)) from exc
    if result.reused:
        log(f"staged {source}: reusing the complete copy in {result.local_dir}")
    else:
        rate = result.bytes / result.seconds if result.seconds > 0 else 0
        message = (f"staged {source}: {result.files} file(s), {human_bytes(result.bytes)} "
                   f"in {result.seconds:.1f} s ({human_bytes(rate)}/s)")
        log(message)
        event(message, "info")
    return result.local_dir, result.scan, result.files


def upload_output(
    settings: Any, local_output: Path, remote_output_uri: str | None, log: LogFn, *,
    endpoints: Sequence[Any] | None = None, transfer: TransferOptions | None = None,
    client_options: Any = None, progress: ProgressFn | None = None,
    progress_file: Path | None = None, warn: LogFn | None = None,
    should_stop: StopFn | None = None,
) -> str | None:
    """Upload a version's output folder; None when done (or nothing to do), else why not.

    On failure the files stay in `local_output` and the reason says so. Progress goes to
    `progress_file` (default: `transfer.json` beside `local_output`, which for an
    object-storage output is the version's state dir) while it runs. Symbolic links in
    the output are not uploaded (nor followed): a log line and `warn(message)` name them.
    When `should_stop` turns true the upload ends (TransferCancelled becomes the reason).
    """
    if not remote_output_uri or not local_output.is_dir():
        return None
    opts = _Options(endpoints, transfer, client_options)
    log(f"uploading output to {remote_output_uri}")
    _uploaded_marker(local_output).unlink(missing_ok=True)
    listing = _listing(local_output)
    progress_file = progress_file or transfer_path(local_output.parent)
    try:
        with TransferFile(progress_file, "uploading output", remote_output_uri) as shown:
            result = upload_dir(local_output, remote_output_uri,
                                ProgressLog(log, f"uploading {remote_output_uri}",
                                            then=Fanout(shown, progress)),
                                client=opts.client(settings, remote_output_uri),
                                transfer=opts.transfer, should_stop=should_stop)
    except (StorageError, TransferCancelled) as exc:
        reason = f"output upload failed: {exc}; the files stay in {local_output}"
        log(reason)
        return reason
    try:
        _uploaded_marker(local_output).write_text(json.dumps(
            {"uri": remote_output_uri, "listing": listing}), encoding="utf-8")
    except OSError as exc:  # only `delete` reads it: it then keeps a copy too many
        _log.warning("cannot record the upload of %s: %s", local_output, exc)
    if result.links:
        message = describe_links(result.links)
        log(f"warning: {message}")
        if warn is not None:
            warn(message)
    log(f"uploaded output: {result.files} file(s), {human_bytes(result.bytes)} to "
        f"{remote_output_uri} in {result.seconds:.1f} s")
    return None


def sync_logs(
    settings: Any, local_log_dir: Path, remote_log_uri: str | None,
    seen: dict[str, tuple[int, int]] | None = None, *, endpoints: Sequence[Any] | None = None,
    client_options: Any = None, progress_file: Path | None = None,
) -> str | None:
    """Upload the log files that changed since the last call (`seen` remembers them).

    Returns None when done, else a one-line reason (the caller warns; it never fails a
    version). Safe to call every N seconds while a version runs. With `progress_file`,
    the upload's progress is kept there while it runs (the last upload of a version).
    """
    if not remote_log_uri or not local_log_dir.is_dir():
        return None
    opts = _Options(endpoints, None, client_options)
    shown = TransferFile(progress_file, "uploading logs", remote_log_uri) \
        if progress_file is not None else None
    try:
        upload_dir(local_log_dir, remote_log_uri, shown,
                   client=opts.client(settings, remote_log_uri),
                   seen=seen if seen is not None else {})
    except (StorageError, TransferCancelled) as exc:
        return f"log upload failed: {exc}"
    finally:
        if shown is not None:
            shown.close()
    return None


def describe_links(links: Sequence[str], shown: int = 3) -> str:
    """The warning for symbolic links left out of an upload, naming the first few."""
    names = ", ".join(links[:shown]) + (f" and {len(links) - shown} more"
                                        if len(links) > shown else "")
    return (f"output: {len(links)} symbolic link(s) not uploaded (links are never "
            f"followed): {names}")


@dataclass(frozen=True)
class FinalizeResult:
    """What went wrong uploading a version's results (None: nothing)."""

    output_error: str | None = None
    log_error: str | None = None


def finalize_outputs(
    settings: Any, local_output: Path | None, remote_output_uri: str | None,
    local_log_dir: Path | None, remote_log_uri: str | None, log: LogFn, **kwargs: Any,
) -> FinalizeResult:
    """Upload the output, then the logs, of a version that ended (also failed or stopped).

    Either pair may be None. Keyword arguments go to the uploads (`endpoints`,
    `progress_file`, ...; `warn` and `should_stop` to the output's only).
    """
    output_error = log_error = None
    if local_output is not None:
        output_error = upload_output(settings, local_output, remote_output_uri, log, **kwargs)
    if local_log_dir is not None:
        for name in ("transfer", "progress", "warn", "should_stop"):
            kwargs.pop(name, None)
        log_error = sync_logs(settings, local_log_dir, remote_log_uri, **kwargs)
    return FinalizeResult(output_error, log_error)


class LogSyncer:
    """Uploads a version's log folder every `interval` seconds from a daemon thread.

    `warn(message)` hears about the first failure only (later ones are logged), so a
    flaky endpoint gives one event, not one per interval.
    """

    def __init__(self, settings: Any, local_log_dir: Path, remote_log_uri: str | None,
                 interval: float = DEFAULT_SYNC_SECONDS, warn: LogFn | None = None,
                 progress_file: Path | None = None, **kwargs: Any) -> None:
        self.settings = settings
        self.progress_file = progress_file
        """Where the last upload (in `stop`) keeps its progress, if anywhere."""
        self.local_log_dir = local_log_dir
        self.remote_log_uri = remote_log_uri
        self.interval = interval
        self.warn = warn
        self.kwargs = kwargs
        self.seen: dict[str, tuple[int, int]] = {}
        self.warned = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start syncing in the background (nothing when the logs are not remote)."""
        if self.remote_log_uri and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="log-sync", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sync_once()

    def sync_once(self, *, progress_file: Path | None = None) -> str | None:
        """Upload what changed now; the reason when it failed."""
        with self._lock:
            error = sync_logs(self.settings, self.local_log_dir, self.remote_log_uri,
                              self.seen, progress_file=progress_file, **self.kwargs)
        if error:
            _log.warning("%s", error)
            if not self.warned and self.warn is not None:
                self.warn(error)
            self.warned = True
        return error

    def stop(self, *, final: bool = True) -> str | None:
        """Stop the thread; with `final`, upload what changed one last time."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 60)
        return self.sync_once(progress_file=self.progress_file) if final else None
