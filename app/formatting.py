"""How Traindeck words values for people, the same in the CLI and the TUI.

Standard library only: both cold commands and the TUI import it.
"""

from __future__ import annotations

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
