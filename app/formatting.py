"""How Traindeck words values for people, the same in the CLI and the TUI.

Standard library only: both cold commands and the TUI import it.
"""

from __future__ import annotations

import json
import re
from typing import Any


def human_bytes(count: float) -> str:
    """`1.5 GiB`, `12 KiB`, `0 B`."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def describe_code(info: dict[str, Any]) -> str:
    """A version's code snapshot in one line: `12 files, 48.0 KiB of ./code, git 1a2b3c4d
    (dirty)`."""
    files = info.get("files", 0)
    text = (f"{files} file{'' if files == 1 else 's'}, {human_bytes(info.get('size', 0))} of "
            f"{info['folder']}")
    commit = info.get("git_commit")
    if commit:
        text += f", git {commit[:10]}" + (" (dirty)" if info.get("git_dirty") else "")
    return text


MEMORY_PATTERN = re.compile(r"([1-9][0-9]*)([bkmg]?)", re.IGNORECASE)
"""A memory size as specs write it: `512m`, `8g`."""


def memory_bytes(size: str) -> int:
    """`8g` → 8 GiB in bytes (units k, m, g are powers of 1024; none or `b`: bytes)."""
    match = MEMORY_PATTERN.fullmatch(size)
    if match is None:
        raise ValueError(f"{size!r} is not a size like 512m or 8g")
    number, unit = int(match.group(1)), match.group(2).lower()
    return number * {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[unit]


def describe_resource_limits(resources: dict[str, Any], runtime: str) -> str:
    """A spec's per-node limits, processes and network in words ("" when none is set):
    `per node: 4 CPU(s), 8.0 GiB memory  ·  one process per GPU  ·  network none`."""
    cpus, memory = resources.get("cpus"), resources.get("memory")
    processes, network = resources.get("processes_per_node"), resources.get("network")
    parts = []
    if cpus or memory:
        parts.append("per node: " + describe_limits(
            cpus, memory_bytes(str(memory)) if memory else None, runtime))
    if processes == "gpus":
        parts.append("one process per GPU")
    elif processes:
        parts.append(f"{processes} process{'es' if processes != 1 else ''} per node")
    if network:
        parts.append(f"network {network}")
    return "  ·  ".join(parts)


def describe_limits(cpus: float | None, memory: int | None, runtime: str) -> str:
    """A rank's CPU and memory limits and how they are enforced in `runtime`."""
    parts = []
    if cpus:
        parts.append(f"{cpus:g} CPU(s)" + (" (CPU affinity)" if runtime == "local" else ""))
    if memory:
        parts.append(f"{human_bytes(memory)} memory" + (
            " (address space of each process; not applied to GPU ranks)"
            if runtime == "local" else ""))
    return ", ".join(parts) or "none"


def describe_devices(allocated_gpus: str, allocated_uuids: str, separator: str = ", ") -> str:
    """`GPU0/MIG1 MIG-5d2c…, GPU1 GPU-8f3a…`: the physical devices a version got, each
    with its NVML UUID ('' when none is known: GPUs declared in the settings)."""
    if not allocated_uuids:
        return ""
    pairs = zip(allocated_gpus.split(","), allocated_uuids.split(","), strict=False)
    return separator.join(f"GPU{gpu} {uuid}".rstrip() for gpu, uuid in pairs)


def format_value(value: Any, missing: str = "—") -> str:
    """A parameter or metric value as a person reads it, in the CLI and the TUI alike:
    `0.9312` (4 significant digits), `true`, `lr-sweep`, lists and mappings as JSON."""
    if value is None:
        return missing
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str | int):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def shorten(text: str, width: int) -> str:
    """`text` cut to `width` characters, the last an ellipsis when it was longer."""
    return text if len(text) <= width else text[:width - 1] + "…"


def format_duration(seconds: float | None, missing: str = "—") -> str:
    """`45s`, `12m 03s`, `3h 04m`, `2d 05h`: coarser as it grows (fewer redraws)."""
    if seconds is None:
        return missing
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"
