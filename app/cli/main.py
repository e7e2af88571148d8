"""`traindeck`: the TUI with no arguments, or one of the commands below.

Every command exits 0 on success and non-zero with a one-line message on error;
`--json` prints data for scripts.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.cli.output import (
    format_time,
    format_typed,
    print_json,
    print_table,
)
from app.cli.reads import (
    EXIT_ERROR,
    cmd_compare,
    cmd_list,
    cmd_logs,
    cmd_show,
    cmd_wait,
    open_core,
)
from app.errors import SpecError, TraindeckError

EXIT_USAGE = 2
TEMPLATE_ACTIONS = ["list", "show", "save", "edit", "delete"]
EDIT_ONLY = (("set", "--set"), ("spec", "--spec"), ("rename", "--rename"))
"""`templates` options that only `templates edit` takes: (attribute, flag)."""

COLD_COMMANDS = frozenset({"list", "show", "logs", "wait", "compare"})
"""The reading commands (`app.cli.reads`): their process builds no other command's parser."""
Handler = Callable[[argparse.Namespace], int]


def count(text: str) -> int:
    """An argparse type: a whole number, 0 or more (`--tail`, `--limit`, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _load(path: str) -> tuple[dict[str, Any], Path]:
    from app.spec import load_spec_file

    return load_spec_file(Path(path))


def cmd_validate(args: argparse.Namespace) -> int:
    import shlex

    from app.context import Context
    from app.jobs import check_new_job, prepare_spec
    from app.runtime.preview import preview_rank0

    raw, base = _load(args.spec)
    ctx = Context.open()
    spec = prepare_spec(ctx, raw, base, args.spec)
    check_new_job(ctx, spec)  # what `submit` refuses, `validate` refuses with its words
    warnings = _unavailable(ctx, spec)
    rank0 = preview_rank0(ctx, spec)
    warnings += rank0.warnings + _image_warnings(ctx, rank0.image)
    if args.json:
        print_json({"valid": True, "spec": spec.to_dict(), "warnings": warnings,
                    "rank0": rank0.to_dict()})
        return 0
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"{args.spec}: valid")
    print(f"rank 0 of {rank0.version} runs (no shell):")
    print("  " + shlex.join(rank0.argv))
    print("with these variables set by Traindeck:")
    for name, value in rank0.env.items():
        print(f"  {name}={value}")
    return 0


def _image_warnings(ctx: Any, image: str | None) -> list[str]:
    """What a Docker version's start will have to do, or cannot, about its image."""
    if image is None:
        return []
    from app.images import image_for, image_present, pull_problem
    from app.runtime.dockerhost import reachable_client

    client = reachable_client(ctx.settings)
    if client is None:
        return ["no Docker engine answers here: the version waits for one when it starts"]
    try:
        image = image_for(client, ctx.settings, image)
        if image_present(client, image):
            return []
        problem = pull_problem(client, image)
    finally:
        client.close()
    if problem:
        return [f"image {image} is not on this machine and cannot be pulled ({problem}); "
                "build it with `traindeck images build ENGINE`, or use runtime local"]
    return [f"image {image} is not on this machine: it is pulled when the version starts"]


def _unavailable(ctx: Any, spec: Any) -> list[str]:
    """A spec that runs as local processes and needs what the interpreter lacks."""
    from app.catalog import spec_unavailable_reason

    found = spec_unavailable_reason(ctx.catalog, spec)
    return [f"{found[0]}: {found[1]}"] if found else []


def cmd_submit(args: argparse.Namespace) -> int:
    from app.jobs import submit

    raw, base = _load(args.spec)
    ref = submit(open_core(), raw, base, args.spec)
    if args.json:
        print_json(ref.to_dict())
    else:
        print(f"{ref.job} {ref.version} submitted ({ref.status})")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    from app.tui.app import run

    run(create=args.from_file or "")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from app.runtime.control import stop_version

    print(stop_version(open_core(), args.job, args.version))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from app.runtime.control import delete

    if not args.yes:
        what = f"{args.job} {args.version}" if args.version else f"job {args.job} (all versions)"
        raise TraindeckError(f"delete {what}: add --yes to confirm")
    done = delete(open_core(), args.job, args.version, purge=args.purge)
    if args.json:
        kept = {label: str(path) for label, path in done.kept.items()}
        print_json({"job": args.job, "deleted": done.labels, **({"kept": kept} if kept else {})})
    else:
        print(done.message())
    return 0


