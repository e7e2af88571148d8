"""CLI twins of the preset, topic, TensorBoard and model actions, and template editing.

`add_commands(sub, add)` registers `presets`, `topics`, `tensorboard` and `models` on
the `traindeck` parser; each takes an action as its next word (`traindeck models list`)
and `--json` either before or after it. `edit_template` is `traindeck templates edit`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.cli.commands.reads import open_core
from app.cli.output import format_duration, format_time, format_value, print_json, print_table
from app.errors import TraindeckError

Handler = Callable[[argparse.Namespace], int]
AddCommand = Callable[..., argparse.ArgumentParser]


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _actions(parser: argparse.ArgumentParser, group: str) -> Callable[..., Any]:
    """A function adding `traindeck <group> <action>` subcommands to `parser`."""
    actions = parser.add_subparsers(dest=f"{group}_action", metavar="ACTION", required=True)

    def action(name: str, handler: Handler, help_text: str, *, json_out: bool = True
               ) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if json_out:
            # SUPPRESS: an absent flag here must not undo `traindeck <group> --json ...`.
            p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                           help="print JSON")
        return p

    return action


# ------------------------------------------------------------------------------ presets


def cmd_presets_list(args: argparse.Namespace) -> int:
    from app.presets import shipped_presets

    presets = shipped_presets()
    if _json(args):
        print_json([_preset_dict(p) for p in presets])
    else:
        print_table(["name", "engine", "description"],
                    [(p.name, f"{p.engine} {p.engine_version}", p.description)
                     for p in presets])
    return 0


def _preset_dict(preset: Any) -> dict[str, Any]:
    return {"name": preset.name, "description": preset.description, "engine": preset.engine,
            "engine_version": preset.engine_version, "code_dir": str(preset.code_dir),
            "boot_file": preset.boot_file,
            "parameters": [{"name": p.name, "type": p.type, "default": p.default,
                            "min": p.min, "max": p.max, "choices": list(p.choices),
                            "help": p.help} for p in preset.params]}


def cmd_presets_show(args: argparse.Namespace) -> int:
    from app.presets import preset_definition, shipped_presets

    preset = preset_definition(args.name)
    if preset is None:
        known = ", ".join(p.name for p in shipped_presets())
        raise TraindeckError(f"unknown preset algorithm {args.name!r} (known: {known})")
    if _json(args):
        print_json(_preset_dict(preset))
        return 0
    print(f"{preset.name}: {preset.description}")
    print(f"  engine  {preset.engine} {preset.engine_version}   code {preset.code_dir}")
    rows = []
    for p in preset.params:
        limits = " | ".join(p.choices) if p.choices else (
            f"{format_value(p.min)} .. {format_value(p.max)}" if p.min is not None else "")
        rows.append((p.name, p.type, format_value(p.default), limits, p.help))
    print_table(["parameter", "type", "default", "allowed", "help"], rows)
    return 0


# ------------------------------------------------------------------------------ topics


def cmd_topics_list(args: argparse.Namespace) -> int:
    from app.config import load_settings
    from app.notify import list_topics

    topics = list_topics(load_settings())
    if _json(args):
        print_json([t.to_dict() for t in topics])
    else:
        print_table(["topic", "urls", "description"],
                    [(t.name, len(t.urls), t.description) for t in topics])
    return 0


def cmd_topics_show(args: argparse.Namespace) -> int:
    from app.config import load_settings
    from app.notify import get_topic

    topic = get_topic(load_settings(), args.name)
    if _json(args):
        print_json(topic.to_dict())
    else:
        print(f"{topic.name}" + (f": {topic.description}" if topic.description else ""))
        for url in topic.urls:
            print(f"  {url}")
    return 0


def cmd_topics_add(args: argparse.Namespace) -> int:
    from app.notify import add_topic

    topic = add_topic(args.name, args.urls, args.description or "", replace=args.replace)
    open_core(reconcile=False)  # mirrors the topics into the database for the TUI
    if _json(args):
        print_json(topic.to_dict())
    else:
        print(f"{'saved' if args.replace else 'added'} topic {topic.name!r} "
              f"({len(topic.urls)} URL{'s' if len(topic.urls) != 1 else ''})")
    return 0


def cmd_topics_remove(args: argparse.Namespace) -> int:
    from app.notify import remove_topic

    remove_topic(args.name)
    open_core(reconcile=False)
    if _json(args):
        print_json({"removed": args.name})
    else:
        print(f"removed topic {args.name!r}")
    return 0


def cmd_topics_test(args: argparse.Namespace) -> int:
    from app.notify import send_topic_test

    result = send_topic_test(open_core(reconcile=False), args.name)
    if _json(args):
        print_json(result.to_dict())
    else:
        print(result.message.removeprefix("test to "))
    return 0 if result.delivered else 1


# ------------------------------------------------------------------------------ tensorboard


def _print_board(info: Any) -> None:
    state = "running" if info.running else f"stopped {format_time(info.stopped)}"
    print(f"TensorBoard {info.id} for {info.job} {', '.join(info.versions)}  ({state})")
    print(f"  url   {info.url}")
    print(f"  ssh   {info.ssh}")
    print(f"  stops after {format_duration(info.idle_timeout)} without traffic")


def cmd_tensorboard_start(args: argparse.Namespace) -> int:
    from app.tensorboard import DEFAULT_IDLE_TIMEOUT, start_tensorboard

    info = start_tensorboard(open_core(), args.job, args.versions or None,
                             idle_timeout=DEFAULT_IDLE_TIMEOUT if args.idle_timeout is None
                             else args.idle_timeout)
    if _json(args):
        print_json(info.to_dict())
    else:
        _print_board(info)
    return 0


def cmd_tensorboard_list(args: argparse.Namespace) -> int:
    from app.tensorboard import list_sessions

    sessions = list_sessions(open_core(reconcile=False), include_stopped=args.all)
    if _json(args):
        print_json([s.to_dict() for s in sessions])
    else:
        print_table(["id", "job", "versions", "url", "started", "state"],
                    [(s.id, s.job, ",".join(s.versions), s.url, format_time(s.started),
                      "running" if s.running else "stopped") for s in sessions])
    return 0


def cmd_tensorboard_stop(args: argparse.Namespace) -> int:
    from app.tensorboard import stop_session

    info = stop_session(open_core(reconcile=False), args.id)
    if _json(args):
        print_json(info.to_dict())
    else:
        print(f"stopped TensorBoard {info.id} (port {info.port})")
    return 0


# ------------------------------------------------------------------------------ models


def cmd_models_create(args: argparse.Namespace) -> int:
    from app.registry import create_model

    info = create_model(open_core(), args.name, args.job, args.version, copy=args.copy,
                        description=args.description or "")
    if _json(args):
        print_json(info.to_dict())
    else:
        how = "copied to" if info.copied else "referencing"
        print(f"model {info.model} {info.version} from {info.source} ({how} {info.artifact})")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from app.registry import list_models

    models = list_models(open_core(reconcile=False).db)
    if _json(args):
        print_json([m.to_dict() for m in models])
    else:
        print_table(["model", "versions", "latest", "created", "description"],
                    [(m.name, m.version_count, m.latest or "-", format_time(m.created),
                      m.description) for m in models])
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    from app.registry import get_model

    model = get_model(open_core(reconcile=False).db, args.name)
    if _json(args):
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
    if _json(args):
        print_json({"model": args.name, "deleted": removed})
    else:
        print(f"deleted model {args.name} {', '.join(removed) or '(no versions)'}")
    return 0


# ------------------------------------------------------------------------------ templates


def edit_template(args: argparse.Namespace, ctx: Any) -> int:
    """`traindeck templates edit NAME`: from options, or in $EDITOR when none is given."""
    from app.jobs import parse_assignments
    from app.spec import load_spec_file
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
    if _json(args):
        print_json(info.to_dict())
    else:
        renamed = f" (was {args.name!r})" if info.name != args.name else ""
        print(f"saved job parameters {info.name!r}{renamed}")
    return 0


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
    from app.spec import parse_yaml
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


# ------------------------------------------------------------------------------ wiring


def add_commands(sub: Any, add: AddCommand) -> None:
    """Register `presets`, `topics`, `tensorboard` and `models` on the `traindeck` parser.

    `sub` is the subparsers object and `add(name, handler, help_text, json_out=True)` the
    helper of `app.cli.main.build_parser`.
    """
    del sub  # every command goes through `add`, like the built-in ones
    action = _actions(add("presets", cmd_presets_list, "list the preset algorithms"),
                      "presets")
    action("list", cmd_presets_list, "list the preset algorithms")
    action("show", cmd_presets_show, "show a preset and its parameters").add_argument("name")

    action = _actions(add("topics", cmd_topics_list, "manage notification topics"), "topics")
    action("list", cmd_topics_list, "list topics (URLs redacted)")
    action("show", cmd_topics_show, "show a topic's URLs (redacted)").add_argument("name")
    p = action("add", cmd_topics_add, "add a topic of apprise URLs to the config file")
    p.add_argument("name", help="topic name")
    p.add_argument("urls", nargs="+", metavar="URL", help="apprise URL (json://, ntfy://, ...)")
    p.add_argument("--description", help="shown in the wizard")
    p.add_argument("--replace", action="store_true", help="replace an existing topic")
    action("remove", cmd_topics_remove, "remove a topic from the config file"
           ).add_argument("name")
    action("test", cmd_topics_test, "send a test message to a topic").add_argument("name")

    action = _actions(add("tensorboard", cmd_tensorboard_list,
                          "TensorBoard for versions, on 127.0.0.1 with an ssh -L line"),
                      "tensorboard")
    p = action("start", cmd_tensorboard_start, "start TensorBoard on versions' outputs")
    p.add_argument("job", help="job name")
    p.add_argument("versions", nargs="*", metavar="V", help="versions (default: latest)")
    p.add_argument("--idle-timeout", type=int, metavar="S",
                   help="stop after S seconds without traffic (default: one hour)")
    p = action("list", cmd_tensorboard_list, "list TensorBoard sessions")
    p.add_argument("--all", action="store_true", help="include stopped sessions")
    action("stop", cmd_tensorboard_stop, "stop a TensorBoard session"
           ).add_argument("id", type=int, help="session id (see list)")

    action = _actions(add("models", cmd_models_list, "models made from succeeded versions"),
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
