"""`traindeck logs`: print a version's rank logs, and follow them while it runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from app.context import Context
from app.errors import NotFoundError
from app.jobs import load_version
from app.logs import LogFollower, list_rank_logs, split_timestamp, tail
from app.models import Status

FOLLOW_POLL_SECONDS = 0.2


def _emit(lines: list[str], prefix: str) -> None:
    out = sys.stdout
    for line in lines:
        out.write(prefix + split_timestamp(line)[1] + "\n")
    out.flush()


def print_logs(
    ctx: Context, job: str, label: str | None, *, rank: int | None = None,
    follow: bool = False, tail_lines: int | None = None,
) -> int:
    """Print the logs; with `follow`, keep printing until the version ends."""
    with ctx.db.read() as session:
        _, version = load_version(session, job, label)
    version_id, log_dir = version.id, Path(version.log_dir)
    nodes = max(1, version.nodes)
    ranks = [rank] if rank is not None else list(range(nodes))
    if rank is not None and not 0 <= rank < nodes:
        raise NotFoundError(f"--rank: {job} has ranks 0..{nodes - 1}")
    known = dict(list_rank_logs(log_dir))
    followers: list[tuple[str, LogFollower]] = []
    for r in ranks:
        path = known.get(r, log_dir / f"rank-{r}.log")
        prefix = f"[rank {r}] " if len(ranks) > 1 else ""
        if tail_lines is not None and path.exists():
            lines, offset = tail(path, tail_lines)
            follower = LogFollower(path, offset)
        else:
            follower = LogFollower(path, 0)
            lines = follower.read_new()
        _emit(lines, prefix)
        followers.append((prefix, follower))
    if not follow:
        return 0
    while True:
        with ctx.db.read() as session:
            from app.models import Version

            current = session.get(Version, version_id)
        final = current is None or Status(current.status).is_final
        got = False
        for prefix, follower in followers:
            lines = follower.read_new()
            got = got or bool(lines)
            _emit(lines, prefix)
        if final and not got:
            # The supervisor closes the logs before the status turns final: whatever is
            # still unterminated now is the rank's last line.
            for prefix, follower in followers:
                _emit(follower.read_new(final=True), prefix)
            return 0
        if not got:
            time.sleep(FOLLOW_POLL_SECONDS)
