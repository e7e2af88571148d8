"""`traindeck templates list|show|save|edit|delete`: saved job parameters; `templates
edit NAME` changes them from options, or in $EDITOR when none is given."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.cli.common import AddCommand, open_core, print_records, print_result
from app.cli.output import format_time, print_json
from app.errors import TraindeckError

ACTIONS = ["list", "show", "save", "edit", "delete"]
EDIT_ONLY = (("set", "--set"), ("spec", "--spec"), ("rename", "--rename"))
"""`templates` options that only `templates edit` takes: (attribute, flag)."""


def cmd_templates(args: argparse.Namespace) -> int:
    from app.templates import delete_template, get_template, list_templates, save_from_version

    ctx = open_core()
    if args.action == "list":
        rows = list_templates(ctx)
        print_records(args, rows, ["name", "description", "engine", "updated"],
                      lambda r: (r.name, r.description, r.engine, format_time(r.updated)))
    elif args.action == "show":
        row = get_template(ctx, args.name)
        print_json(row.to_dict()) if args.json else print(row.to_yaml(), end="")
    elif args.action == "save":
        save_from_version(ctx, args.name, args.description or "", args.job, args.version,
                          replace=args.replace)
        print(f"saved job parameters {args.name!r}")
    elif args.action == "edit":
        return edit_template(args, ctx)
    elif args.action == "delete":
        delete_template(ctx, args.name)
        print(f"deleted job parameters {args.name!r}")
    return 0


def check_usage(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors of `templates`: a name where one is needed, options where they fit."""
    if args.action != "list" and not args.name:
        parser.error(f"templates {args.action}: a name is required")
    if args.action != "edit":
        for dest, flag in EDIT_ONLY:
            if getattr(args, dest):
                parser.error(f"templates {args.action}: {flag} goes with edit only")


def edit_template(args: argparse.Namespace, ctx: Any) -> int:
    """`traindeck templates edit NAME`: from options, or in $EDITOR when none is given."""
    from app.jobs import parse_assignments
    from app.specs.spec import load_spec_file
    from app.templates import update_template

    if args.set or args.spec or args.description is not None or args.rename:
        body, base, source = None, None, None
        if args.spec:
            body, base = load_spec_file(Path(args.spec))
            source = args.spec
        info = update_template(ctx, args.name, new_name=args.rename,
                               description=args.description, body=body,
                               sets=parse_assignments(args.set or []), base_dir=base,
                               source=source)
    else:
        info = _edit_in_editor(ctx, args.name)
        if info is None:
            print(f"no change: job parameters {args.name!r} left as they were")
            return 0
    renamed = f" (was {args.name!r})" if info.name != args.name else ""
    return print_result(args, info.to_dict(), f"saved job parameters {info.name!r}{renamed}")


EDIT_HEADER = """\
# Job parameters {name!r}: change the spec below, save and close the editor.
# It is checked before it is saved; nothing is saved while it has an error.
# Relative paths resolve against {cwd}
# Lines starting with '#' are ignored. Leave the file as it is to change nothing.
"""
ERROR_MARK = "# error: "


def editor_command() -> list[str]:
    """The user's editor as an argument list: $VISUAL, then $EDITOR, then vi (as git)."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        command = shlex.split(editor)
    except ValueError as exc:
        raise TraindeckError(f"EDITOR: cannot split {editor!r}: {exc}") from None
    if not command:
        raise TraindeckError("EDITOR: is empty")
    return command


def _edit_in_editor(ctx: Any, name: str) -> Any:
    """Open the template's spec in the editor until it is valid and saved, or given up.

    Returns the saved template, or None when the file was left unchanged. A refused edit
    stays in its file (named in the last error line) so that no typing is lost.
    """
    from app.errors import SpecError
    from app.specs.spec import parse_yaml
    from app.templates import get_template, update_template

    current = get_template(ctx, name)
    original = EDIT_HEADER.format(name=name, cwd=Path.cwd()) + current.to_yaml()
    handle, path_text = tempfile.mkstemp(prefix=f"traindeck-{name}-", suffix=".yaml")
    path = Path(path_text)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(original)
    while True:
        _run_editor(path, original)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TraindeckError(f"{path}: cannot read the edited file: {exc}") from None
        if text == original:
            path.unlink(missing_ok=True)
            return None
        try:
            info = update_template(ctx, name, body=parse_yaml(text, str(path)),
                                   base_dir=Path.cwd(), source=str(path))
        except SpecError as exc:
            for line in exc.lines():
                print(f"error: {line}", file=sys.stderr)
            if not _ask("Edit again? [Y/n] "):
                raise TraindeckError(f"nothing saved; your edit is kept in {path}") from None
            _mark_errors(path, text, exc.errors)
            continue
        path.unlink(missing_ok=True)
        return info


def _run_editor(path: Path, original: str) -> None:
    """Run the editor on `path`; a failure ends the edit (keeping what was typed)."""
    command = editor_command()
    try:
        done = subprocess.run([*command, str(path)], check=False)
    except OSError as exc:
        problem = f"EDITOR: cannot start {command[0]!r}: {exc.strerror or exc}"
    else:
        if done.returncode == 0:
            return
        problem = f"the editor {command[0]!r} exited with {done.returncode}"
    try:
        untouched = path.read_text(encoding="utf-8") == original
    except (OSError, UnicodeDecodeError):
        untouched = False
    if untouched:
        path.unlink(missing_ok=True)
        raise TraindeckError(f"{problem}; nothing saved")
    raise TraindeckError(f"{problem}; nothing saved (your edit is kept in {path})")


def _mark_errors(path: Path, text: str, errors: list[Any]) -> None:
    """Put the errors at the top of the file for the next round (replacing older ones)."""
    kept = [line for line in text.splitlines(keepends=True) if not line.startswith(ERROR_MARK)]
    marks = [f"{ERROR_MARK}{str(e).replace(chr(10), ' ')}\n" for e in errors]
    path.write_text("".join(marks + kept), encoding="utf-8")


def _ask(question: str) -> bool:
    """A yes/no question on the terminal; no answer possible means no."""
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except (EOFError, OSError):
        print(file=sys.stderr)
        return False
    return answer.strip().lower() in ("", "y", "yes")


def add_commands(add: AddCommand) -> None:
    """Register `templates` (its usage is checked by `check_usage` once parsed)."""
    p = add("templates", cmd_templates, "manage saved job parameters",
            epilog="edit NAME with no option opens the spec in $VISUAL or $EDITOR; it is "
                   "checked before it is saved")
    p.set_defaults(check_usage=check_usage)
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("name", nargs="?", help="template name")
    p.add_argument("--description", help="with save or edit")
    p.add_argument("--job", help="with save: source job")
    p.add_argument("--version", "-v", dest="version", help="with save: source version")
    p.add_argument("--replace", action="store_true", help="with save: overwrite")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="with edit: set a run parameter")
    p.add_argument("--spec", help="with edit: replace the saved spec with this file's")
    p.add_argument("--rename", metavar="NEW", help="with edit: a new name (must be free)")
