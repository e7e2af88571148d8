"""Copying a rank's output into its log file — exactly once, across supervisor restarts.

A rank's log file holds the rank's own lines and a few lines of the supervisor's own
(`[traindeck] ...`). Beside it, in the version's state folder, a small counter file
(`own-lines.rank<N>`, one byte per line) counts every line of the log that did *not*
come from the rank's output in this run: lines already there when the ranks were started
and each supervisor message. So at any time

    rank lines written = newlines in the log file - size of the counter file

A second file there (`stream.rank<N>`, one short record rewritten in place) holds where
in the engine's log stream the rank lines in the file end: the engine's timestamp of the
last frame written (nanoseconds), how many frames carry exactly that timestamp, and the
rank lines written up to there. It is rewritten after the lines are in the file, so it is
never ahead of the file, at most a moment behind it (not every chunk rewrites it). A new
supervisor adopting a Docker run resumes the engine's stream at that frame and skips the
lines the file holds beyond the record: exact even after the engine rotated its bounded
json-file log (the stream then no longer starts with the rank's first line). When the
engine rotated that frame out before it was copied, the log says so (a note line, and a
warning event from the supervisor): a gap is never silent. Without a record (a run whose
first supervisor died before writing one) the stream is replayed from its start, skipping
as many lines as the file holds.

Only whole lines are handed to the log writer; a trailing partial line waits in memory
until its newline comes (or the rank ends), so a replay can drop it safely.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.logs import MAX_LINE_BYTES, LogWriter
from app.runtime.executors.base import Executor, ExecutorError, Handle

if TYPE_CHECKING:
    from app.runtime.executors.docker import DockerExecutor

log = logging.getLogger("traindeck.supervisor")

SUPERVISOR_PREFIX = "[traindeck] "
_BLOCK = 1024 * 1024
STREAM_RETRY_SECONDS = 1.0
"""Pause before re-opening a broken log stream."""
RETRIES_AFTER_END = 5
"""Re-open attempts once the ranks have ended (to fetch the last lines after an outage)."""
CATCH_UP_MAX_BYTES = 64 * 1024 * 1024
"""Logs larger than this are not read again at the end (see `catch_up`)."""
RECORD_SECONDS = 0.01
"""Least time between two rewrites of a rank's stream record (see `RankLog.feed`)."""
_RECORD_BYTES = 96


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


def gap_message(first: str, last: str) -> str:
    """The log note (and event text) for output the engine rotated out before its copy."""
    return (f"log: lines between {first} and {last} were rotated out by the engine "
            "before they were copied")


