"""Job log files: one timestamped file per rank, written live and read back cheaply.

Each rank writes ``<version_log_dir>/rank-<N>.log``, every line stamped in UTC with
milliseconds: ``2026-11-23T13:45:00.123Z epoch 1 loss 0.3``. The writer works per chunk,
not per line, to keep up with chatty jobs; the readers (tail, follower) read a bounded
number of bytes per call however large the file. Part of the core: never import textual.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

#: Lines longer than this are cut into pieces, so no reader or writer buffers without bound.
MAX_LINE_BYTES = 1024 * 1024
_BLOCK = 64 * 1024
_RANK_FILE = re.compile(r"rank-(\d+)\.log")
# Our own stamps have milliseconds; Docker's RFC 3339 stamps have up to nanoseconds. Both are
# recognised so that a raw copy of `docker logs --timestamps` can be resumed the same way.
_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) ")


def rank_log_path(version_log_dir: Path, rank: int) -> Path:
    """Path of the log file for one rank of a version."""
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    return Path(version_log_dir) / f"rank-{rank}.log"


def list_rank_logs(version_log_dir: Path) -> list[tuple[int, Path]]:
    """Every ``rank-<N>.log`` in the folder as ``(rank, path)``, sorted by rank.

    A missing folder gives an empty list: a version that never started has no logs.
    """
    folder = Path(version_log_dir)
    try:
        entries = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        match = _RANK_FILE.fullmatch(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def format_timestamp(when: float) -> str:
    """Format a Unix time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    millis = int(when * 1000)
    seconds, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


def split_timestamp(line: str) -> tuple[str | None, str]:
    """Separate the leading stamp from the text of a log line.

    Returns ``(stamp, text)``; ``stamp`` is None when the line carries no stamp (a raw copy,
    or a line cut at MAX_LINE_BYTES), in which case ``text`` is the whole line.
    """
    match = _STAMP.match(line)
    if match is None:
        return None, line
    return match.group(1), line[match.end() :]


def last_rewrite(text: str) -> str:
    """What a terminal shows of a line's text that rewrote itself with carriage returns
    (a progress bar): its last rewrite; other text as it is."""
    if "\r" not in text:
        return text
    text = text.rstrip("\r")
    return text[text.rfind("\r") + 1:]


STAMP_STYLES = ("time", "full", "off")
"""How log lines show their stamp: local time of day, the stored UTC stamp, or none."""


class StampFormatter:
    """Rewrites the stamp of log lines for display, in one of `STAMP_STYLES`.

    `time` turns `2026-05-01T14:03:07.215Z` into the local `16:03:07.215`; the
    conversion is done once per second of stamps (lines of one second share it), so a
    batch of 100k lines costs a slice and a dictionary lookup each. A line that rewrote
    itself with carriage returns (a tqdm bar) shows as a terminal showed it: its last
    rewrite.
    """

    def __init__(self, style: str = "time") -> None:
        if style not in STAMP_STYLES:
            raise ValueError(f"unknown stamp style {style!r}")
        self.style = style
        self._seconds: dict[str, str] = {}

    def __call__(self, line: str) -> str:
        match = _STAMP.match(line)
        head = line[:match.end()] if match else ""
        text = line[len(head):]
        text = last_rewrite(text)
        if self.style == "full" or match is None:
            return head + text
        if self.style == "off":
            return text
        stamp = match.group(1)
        second = stamp[:19]
        local = self._seconds.get(second)
        if local is None:
            if len(self._seconds) > 4096:
                self._seconds.clear()
            local = datetime.fromisoformat(second + "+00:00").astimezone().strftime("%H:%M:%S")
            self._seconds[second] = local
        fraction = stamp[19:-1][:4]  # `.215` (milliseconds), or nothing
        return f"{local}{fraction} {text}"

    def lines(self, lines: list[str]) -> list[str]:
        """Every line rewritten."""
        return [self(line) for line in lines]


