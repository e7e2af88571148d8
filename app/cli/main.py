"""`traindeck`: the TUI with no arguments, or one of the commands of `app.cli.commands`.

This module assembles the parser and runs a command. Every command exits 0 on success
and non-zero with a one-line message on error; `--json` prints data for scripts.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from typing import Any

from app.cli.common import EXIT_ERROR, Handler, job_suggestion, unicode_problem
from app.errors import SpecError, TraindeckError

COLD_COMMANDS = frozenset({"list", "show", "logs", "wait", "compare"})
"""The reading commands (`app.cli.commands.reads`): their process builds no other
command's parser, nor imports another command module."""


class _Unbuilt:
    """A command's parser that `build_parser(only=...)` leaves out: its arguments go nowhere."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: this process does not parse the command."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of `traindeck`; with `only`, that command alone (the same
    usage, help and errors for it, at a fraction of the cost; a cold read's module only)."""
    parser = argparse.ArgumentParser(
        prog="traindeck",
        description="Run, version and compare ML training jobs. No command opens the TUI.",
    )
    from app import __version__

    parser.add_argument("--version", action="version", version=f"traindeck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str, *, json_out: bool = True,
            epilog: str | None = None) -> Any:
        if only is not None and name != only:
            return _Unbuilt()
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=epilog)
        p.set_defaults(handler=handler)
        if json_out:
            p.add_argument("--json", action="store_true", help="print JSON")
        return p

    if only in COLD_COMMANDS:
        from app.cli.commands import reads

        reads.add_commands(add)
        return parser
    from app.cli.commands import (
        datasets,
        machine,
        models,
        presets,
        reads,
        runs,
        templates,
        tensorboard,
        topics,
    )

    # The order `traindeck --help` lists the commands in.
    for group in (runs, reads, machine, templates, presets, topics, tensorboard, models,
                  datasets):
        group.add_commands(add)
    return parser


@functools.cache
def shared_parser() -> argparse.ArgumentParser:
    """The parser, built once per process (commands run in-process, as tests do, parse
    with it again): parsing does not change it."""
    return build_parser()


def _refuse_unknown_command(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """An unknown command is a usage error that names the closest one."""
    commands = next(a.choices for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction))
    first = argv[0] if argv else ""
    if first and not first.startswith("-") and first not in commands:
        import difflib

        close = difflib.get_close_matches(first, list(commands), n=1)
        parser.error(f"unknown command {first!r}" +
                     (f"; did you mean {close[0]}?" if close else "; see traindeck --help"))


def _run_tui() -> int:
    from app.tui.app import run

    run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `traindeck` command."""
    if not (sys.argv[1:] if argv is None else argv):
        return _run_tui()  # the TUI starts before the parser is even built
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0]) if words[0] in COLD_COMMANDS else shared_parser()
    _refuse_unknown_command(parser, words)
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    try:
        if handler is None:
            return _run_tui()
        check_usage = getattr(args, "check_usage", None)
        if check_usage is not None:  # what argparse cannot say (`templates`)
            check_usage(parser, args)
        return handler(args)
    except SpecError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except TraindeckError as exc:
        print(f"error: {exc}{job_suggestion(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except json.JSONDecodeError as exc:  # a corrupt stored spec
        print(f"error: stored data is corrupt: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except UnicodeEncodeError as exc:
        print(f"error: {unicode_problem(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        # Notifications sent on this process's behalf (e.g. by reconciliation) must
        # finish before it exits: apprise cannot send during interpreter shutdown.
        notify = sys.modules.get("app.notify")
        if notify is not None:
            notify.wait_for_notifications()


if __name__ == "__main__":
    raise SystemExit(main())
