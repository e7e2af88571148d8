"""Copying a Docker rank's log into the rank's log file — exactly once, across
supervisor restarts.

In a container, the rank's wrapper (`app.runtime.rankrun`) writes the rank's stamped
lines to a file of the job's folder (the container cannot reach Traindeck's own files).
The supervisor copies that file, as data (`open_untrusted`: never through a link), into
the rank's log, which also holds a few lines of its own (`[traindeck] ...`). Beside the
log, in the version's private state folder, a counter file (`own-lines.rank<N>`, one
byte per line) counts every line of the log that did *not* come from the rank in this
run: lines already there when the ranks were started and each supervisor message. So

    rank lines copied = newlines in the log file - size of the counter file

and a supervisor adopting the run skips that many lines of the job's file: nothing is
lost or copied twice, whenever the previous one died. Only whole lines are written; a
trailing partial line waits in memory until its newline comes (or the rank ends).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.logs import MAX_LINE_BYTES, LogWriter, open_untrusted

SUPERVISOR_PREFIX = "[traindeck] "
_BLOCK = 1024 * 1024
COPY_PAUSE_SECONDS = (0.02, 0.25)
"""Pause between two looks at a job's log file: the first after new lines, growing to the
second while nothing comes."""


def count_newlines(path: Path) -> int:
    """Number of newline bytes in a file (0 when it does not exist)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0
    total = 0
    with f:
        while block := f.read(_BLOCK):
            total += block.count(b"\n")
    return total


def own_lines_path(state_dir: Path, rank: int) -> Path:
    """The counter file of the supervisor's own (non-rank) lines of a rank's log."""
    return state_dir / f"own-lines.rank{rank}"


class RankLog:
    """One rank's log file plus the count that makes exact resumption possible."""

    def __init__(self, path: Path, counter: Path) -> None:
        self.path = Path(path)
        self.counter = Path(counter)
        self.writer = LogWriter(self.path)
        self.rank_lines = 0
        """Lines of the rank's output in the file (since the ranks were started)."""
        self.error = ""
        """Why the log could not be written (a full disk): nothing more is written."""
        self._tail = b""
        self._lock = threading.Lock()

    def start_fresh(self) -> None:
        """The ranks are about to start: every line now in the file is not theirs."""
        existing = count_newlines(self.path)
        tmp = self.counter.with_name(self.counter.name + ".tmp")
        tmp.write_bytes(b"\n" * existing)
        os.replace(tmp, self.counter)
        self.rank_lines = 0

    def resume(self) -> None:
        """Adopting running ranks: count the rank lines a previous supervisor wrote."""
        try:
            own = self.counter.stat().st_size
        except FileNotFoundError:
            own = 0
        self.rank_lines = max(0, count_newlines(self.path) - own)

    def note(self, message: str) -> None:
        """Write a supervisor message (counted as not the rank's): one prefixed line per
        line of `message` (a command or an engine error may hold newlines)."""
        if self.writer.closed or self.error:
            return
        lines = message.splitlines() or [""]
        with self._lock:
            try:
                # Count first: a crash between the two writes then costs at most a few
                # lines written twice on adoption, never one lost.
                with open(self.counter, "ab") as f:
                    f.write(b"\n" * len(lines))
                self.writer.write_line("\n".join(SUPERVISOR_PREFIX + line for line in lines))
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        """Stop writing: the file system refused (full disk, folder gone)."""
        self.error = self.error or f"log {self.path}: {exc.strerror or exc}"

    def feed(self, chunk: bytes) -> None:
        """Append lines the rank's wrapper stamped already; whole lines go to the file,
        a partial one waits. Once the log is closed (or abandoned) nothing is written."""
        if not chunk:
            return
        with self._lock:
            if self.writer.closed or self.error:
                return
            data = self._tail + chunk if self._tail else chunk
            cut = data.rfind(b"\n") + 1
            try:
                if cut:
                    self.writer.write_raw(data[:cut])
                    self.rank_lines += data.count(b"\n", 0, cut)
                self._tail = data[cut:]
                if len(self._tail) > MAX_LINE_BYTES:
                    # An endless line must not hold memory: write it as a line of its own.
                    self.writer.write_raw(self._tail + b"\n")
                    self.rank_lines += 1
                    self._tail = b""
            except OSError as exc:
                self._failed(exc)

    def finish_partial(self) -> None:
        """The rank's output ended: write a last line that had no newline."""
        with self._lock:
            if self._tail and not self.writer.closed and not self.error:
                try:
                    self.writer.write_raw(self._tail + b"\n")
                    self.rank_lines += 1
                except OSError as exc:
                    self._failed(exc)
            self._tail = b""

    def close(self) -> None:
        """Write what is pending and close the file."""
        self.finish_partial()
        with self._lock:
            try:
                self.writer.close()
            except OSError as exc:
                self._failed(exc)

    def abandon(self) -> None:
        """Close the file without the partial line (the next copier copies it whole)."""
        with self._lock:
            self._tail = b""
            self.writer.close()


def drop_lines(chunk: bytes, count: int) -> tuple[bytes, int]:
    """`chunk` without its first `count` newline-terminated lines, and the count of
    lines still to drop after it."""
    newlines = chunk.count(b"\n")
    if newlines < count:
        return b"", count - newlines
    pos = -1
    for _ in range(count):
        pos = chunk.index(b"\n", pos + 1)
    return chunk[pos + 1:], 0


def copy_job_log(source: Path, rank_log: RankLog, done: Callable[[], bool]) -> None:
    """Copy a rank's stamped lines from `source`, the file its wrapper writes in the
    job's folder, into `rank_log` after the rank lines it holds already, until `done()`
    says the rank ended (or the caller has what it waited for) and the file is read to
    its end. The partial last line stays with `rank_log` (`finish_partial`).

    The job can write that file: it is opened without following a link, read as data,
    and only through the one descriptor (a file renamed over it later is not read).
    """
    skip, f = rank_log.rank_lines, None
    pause = COPY_PAUSE_SECONDS[0]
    try:
        while True:
            finished = done()  # before reading: what was written until then is read
            if f is None:
                try:
                    f = open_untrusted(source)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    rank_log.note(f"{source.name} of the job's folder not copied: {exc}")
                    return
            got = False
            while f is not None and (chunk := f.read(_BLOCK)):
                got = True
                if skip:
                    chunk, skip = drop_lines(chunk, skip)
                rank_log.feed(chunk)
            if f is not None and os.fstat(f.fileno()).st_size < f.tell():
                rank_log.note(f"the job cut {source.name} of its folder short: copying "
                              "it on from its new start")
                f.seek(0)
                continue
            if finished:
                return
            pause = COPY_PAUSE_SECONDS[0] if got else min(pause * 2, COPY_PAUSE_SECONDS[1])
            time.sleep(pause)
    finally:
        if f is not None:
            f.close()
