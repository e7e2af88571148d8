"""The run engine end to end with local processes: real supervisors, real ranks, no mocks.

Every version here is started the way a user starts one — `traindeck submit` or
`app.jobs.submit` with the default launcher, i.e. a detached supervisor process — and
watched through the database with `wait_final`.

The helpers are shared with the other runtime test modules, in `runtime_helpers.py`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from helpers import count_rows, traindeck_executable, write_yaml
from runtime_helpers import (
    BLOBS,
    ECHO_BOOT,
    FOUR_METRICS,
    RENDEZVOUS_BOOT,
    SAMPLES,
    STAMPED,
    cli,
    current,
    injected,
    log_lines,
    log_text,
    logreg_spec,
    point_counts,
    running_pids,
    same_process_alive,
    script_spec,
    show,
    submit,
    submit_in_process,
    wait,
    wait_status,
)

from app.context import Context
from app.queries import version_events
from app.runtime.launcher import RESTART_EVENT
from app.store.models import Status

# -- success, failure, stop, delete ---------------------------------------------------------


def test_success_with_metrics(ctx: Context, tmp_path: Path) -> None:
    ref = submit(logreg_spec(tmp_path, "lr-ok", train_steps=40, log_every=5))
    version = wait(ctx, "lr-ok")
    assert (version.status, version.reason, version.exit_code) == ("succeeded", "", 0)
    record = show("lr-ok")
    assert record["id"] == ref["id"]
    for name in (*FOUR_METRICS, "loss"):
        assert 0 <= record["metrics"][name] <= 1.5, name
    assert record["metrics"]["accuracy"] > 0.8
    counts = point_counts(ctx, ref["id"])
    assert counts["loss"] == (8, 8)  # steps 5, 10, ..., 40
    lines = log_lines(version)
    assert lines[0].startswith("[traindeck] starting lr-ok V001: 1 rank(s) with local")
    assert "step 40/40" in " ".join(lines)
    assert lines[-1] == "[traindeck] succeeded"
    assert (Path(version.output) / "metrics.json").is_file()


def test_failure_has_exit_code(ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "lr-fail", fail_at_step=3, log_every=1))
    version = wait(ctx, "lr-fail")
    assert (version.status, version.reason, version.exit_code) == ("failed", injected(3), 3)
    text = log_text(version)
    assert "injected failure at step 3" in text
    assert text.rstrip().endswith(f"[traindeck] failed: {injected(3)}")
    assert show("lr-fail")["exit_code"] == 3


def test_stop_ends_the_process(ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "lr-stop", train_steps=10_000, sleep_per_step=0.05))
    version = wait_status(ctx, "lr-stop", Status.RUNNING)
    pid = running_pids(version)[0]
    start = json.loads(version.handle)["start_times"][0]
    assert same_process_alive(pid, start)
    assert cli("stop", "lr-stop").stdout.strip() == "stopping lr-stop V001"
    version = wait(ctx, "lr-stop", timeout=30)
    assert (version.status, version.reason) == ("stopped", "stopped by user")
    assert version.exit_code == 143  # the sample exits 143 on SIGTERM
    assert not same_process_alive(pid, start)
    assert "received SIGTERM" in log_text(version)


def test_delete_stops_first_and_keeps_files_unless_purged(ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "lr-del", train_steps=10_000, sleep_per_step=0.05))
    version = wait_status(ctx, "lr-del", Status.RUNNING)
    pid, start = running_pids(version)[0], json.loads(version.handle)["start_times"][0]
    state = ctx.settings.data_dir / "versions" / str(version.id)
    assert state.is_dir()
    done = json.loads(cli("delete", "lr-del", "--yes", "--json").stdout)
    assert done == {"job": "lr-del", "deleted": ["V001"]}
    assert not same_process_alive(pid, start)
    assert "not found" in cli("show", "lr-del", check=False).stderr
    assert count_rows(ctx.db)["versions"] == 0
    assert count_rows(ctx.db)["events"] == 0
    assert Path(version.log_dir, "rank-0.log").is_file()  # files stay...
    assert Path(version.output).is_dir()
    assert not state.exists()  # ...Traindeck's own state goes

    submit(logreg_spec(tmp_path, "lr-purge"))
    version = wait(ctx, "lr-purge")
    cli("delete", "lr-purge", "--yes", "--purge")
    assert not Path(version.log_dir).exists()
    assert not Path(version.output).exists()


# -- logs ---------------------------------------------------------------------------------------


def test_logs_follow_until_the_end(ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "lr-follow", train_steps=20, log_every=1, sleep_per_step=0.1))
    follower = subprocess.Popen([traindeck_executable(), "logs", "-f", "lr-follow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert Status(current(ctx, "lr-follow").status).is_final
    lines = out.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert steps == [line for line in steps if "/20 " in line] and len(steps) == 20
    assert lines[-1] == "[traindeck] succeeded"
    assert not any(STAMPED.match(line) for line in lines)  # printed without the stamps


# -- detachment ---------------------------------------------------------------------------------


def test_submitter_returns_at_once_and_the_run_continues(ctx: Context, tmp_path: Path) -> None:
    spec = logreg_spec(tmp_path, "lr-detach", train_steps=30, log_every=1, sleep_per_step=0.1)
    started = time.monotonic()
    ref = submit(spec)
    assert time.monotonic() - started < 10
    assert ref["status"] == "initializing"
    assert not Status(current(ctx, "lr-detach").status).is_final
    version = wait(ctx, "lr-detach")
    assert version.status == "succeeded"
    assert sum(line.startswith("step ") for line in log_lines(version)) == 30


def test_kill_9_of_the_submitter_does_not_touch_the_run(ctx: Context, tmp_path: Path) -> None:
    spec = logreg_spec(tmp_path, "lr-k9sub", train_steps=30, log_every=1, sleep_per_step=0.1)
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from app.context import Context
        from runtime_helpers import submit_in_process
        from pathlib import Path
        print(submit_in_process(Context.open(), Path({str(spec)!r})), flush=True)
        time.sleep(600)
    """)
    submitter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert submitter.stdout is not None
        version_id = int(submitter.stdout.readline())
        wait_status(ctx, "lr-k9sub", Status.RUNNING)
        submitter.kill()
        submitter.wait(10)
    finally:
        submitter.kill()
    version = wait(ctx, "lr-k9sub")
    assert (version.id, version.status, version.exit_code) == (version_id, "succeeded", 0)
    assert sum(line.startswith("step ") for line in log_lines(version)) == 30


