"""The 255-character rule, and which object keys can become local files at all.

A data file whose name is longer than 255 characters is skipped (ModelArts' rule). A
name of 255 characters or fewer may still be longer than 255 bytes in UTF-8, which no
common local file system can hold, so such names are skipped with them. Keys that would
escape the data folder (`..`), or that are both a file and a folder, are skipped too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAX_NAME_CHARS = 255
MAX_NAME_BYTES = 255
SHOWN_NAMES = 3
"""How many skipped names a warning quotes."""
SHOWN_NAME_CHARS = 48


@dataclass
class NameScan:
    """Which relative paths (or keys below a prefix) are usable, and which are skipped."""

    usable: list[str] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)
    """Skipped: a name longer than 255 characters (or bytes)."""
    unsafe: list[str] = field(default_factory=list)
    """Skipped: `.`/`..`/empty path parts, or a file that is also another file's folder."""

    @property
    def skipped(self) -> int:
        """How many paths were skipped."""
        return len(self.too_long) + len(self.unsafe)

    def merge(self, other: NameScan) -> None:
        """Add another scan's findings to this one."""
        self.usable += other.usable
        self.too_long += other.too_long
        self.unsafe += other.unsafe


def name_too_long(name: str) -> bool:
    """True when a file or folder name breaks the 255 rule."""
    return len(name) > MAX_NAME_CHARS or len(name.encode("utf-8", "surrogateescape")) > \
        MAX_NAME_BYTES


def scan_names(paths: Iterable[str]) -> NameScan:
    """Sort relative POSIX paths (or object keys below a prefix) into usable and skipped.

    Order is kept. A path is skipped when any part of it is too long, when a part is
    empty, `.` or `..`, or when it is also the folder of another usable path.
    """
    scan = NameScan()
    candidates: list[str] = []
    for path in paths:
        parts = path.split("/")
        if any(name_too_long(p) for p in parts):
            scan.too_long.append(path)
        elif any(p in ("", ".", "..") for p in parts) or "\x00" in path:
            scan.unsafe.append(path)
        else:
            candidates.append(path)
    folders = {"/".join(parts[:i]) for parts in (c.split("/") for c in candidates)
               for i in range(1, len(parts))}
    for path in candidates:
        (scan.unsafe if path in folders else scan.usable).append(path)
    return scan


def walk_files(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every file under `root` as (POSIX path relative to `root`, stat), in no set order.

    Symbolic links to files count as files; links to folders are not followed; folders
    that cannot be read are passed over. Raises OSError when `root` cannot be read.
    """
    os.scandir(root).close()  # the root itself must be readable: raise here
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            rel = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), rel + "/"))
                elif entry.is_file():
                    yield rel, entry.stat()
            except OSError:
                continue


def scan_local(root: Path) -> tuple[NameScan, int]:
    """Scan a local data folder: its files under the rule, and their usable total size.

    Raises OSError when `root` itself cannot be read.
    """
    scan = NameScan()
    total = 0
    for rel, info in walk_files(root):
        if name_too_long(rel.rsplit("/", 1)[-1]):
            scan.too_long.append(rel)
        else:
            scan.usable.append(rel)
            total += info.st_size
    return scan, total


def shorten(name: str, limit: int = SHOWN_NAME_CHARS) -> str:
    """A long name cut for a log line, with its length: `aaaa…aaa (300 chars)`."""
    if len(name) <= limit:
        return name
    head = limit * 2 // 3
    return f"{name[:head]}…{name[-(limit - head - 1):]} ({len(name)} chars)"


def describe_skipped(scan: NameScan, where: str) -> list[str]:
    """One warning line per kind of skipped path, quoting the first few."""
    lines = []
    if scan.too_long:
        shown = ", ".join(shorten(n) for n in scan.too_long[:SHOWN_NAMES])
        more = f" and {len(scan.too_long) - SHOWN_NAMES} more" \
            if len(scan.too_long) > SHOWN_NAMES else ""
        lines.append(f"{where}: skipped {len(scan.too_long)} data file(s) with names longer "
                     f"than {MAX_NAME_CHARS} characters: {shown}{more}")
    if scan.unsafe:
        shown = ", ".join(shorten(n) for n in scan.unsafe[:SHOWN_NAMES])
        more = f" and {len(scan.unsafe) - SHOWN_NAMES} more" \
            if len(scan.unsafe) > SHOWN_NAMES else ""
        lines.append(f"{where}: skipped {len(scan.unsafe)} object(s) whose keys cannot be "
                     f"local files ('..', empty parts, or a file that is also a folder): "
                     f"{shown}{more}")
    return lines
