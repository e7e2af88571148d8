"""`traindeck images`: each engine's image and whether it is here; `images build ENGINE`
makes a local one (no registry needed); `images pull ENGINE` fetches the official one."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.cli.output import print_json, print_table
from app.errors import TraindeckError


def _client() -> Any:
    from app.config import load_settings
    from app.runtime.dockerhost import docker_client

    settings = load_settings()
    return settings, docker_client(settings)


def _progress_line(line: str) -> None:
    """One progress line, rewritten in place on a terminal."""
    if sys.stderr.isatty():
        print(f"\r\033[K{line}", end="" if "%" in line and "100%" not in line else "\n",
              file=sys.stderr, flush=True)
    else:
        print(line, file=sys.stderr, flush=True)


def cmd_images(args: argparse.Namespace) -> int:
    """List, build or pull engine images."""
    from app.images import build_image, ensure_image, list_images

    settings, client = _client()
    try:
        if args.action == "build":
            tag = build_image(client, _one_engine(args), _progress_line, force=args.force)
            print_json({"built": tag}) if args.json else print(f"built {tag}")
            return 0
        if args.action == "pull":
            engine = _one_engine(args)
            entries = [e for e in settings.engines if e.name == engine
                       and (args.engine_version in (None, e.version))]
            if not entries:
                raise TraindeckError(f"engine: no engine {engine!r} in the catalog")
            ensure_image(client, entries[-1].image, _progress_line)
            print(f"{entries[-1].image} is present")
            return 0
        rows = list_images(client, settings)
    finally:
        client.close()
    if args.json:
        print_json([r.to_dict() for r in rows])
    else:
        print_table(["engine", "version", "image", "local build", "uses"],
                    [(r.engine, r.version, r.image, r.local_image or "-",
                      r.uses or "missing (pulled at start, else local processes)")
                     for r in rows])
    return 0


def _one_engine(args: argparse.Namespace) -> str:
    if not args.engine:
        raise TraindeckError(f"images {args.action}: name an engine (e.g. python)")
    return str(args.engine)


def add_command(sub: Any, add: Any) -> None:
    """Register `images` on the CLI's subparsers (`add` is build_parser's helper)."""
    p = add("images", cmd_images, "list each engine's image and whether it is present; "
            "build a local one or pull the official one",
            epilog="build ENGINE makes a CPU image without any registry (python, pytorch): "
                   "debootstrap from Debian's mirror, then docker import; it is used "
                   "instead of the official image when present")
    p.add_argument("action", nargs="?", choices=["list", "build", "pull"], default="list")
    p.add_argument("engine", nargs="?", help="with build or pull: engine name")
    p.add_argument("--engine-version", help="with pull: engine version (default: the last)")
    p.add_argument("--force", action="store_true", help="with build: rebuild the root "
                   "file system too")