def test_sighup_to_the_supervisor_session_does_nothing(ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "lr-hup", train_steps=25, log_every=1, sleep_per_step=0.1))
    version = wait_status(ctx, "lr-hup", Status.RUNNING)
    supervisor = version.supervisor_pid or 0
    assert os.getsid(supervisor) == supervisor  # a session (and group) of its own
    os.killpg(supervisor, signal.SIGHUP)
    version = wait(ctx, "lr-hup")
    assert (version.status, version.supervisor_pid) == ("succeeded", supervisor)
    assert sum(line.startswith("step ") for line in log_lines(version)) == 25


def test_stop_right_after_submit_is_not_lost(ctx: Context, tmp_path: Path) -> None:
    """The stop signal reaches a supervisor still importing: it is kept, not fatal."""
    from app.runtime.control import stop_version

    submit_in_process(ctx, logreg_spec(tmp_path, "lr-early", train_steps=10_000,
                                       sleep_per_step=0.05))
    assert stop_version(ctx, "lr-early") in ("stopping lr-early V001", "lr-early V001 stopped")
    version = wait(ctx, "lr-early", timeout=30)
    assert (version.status, version.reason) == ("stopped", "stopped by user")
    messages = [e.message for e in version_events(ctx.db, version.id or 0)]
    assert RESTART_EVENT not in messages  # the first supervisor survived the signal


# -- what reaches the boot file -----------------------------------------------------------------


def test_parameters_never_pass_through_a_shell(ctx: Context, tmp_path: Path) -> None:
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    evil = f"1; touch {marker}"
    spec = script_spec(tmp_path, "inject", ECHO_BOOT,
                       parameters={"evil": evil, "quote": "a'b\"c $(id) `id`"})
    submit(spec)
    version = wait(ctx, "inject")
    assert version.status == "succeeded", version.reason
    argv = json.loads((Path(version.output) / "argv-0.json").read_text())
    assert f"--evil={evil}" in argv
    assert "--quote=a'b\"c $(id) `id`" in argv
    assert argv[1].startswith("--data_url=") and argv[2].startswith("--train_url=")
    assert not marker.exists()


