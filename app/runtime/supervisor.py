"""The supervisor's entry point: `python -m app.runtime.supervisor VERSION_ID`.

One detached supervisor process runs per version (see `app.runtime.supervision` for
what it does, and `app.runtime.handoff` for the fast start of Docker versions). This
module is deliberately tiny: the launcher starts the process with the control signals
blocked, and the first thing done here — before the heavy imports of the database and
Docker layers — is to install their handlers and unblock them. So a `stop` sent a
millisecond after `submit` is remembered rather than killing the half-started process,
and a SIGHUP (a terminal or SSH session going away) never ends it.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

STOP_SIGNAL = signal.SIGUSR1
"""Sent to a supervisor to say: stop your version (its `stop_requested` flag is set)."""
WAKE_SIGNAL = signal.SIGUSR2
"""Sent to queued supervisors when GPUs change hands: look again now."""
CONTROL_SIGNALS = frozenset({STOP_SIGNAL, WAKE_SIGNAL, signal.SIGTERM, signal.SIGHUP})
"""Blocked by the launcher until the new supervisor has installed its handlers."""
FIRST_OUTPUT_WAIT_SECONDS = 0.5
"""After a fast start, how long the heavy imports wait for the ranks' first output."""


class SignalFlags:
    """What the supervisor has been asked from outside, set from signal handlers."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        """A stop was requested (STOP_SIGNAL or SIGTERM)."""
        self.wake = threading.Event()
        """A queued version should look at the GPUs again."""
        self.changed = threading.Event()
        """Something happened that the main loop should look at now."""

    def request_stop(self, *_: Any) -> None:
        """Signal handler (and plain method): stop the version."""
        self.stop.set()
        self.wake.set()
        self.changed.set()

    def request_wake(self, *_: Any) -> None:
        """Signal handler: re-check admission now."""
        self.wake.set()
        self.changed.set()


def install_signal_handlers(flags: SignalFlags) -> None:
    """Route the control signals to `flags`, ignore SIGHUP, then unblock them all."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(STOP_SIGNAL, flags.request_stop)
    signal.signal(signal.SIGTERM, flags.request_stop)
    signal.signal(WAKE_SIGNAL, flags.request_wake)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, CONTROL_SIGNALS)


def main(argv: list[str] | None = None) -> int:
    """Entry point: supervise one version until it reaches a final status."""
    flags = SignalFlags()
    install_signal_handlers(flags)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m app.runtime.supervisor VERSION_ID", file=sys.stderr)
        return 2
    from app.runtime.handoff import warm_start

    try:
        # A fast start: copy the logs of ranks the submitter started, before the heavy
        # imports below (they take longer than starting a container).
        warm = warm_start(flags.changed.set)
    except Exception as exc:  # fall back to the ordinary start
        print(f"fast start failed, continuing without it: {exc!r}", file=sys.stderr)
        warm = None
    if warm is not None:
        # The imports below hold the interpreter for most of a second: let the pumps
        # write the first output before they start, so it is not kept waiting.
        warm.first_output.wait(FIRST_OUTPUT_WAIT_SECONDS)
    from app.runtime.supervision import run_supervisor

    return run_supervisor(int(args[0]), flags, warm)


if __name__ == "__main__":
    raise SystemExit(main())
