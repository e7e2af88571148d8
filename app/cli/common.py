"""What every command module of `app.cli.commands` shares: opening the core, `--json`,
action subcommands, argument types, and the one-line error helpers of `app.cli.main`.
The standard library and `app.cli.output` only at module level: the cold reads import it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from app.cli.output import print_json, print_table

EXIT_ERROR = 1
"""The exit status of a command that failed."""
Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[..., Any]
"""`add(name, handler, help_text, *, json_out=True, epilog=None)` of
`app.cli.main.build_parser`: the parser of a new command (a stand-in when not built)."""


def open_core(*, reconcile: bool = True) -> Any:
    """The whole core, reconciled first (unless the command touches no version): what
    every command but a cold read opens."""
    from app.context import Context

    ctx = Context.open()
    if reconcile:
        from app.runtime.reconcile import reconcile as settle

        settle(ctx)
    return ctx


def wants_json(args: argparse.Namespace) -> bool:
    """Whether `--json` was given (before or after an action word)."""
    return bool(getattr(args, "json", False))


def print_result(args: argparse.Namespace, data: Any, text: str) -> int:
    """`data` as JSON with `--json`, else `text` for people; the exit status (0)."""
    print_json(data) if wants_json(args) else print(text)
    return 0


def print_records(args: argparse.Namespace, rows: Sequence[Any], headers: Sequence[str],
                  cells: Callable[[Any], Sequence[Any]]) -> int:
    """Read models as JSON (`to_dict()`) with `--json`, else a table of their `cells`; 0."""
    if wants_json(args):
        print_json([r.to_dict() for r in rows])
    else:
        print_table(headers, [cells(r) for r in rows])
    return 0


def actions(parser: argparse.ArgumentParser, group: str) -> Callable[..., Any]:
    """A function adding `traindeck <group> <action>` subcommands to `parser`."""
    found = parser.add_subparsers(dest=f"{group}_action", metavar="ACTION", required=True)

    def action(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = found.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        # SUPPRESS: an absent flag here must not undo `traindeck <group> --json ...`.
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print JSON")
        return p

    return action


def job_args(p: Any, version_help: str = "version (default: latest)") -> None:
    """The `JOB [--version V]` arguments of the commands about one job's version."""
    p.add_argument("job", help="job name")
    p.add_argument("--version", "-v", dest="version", help=version_help)


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more (`--tail`, `--limit`, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def shown_bytes(text: str) -> str:
    """Text that may hold undecodable bytes (a non-UTF-8 argument or path: Python keeps
    them as lone surrogates), with those bytes written as `\\xNN`."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("ascii")
    return raw.decode("utf-8", "backslashreplace")


def unicode_problem(exc: UnicodeEncodeError) -> str:
    """The one-line reason for text that could not be encoded: a name or path that is
    not UTF-8 (the database and the logs keep UTF-8 only), or a terminal that cannot
    show a character."""
    if exc.encoding.replace("-", "").lower() in ("utf8", "utf8mb4"):
        return (f"not valid UTF-8: {shown_bytes(exc.object)} (job names and paths must "
                "be UTF-8; rename it, or work from a folder whose path is UTF-8)")
    return (f"this terminal ({exc.encoding}) cannot show {exc.object[exc.start:exc.end]!a}; "
            "use a UTF-8 locale (e.g. LANG=C.UTF-8)")


def job_suggestion(exc: Exception) -> str:
    """`; did you mean NAME?` for a job that is not found and a job named like it."""
    import difflib
    import re

    from app.errors import NotFoundError

    match = re.match(r"job '(.+)' not found", str(exc))
    if not isinstance(exc, NotFoundError) or match is None:
        return ""
    from sqlmodel import select

    from app.context import Context
    from app.store.models import Job

    with Context.open(sync=False).db.read() as session:
        names = list(session.exec(select(Job.name)))
    close = difflib.get_close_matches(match.group(1), names, n=1)
    return f"; did you mean {close[0]}?" if close else ""
