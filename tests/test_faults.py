"""Nothing lost: `kill -9` of a supervisor, or a Docker engine restart, mid-run.

Every version must still end with a truthful final status and its whole log, and no
version may stay `running` for ever. Real supervisors, real processes, real engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import require_image
from runtime_helpers import (
    cli,
    current,
    injected,
    log_lines,
    logreg_spec,
    point_counts,
    same_process_alive,
    script_spec,
    submit,
    wait,
    wait_for,
    wait_status,
)

from app.context import Context
from app.procs import pid_alive
from app.queries import version_events
from app.runtime.launcher import RESTART_EVENT
from app.runtime.plan import INSTANCE_LABEL, instance_tag
from app.store.models import Status, Version

IMAGE = "traindeck/python:3.11"
_restarted_engines: list[subprocess.Popen[bytes]] = []  # keep the handles: no warnings


def step_lines(version: Version, rank: int = 0) -> list[int]:
    """The step numbers the logistic-regression sample printed, in log order."""
    return [int(line.split()[1].split("/")[0]) for line in log_lines(version, rank)
            if line.startswith("step ")]


def kill_supervisor(version: Version) -> int:
    """SIGKILL the version's supervisor and wait until it is gone."""
    pid = version.supervisor_pid or 0
    assert pid_alive(pid)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10, "the supervisor to die")
    return pid


# -- local ---------------------------------------------------------------------------------------


def test_kill_9_of_a_local_supervisor_is_adopted_with_the_whole_log(
        ctx: Context, tmp_path: Path) -> None:
    """Local ranks run under their wrapper, not under the supervisor: a new supervisor
    adopts them, with every line once and the true exit status."""
    steps = 60
    ref = submit(logreg_spec(tmp_path, "k9-local", train_steps=steps, log_every=1,
                             sleep_per_step=0.08))
    version = wait_status(ctx, "k9-local", Status.RUNNING)
    wait_for(lambda: len(step_lines(current(ctx, "k9-local"))) >= 10, 30, "ten steps")
    handle = json.loads(version.handle)
    lost = kill_supervisor(version)
    time.sleep(1.0)  # the rank keeps printing while no supervisor watches it
    assert same_process_alive(handle["pids"][0], handle["start_times"][0])
    assert current(ctx, "k9-local").status == "running"
    cli("list")  # reconciliation starts a supervisor that adopts the rank
    version = current(ctx, "k9-local")
    assert version.supervisor_pid not in (None, lost)
    version = wait(ctx, "k9-local")
    assert (version.status, version.reason, version.exit_code) == ("succeeded", "", 0)
    assert step_lines(version) == list(range(1, steps + 1))  # each once, in order
    lines = log_lines(version)
    assert lines.count("[traindeck] supervisor restarted: adopting the running ranks") == 1
    assert lines[-1] == "[traindeck] succeeded"
    assert point_counts(ctx, ref["id"])["loss"] == (steps, steps)  # no doubled points
    assert RESTART_EVENT in [e.message for e in version_events(ctx.db, ref["id"])]


def test_a_local_rank_that_ended_unwatched_gets_its_real_exit_code(
        ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "k9-local-exit", train_steps=40, log_every=1,
                       sleep_per_step=0.05, fail_at_step=25))
    version = wait_status(ctx, "k9-local-exit", Status.RUNNING)
    handle = json.loads(version.handle)
    kill_supervisor(version)
    wait_for(lambda: not same_process_alive(handle["pids"][0], handle["start_times"][0]), 30,
             "the rank's end")
    cli("list")
    version = wait(ctx, "k9-local-exit")
    assert (version.status, version.reason, version.exit_code) == ("failed", injected(25), 3)
    assert step_lines(version) == list(range(1, 26))


# -- docker --------------------------------------------------------------------------------------


@pytest.fixture
def image(docker_engine: Any, ctx: Context) -> Iterator[Any]:
    """The Docker engine client, with the test image present; removes leftovers after."""
    require_image(docker_engine, IMAGE)
    yield docker_engine
    label = f"{INSTANCE_LABEL}={instance_tag(ctx.settings)}"
    for container in docker_engine.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)


@pytest.mark.docker
def test_kill_9_of_a_docker_supervisor_is_adopted_with_the_whole_log(
        image: Any, ctx: Context, tmp_path: Path) -> None:
    steps = 60
    ref = submit(logreg_spec(tmp_path, "k9-docker", "docker", train_steps=steps, log_every=1,
                             sleep_per_step=0.08))
    version = wait_status(ctx, "k9-docker", Status.RUNNING)
    wait_for(lambda: len(step_lines(current(ctx, "k9-docker"))) >= 10, 30, "ten steps")
    lost = kill_supervisor(version)
    time.sleep(1.0)  # the container keeps printing while nobody copies its output
    assert current(ctx, "k9-docker").status == "running"
    cli("list")  # reconciliation starts a supervisor that adopts the container
    version = current(ctx, "k9-docker")
    assert version.supervisor_pid not in (None, lost)
    version = wait(ctx, "k9-docker")
    assert (version.status, version.reason, version.exit_code) == ("succeeded", "", 0)
    assert step_lines(version) == list(range(1, steps + 1))  # each once, in order
    lines = log_lines(version)
    assert lines.count("[traindeck] supervisor restarted: adopting the running ranks") == 1
    assert lines[-1] == "[traindeck] succeeded"
    assert point_counts(ctx, ref["id"])["loss"] == (steps, steps)  # no doubled points
    messages = [e.message for e in version_events(ctx.db, ref["id"])]
    assert RESTART_EVENT in messages


