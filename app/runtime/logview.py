"""`traindeck logs`: print a version's rank logs, and follow them while it runs.

The whole log is printed, a bounded block at a time (memory stays constant however big
the file). Terminal control characters of the job's output are shown escaped (`\\x1b`)
unless `raw`: a job cannot retitle, clear or move the user's terminal through `logs`.
"""

from __future__ import annotations

import sys
import time
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import NotFoundError, TraindeckError
from app.logs import (
    LogFollower,
    escape_controls,
    last_rewrite,
    list_rank_logs,
    split_timestamp,
    tail,
)

if TYPE_CHECKING:
    from app.context import Context

FOLLOW_POLL_SECONDS = 0.2


def _emit(lines: list[str], prefix: str, raw: bool = False) -> None:
    out = sys.stdout
    for line in lines:
        text = split_timestamp(line)[1]
        out.write(prefix + (text if raw else escape_controls(last_rewrite(text))) + "\n")
    out.flush()


def _drain(follower: LogFollower, prefix: str, raw: bool, *, final: bool = False) -> bool:
    """Print everything the follower has now, a block at a time; True when it had lines."""
    got = False
    while True:
        offset = follower.offset
        lines = follower.read_new()
        _emit(lines, prefix, raw)
        got = got or bool(lines)
        if not lines and follower.offset == offset:
            break
    if final:
        lines = follower.read_new(final=True)
        _emit(lines, prefix, raw)
        got = got or bool(lines)
    return got


def print_logs(
    ctx: Context, job: str, label: str | None, *, rank: int | None = None,
    follow: bool = False, tail_lines: int | None = None, raw: bool = False,
) -> int:
    """Print the logs (all of them, or the last `tail_lines` of all ranks); with
    `follow`, keep printing until the version ends. `raw`: control characters as they are."""
    from app.lifecycle import load_version
    from app.runtime.plan import rank_count
    from app.store.models import Status, Version

    if tail_lines is not None and tail_lines < 0:
        raise TraindeckError(f"--tail: must be 0 or more, got {tail_lines}")
    with ctx.db.read() as session:
        _, version = load_version(session, job, label)
    version_id = version.id
    followers = print_rank_logs(Path(version.log_dir), rank_count(version), job, rank=rank,
                                follow=follow, tail_lines=tail_lines, raw=raw)
    if not follow:
        return 0
    while True:
        with ctx.db.read() as session:
            current = session.get(Version, version_id)
        final = current is None or Status(current.status).is_final
        got = False
        for prefix, follower in followers:
            got = _drain(follower, prefix, raw) or got
        if final and not got:
            # The supervisor closes the logs before the status turns final: whatever is
            # still unterminated now is the rank's last line.
            for prefix, follower in followers:
                _emit(follower.read_new(final=True), prefix, raw)
            return 0
        if not got:
            time.sleep(FOLLOW_POLL_SECONDS)


def print_rank_logs(
    log_dir: Path, count: int, job: str, *, rank: int | None = None, follow: bool = False,
    tail_lines: int | None = None, raw: bool = False,
) -> list[tuple[str, LogFollower]]:
    """Print what the `count` rank logs in `log_dir` hold now (or `rank`'s only); the
    followers that go on from there, each with its line prefix. Standard library only:
    the cold `traindeck logs` calls it without the core."""
    ranks = [rank] if rank is not None else list(range(count))
    if rank is not None and not 0 <= rank < count:
        raise NotFoundError(f"--rank: {job} has ranks 0..{count - 1}")
    known = dict(list_rank_logs(log_dir))
    followers: list[tuple[str, LogFollower]] = []
    tails: list[tuple[str, int, int, str]] = []  # (time stamp, rank, line number, line)
    for r in ranks:
        path = known.get(r, log_dir / f"rank-{r}.log")
        prefix = f"[rank {r}] " if len(ranks) > 1 else ""
        if tail_lines is not None and path.exists():
            lines, offset = tail(path, tail_lines, include_partial=not follow)
            follower = LogFollower(path, offset)
            tails += [(split_timestamp(line)[0] or "", r, i, line) for i, line in enumerate(lines)]
        else:
            follower = LogFollower(path, 0)
            # Without follow, a line still being written is shown too: it is the end.
            _drain(follower, prefix, raw, final=not follow)
        followers.append((prefix, follower))
    # The version's last lines, whichever rank wrote them, in the order they were written.
    last = sorted(tails) if len(ranks) > 1 else tails
    for r, lines in groupby(last[len(last) - (tail_lines or 0):], key=lambda t: t[1]):
        _emit([line for *_, line in lines], f"[rank {r}] " if len(ranks) > 1 else "", raw)
    return followers
