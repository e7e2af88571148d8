"""A chatty job: prints lines at a fixed rate, each carrying the moment it was written.

Used by the log cases twice: appending straight to a rank log (with `--path` and
`--stamp`, as a supervisor would write it) while the log panel follows it, and as the
boot file of a real local-runtime version whose supervisor captures its stdout.

Every line is `step N t=MONOTONIC loss X`; lines go out in batches every few
milliseconds so that, at any moment, as many lines are out as the rate says. The last
line is `writer done lines=N seconds=S end=MONOTONIC`. CLOCK_MONOTONIC is one clock for
every process on the machine, so a reader subtracts it from its own. Standard library
only, so it starts fast; unknown arguments (the ones a runtime passes) are ignored.

    python -m benchmarks.writer [--rate LINES_PER_S] [--seconds S] [--path FILE] [--stamp]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import BinaryIO

MAX_BATCH = 20_000
"""Lines written at most in one go (after a stall the writer catches up in steps)."""


def _stamp() -> bytes:
    """A log stamp as `app.logs.LogWriter` writes it: `2026-11-23T13:45:00.123Z `."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.").encode() + b"%03dZ " % (now.microsecond // 1000)


def write(out: BinaryIO, rate: int, seconds: float, stamp: bool) -> tuple[int, float]:
    """Write lines at `rate` a second for `seconds`; (lines written, seconds taken)."""
    start = time.monotonic()
    written = 0
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= seconds:
            break
        due = min(int(elapsed * rate), written + MAX_BATCH)
        if due <= written:
            time.sleep(0.002)
            continue
        prefix = _stamp() if stamp else b""
        moment = b"%.6f" % now
        out.write(b"".join(b"%sstep %d t=%s loss 0.%06d\n" % (prefix, n, moment, n % 999_983)
                           for n in range(written, due)))
        out.flush()
        written = due
    end = time.monotonic()
    prefix = _stamp() if stamp else b""
    out.write(b"%swriter done lines=%d seconds=%.6f end=%.6f\n"
              % (prefix, written, end - start, end))
    out.flush()
    return written, end - start


def main() -> None:
    """Write to `--path` (appending) or to stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=100_000, help="lines a second")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long")
    parser.add_argument("--path", help="append to this file instead of stdout")
    parser.add_argument("--stamp", action="store_true", help="stamp lines as a log file")
    args, _ = parser.parse_known_args()
    if args.path:
        with open(args.path, "ab") as out:
            write(out, args.rate, args.seconds, args.stamp)
    else:
        write(sys.stdout.buffer, args.rate, args.seconds, args.stamp)


if __name__ == "__main__":
    main()
