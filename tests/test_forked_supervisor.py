"""Supervisors forked from a `traindeck` command instead of started as new interpreters.

A command-line process allows it (`procs.allow_forking`); the TUI and any other caller
of `app.jobs.submit` keep spawning `python -m app.runtime.supervisor ID`. A forked
supervisor must be indistinguishable from a spawned one to everything else: it carries
the same title, lives in its own session, holds none of the caller's descriptors, keeps
a stop sent while it starts, and is recognised as alive by reconciliation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from test_cli_helper import Helper, helper, warm_helper  # noqa: F401 - fixtures
from test_runtime_local import (
    cli,
    log_lines,
    script_spec,
    submit,
    submit_in_process,
    wait,
    wait_status,
)

from app.context import Context
from app.models import Status
from app.queries import version_events
from app.runtime import procs
from app.runtime.launcher import RESTART_EVENT
from app.runtime.procs import SUPERVISOR_MODULE, cmdline, supervisor_alive

TICKS = """\
import sys, time
for i in range(int(sys.argv[-1].split("=")[1])):
    print("tick", i, flush=True)
    time.sleep(0.1)
"""


def ticking(base: Path, name: str, ticks: int, runtime: str = "local") -> Path:
    return script_spec(base, name, TICKS, runtime, parameters={"ticks": ticks})


def raw_cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def assert_forked_supervisor(pid: int, version_id: int) -> None:
    """`pid` is a forked supervisor of `version_id`: one title string, not an argv."""
    title = raw_cmdline(pid).rstrip(b"\0").decode()
    assert "\0" not in title, title  # spawned ones have an argv of NUL-separated words
    assert title.split()[-3:] == ["-m", SUPERVISOR_MODULE, str(version_id)], title
    assert os.getsid(pid) == pid  # a session of its own: no terminal reaches it
    assert supervisor_alive(pid, version_id)
    assert not supervisor_alive(pid, version_id + 1)


def test_a_command_forks_its_supervisor_and_lets_go_of_the_callers_pipes(
        ctx: Context, tmp_path: Path) -> None:
    started = time.monotonic()
    submit(ticking(tmp_path, "forked", ticks=60))  # its stdout and stderr are pipes
    assert time.monotonic() - started < 5  # they closed before the run's 6 s ended
    version = wait_status(ctx, "forked", Status.RUNNING)
    assert_forked_supervisor(version.supervisor_pid or 0, version.id or 0)
    cli("list")  # reconciles: a forked supervisor counts as alive
    version = wait(ctx, "forked")
    assert version.status == "succeeded", version.reason
    assert [line for line in log_lines(version) if line.startswith("tick")] == [
        f"tick {i}" for i in range(60)]
    assert RESTART_EVENT not in [e.message for e in version_events(ctx.db, version.id or 0)]


def test_a_stop_sent_as_the_forked_supervisor_starts_is_kept(
        ctx: Context, tmp_path: Path) -> None:
    submit(ticking(tmp_path, "early", ticks=10_000))
    stopped = cli("stop", "early")
    assert "early V001" in stopped.stdout
    version = wait(ctx, "early", timeout=30)
    assert (version.status, version.reason) == ("stopped", "stopped by user")
    assert RESTART_EVENT not in [e.message for e in version_events(ctx.db, version.id or 0)]


def test_in_process_submits_still_spawn(ctx: Context, tmp_path: Path) -> None:
    """A caller that did not allow forking (the TUI, a script) spawns an interpreter."""
    assert not procs.may_fork()
    version_id = submit_in_process(ctx, ticking(tmp_path, "spawned", ticks=20))
    version = wait_status(ctx, "spawned", Status.RUNNING)
    argv = cmdline(version.supervisor_pid or 0)
    assert argv[-3:] == ["-m", SUPERVISOR_MODULE, str(version_id)]  # NUL-separated words
    assert wait(ctx, "spawned").status == "succeeded"


def test_through_the_helper_the_supervisor_is_forked_from_the_command(
        warm_helper: Helper, ctx: Context, tmp_path: Path) -> None:  # noqa: F811 - fixture
    spec = ticking(tmp_path, "helped", ticks=20)
    done = warm_helper.run("submit", "--json", spec)
    assert done.returncode == 0, done.stderr
    version = wait_status(ctx, "helped", Status.RUNNING)
    assert_forked_supervisor(version.supervisor_pid or 0, version.id or 0)
    version = wait(ctx, "helped")
    assert version.status == "succeeded", version.reason
    assert [line for line in log_lines(version) if line.startswith("tick")] == [
        f"tick {i}" for i in range(20)]


def test_may_fork_only_when_allowed_and_no_other_thread_runs(tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import threading, time
        from app.runtime import procs
        print(procs.may_fork())
        procs.allow_forking()
        print(procs.may_fork())
        stop = threading.Event()
        busy = threading.Thread(target=stop.wait)
        busy.start()
        print(procs.may_fork())
        procs.allow_forking(busy)  # declared harmless
        print(procs.may_fork())
        stop.set()
        busy.join()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    assert out == ["False", "True", "False", "True"]


def test_a_titled_process_is_recognised_by_its_words_not_a_substring() -> None:
    title = f"{sys.executable} -m {SUPERVISOR_MODULE} 17"
    code = f"import setproctitle, time; setproctitle.setproctitle({title!r}); " \
           "print('ok', flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ok\n"
        assert supervisor_alive(proc.pid, 17)
        assert not supervisor_alive(proc.pid, 7)  # "7" is in "17", but not a word of it
    finally:
        proc.kill()
        proc.wait()