def test_requirements_are_installed_before_the_boot_file(ctx: Context, tmp_path: Path) -> None:
    package = tmp_path / "pkgsrc"
    (package / "tdprobe").mkdir(parents=True)
    (package / "tdprobe" / "__init__.py").write_text("ANSWER = 42\n")
    (package / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "tdprobe"
        version = "1.0"
        [tool.setuptools]
        packages = ["tdprobe"]
    """))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(wheels), str(package)], check=True,
                   capture_output=True, timeout=120)
    wheel = next(wheels.glob("tdprobe-1.0-*.whl"))
    spec = script_spec(tmp_path, "reqs", """\
        import tdprobe
        print(f"tdprobe answer {tdprobe.ANSWER} from {tdprobe.__file__}", flush=True)
    """, files={"requirements.txt": f"{wheel}\n"})
    submit(spec)
    version = wait(ctx, "reqs", timeout=120)
    lines = log_lines(version)
    assert version.status == "succeeded", "\n".join(lines)
    installing = next(i for i, x in enumerate(lines) if x.startswith(
        "[traindeck] installing requirements.txt"))
    installed = lines.index("[traindeck] requirements installed")
    answer = next(i for i, x in enumerate(lines) if x.startswith("tdprobe answer 42 from "))
    assert installing < installed < answer
    envs = ctx.settings.data_dir / "envs" / "local"
    assert str(envs) in lines[answer]  # from an environment on top of the engine, cached


# -- distributed --------------------------------------------------------------------------------


def test_two_ranks_get_torchrun_variables(ctx: Context, tmp_path: Path) -> None:
    submit(script_spec(tmp_path, "ranks", RENDEZVOUS_BOOT, nodes=2))
    version = wait(ctx, "ranks")
    assert version.status == "succeeded", version.reason
    envs = [json.loads((Path(version.output) / f"env-{r}.json").read_text()) for r in (0, 1)]
    for rank, env in enumerate(envs):
        assert env["RANK"] == env["NODE_RANK"] == str(rank)
        assert (env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == ("2", "0", "1")
        assert env["MASTER_ADDR"] == "127.0.0.1"
        assert env["TRAINDECK_JOB"] == "ranks" and env["TRAINDECK_VERSION"] == "V001"
        assert env["TRAINDECK_METRICS_FILE"].endswith(f"metrics.rank{rank}.jsonl")
        assert env["CUDA_VISIBLE_DEVICES"] == ""  # a CPU version sees no GPU
    assert envs[0]["MASTER_PORT"] == envs[1]["MASTER_PORT"]
    assert 1024 < int(envs[0]["MASTER_PORT"]) < 65536
    assert "rank 0 got hello from rank 1" in log_lines(version, 0)
    assert "rank 1 sent" in log_lines(version, 1)


@pytest.mark.slow
def test_torch_mlp_on_two_local_nodes(ctx: Context, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    spec = write_yaml(tmp_path / "mlp2.yaml", {
        "name": "mlp2",
        "data": {"paths": [str(BLOBS)]},
        "algorithm": {"framework": {"engine": "pytorch", "engine_version": "2.13",
                                    "code_dir": str(SAMPLES / "torch_mlp"),
                                    "boot_file": "train.py"}},
        "parameters": {"epochs": 2, "hidden": 8, "batch_size": 64, "seed": 1},
        "output": str(tmp_path / "mlp2" / "out"),
        "log_dir": str(tmp_path / "mlp2" / "logs"),
        "resources": {"runtime": "local", "nodes": 2},
    })
    submit(spec)
    version = wait(ctx, "mlp2", timeout=180)
    assert version.status == "succeeded", log_text(version)
    for rank in (0, 1):
        text = "\n".join(log_lines(version, rank))
        assert f"rank {rank}/2" in text
    assert (Path(version.output) / "metrics.json").is_file()
    assert set(FOUR_METRICS) <= set(show("mlp2")["metrics"])