@pytest.mark.docker
def test_a_container_that_ended_unwatched_gets_its_real_exit_code(
        image: Any, ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "k9-exit", "docker", train_steps=40, log_every=1,
                       sleep_per_step=0.05, fail_at_step=25))
    version = wait_status(ctx, "k9-exit", Status.RUNNING)
    kill_supervisor(version)
    container = image.containers.get(json.loads(version.handle)["containers"][0])
    wait_for(lambda: (container.reload(), container.status)[1] == "exited", 30, "the exit")
    cli("list")
    version = wait(ctx, "k9-exit")
    assert (version.status, version.reason, version.exit_code) == ("failed", injected(25), 3)
    assert step_lines(version) == list(range(1, 26))
    assert any("injected failure at step 25" in line for line in log_lines(version))


@pytest.mark.docker
def test_containers_of_a_submitter_that_died_while_starting_them_are_recovered(
        image: Any, ctx: Context, tmp_path: Path) -> None:
    """The submitter started the containers, then died before it recorded their handle.
    The supervisor reconciliation starts finds them by their labels and adopts them."""
    from app.jobs import submit as core_submit
    from app.runtime.executors import get_executor
    from app.runtime.launcher import open_rank_logs, restart_supervisor, start_ranks
    from app.specs.spec import JobSpec, load_spec_file

    raw, base = load_spec_file(logreg_spec(tmp_path, "dead-starter", "docker", train_steps=30,
                                           log_every=1, sleep_per_step=0.05))
    version_id = core_submit(ctx, raw, base, launcher=lambda c, v: None).version_id
    with ctx.db.read() as session:
        row = session.get(Version, version_id)
    assert row is not None
    spec = JobSpec.model_validate(json.loads(row.spec_json))
    logs = open_rank_logs(ctx, row, fresh=True)
    handle = start_ranks(ctx, "dead-starter", row, spec, [], spec.data.paths or [],
                         get_executor("docker", ctx.settings), logs)  # as a submitter does
    for rank_log in logs.values():
        rank_log.abandon()
    with ctx.db.write() as session:  # ...and as if it died before writing the handle
        row = session.get(Version, version_id)
        assert row is not None
        row.handle, row.status, row.started_at = "", Status.INITIALIZING.value, None
        session.add(row)
    restart_supervisor(ctx, version_id, None)
    version = wait(ctx, "dead-starter")
    assert (version.status, version.exit_code) == ("succeeded", 0)
    assert json.loads(version.handle)["containers"] == handle["containers"]
    assert step_lines(version) == list(range(1, 31))
    assert sum(x.startswith("[traindeck] starting ") for x in log_lines(version)) == 1


FLOODING_JOB = """
    import os, sys, time
    PAD = "x" * 90

    def burst(first, end, pause=0.0):
        for start in range(first, end, 200):
            sys.stdout.writelines(f"line {i} {PAD}\\n" for i in range(start, min(end, start + 200)))
            sys.stdout.flush()
            time.sleep(pause)

    def wait_for(name):
        while not os.path.exists(f"/traindeck/output/{name}"):
            time.sleep(0.05)

    print("ready", flush=True)
    wait_for("go1")
    burst(1, FIRST, 0.04)  # 5,000 lines/s: the supervisor's copy keeps up
    print("phase one done", flush=True)
    wait_for("go2")
    burst(FIRST, END)
    print("all done", flush=True)
"""


def numbered(lines: list[str]) -> list[int]:
    """The numbers of the `line N ...` lines, in log order."""
    return [int(line.split()[1]) for line in lines if line.startswith("line ")]


