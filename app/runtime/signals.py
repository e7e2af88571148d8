"""The control signals between Traindeck's processes and a version's supervisor.

A stop (`STOP_SIGNAL`, or SIGTERM) and a wake-up for queued versions (`WAKE_SIGNAL`) are
sent to the supervisor's pid; its handlers only set flags (`SignalFlags`) that its main
loop reads. Standard library only: the entry point installs the handlers before any
heavy import.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from app.runtime.procs import supervisor_alive

if TYPE_CHECKING:
    from app.models import Version

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


def signal_supervisor(version: Version, sig: signal.Signals) -> bool:
    """Send `sig` to the version's supervisor if it is alive; True when sent."""
    if not supervisor_alive(version.supervisor_pid, version.id or 0, version.supervisor_host):
        return False
    try:
        os.kill(version.supervisor_pid or 0, sig)
    except ProcessLookupError:
        return False
    return True