class RankLog:
    """One rank's log file plus the counts that make exact resumption possible."""

    def __init__(self, path: Path, counter: Path) -> None:
        self.path = Path(path)
        self.counter = Path(counter)
        self.record_path = self.counter.with_name(
            self.counter.name.replace("own-lines.", "stream.", 1))
        """Where in the engine's stream the rank lines in the file end (see the module)."""
        self.writer = LogWriter(self.path)
        self.rank_lines = 0
        """Lines of the rank's output in the file (since the ranks were started)."""
        self.position: dict[str, Any] = {}
        """After `resume`: the engine stream position of the record (empty: none)."""
        self.skip = 0
        """After `resume`: rank lines the file holds beyond `position`."""
        self._record_fd = -1
        self._recorded = 0.0
        self.interrupted = False
        """True once the rank's output stream broke (and had to be replayed)."""
        self.error = ""
        """Why the log could not be written (a full disk): nothing more is written."""
        self._tail = b""
        self._lock = threading.Lock()

    # -- origin ------------------------------------------------------------------------

    def start_fresh(self) -> None:
        """The ranks are about to start: every line now in the file is not theirs."""
        existing = count_newlines(self.path)
        tmp = self.counter.with_name(self.counter.name + ".tmp")
        tmp.write_bytes(b"\n" * existing)
        os.replace(tmp, self.counter)
        self.record_path.unlink(missing_ok=True)
        self.rank_lines = 0

    def resume(self) -> None:
        """Adopting running ranks: count the rank lines a previous supervisor wrote, and
        read where in the engine's stream they end (`position`, `skip`)."""
        try:
            own = self.counter.stat().st_size
        except FileNotFoundError:
            own = 0
        self.rank_lines = max(0, count_newlines(self.path) - own)
        self.position, self.skip = {}, 0
        try:
            last, seen, lines = self.record_path.read_bytes().split()
            seen_at, held = int(seen), int(lines)
        except (OSError, ValueError):
            return  # none (or not ours): replay from the start
        if 0 <= held <= self.rank_lines and seen_at > 0:
            self.position, self.skip = {"last": last, "seen": seen_at}, self.rank_lines - held

    def _record(self, position: dict[str, Any]) -> None:
        """Rewrite the stream record: the file's rank lines end at `position` (under the
        lock, right after they were written; `feed` does it at most every RECORD_SECONDS,
        a record behind the file is exact too). One small write in place, no fsync: a
        supervisor killed after it leaves it whole, one killed before leaves the previous
        record, which `resume` corrects with the line count."""
        if position.get("last") is None:
            return
        self._recorded = time.monotonic()
        record = b"%s %d %d" % (position["last"], position["seen"], self.rank_lines)
        if self._record_fd < 0:
            self._record_fd = os.open(self.record_path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.pwrite(self._record_fd, record.ljust(_RECORD_BYTES) + b"\n", 0)

    def _close_record(self) -> None:
        if self._record_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._record_fd)
            self._record_fd = -1

    # -- writing -----------------------------------------------------------------------

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

    def feed(self, chunk: bytes, position: dict[str, Any] | None = None) -> None:
        """Append raw rank output; whole lines go to the file, a partial one waits.

        `position` is where in the engine's stream `chunk` ends: recorded (now and then)
        when the file then ends with the stream's last line. Once the log is closed (or
        abandoned) nothing more is written.
        """
        if not chunk:
            return
        with self._lock:
            if self.writer.closed or self.error:
                return
            data = self._tail + chunk if self._tail else chunk
            cut = data.rfind(b"\n") + 1
            try:
                if cut:
                    self.writer.write(data[:cut])
                    self.rank_lines += data.count(b"\n", 0, cut)
                self._tail = data[cut:]
                if len(self._tail) > MAX_LINE_BYTES:
                    # An endless line must not hold memory: write it as a line of its own.
                    self.writer.write(self._tail + b"\n")
                    self.rank_lines += 1
                    self._tail = b""
                if (position and not self._tail
                        and time.monotonic() - self._recorded >= RECORD_SECONDS):
                    self._record(position)
            except OSError as exc:
                self._failed(exc)

    def gap(self, first: str, last: str) -> str:
        """The engine lost output between the stamps `first` and `last`: end the partial
        line (its end is lost) and say so in the log; the note's text."""
        message = gap_message(first, last)
        self.finish_partial()
        self.note(message)
        return message

    def drop_partial(self) -> None:
        """Forget a partial line (a replay will deliver it again, whole)."""
        with self._lock:
            self._tail = b""

    def finish_partial(self) -> None:
        """The rank's output ended: write a last line that had no newline."""
        with self._lock:
            if self._tail and not self.writer.closed and not self.error:
                try:
                    self.writer.write(self._tail + b"\n")
                    self.rank_lines += 1
                except OSError as exc:
                    self._failed(exc)
            self._tail = b""

    def close(self) -> None:
        """Write what is pending and close the file."""
        self.finish_partial()
        with self._lock:
            self._close_record()
            try:
                self.writer.close()
            except OSError as exc:
                self._failed(exc)

    def abandon(self) -> None:
        """Close the file without the partial line (another copier replays it whole)."""
        with self._lock:
            self._tail = b""
            self._close_record()
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


def skip_lines(chunks: Iterable[bytes], count: int) -> Iterable[bytes]:
    """The chunks with their first `count` newline-terminated lines removed."""
    for chunk in chunks:
        if count > 0:
            chunk, count = drop_lines(chunk, count)
        if chunk:
            yield chunk


def _copy(chunks: Iterable[bytes], rank_log: RankLog, position: dict[str, Any],
          on_gap: Callable[[str], None] | None, skip: int = 0) -> Iterator[int]:
    """Feed a stream opened at `position` into the log, dropping its first `skip` lines
    (the file holds them already); a gap the engine reports is noted in the log and
    passed to `on_gap`. Yields, after each chunk, the lines still to drop."""
    for chunk in chunks:
        gap = position.pop("gap", None)
        if gap is not None:
            skip = 0  # the lines beyond the record went with the rotated-out frames
            message = rank_log.gap(*gap)
            if on_gap is not None:
                on_gap(message)
        if skip:
            chunk, skip = drop_lines(chunk, skip)
        rank_log.feed(chunk, position)
        yield skip


