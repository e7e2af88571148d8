"""A start-up hook for benchmarks: note when the job list became usable, optionally exit.

With `TRAINDECK_READY_FILE` set, the app appends a line to that file once the first page
of jobs is on screen: `time.monotonic()` (CLOCK_MONOTONIC is shared by every process on
Linux, so the benchmark can subtract its own launch time) and the CPU time the process has
used so far (which a busy machine disturbs far less than wall time). With
`TRAINDECK_EXIT_WHEN_READY` set too it then quits. Without them this does nothing.
"""

from __future__ import annotations

import os
import time
from typing import Any

READY_FILE_ENV = "TRAINDECK_READY_FILE"
EXIT_ENV = "TRAINDECK_EXIT_WHEN_READY"


def report_ready(app: Any) -> None:
    """Record the moment (and exit when asked); a no-op unless the benchmark set it up."""
    path = os.environ.get(READY_FILE_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{time.monotonic():.6f} {time.process_time():.6f}\n")
    if os.environ.get(EXIT_ENV):
        app.exit()
