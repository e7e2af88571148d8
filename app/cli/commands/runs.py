"""The commands that start and change runs: `validate`, `submit`, `create`, `stop`,
`delete` and `modify`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from app.cli.common import AddCommand, job_args, open_core, print_result
from app.cli.output import format_typed, print_json
from app.errors import TraindeckError


def _load(path: str) -> tuple[dict[str, Any], Path]:
    from app.specs.spec import load_spec_file

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
    warnings = _unavailable(ctx, spec) + _no_data(spec)
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
    from app.images import build_hint, image_for, image_present, pull_problem
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
        return [f"image {image} is not on this machine and cannot be pulled ({problem})"
                f"{build_hint(ctx.settings, image)}; or use runtime local"]
    return [f"image {image} is not on this machine: it is pulled when the version starts"]


def _no_data(spec: Any) -> list[str]:
    """Local data folders without a usable file: the version fails when it starts."""
    from app.specs.spec import is_remote
    from app.storage.data import NO_USABLE_FILES, data_ready

    paths = spec.data.paths or []
    if not paths or any(is_remote(p) for p in paths) or data_ready(paths):
        return []
    return [f"data.paths: {NO_USABLE_FILES} in {', '.join(paths)}: the version fails when "
            "it starts (a script that reads no data still needs a file there)"]


def _unavailable(ctx: Any, spec: Any) -> list[str]:
    """A spec that runs as local processes and needs what the interpreter lacks."""
    from app.catalog import spec_unavailable_reason

    found = spec_unavailable_reason(ctx.catalog, spec)
    return [f"{found[0]}: {found[1]}"] if found else []


def cmd_submit(args: argparse.Namespace) -> int:
    from app.jobs import submit

    raw, base = _load(args.spec)
    ref = submit(open_core(), raw, base, args.spec)
    return print_result(args, ref.to_dict(), f"{ref.job} {ref.version} submitted ({ref.status})")


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
    kept = {label: str(path) for label, path in done.kept.items()}
    return print_result(args, {"job": args.job, "deleted": done.labels,
                               **({"kept": kept} if kept else {})}, done.message())


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


def add_commands(add: AddCommand) -> None:
    """Register `validate`, `submit`, `create`, `stop`, `delete` and `modify`."""
    p = add("validate", cmd_validate, "check a job spec without running it")
    p.add_argument("spec", help="spec YAML file")
    p = add("submit", cmd_submit, "create a job from a spec and start V001")
    p.add_argument("spec", help="spec YAML file")
    p = add("create", cmd_create, "open the TUI's create wizard (filled from a spec file)",
            json_out=False)
    p.add_argument("--from", dest="from_file", metavar="SPEC",
                   help="spec YAML file to fill the wizard from; its errors show by the fields")
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