def cmd_modify(args: argparse.Namespace) -> int:
    from app.jobs import code_folder, create_version, modified_spec, parse_assignments, spec_diff

    ctx = open_core()
    sets = parse_assignments(args.set or [])
    adds = parse_assignments(args.add or [], "--add")
    raw, base = (_load(args.spec) if args.spec else (None, None))
    parent, spec, parent_id = modified_spec(ctx, args.job, args.from_version, sets, raw, base,
                                            args.spec, adds)
    diff = spec_diff(parent, spec)
    if not diff and not args.json:
        print(f"(no field differs from {args.from_version.upper()}: the new version runs the "
              "same spec)", file=sys.stderr)
    if args.dry_run:
        if args.json:
            print_json({"diff": [{"field": f, "old": a, "new": b} for f, a, b in diff]})
        else:
            for field, old, new in diff:
                print(f"{field}: {format_typed(old)} -> {format_typed(new)}")
            print("(dry run: nothing was launched)", file=sys.stderr)
        return 0
    ref = create_version(ctx, args.job, spec, parent_id, fresh_code=args.code)
    if args.json:
        print_json({**ref.to_dict(), "parent": args.from_version.upper(),
                    "diff": [{"field": f, "old": a, "new": b} for f, a, b in diff]})
    else:
        for field, old, new in diff:
            print(f"  {field}: {format_typed(old)} -> {format_typed(new)}")
        print(f"{ref.job} {ref.version} submitted from {args.from_version.upper()} "
              f"({ref.status})")
        if code_folder(spec):
            print("  code: " + ("the folder as it is now" if args.code else
                                f"{args.from_version.upper()}'s snapshot (--code takes the "
                                "folder as it is now)"))
    return 0


def cmd_engines(args: argparse.Namespace) -> int:
    from app.config import load_settings

    settings = load_settings()
    entries = [
        {"name": e.name, "version": e.version, "image": e.image,
         "interpreter": e.interpreter or sys.executable, "single_node": e.single_node,
         "tensorboard": e.tensorboard}
        for e in settings.engines
    ]
    if args.json:
        print_json(entries)
    else:
        print_table(["engine", "version", "image", "local interpreter", "nodes"],
                    [(e["name"], e["version"], e["image"], e["interpreter"],
                      "1 only" if e["single_node"] else "any") for e in entries])
    return 0


def cmd_gpus(args: argparse.Namespace) -> int:
    from app.config import load_settings
    from app.runtime.gpus import GPU_TABLE_HEADER, gpu_table_rows, inventory, inventory_json

    settings = load_settings()
    if args.json:
        print_json(inventory_json(settings))
        return 0
    gpus = inventory(settings)
    if gpus:
        print_table(GPU_TABLE_HEADER, gpu_table_rows(gpus))
    else:
        print("no GPUs: NVML finds none here and the `gpus` setting lists none")
    return 0


def cmd_pools(args: argparse.Namespace) -> int:
    from app.config import load_settings
    from app.overview import slurm_pools
    from app.runtime.gpus import inventory, pool_gpus, whole_gpus

    settings = load_settings()
    here = [g.index for g in whole_gpus(inventory(settings))]
    slurm = {row.name: row for row in slurm_pools(settings)}
    pools: list[dict[str, Any]] = []
    for pool in settings.pools:
        row: dict[str, Any] = {"name": pool.name, "kind": pool.kind}
        found = slurm.get(pool.name)
        if found is None:
            gpus = pool_gpus(settings, pool.name, here)
            row |= {"where": "this machine", "nodes": 1, "gpus": len(gpus), "gpu_indices": gpus}
        else:
            row["where"] = f"partition {found.partition}"
            row |= {"error": found.error} if found.error else {}
            if found.usage is not None:
                row |= {"nodes": found.usage.nodes, "gpus": found.usage.gpus_total,
                        "gpus_allocated": found.usage.gpus_allocated,
                        "pending_jobs": found.usage.pending_jobs}
        pools.append(row)
    if args.json:
        print_json(pools)
        return 0
    print_table(["pool", "kind", "where", "nodes", "gpus", "state"], [
        (p["name"], p["kind"], p["where"], str(p.get("nodes", "-")), str(p.get("gpus", "-")),
         p.get("error") or (f"{p['gpus_allocated']} GPU(s) allocated, {p['pending_jobs']} "
                            "job(s) pending" if p["kind"] == "slurm" else
                            "GPUs " + (", ".join(map(str, p["gpu_indices"])) or "none")))
        for p in pools])
    return 0