def pump(
    executor: Executor, handle: Handle, rank: int, rank_log: RankLog,
    ended: threading.Event, on_end: Callable[[], None],
    on_output: Callable[[], None] | None = None, position: dict[str, Any] | None = None,
    on_gap: Callable[[str], None] | None = None,
) -> None:
    """Copy one rank's output into its log until the rank ends (run in a thread).

    `position` (kept by the caller) holds where in the engine's stream the lines written
    so far end: a stream that must be opened again (after an engine outage, or at the end
    by `catch_up`) resumes right there. A supervisor adopting a run starts from the
    rank log's record (`RankLog.resume`: `position` and the lines to skip beyond it);
    with no record, the stream is replayed from the container's start, skipping the
    lines the file already holds. Output the engine rotated out before it was copied is
    noted in the log and passed to `on_gap`. `ended` is set by the supervisor when every
    rank has exited; `on_end` is called when this pump returns, and `on_output` once the
    first whole line of output has been written (or, without any, when it returns).
    """
    position = {} if position is None else position
    retries_left = RETRIES_AFTER_END
    lines_before = rank_log.rank_lines
    # Lines of the file beyond `position` (all of them when it is empty): a stream
    # opened again resumes after the chunks copied, with what is left to drop.
    skip = rank_log.skip if position else rank_log.rank_lines
    rank_log.skip = 0
    try:
        while True:
            try:
                stream = executor.logs(handle, rank, None, position=position)
                for left in _copy(stream, rank_log, position, on_gap, skip):
                    skip = left
                    if on_output is not None and rank_log.rank_lines > lines_before:
                        on_output()
                        on_output = None
                # The partial last line waits for `catch_up`.
                return
            except ExecutorError as exc:
                log.warning("log stream of rank %d broke: %s", rank, exc)
            except Exception:
                log.exception("log stream of rank %d failed", rank)
            rank_log.interrupted = True
            if not position:
                rank_log.drop_partial()  # the replay sends it again, whole
            if ended.wait(STREAM_RETRY_SECONDS):
                retries_left -= 1
                if retries_left < 0:
                    return
    finally:
        if on_output is not None:
            on_output()
        on_end()


def copy_first_output(executor: DockerExecutor, handle: Handle, rank: int,
                      rank_log: RankLog, seconds: float) -> bool:
    """Copy a Docker rank's first line(s) of output into its log, for `seconds` at most.

    For the process that started the containers: it has the engine's client at hand,
    while their supervisor has yet to import it. Stops after the first whole line, when
    the output ends or when time is up, then abandons the log (no partial line is
    written): the supervisor resumes the output after them (the stream record).
    True when at least one line was copied.
    """
    done = threading.Event()
    guard = threading.Lock()
    opened: list[Any] = []
    cancelled = False
    position: dict[str, Any] = {}

    def on_open(stream: Any) -> None:
        with guard:
            opened.append(stream)
            if cancelled:
                _close(stream)

    def copy() -> None:
        try:
            for chunk in executor.logs(handle, rank, None, on_open=on_open,
                                       position=position):
                rank_log.feed(chunk, position)
                if rank_log.rank_lines or rank_log.writer.closed:
                    return
        except Exception:  # the supervisor copies it all anyway
            log.debug("copying the first output of rank %d failed", rank, exc_info=True)
        finally:
            done.set()

    threading.Thread(target=copy, name=f"first-output-{rank}", daemon=True).start()
    done.wait(seconds)
    rank_log.abandon()  # under its lock: a chunk arriving now is not written
    with guard:
        cancelled = True
        for stream in opened:
            _close(stream)  # wakes the copier if it still waits on the engine
    return rank_log.rank_lines > 0


def _close(stream: Any) -> None:
    with contextlib.suppress(Exception):
        stream.close()


def catch_up(executor: Executor, handle: Handle, rank: int, rank_log: RankLog,
             position: dict[str, Any] | None = None,
             on_gap: Callable[[str], None] | None = None) -> int | None:
    """After a Docker rank has exited: copy whatever its stream did not deliver.

    A follow stream can end as its container exits before all its output was sent (an
    engine shutting down, or a flood: the engine stops following while lines are still
    in its log). With the stream's `position`, the engine's log is read on from there:
    exact and cheap whatever the log's size (output rotated out is noted and passed to
    `on_gap`, as `pump` does). Without one, the exited container's log is
    replayed, skipping what the file holds (not for logs over CATCH_UP_MAX_BYTES).
    Returns the number of rank lines added, or None when the engine did not answer (try
    again later). The caller writes the partial last line (`finish_partial`) when done.
    """
    before = rank_log.rank_lines
    if position:
        try:
            for _ in _copy(executor.logs(handle, rank, None, position=position), rank_log,
                           position, on_gap):
                pass
        except ExecutorError as exc:
            log.warning("could not read the end of rank %d's log: %s", rank, exc)
            return None
        return rank_log.rank_lines - before
    try:
        if rank_log.path.stat().st_size > CATCH_UP_MAX_BYTES:
            return 0
    except FileNotFoundError:
        pass
    try:
        first = True
        for chunk in skip_lines(executor.logs(handle, rank, None), rank_log.rank_lines):
            if first:
                # The replay sends the partial last line whole: drop our piece of it.
                rank_log.drop_partial()
                first = False
            rank_log.feed(chunk)
    except ExecutorError as exc:
        log.warning("could not read the end of rank %d's log again: %s", rank, exc)
        return None
    return rank_log.rank_lines - before
