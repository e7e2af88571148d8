"""Transfer progress: summed over parallel parts, throttled, and as log lines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

ProgressFn = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) while a transfer runs, and once at its end."""


def human_bytes(count: float) -> str:
    """`1.5 GiB`, `12 KiB`, `0 B`."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


class ProgressCounter:
    """Sums bytes reported by many transfer threads; calls `callback` at most every
    `interval` seconds (and always at the end)."""

    def __init__(self, total: int, callback: ProgressFn | None, interval: float = 0.25
                 ) -> None:
        self.total = total
        self.done = 0
        self.callback = callback
        self.interval = interval
        self._lock = threading.Lock()
        self._last = 0.0

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
