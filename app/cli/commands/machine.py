"""What this machine offers: `engines` (the catalog), `gpus`, `pools`, and `images`
(each engine's image and whether it is here; `images build ENGINE` makes a local one, no
registry needed; `images pull ENGINE` fetches the official one)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app.cli.common import AddCommand, print_records
from app.cli.output import print_json, print_table
from app.errors import TraindeckError


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
    from app.machine import slurm_pools
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
            row |= {"where": found.where, "container": found.container}
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
    return print_records(args, rows, ["engine", "version", "image", "local build", "uses"],
                         lambda r: (r.engine, r.version, r.image, r.local_image or "-",
                                    r.uses or _missing(r)))


def _missing(row: Any) -> str:
    """What becomes of an engine whose image is not here."""
    from app.images import RECIPES

    build = (f"traindeck images build {row.engine}"
             if row.local_image and row.engine in RECIPES else "")
    if build and row.image == row.local_image:  # a local build only: no registry has it
        return f"missing: {build}"
    return "missing: pulled at start" + (f", or {build}" if build else "")


def _one_engine(args: argparse.Namespace) -> str:
    if not args.engine:
        raise TraindeckError(f"images {args.action}: name an engine (e.g. python)")
    return str(args.engine)


def add_commands(add: AddCommand) -> None:
    """Register `engines`, `pools`, `gpus` and `images`."""
    add("engines", cmd_engines, "list the engine catalog")
    add("pools", cmd_pools, "list the resource pools: this machine's and Slurm partitions")
    add("gpus", cmd_gpus, "list this machine's GPUs with their processes (NVML, else config)")
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
