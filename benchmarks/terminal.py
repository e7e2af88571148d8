"""A process in a pseudo-terminal, as a user's terminal runs it.

The terminal is 120 by 40 cells; everything the process writes is read as fast as it
comes, counted and dropped (a real terminal would draw it). The process gets its own
session, so closing the terminal ends it and whatever it started in its group.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]
COLUMNS, ROWS = 120, 40
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (every thread), from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[-1].split()
    # Fields 14 (utime) and 15 (stime) of proc(5); field 3 is fields[0] here.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int | str = "self") -> float:
    """The largest resident set the process has had (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Terminal:
    """`argv` running in a pseudo-terminal whose output is counted and thrown away."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        env = {**env, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                         env=env, cwd=ROOT, start_new_session=True)
        except OSError:
            os.close(self._master)
            raise
        finally:
            os.close(slave)
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._count += len(data)

    @property
    def pid(self) -> int:
        """The process in the terminal."""
        return self.proc.pid

    @property
    def bytes_written(self) -> int:
        """Bytes the process has written to the terminal so far."""
        with self._lock:
            return self._count

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to exit; its exit status, or None if it is still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """End the process (and its group) if it still runs, then the terminal."""
        if self.proc.poll() is None:
            for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                if self.wait(grace) is not None:
                    break
        self._stop.set()
        self._drainer.join(1)
        os.close(self._master)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
