"""How a version ended: its final status and a reason a user can act on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.runtime.executors import RankExit
from app.runtime.failure import error_line
from app.store.models import Status


@dataclass(frozen=True)
class Outcome:
    """How a version ended."""

    status: Status
    reason: str = ""
    exit_code: int | None = None


def outcome_of(exits: list[RankExit], failed_first: list[RankExit], stopped: bool,
               logs: Mapping[int, Path] | None = None) -> Outcome:
    """The final status of a version from how its ranks ended.

    `failed_first` are the ranks seen failing before the others were stopped: one of
    them, not a rank the stop itself ended, is the reason given. With `logs` (each
    rank's log file) a failure's reason ends with the last meaningful error line of the
    failed rank's log (`exit code 2: train.py: error: unrecognized arguments: ...`).
    """
    bad = [e for e in exits if e.exit_code != 0 or e.error]
    culprit = next(iter(failed_first), None) or next(iter(bad), None)
    if stopped and not failed_first:
        return Outcome(Status.STOPPED, "stopped by user",
                       culprit.exit_code if culprit else 0)
    if culprit is None:
        return Outcome(Status.SUCCEEDED, "", 0)
    reason = describe_exit(culprit, len(exits) > 1)
    log_path = (logs or {}).get(culprit.rank)
    line = error_line(log_path) if log_path is not None and not culprit.error else None
    if line and not (line == "Killed" and reason.startswith("killed")):
        reason += f": {line}"
    return Outcome(Status.FAILED, reason, culprit.exit_code)


def describe_exit(exit_: RankExit, several: bool) -> str:
    """A failure reason a user can act on."""
    where = f" (rank {exit_.rank})" if several else ""
    if exit_.error:
        return exit_.error + where
    if exit_.oom_killed:
        return f"killed (OOM){where}"
    if exit_.exit_code == 137:
        return f"killed (SIGKILL, exit code 137){where}"
    return f"exit code {exit_.exit_code}{where}"
