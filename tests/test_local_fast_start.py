"""The fast start of local versions: the submitter plans, the supervisor's first stage
starts the ranks before its heavy imports, the second stage records and watches them.

Real supervisors and real ranks throughout; what is varied is only what the submitter
hands over (a broken plan) or whether it lives to hand anything over.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from test_runtime_local import log_lines, running_pids, script_spec, submit_in_process, wait
from test_runtime_local import wait_status as wait_for_status

from app.context import Context
from app.jobs import submit as core_submit
from app.models import Status, Version
from app.runtime.executors.base import plan_from_json, plan_to_json
from app.runtime.executors.local import LocalExecutor
from app.runtime.handoff import (
    HANDOFF_ENV,
    KIND_ENV,
    STARTER_ENV,
    WarmStart,
    _rank_logs,
    _start_pumps,
    handoff_path,
    write_handoff,
)
from app.runtime.launcher import _spawn
from app.runtime.plan import state_dir
from app.runtime.procs import hostname
from app.runtime.startup import STARTING, start_in_caller
from app.spec import load_spec_file

SLEEPER = """\
import os, time
print(f"ppid {os.getppid()}", flush=True)
time.sleep(1.5)
print("done", flush=True)
"""


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_local_ranks_are_started_by_their_supervisor_first_stage(
        ctx: Context, tmp_path: Path) -> None:
    submit_in_process(ctx, script_spec(tmp_path, "fast-local", SLEEPER))
    version = wait_for_status(ctx, "fast-local", Status.RUNNING,
                              predicate=lambda v: bool(v.handle) and "pids" in v.handle)
    (pid,) = running_pids(version)
    # The rank is the supervisor's own child: it reads the pipe and reaps the exit code.
    assert _ppid(pid) == version.supervisor_pid
    assert version.executor == "local"
    version = wait(ctx, "fast-local")
    assert (version.status, version.exit_code) == ("succeeded", 0)
    lines = log_lines(version)
    assert sum(x.startswith("[traindeck] starting ") for x in lines) == 1
    assert f"ppid {version.supervisor_pid}" in lines and "done" in lines


def _submitted(ctx: Context, tmp_path: Path, name: str) -> int:
    """A version submitted without starting anything (as before the launcher runs)."""
    raw, base = load_spec_file(script_spec(tmp_path, name, SLEEPER))
    return core_submit(ctx, raw, base, launcher=lambda c, v: None).version_id


def _spawn_supervisor(ctx: Context, version_id: int, starter: int) -> subprocess.Popen[bytes]:
    path = handoff_path(state_dir(ctx.settings, version_id))
    path.parent.mkdir(parents=True, exist_ok=True)
    return _spawn(ctx, version_id, {HANDOFF_ENV: str(path), STARTER_ENV: str(starter),
                                    KIND_ENV: "local"})


def test_a_rank_that_cannot_start_fails_the_version_with_the_reason(
        ctx: Context, tmp_path: Path) -> None:
    version_id = _submitted(ctx, tmp_path, "fast-broken")
    proc = _spawn_supervisor(ctx, version_id, starter=os.getpid())

    def hand_off(payload: dict[str, Any]) -> None:
        plan = plan_from_json(payload["plan"])
        rank = plan.ranks[0]
        broken = [str(tmp_path / "no-such-interpreter"), *rank.argv[1:]]
        payload["plan"] = plan_to_json(
            type(plan)(**{**plan.__dict__, "ranks": [type(rank)(**{**rank.__dict__,
                                                                    "argv": broken})]}))
        write_handoff(handoff_path(state_dir(ctx.settings, version_id)), payload)

    start_in_caller(ctx, version_id, hand_off, supervisor_pid=proc.pid)
    version = wait(ctx, "fast-broken")
    assert version.status == "failed"
    assert "no-such-interpreter" in version.reason
    assert f"[traindeck] failed: {version.reason}" in log_lines(version)


def test_a_supervisor_whose_submitter_died_before_the_handoff_starts_the_run_itself(
        ctx: Context, tmp_path: Path) -> None:
    version_id = _submitted(ctx, tmp_path, "fast-orphan")
    starter = subprocess.Popen(["sleep", "60"])
    try:
        proc = _spawn_supervisor(ctx, version_id, starter=starter.pid)
        with ctx.db.write() as session:  # marked as the supervisor's to start...
            row = session.get(Version, version_id)
            assert row is not None
            row.handle = json.dumps({"kind": "local", STARTING: proc.pid, "host": hostname()})
            session.add(row)
    finally:
        starter.kill()  # ...and the submitter dies before handing the plan over
        starter.wait()
    version = wait(ctx, "fast-orphan")
    assert (version.status, version.supervisor_pid) == ("succeeded", proc.pid)
    assert "done" in log_lines(version)
    assert "pids" in json.loads(version.handle)


def _first_stage_pumps(ctx: Context, tmp_path: Path, name: str, source: str
                       ) -> tuple[WarmStart, list[str]]:
    """Start a version's ranks and pumps as a supervisor's first stage does."""
    raw, base = load_spec_file(script_spec(tmp_path, name, source))
    version_id = core_submit(ctx, raw, base, launcher=lambda c, v: None).version_id
    payloads: list[dict[str, Any]] = []
    start_in_caller(ctx, version_id, payloads.append, supervisor_pid=os.getpid())
    (payload,) = payloads
    executor = LocalExecutor()
    warm = WarmStart(handle={}, executor=executor, logs=_rank_logs(payload), started_here=True)
    warm.handle = executor.start(plan_from_json(payload["plan"]))
    ended: list[str] = []
    _start_pumps(warm, lambda: ended.append("ended"))
    return warm, ended


def test_the_first_output_is_signalled_once_it_is_in_the_log(
        ctx: Context, tmp_path: Path) -> None:
    """The supervisor's heavy imports wait for this (they would hold up the pumps)."""
    warm, ended = _first_stage_pumps(ctx, tmp_path, "first-out",
                                     "import time\nprint('first', flush=True)\ntime.sleep(2)\n")
    assert warm.first_output.wait(10)
    assert not ended  # the rank still runs: the output, not the end, set it
    assert warm.logs[0].path.read_text().endswith(" first\n")
    for thread in warm.threads:
        thread.join(10)
    assert ended == ["ended"]


def test_a_rank_that_prints_nothing_does_not_keep_the_first_output_waiting(
        ctx: Context, tmp_path: Path) -> None:
    warm, ended = _first_stage_pumps(ctx, tmp_path, "no-out", "pass\n")
    assert warm.first_output.wait(10)
    for thread in warm.threads:
        thread.join(10)
    assert ended == ["ended"]
