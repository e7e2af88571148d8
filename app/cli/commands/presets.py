"""`traindeck presets list|show`: the preset algorithms a job can start from."""

from __future__ import annotations

import argparse
from typing import Any

from app.cli.common import AddCommand, actions, wants_json
from app.cli.output import format_value, print_json, print_table
from app.errors import TraindeckError


def cmd_presets_list(args: argparse.Namespace) -> int:
    from app.presets import shipped_presets

    presets = shipped_presets()
    if wants_json(args):
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
    if wants_json(args):
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


def add_commands(add: AddCommand) -> None:
    """Register `presets`: an action word next, `--json` before or after it."""
    action = actions(add("presets", cmd_presets_list, "list the preset algorithms"),
                     "presets")
    action("list", cmd_presets_list, "list the preset algorithms")
    action("show", cmd_presets_show, "show a preset and its parameters").add_argument("name")