class LogWriter:
    """Append a process's output to a log file, one timestamp per line.

    ``write`` takes byte chunks as they come off a pipe or a Docker stream: lines may be
    split across chunks, end in ``\\r\\n`` or hold invalid UTF-8 (replaced by U+FFFD). Each
    complete line is stamped with the time its newline arrived and written at once, with no
    user-space buffering, so another process can follow the file during the run. A line
    longer than ``max_line_bytes`` is written in pieces. ``stamp=False`` copies chunks as
    they are. Thread-safe: the supervisor may ``write_line`` while a thread pumps ``write``.
    """

    def __init__(
        self, path: Path, *, stamp: bool = True, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stamp = stamp
        self._max_line_bytes = max_line_bytes
        # Unbuffered: every write below is one system call that lands in the page cache,
        # so readers in other processes see whole lines without us calling flush.
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - lives with the writer
        self._pending = b""
        self._lock = threading.Lock()
        self._stamp_ms = -1
        self._stamp_bytes = b""

    @property
    def closed(self) -> bool:
        """True once ``close`` has run."""
        return self._file.closed

    def _prefix(self) -> bytes:
        # Formatting a stamp costs more than stamping a whole chunk, so reuse it within
        # the same millisecond.
        now_ms = time.time_ns() // 1_000_000
        if now_ms != self._stamp_ms:
            self._stamp_ms = now_ms
            self._stamp_bytes = (format_timestamp(now_ms / 1000) + " ").encode("ascii")
        return self._stamp_bytes

    def _emit(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written:]

    def _stamp_block(self, block: bytes) -> bytes:
        """Stamp a run of complete lines; ``block`` ends with ``\\n``."""
        if b"\r\n" in block:
            block = block.replace(b"\r\n", b"\n")
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            # Only the rare bad chunk pays for the round trip; newlines never occur inside
            # a multi-byte sequence, so decoding whole lines cannot split a character.
            block = block.decode("utf-8", errors="replace").encode("utf-8")
        prefix = self._prefix()
        # One C-level replace stamps every line of the chunk; the last newline is left out
        # so the next chunk's first line is not stamped early.
        return prefix + block[:-1].replace(b"\n", b"\n" + prefix) + b"\n"

    def write(self, chunk: bytes) -> None:
        """Append a chunk of raw output; complete lines are stamped and written now."""
        if not chunk:
            return
        with self._lock:
            if self._file.closed:
                raise ValueError("write to a closed LogWriter")
            if not self._stamp:
                self._emit(chunk)
                return
            data = self._pending + chunk if self._pending else chunk
            cut = data.rfind(b"\n") + 1
            out = self._stamp_block(data[:cut]) if cut else b""
            rest = data[cut:]
            if len(rest) > self._max_line_bytes:
                # A line without end (a progress bar, a binary dump) must not hold memory
                # hostage; write what we have as a line of its own.
                out += self._stamp_block(rest + b"\n")
                rest = b""
            self._pending = rest
            if out:
                self._emit(out)

    def write_raw(self, lines: bytes) -> None:
        """Append whole lines as they are (stamped already, by a rank's wrapper)."""
        with self._lock:
            if self._file.closed:
                raise ValueError("write to a closed LogWriter")
            self._emit(lines)

    def write_line(self, text: str) -> None:
        """Write the supervisor's own message as whole stamped line(s).

        A partial line from the process stays pending, so the message never lands in the
        middle of it.
        """
        data = text.encode("utf-8", errors="replace")
        if not data.endswith(b"\n"):
            data += b"\n"
        with self._lock:
            if self._file.closed:
                raise ValueError("write to a closed LogWriter")
            self._emit(self._stamp_block(data) if self._stamp else data)

    def close(self) -> None:
        """Write a trailing partial line (stamped and newline-terminated) and close."""
        with self._lock:
            if self._file.closed:
                return
            try:
                if self._pending:
                    self._emit(self._stamp_block(self._pending + b"\n"))
                    self._pending = b""
            finally:
                self._file.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Non-printing characters a terminal acts on (escape sequences, bells, carriage returns,
backspaces, C1 controls); tabs and newlines are not among them."""


def escape_controls(text: str) -> str:
    """`text` with every non-printing control character written out as `\\xNN`.

    Job output may hold terminal escape sequences (window titles, clear screen, cursor
    moves, bells); shown escaped, they reach the user's terminal as plain text.
    """
    if _CONTROLS.search(text) is None:
        return text
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def open_untrusted(path: Path) -> BinaryIO:
    """Open a file a job may have written, as data: never through a symbolic link, and
    only when it is a regular file (a FIFO or device planted under the name cannot hang
    or feed the reader). FileNotFoundError when there is none; OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path}: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _decode_line(raw: bytes) -> str:
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw.decode("utf-8", errors="replace")


