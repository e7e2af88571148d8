"""`traindeck tensorboard start|list|stop`: TensorBoard on versions' outputs, on
127.0.0.1 with an `ssh -L` line to reach it."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import AddCommand, actions, open_core, print_records, print_result, wants_json
from app.cli.output import format_duration, format_time, print_json


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
    if wants_json(args):
        print_json(info.to_dict())
    else:
        _print_board(info)
    return 0


def cmd_tensorboard_list(args: argparse.Namespace) -> int:
    from app.tensorboard import list_sessions

    sessions = list_sessions(open_core(reconcile=False), include_stopped=args.all)
    return print_records(args, sessions, ["id", "job", "versions", "url", "started", "state"],
                         lambda s: (s.id, s.job, ",".join(s.versions), s.url,
                                    format_time(s.started),
                                    "running" if s.running else "stopped"))


def cmd_tensorboard_stop(args: argparse.Namespace) -> int:
    from app.tensorboard import stop_session

    info = stop_session(open_core(reconcile=False), args.id)
    return print_result(args, info.to_dict(),
                        f"stopped TensorBoard {info.id} (port {info.port})")


def add_commands(add: AddCommand) -> None:
    """Register `tensorboard`: an action word next, `--json` before or after it."""
    action = actions(add("tensorboard", cmd_tensorboard_list,
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