def cmd_templates(args: argparse.Namespace) -> int:
    from app.templates import delete_template, get_template, list_templates, save_from_version

    ctx = open_core()
    if args.action == "list":
        rows = list_templates(ctx)
        if args.json:
            print_json([r.to_dict() for r in rows])
        else:
            print_table(["name", "description", "engine", "updated"],
                        [(r.name, r.description, r.engine, format_time(r.updated))
                         for r in rows])
    elif args.action == "show":
        row = get_template(ctx, args.name)
        print_json(row.to_dict()) if args.json else print(row.to_yaml(), end="")
    elif args.action == "save":
        save_from_version(ctx, args.name, args.description or "", args.job, args.version,
                          replace=args.replace)
        print(f"saved job parameters {args.name!r}")
    elif args.action == "edit":
        from app.cli.extras import edit_template

        return edit_template(args, ctx)
    elif args.action == "delete":
        delete_template(ctx, args.name)
        print(f"deleted job parameters {args.name!r}")
    return 0


class _Unbuilt:
    """A command's parser that `build_parser(only=...)` leaves out: its arguments go nowhere."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: this process does not parse the command."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of `traindeck`; with `only`, one of this module's commands
    alone (the same usage, help and errors for it, at a fraction of the cost)."""
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

    def job_args(p: argparse.ArgumentParser, version_help: str = "version (default: latest)"
                 ) -> None:
        p.add_argument("job", help="job name")
        p.add_argument("--version", "-v", dest="version", help=version_help)

    p = add("validate", cmd_validate, "check a job spec without running it")
    p.add_argument("spec", help="spec YAML file")
    p = add("submit", cmd_submit, "create a job from a spec and start V001")
    p.add_argument("spec", help="spec YAML file")
    p = add("create", cmd_create, "open the TUI's create wizard (filled from a spec file)",
            json_out=False)
    p.add_argument("--from", dest="from_file", metavar="SPEC",
                   help="spec YAML file to fill the wizard from; its errors show by the fields")
    p = add("list", cmd_list, "list jobs with their latest version")
    p.add_argument("--filter", "-f", help="text in the name or description")
    p.add_argument("--status", help="latest version's status")
    p.add_argument("--sort", choices=["updated", "created", "name", "status"], default="updated")
    p.add_argument("--limit", type=count, default=1000, metavar="N", help="at most N jobs")
    p.add_argument("--reverse", action="store_true",
                   help="the other way round (default: newest first for updated and "
                        "created, A to Z for name and status)")
    p = add("show", cmd_show, "show a job's versions, or one version")
    job_args(p, "one version (default: all)")
    p.add_argument("--events", action="store_true",
                   help="list the events of the version (default: the latest)")
    p = add("wait", cmd_wait, "wait until a version ends; exit 0 only if it succeeded")
    job_args(p)
    p.add_argument("--timeout", type=float, help="seconds to wait at most")
    p = add("logs", cmd_logs, "print a version's logs", json_out=False)
    job_args(p)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    p.add_argument("--rank", type=count, help="one rank only (default: all)")
    p.add_argument("--tail", type=count, metavar="N", help="only the last N lines")
    p.add_argument("--raw", action="store_true",
                   help="print the job's control characters (escape sequences) as they are")
    p = add("stop", cmd_stop, "stop a running or queued version", json_out=False)
    job_args(p)
    p = add("delete", cmd_delete, "delete a version or a whole job (stops it first)")
    job_args(p, "one version (default: the whole job)")
    p.add_argument("--yes", action="store_true", help="confirm")
    p.add_argument("--purge", action="store_true",
                   help="also remove output and log files (without it, an output that never "
                        "reached object storage is kept in the data dir)")
    p = add("modify", cmd_modify, "launch a new version from an earlier one with changes")
    p.add_argument("job", help="job name")
    p.add_argument("--from", dest="from_version", required=True, help="parent version")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="change a run parameter of the job, or resources.gpus/pool/nodes/runtime")
    p.add_argument("--add", action="append", metavar="NAME=VALUE", help="add a run parameter")
    p.add_argument("--spec", help="a whole new spec file instead of the parent's")
    p.add_argument("--dry-run", action="store_true", help="show the diff, launch nothing")
    p.add_argument("--code", action="store_true",
                   help="snapshot the code folder again (default: run the parent's code)")
    p = add("compare", cmd_compare, "compare versions on parameters and metrics")
    p.add_argument("job", help="job name")
    p.add_argument("versions", nargs="*", help="versions (default: all)")
    p.add_argument("--status", help="only versions with this status")
    p.add_argument("--all", action="store_true", help="show equal parameters too")
    add("engines", cmd_engines, "list the engine catalog")
    add("pools", cmd_pools, "list the resource pools: this machine's and Slurm partitions")
    add("gpus", cmd_gpus, "list this machine's GPUs with their processes (NVML, else config)")
    p = add("templates", cmd_templates, "manage saved job parameters",
            epilog="edit NAME with no option opens the spec in $VISUAL or $EDITOR; it is "
                   "checked before it is saved")
    p.add_argument("action", choices=TEMPLATE_ACTIONS)
    p.add_argument("name", nargs="?", help="template name")
    p.add_argument("--description", help="with save or edit")
    p.add_argument("--job", help="with save: source job")
    p.add_argument("--version", "-v", dest="version", help="with save: source version")
    p.add_argument("--replace", action="store_true", help="with save: overwrite")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="with edit: set a run parameter")
    p.add_argument("--spec", help="with edit: replace the saved spec with this file's")
    p.add_argument("--rename", metavar="NEW", help="with edit: a new name (must be free)")
    if only is not None:
        return parser
    from app.cli.data_commands import add_commands as add_data_commands
    from app.cli.extras import add_commands
    from app.cli.images import add_command as add_images_command

    add_commands(sub, add)
    add_images_command(sub, add)
    add_data_commands(sub, add)
    return parser


