"""CLI twins of the dataset actions: `traindeck datasets create|add-version|list|show|
check|delete`.

Each action takes `--json` before or after it. Errors are one line naming the field.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from app.cli.common import (
    AddCommand,
    actions,
    open_core,
    print_records,
    print_result,
    wants_json,
)
from app.cli.output import format_time, print_json, print_table
from app.errors import TraindeckError
from app.formatting import human_bytes

QUIET_SECONDS = 2.0
"""A snapshot that ends sooner shows no progress."""


def _print_created(info: Any, what: str) -> None:
    print(f"{what} {info.dataset} {info.version}: {info.uri} "
          f"({info.file_count} files, {human_bytes(info.total_bytes)})")
    for line in info.warnings:
        print(f"warning: {line}", file=sys.stderr)


def _progress(path: str) -> Callable[[int, int], None]:
    """Progress lines on stderr while a big folder is snapshotted (none for a quick one)."""
    import time

    from app.storage import ProgressLog

    started = time.monotonic()
    shown = ProgressLog(lambda line: print(line, file=sys.stderr), f"snapshotting {path}")

    def report(done: int, total: int) -> None:
        if time.monotonic() - started >= QUIET_SECONDS:
            shown(done, total)

    return report


def cmd_datasets_create(args: argparse.Namespace) -> int:
    from app.datasets import create_dataset

    info = create_dataset(open_core(reconcile=False), args.name, args.path, args.description or "",
                          progress=_progress(args.path))
    print_json(info.to_dict()) if wants_json(args) else _print_created(info, "created dataset")
    return 0


def cmd_datasets_add_version(args: argparse.Namespace) -> int:
    from app.datasets import add_version

    info = add_version(open_core(reconcile=False), args.name, args.path, args.description or "",
                       progress=_progress(args.path))
    print_json(info.to_dict()) if wants_json(args) else _print_created(info, "added")
    return 0


def cmd_datasets_list(args: argparse.Namespace) -> int:
    from app.datasets import list_datasets

    rows = list_datasets(open_core(reconcile=False).db)
    return print_records(
        args, rows, ["dataset", "versions", "latest", "files", "size", "location", "description"],
        lambda r: (r.name, r.versions, r.latest.version if r.latest else "-",
                   r.latest.file_count if r.latest else "-",
                   human_bytes(r.latest.total_bytes) if r.latest else "-",
                   r.latest.uri if r.latest else "-", r.description))


def cmd_datasets_show(args: argparse.Namespace) -> int:
    from app.datasets import get_dataset

    info = get_dataset(open_core(reconcile=False).db, args.name)
    if wants_json(args):
        print_json(info.to_dict())
        return 0
    print(info.name + (f": {info.description}" if info.description else ""))
    print(f"  created {format_time(info.created)}")
    print_table(["version", "files", "size", "created", "location", "description"],
                [(v.version, v.file_count, human_bytes(v.total_bytes), format_time(v.created),
                  v.uri, v.description) for v in info.versions])
    return 0


def cmd_datasets_check(args: argparse.Namespace) -> int:
    from app.datasets import check_changes

    drifts = check_changes(open_core(reconcile=False), args.name, args.version, every=args.all)
    if wants_json(args):
        print_json([d.to_dict() for d in drifts])
    else:
        for drift in drifts:
            print(drift.describe() + ("" if drift.detailed else
                                      " (summary only: the full manifest is missing)"))
    return 0


def cmd_datasets_delete(args: argparse.Namespace) -> int:
    from app.datasets import delete_dataset

    what = f"dataset {args.name}" + (f" {args.version}" if args.version
                                     else " (all versions)")
    if not args.yes:
        raise TraindeckError(f"delete {what}: add --yes to confirm")
    removed = delete_dataset(open_core(), args.name, args.version)
    return print_result(args, {"dataset": args.name, "deleted": removed,
                               "dataset_deleted": args.version is None},
                        f"deleted dataset {args.name} {', '.join(removed) or '(no versions)'}")


def add_commands(add: AddCommand) -> None:
    """Register `datasets`: an action word next, `--json` before or after it."""
    action = actions(add("datasets", cmd_datasets_list,
                         "manage datasets: versions of a local folder or s3:// prefix"),
                     "datasets")
    path_help = "a local folder or s3://bucket/prefix (obs:// too)"
    p = action("create", cmd_datasets_create, "create a dataset and its first version V001")
    p.add_argument("name", help="dataset name")
    p.add_argument("--path", required=True, help=path_help)
    p.add_argument("--description", help="what the dataset holds")
    p = action("add-version", cmd_datasets_add_version, "add the next version of a dataset")
    p.add_argument("name", help="dataset name")
    p.add_argument("--path", required=True, help=path_help)
    p.add_argument("--description", help="what changed in this version")
    action("list", cmd_datasets_list, "list datasets with their latest version")
    action("show", cmd_datasets_show, "show a dataset's versions").add_argument("name")
    p = action("check", cmd_datasets_check,
               "compare the live files with a version's manifest (what changed since, by "
               "content)")
    p.add_argument("name", help="dataset name")
    p.add_argument("--version", "-v", dest="version", help="one version (default: the latest)")
    p.add_argument("--all", action="store_true", help="check every version")
    p = action("delete", cmd_datasets_delete,
               "delete a dataset version, or the whole dataset (not its files)")
    p.add_argument("name", help="dataset name")
    p.add_argument("--version", "-v", dest="version", help="one version (default: all)")
    p.add_argument("--yes", action="store_true", help="confirm")