def tail_file(
    f: BinaryIO,
    max_lines: int,
    *,
    include_partial: bool = False,
    max_bytes: int = 16 * 1024 * 1024,
    block_size: int = _BLOCK,
) -> tuple[list[str], int]:
    """Last ``max_lines`` lines of an open, seekable binary file, read backwards in blocks.

    Returns ``(lines, end_offset)``. ``end_offset`` is the byte just past the last line
    returned, which is where a LogFollower should start so nothing is shown twice. A final
    line without its newline (still being written) is left for the follower unless
    ``include_partial`` is set. At most ``max_bytes`` are read however long the lines are;
    a line cut by that limit is dropped.
    """
    size = f.seek(0, os.SEEK_END)
    if max_lines <= 0 or size <= 0:
        return [], max(size, 0)
    f.seek(size - 1)
    partial = f.read(1) != b"\n"
    # Newlines to find before the oldest wanted line starts: one per line, plus the one
    # that ends the line before it; a kept partial line has none of its own.
    wanted = max_lines + (0 if include_partial and partial else 1)
    chunks: list[bytes] = []
    pos = size
    newlines = 0
    while pos > 0 and size - pos < max_bytes and newlines < wanted:
        step = min(block_size, pos, max_bytes - (size - pos))
        pos -= step
        f.seek(pos)
        block = f.read(step)
        chunks.append(block)
        newlines += block.count(b"\n")
    data = b"".join(reversed(chunks))
    end = size
    if partial and not include_partial:
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            # Only an unfinished line: the follower shows it from its start once it ends,
            # unless its start is further back than we may read.
            return [], 0 if pos == 0 else size
        data = data[:cut]
        end = pos + cut
    if not data:
        return [], end
    pieces = data.removesuffix(b"\n").split(b"\n")
    if pos > 0:
        # Not at the start of the file, so the first piece is cut (or empty).
        pieces = pieces[1:]
    return [_decode_line(p) for p in pieces[-max_lines:]], end


def tail(path: Path, max_lines: int, *, include_partial: bool = False) -> tuple[list[str], int]:
    """Last ``max_lines`` lines of a log file and the offset just past them.

    Reads backwards from the end in blocks, so the cost depends on the lines asked for,
    not on the file's size. A missing file gives ``([], 0)``. See ``tail_file``.
    """
    try:
        with open(path, "rb") as f:
            return tail_file(f, max_lines, include_partial=include_partial)
    except FileNotFoundError:
        return [], 0




def _open_read(path: Path) -> BinaryIO:
    return open(path, "rb")


class LogFollower:
    """Read the lines appended to a log file since an offset, a bounded amount per call.

    The file may not exist yet; it may also be truncated or replaced by a new file (a
    restarted run), which is detected by the file shrinking below the offset or changing
    identity, and then reading starts over from the beginning (``restarts`` counts those
    times). A final line without its newline stays buffered until it completes, or until
    ``read_new(final=True)``. An ``untrusted`` file (written by a job) is opened with
    ``open_untrusted``: a link or anything but a regular file reads as no file.
    """

    def __init__(self, path: Path, offset: int = 0, *, max_line_bytes: int = MAX_LINE_BYTES,
                 untrusted: bool = False):
        self.path = Path(path)
        self._open = open_untrusted if untrusted else _open_read
        self._offset = offset
        self._partial = b""
        self._max_line_bytes = max_line_bytes
        self._identity: tuple[int, int] | None = None
        self.restarts = 0

    @property
    def offset(self) -> int:
        """Byte offset of the next unread byte (past the buffered partial line)."""
        return self._offset

    def read_new(self, max_bytes: int = 1024 * 1024, *, final: bool = False) -> list[str]:
        """Complete lines appended since the last call, reading at most ``max_bytes``.

        When more than ``max_bytes`` is waiting, call again to get the rest. With
        ``final=True`` a buffered partial line is returned too (the run has ended).
        """
        try:
            f = self._open(self.path)
        except OSError:  # none yet (or, untrusted, a link or FIFO planted by a job)
            return self._drain_partial() if final else []
        with f:
            st = os.fstat(f.fileno())
            identity = (st.st_dev, st.st_ino)
            if st.st_size < self._offset or (
                self._identity is not None and identity != self._identity
            ):
                self._offset = 0
                self._partial = b""
                self.restarts += 1
            self._identity = identity
            data = b""
            if st.st_size > self._offset:
                f.seek(self._offset)
                data = f.read(min(max_bytes, st.st_size - self._offset))
                self._offset += len(data)
        data = self._partial + data if self._partial else data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        lines = [_decode_line(p) for p in data[: cut - 1].split(b"\n")] if cut else []
        if len(self._partial) > self._max_line_bytes or final:
            lines.extend(self._drain_partial())
        return lines

    def _drain_partial(self) -> list[str]:
        partial, self._partial = self._partial, b""
        return [_decode_line(partial)] if partial else []

