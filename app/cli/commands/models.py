"""`traindeck models create|list|show|delete`: models made from succeeded versions."""

from __future__ import annotations

import argparse

from app.cli.common import AddCommand, actions, open_core, print_records, print_result, wants_json
from app.cli.output import format_time, format_value, print_json
from app.errors import TraindeckError


def cmd_models_create(args: argparse.Namespace) -> int:
    from app.registry import create_model

    info = create_model(open_core(), args.name, args.job, args.version, copy=args.copy,
                        description=args.description or "")
    how = "copied to" if info.copied else "referencing"
    return print_result(args, info.to_dict(), f"model {info.model} {info.version} from "
                        f"{info.source} ({how} {info.artifact})")


def cmd_models_list(args: argparse.Namespace) -> int:
    from app.registry import list_models

    models = list_models(open_core(reconcile=False).db)
    return print_records(args, models, ["model", "versions", "latest", "created", "description"],
                         lambda m: (m.name, m.version_count, m.latest or "-",
                                    format_time(m.created), m.description))


def cmd_models_show(args: argparse.Namespace) -> int:
    from app.registry import get_model

    model = get_model(open_core(reconcile=False).db, args.name)
    if wants_json(args):
        print_json(model.to_dict())
        return 0
    print(model.name + (f": {model.description}" if model.description else ""))
    for v in model.versions:
        print(f"  {v.version}  from {v.source}  {v.engine}  created {format_time(v.created)}")
        print(f"        artifact    {v.artifact}{' (copy)' if v.copied else ''}")
        params = " ".join(f"{k}={format_value(x)}" for k, x in v.parameters.items())
        print(f"        parameters  {params or '-'}")
        metrics = " ".join(f"{k}={format_value(x)}" for k, x in v.metrics.items())
        print(f"        metrics     {metrics or '-'}")
    return 0


def cmd_models_delete(args: argparse.Namespace) -> int:
    from app.registry import delete_model

    what = f"model {args.name}" + (f" {args.version}" if args.version else " (all versions)")
    if not args.yes:
        raise TraindeckError(f"delete {what}: add --yes to confirm")
    removed = delete_model(open_core(reconcile=False), args.name, args.version)
    return print_result(args, {"model": args.name, "deleted": removed},
                        f"deleted model {args.name} {', '.join(removed) or '(no versions)'}")


def add_commands(add: AddCommand) -> None:
    """Register `models`: an action word next, `--json` before or after it."""
    action = actions(add("models", cmd_models_list, "models made from succeeded versions"),
                     "models")
    p = action("create", cmd_models_create, "create a model (version) from a succeeded version")
    p.add_argument("name", help="model name")
    p.add_argument("--job", required=True, help="source job")
    p.add_argument("--version", "-v", dest="version", required=True, help="source version")
    p.add_argument("--copy", action="store_true", help="copy the output into the data dir")
    p.add_argument("--description", help="for a new model")
    action("list", cmd_models_list, "list models")
    action("show", cmd_models_show, "show a model's versions").add_argument("name")
    p = action("delete", cmd_models_delete, "delete a model or one of its versions")
    p.add_argument("name", help="model name")
    p.add_argument("--version", "-v", dest="version", help="one version (default: all)")
    p.add_argument("--yes", action="store_true", help="confirm")