@functools.cache
def shared_parser() -> argparse.ArgumentParser:
    """The parser, built once per process: parsing does not change it. (The command
    helper builds it before it forks, so a command there does not pay ~13 ms for it.)"""
    return build_parser()


def _check_template_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors of `templates`: a name where one is needed, options where they fit."""
    if getattr(args, "handler", None) is not cmd_templates:
        return
    if args.action != "list" and not args.name:
        parser.error(f"templates {args.action}: a name is required")
    if args.action != "edit":
        for dest, flag in EDIT_ONLY:
            if getattr(args, dest):
                parser.error(f"templates {args.action}: {flag} goes with edit only")


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


def _job_suggestion(exc: TraindeckError) -> str:
    """`; did you mean NAME?` for a job that is not found and a job named like it."""
    import difflib
    import re

    from app.errors import NotFoundError

    match = re.match(r"job '(.+)' not found", str(exc))
    if not isinstance(exc, NotFoundError) or match is None:
        return ""
    from sqlmodel import select

    from app.context import Context
    from app.models import Job

    with Context.open(sync=False).db.read() as session:
        names = list(session.exec(select(Job.name)))
    close = difflib.get_close_matches(match.group(1), names, n=1)
    return f"; did you mean {close[0]}?" if close else ""


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
        _check_template_args(parser, args)
        return handler(args)
    except SpecError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except TraindeckError as exc:
        print(f"error: {exc}{_job_suggestion(exc)}", file=sys.stderr)
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
