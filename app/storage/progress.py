"""Transfer progress: summed over parallel parts, throttled, and as log lines."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from app.formatting import human_bytes

ProgressFn = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) while a transfer runs, and once at its end.

One that also has an `on_files(done, total)` method hears the file counts as well."""


class ProgressCounter:
    """Sums bytes reported by many transfer threads; calls `callback` at most every
    `interval` seconds (and always at the end)."""

    def __init__(self, total: int, callback: ProgressFn | None, interval: float = 0.25,
                 files: int = 0) -> None:
        self.total = total
        self.done = 0
        self.files = files
        self.files_done = 0
        self.callback = callback
        self.interval = interval
        self._on_files: Callable[[int, int], None] | None = getattr(callback, "on_files",
                                                                    None)
        self._lock = threading.Lock()
        self._last = 0.0
        if self._on_files is not None and files:
            self._on_files(0, files)

    def file_finished(self) -> None:
        """One more file arrived (or went up)."""
        with self._lock:
            self.files_done = min(self.files, self.files_done + 1)
            if self._on_files is not None:
                self._on_files(self.files_done, self.files)

    def add(self, count: int) -> None:
        """Record `count` more bytes (negative when a part is retried)."""
        with self._lock:
            self.done = max(0, min(self.total, self.done + count))
            now = time.monotonic()
            if self.callback is None or now - self._last < self.interval:
                return
            self._last = now
            self.callback(self.done, self.total)

    def finish(self) -> None:
        """Report completion."""
        with self._lock:
            self.done = self.total
            if self.callback is not None:
                self.callback(self.total, self.total)


class Fanout:
    """One progress callback that calls several (file counts included)."""

    def __init__(self, *callbacks: ProgressFn | None) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def __call__(self, done: int, total: int) -> None:
        for callback in self.callbacks:
            callback(done, total)

    def on_files(self, done: int, total: int) -> None:
        """Pass file counts on to the callbacks that take them."""
        for callback in self.callbacks:
            forward = getattr(callback, "on_files", None)
            if forward is not None:
                forward(done, total)


class ProgressLog:
    """A progress callback that writes `staging s3://b/p: 45% (1.2 GiB of 2.7 GiB)` lines
    to a log at most every `every` seconds, and a last one at 100%."""

    def __init__(self, log: Callable[[str], None], what: str, every: float = 5.0,
                 then: ProgressFn | None = None) -> None:
        self.log = log
        self.what = what
        self.every = every
        self.then = then
        self._last = time.monotonic()
        self._ended = False

    def on_files(self, done: int, total: int) -> None:
        """Pass file counts on to `then` (when it takes them)."""
        forward = getattr(self.then, "on_files", None)
        if forward is not None:
            forward(done, total)

    def __call__(self, done: int, total: int) -> None:
        if self.then is not None:
            self.then(done, total)
        now = time.monotonic()
        final = done >= total
        if self._ended or (not final and now - self._last < self.every):
            return
        self._last, self._ended = now, final
        percent = 100 if total <= 0 else int(done * 100 / total)
        self.log(f"{self.what}: {percent}% ({human_bytes(done)} of {human_bytes(total)})")


# ---------------------------------------------------------------- the progress file

TRANSFER_FILE = "transfer.json"
"""Name of the progress file in a version's state dir (see `TransferFile`)."""
WRITE_SECONDS = 0.25
"""A progress file is rewritten at most this often (and once at the start)."""
RATE_WINDOW_SECONDS = 5.0
"""The rate shown is the average over about this long."""


def transfer_path(state_dir: Path) -> Path:
    """The progress file of the version whose state dir is `state_dir`."""
    return state_dir / TRANSFER_FILE


@dataclass(frozen=True)
class TransferSnapshot:
    """A transfer under way, as the progress file last said."""

    what: str
    """`staging`, `uploading output` or `uploading logs`."""
    uri: str
    done: int
    total: int
    files_done: int
    files: int
    rate: float
    """Bytes per second, averaged over the last few seconds."""
    started: float
    updated: float
    pid: int

    @property
    def fraction(self) -> float:
        """Done, from 0 to 1."""
        return 1.0 if self.total <= 0 else min(1.0, self.done / self.total)

    def amount(self) -> str:
        """`1.2 GiB of 2.7 GiB`."""
        return f"{human_bytes(self.done)} of {human_bytes(self.total)}"

    def pace(self) -> str:
        """`12 of 40 files · 35.2 MiB/s` (what is known of them)."""
        parts = []
        if self.files:
            parts.append(f"{self.files_done:,} of {self.files:,} files")
        if self.rate > 0:
            parts.append(f"{human_bytes(self.rate)}/s")
        return " · ".join(parts)

    def describe(self) -> str:
        """`1.2 GiB of 2.7 GiB · 12 of 40 files · 35.2 MiB/s`."""
        return " · ".join(part for part in (self.amount(), self.pace()) if part)


def write_transfer(path: Path, snapshot: TransferSnapshot) -> None:
    """Replace the progress file at `path` with `snapshot`, atomically (OSError when the
    disk refuses)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(asdict(snapshot)), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return pid > 0


def read_transfer(path: Path) -> TransferSnapshot | None:
    """The transfer under way according to `path`; None when there is none (no file, an
    unreadable one, or one left by a process that is gone)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        snapshot = TransferSnapshot(
            str(data["what"]), str(data["uri"]), int(data["done"]), int(data["total"]),
            int(data["files_done"]), int(data["files"]), float(data["rate"]),
            float(data["started"]), float(data["updated"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return snapshot if _process_alive(snapshot.pid) else None


class TransferFile:
    """A progress callback that keeps a small JSON file up to date for other processes
    (the TUI shows it as a progress bar): rewritten atomically at most every
    `interval` seconds, removed by `close` when the transfer ends.

    Writing is best effort: a full or read-only disk never fails the transfer.
    """

    def __init__(self, path: Path, what: str, uri: str, *, files: int = 0,
                 interval: float = WRITE_SECONDS) -> None:
        self.path = path
        self.what = what
        self.uri = uri
        self.files = files
        self.interval = interval
        self.done = self.total = self.files_done = 0
        self.started = time.time()
        self._samples: deque[tuple[float, int]] = deque()
        self._last_write = 0.0
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> TransferFile:
        self._write(force=True)
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            self.done, self.total = done, total
            self._write(force=done >= total)

    def on_files(self, done: int, total: int) -> None:
        """How many files are done (called as each one finishes)."""
        with self._lock:
            self.files_done, self.files = done, total
            self._write(force=False)

    def _rate(self, now: float) -> float:
        samples = self._samples
        samples.append((now, self.done))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_SECONDS:
            samples.popleft()
        first_time, first_done = samples[0]
        elapsed = now - first_time
        return (self.done - first_done) / elapsed if elapsed > 0 else 0.0

    def _write(self, *, force: bool) -> None:
        now = time.time()
        if self._closed or (not force and now - self._last_write < self.interval):
            return
        self._last_write = now
        snapshot = TransferSnapshot(self.what, self.uri, self.done, self.total,
                                    self.files_done, self.files, round(self._rate(now), 1),
                                    self.started, now, os.getpid())
        with contextlib.suppress(OSError):
            write_transfer(self.path, snapshot)

    def close(self) -> None:
        """The transfer ended (however): the file goes away."""
        with self._lock:
            self._closed = True
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
