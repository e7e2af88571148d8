"""The supervisor's entry point: `python -m app.runtime.supervisor VERSION_ID [--restarted]`.

One detached supervisor process runs per version (see `app.runtime.supervision` for
what it does, and `app.runtime.launcher` for how it is started). This module is
deliberately tiny: the launcher starts the process with the control signals blocked,
and the first thing done here — before the heavy imports of the database and
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
RESTARTED = "--restarted"
"""Argument of a supervisor started in place of one that died (it adopts the ranks)."""
CONTROL_SIGNALS = frozenset({STOP_SIGNAL, WAKE_SIGNAL, signal.SIGTERM, signal.SIGHUP})
"""Blocked by the launcher until the new supervisor has installed its handlers."""


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
    if not 1 <= len(args) <= 2 or not args[0].isdigit() or args[1:] not in ([], [RESTARTED]):
        print(f"usage: python -m app.runtime.supervisor VERSION_ID [{RESTARTED}]",
              file=sys.stderr)
        return 2
    from app.runtime.supervision import run_supervisor

    return run_supervisor(int(args[0]), flags, restarted=RESTARTED in args)


if __name__ == "__main__":
    raise SystemExit(main())
