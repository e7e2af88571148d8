"""The supervisor's entry point: `python -m app.runtime.supervisor VERSION_ID [--restarted]`.

One detached supervisor process runs per version (see `supervise` for what it does, and
`app.runtime.launcher` for how it is started). This module is
deliberately tiny: the launcher starts the process with the control signals blocked,
and the first thing done here — before the heavy imports of the database and
Docker layers — is to install their handlers and unblock them. So a `stop` sent a
millisecond after `submit` is remembered rather than killing the half-started process,
and a SIGHUP (a terminal or SSH session going away) never ends it.
"""

from __future__ import annotations

import sys

from app.runtime.signals import RESTARTED, SignalFlags, install_signal_handlers


def main(argv: list[str] | None = None) -> int:
    """Entry point: supervise one version until it reaches a final status."""
    flags = SignalFlags()
    install_signal_handlers(flags)
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2 or not args[0].isdigit() or args[1:] not in ([], [RESTARTED]):
        print(f"usage: python -m app.runtime.supervisor VERSION_ID [{RESTARTED}]",
              file=sys.stderr)
        return 2
    from app.runtime.supervisor.supervise import run_supervisor

    return run_supervisor(int(args[0]), flags, restarted=RESTARTED in args)


if __name__ == "__main__":
    raise SystemExit(main())
