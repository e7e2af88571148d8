"""Copying a rank's output into its log file — exactly once, across supervisor restarts.

A rank's log file holds the rank's own lines and a few lines of the supervisor's own
(`[traindeck] ...`). Beside it, in the version's state folder, a small counter file
(`own-lines.rank<N>`, one byte per line) counts every line of the log that did *not*
come from the rank's output in this run: lines already there when the ranks were started
and each supervisor message. So at any time

    rank lines written = newlines in the log file - size of the counter file

and a new supervisor adopting a Docker run (or re-opening a stream broken by an engine
restart) replays the container's output from its start and skips exactly that many
lines: nothing is lost and nothing is written twice, whatever the clocks say.

Only whole lines are handed to the log writer; a trailing partial line waits in memory
until its newline comes (or the rank ends), so a replay can drop it safely.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
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
    """One rank's log file plus the counts that make exact resumption possible."""

    def __init__(self, path: Path, counter: Path) -> None:
        self.path = Path(path)
        self.counter = Path(counter)
        self.writer = LogWriter(self.path)
        self.rank_lines = 0
        """Lines of the rank's output in the file (since the ranks were started)."""
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
        self.rank_lines = 0

    def resume(self) -> None:
        """Adopting running ranks: count the rank lines a previous supervisor wrote."""
        try:
            own = self.counter.stat().st_size
        except FileNotFoundError:
            own = 0
        self.rank_lines = max(0, count_newlines(self.path) - own)

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

    def feed(self, chunk: bytes) -> None:
        """Append raw rank output; whole lines go to the file, a partial one waits.

        Once the log is closed (or abandoned) nothing more is written.
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
            except OSError as exc:
                self._failed(exc)

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
            try:
                self.writer.close()
            except OSError as exc:
                self._failed(exc)

    def abandon(self) -> None:
        """Close the file without the partial line (another copier replays it whole)."""
        with self._lock:
            self._tail = b""
            self.writer.close()


def skip_lines(chunks: Iterable[bytes], count: int) -> Iterable[bytes]:
    """The chunks with their first `count` newline-terminated lines removed."""
    for chunk in chunks:
        if count <= 0:
            yield chunk
            continue
        newlines = chunk.count(b"\n")
        if newlines < count:
            count -= newlines
            continue
        pos = -1
        for _ in range(count):
            pos = chunk.index(b"\n", pos + 1)
        count = 0
        rest = chunk[pos + 1:]
        if rest:
            yield rest


def pump(
    executor: Executor, handle: Handle, rank: int, rank_log: RankLog,
    ended: threading.Event, on_end: Callable[[], None],
    on_output: Callable[[], None] | None = None, position: dict[str, Any] | None = None,
) -> None:
    """Copy one rank's output into its log until the rank ends (run in a thread).

    `position` (kept by the caller, empty at first) holds where in the engine's stream
    the lines written so far end: a stream that must be opened again (after an engine
    outage, or at the end by `catch_up`) resumes right there. Without one (a supervisor
    adopting a run), the stream is replayed from the container's start, skipping the
    lines the file already holds. `ended` is set by the supervisor when every rank has
    exited; `on_end` is called when this pump returns, and `on_output` once the first
    whole line of output has been written (or, without any, when it returns).
    """
    position = {} if position is None else position
    retries_left = RETRIES_AFTER_END
    lines_before = rank_log.rank_lines
    try:
        while True:
            try:
                resume = bool(position)
                stream = executor.logs(handle, rank, None, position=position)
                for chunk in stream if resume else skip_lines(stream, rank_log.rank_lines):
                    rank_log.feed(chunk)
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
    written): the supervisor replays the output and skips the lines the file holds.
    True when at least one line was copied.
    """
    done = threading.Event()
    guard = threading.Lock()
    opened: list[Any] = []
    cancelled = False

    def on_open(stream: Any) -> None:
        with guard:
            opened.append(stream)
            if cancelled:
                _close(stream)

    def copy() -> None:
        try:
            for chunk in executor.logs(handle, rank, None, on_open=on_open):
                rank_log.feed(chunk)
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
             position: dict[str, Any] | None = None) -> int | None:
    """After a Docker rank has exited: copy whatever its stream did not deliver.

    A follow stream can end as its container exits before all its output was sent (an
    engine shutting down, or a flood: the engine stops following while lines are still
    in its log). With the stream's `position`, the engine's log is read on from there:
    exact and cheap whatever the log's size. Without one, the exited container's log is
    replayed, skipping what the file holds (not for logs over CATCH_UP_MAX_BYTES).
    Returns the number of rank lines added, or None when the engine did not answer (try
    again later). The caller writes the partial last line (`finish_partial`) when done.
    """
    before = rank_log.rank_lines
    if position:
        try:
            for chunk in executor.logs(handle, rank, None, position=position):
                rank_log.feed(chunk)
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