@pytest.mark.docker
def test_kill_9_of_a_docker_supervisor_mid_flood_loses_and_repeats_nothing(
        image: Any, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job prints 16,000 lines while its supervisor copies them, the supervisor is
    killed, and the job floods 40,000 more while nobody copies: far more than the
    engine's own json-file log keeps here (2 x 1 MiB), which no longer matters. The new
    supervisor copies on from the job's folder after the lines the log holds: each line
    once, in order, with no gap."""
    monkeypatch.setenv("TRAINDECK_DOCKER_LOG_MAX_SIZE", "1m")
    monkeypatch.setenv("TRAINDECK_DOCKER_LOG_MAX_FILE", "2")
    first, end = 16_000, 56_000
    source = FLOODING_JOB.replace("FIRST", str(first)).replace("END", str(end))
    ref = submit(script_spec(tmp_path, "killed-mid-flood", source, "docker"))
    name = "killed-mid-flood"
    version = wait_status(ctx, name, Status.RUNNING)
    wait_for(lambda: "ready" in log_lines(current(ctx, name)), 60, "the copy")
    (Path(version.output) / "go1").touch()
    wait_for(lambda: "phase one done" in log_lines(current(ctx, name)), 60, "phase one")
    kill_supervisor(current(ctx, name))
    (Path(version.output) / "go2").touch()
    container = image.containers.get(json.loads(version.handle)["containers"][0])
    wait_for(lambda: (container.reload(), container.status)[1] == "exited", 60, "the exit")
    cli("list")  # a new supervisor adopts the exited container
    version = wait(ctx, name, timeout=120)
    assert (version.status, version.exit_code) == ("succeeded", 0), version.reason
    lines = log_lines(version)
    assert lines.count("phase one done") == lines.count("all done") == 1
    assert numbered(lines) == list(range(1, end))  # each once, in order
    assert not [e for e in version_events(ctx.db, ref["id"]) if "log" in e.message
                and e.kind == "warning"]
    # Copied, the job's own copy of the log is gone (it only took space).
    assert not (ctx.settings.data_dir / "versions" / str(version.id) / "job"
                / "rank0.log").exists()


def _dockerd() -> tuple[int, list[str]]:
    """The running dockerd's pid and command line."""
    found = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, check=False)
    pids = found.stdout.split()
    if len(pids) != 1:
        pytest.skip(f"need exactly one local dockerd to restart, found {pids}")
    pid = int(pids[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return pid, [a.decode() for a in argv if a]


def _engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20,
                          check=False).returncode == 0


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.serial
def test_docker_engine_restart_mid_run_ends_truthfully(
        image: Any, ctx: Context, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("restarting dockerd needs root")
    pid, argv = _dockerd()
    submit(logreg_spec(tmp_path, "engine-restart", "docker", train_steps=400, log_every=1,
                       sleep_per_step=0.05))
    wait_status(ctx, "engine-restart", Status.RUNNING)
    wait_for(lambda: len(step_lines(current(ctx, "engine-restart"))) >= 5, 30, "five steps")
    # Stop the engine the way an init system does, then start it again exactly as
    # scripts/ensure-docker does: same command line, own session, log appended.
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), 60, "dockerd to exit")
    with open("/var/log/traindeck-dockerd.log", "ab") as engine_log:
        _restarted_engines.append(subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=engine_log, stderr=subprocess.STDOUT,
            start_new_session=True))
    wait_for(_engine_answers, 90, "the Docker engine to answer again")
    version = wait(ctx, "engine-restart", timeout=120)
    assert version.status in ("failed", "succeeded"), version.status
    lines = log_lines(version)
    if version.status == "failed":  # stopped with the engine (no live-restore)
        assert "exit code" in version.reason, version.reason
        assert version.exit_code in (137, 143)
        if version.exit_code == 143:  # the sample's own last words reached the log
            # (the supervisor's own notes about the outage may come after it)
            assert any(line.startswith("received SIGTERM at step ") for line in lines)
    steps = step_lines(version)
    assert steps[:5] == [1, 2, 3, 4, 5]
    assert steps == list(range(1, len(steps) + 1))  # no line twice, none skipped
    assert lines[-1].startswith(f"[traindeck] {version.status}")
    listed = json.loads(cli("list", "--json").stdout)
    assert all(r["status"] not in ("running", "initializing", "queued") for r in listed)


# -- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root, as CI has)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        message = f"cannot mount a tmpfs: {mounted.stderr.strip()}"
        if os.environ.get("TRAINDECK_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


FILLS_THE_LOG = """
    import sys
    sys.stdout.writelines(f"line {i} " + "x" * 100 + "\\n" for i in range(20_000))
    print("done", flush=True)
"""


@pytest.mark.parametrize("runtime", ["local", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_full_log_folder_ends_the_version_truthfully(
        ctx: Context, tmp_path: Path, small_disk: Path, runtime: str,
        request: pytest.FixtureRequest) -> None:
    if runtime == "docker":
        request.getfixturevalue("image")
    spec = script_spec(tmp_path, f"full-{runtime}", FILLS_THE_LOG, runtime)
    raw = yaml.safe_load(spec.read_text())
    raw["log_dir"] = str(small_disk / "logs")
    spec.write_text(yaml.safe_dump(raw))
    ref = submit(spec)
    version = wait(ctx, f"full-{runtime}")
    # The job did nothing wrong: its status says so, and the reason names the cause.
    assert (version.status, version.exit_code) == ("succeeded", 0), version.reason
    assert version.reason.startswith("log incomplete: rank 0: log ")
    assert "No space left on device" in version.reason
    messages = [e.message for e in version_events(ctx.db, ref["id"])]
    assert any(m.startswith("log incomplete: ") for m in messages)
    assert RESTART_EVENT not in messages  # no supervisor died, nothing restarted
    assert cli("list", "--json").returncode == 0
    assert current(ctx, f"full-{runtime}").supervisor_pid == version.supervisor_pid
