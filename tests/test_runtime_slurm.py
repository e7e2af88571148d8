"""The Slurm executor against a real single-host Slurm (`scripts/ensure-slurm`): real
sbatch, srun, squeue and scancel, real rank wrappers, real supervisors, no mocks.

Without a Slurm controller the tests skip, or fail when `TRAINDECK_REQUIRE_SLURM=1`.
Versions are made with `app.jobs.submit` (a launcher that starts nothing) and planned by
`app.runtime.plan.build_plan`, as the supervisor does; the executor then runs them. The
last tests start the version's job as `app.runtime.launcher.start_ranks` does and hand
it to a detached supervisor (`launch`), which adopts it by its recorded Slurm job id.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import SLURM_PARTITION, noop_launcher
from runtime_helpers import ECHO_BOOT
from sqlmodel import select

import app.store.db
from app.config import PoolSettings, get_settings
from app.context import Context
from app.jobs import submit
from app.logs import split_timestamp
from app.procs import pid_alive
from app.queries import version_events
from app.runtime.control import stop_version, wait_final
from app.runtime.executors import ExecutorError, RankExit, get_executor
from app.runtime.executors.base import Handle, LaunchPlan
from app.runtime.executors.slurm import (
    PartitionUsage,
    SlurmExecutor,
    _gpu_count,
    job_state,
    partition_problems,
    partition_usage,
)
from app.runtime.launcher import RESTART_EVENT, launch, open_rank_logs, start_ranks
from app.runtime.plan import build_plan
from app.runtime.reconcile import reconcile
from app.runtime.slurmtask import first_host, slurm_rank_env
from app.specs.spec import JobSpec
from app.store.models import Job, MetricSummary, Version

PARTITION = SLURM_PARTITION
SLEEPER = """\
    import sys, time
    print("ready", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def handles() -> Iterator[list[Handle]]:
    """Handles whose Slurm jobs are cancelled at teardown, whatever the test did."""
    found: list[Handle] = []
    yield found
    for handle in found:
        subprocess.run(["scancel", handle["job_id"]], capture_output=True, timeout=30)


def pool(**fields: Any) -> PoolSettings:
    return PoolSettings(name="cluster", kind="slurm", partition=PARTITION, **fields)


def plan_version(ctx: Context, tmp_path: Path, source: str, *, per_node: int = 1,
                 parameters: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None) -> tuple[LaunchPlan, Version]:
    """Submit a job (nothing started) whose boot file is `source`, and plan its V001."""
    name = f"slurm-{uuid.uuid4().hex[:8]}"
    base = tmp_path / name
    (base / "code").mkdir(parents=True)
    (base / "data").mkdir()
    (base / "code" / "train.py").write_text(textwrap.dedent(source), encoding="utf-8")
    (base / "data" / "sample.csv").write_text("x,y\n1,0\n", encoding="utf-8")
    raw = {"name": name, "data": {"paths": ["data"]},
           "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                       "code_dir": "code", "boot_file": "train.py"}},
           "parameters": parameters or {}, "env": env or {}, "output": "out",
           "log_dir": "logs",
           "resources": {"runtime": "local", "processes_per_node": per_node}}
    ref = submit(ctx, raw, base, launcher=noop_launcher)
    with ctx.db.read() as session:
        version = session.get(Version, ref.version_id)
    assert version is not None
    spec = JobSpec.model_validate(json.loads(version.spec_json))
    return build_plan(ctx.settings, name, version, spec, []), version


def start(executor: SlurmExecutor, plan: LaunchPlan, handles: list[Handle]) -> Handle:
    handle = executor.start(plan)
    handles.append(handle)
    return handle


def wait_until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout:.0f}s"
        time.sleep(0.2)
    return value


def wait_ended(executor: SlurmExecutor, handle: Handle, timeout: float = 60
               ) -> list[RankExit]:
    exits = wait_until(lambda: (e := executor.poll(handle)) and None not in e and e,
                       timeout, f"the end of Slurm job {handle['job_id']}")
    return list(exits)


def log_text(plan: LaunchPlan, rank: int) -> str:
    """A rank's log with the stamps taken off (every line must have one)."""
    lines = Path(plan.ranks[rank].log).read_text(encoding="utf-8").splitlines()
    stamped = [split_timestamp(line) for line in lines]
    assert all(stamp is not None for stamp, _ in stamped), lines
    return "\n".join(text for _, text in stamped)


# -- without a controller ---------------------------------------------------------------------


def test_first_host_of_a_slurm_host_list() -> None:
    assert first_host("gpu[03-05,9],cpu1") == "gpu03"
    assert first_host("node7,node2") == "node7"
    assert first_host("login") == "login"


def test_gpus_of_a_gres_field() -> None:
    assert _gpu_count("gpu:a100:4(S:0-1),shard:8") == 4
    assert _gpu_count("gpu:2,gpu:v100:1(IDX:0)") == 3
    assert _gpu_count("(null)") == 0


def test_rank_env_from_slurm_task_ids() -> None:
    env = slurm_rank_env({"SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "4",
                          "SLURM_NODEID": "1", "SLURM_JOB_NUM_NODES": "2",
                          "SLURM_JOB_NODELIST": "n[07-08]", "SLURM_JOB_ID": "20123",
                          "CUDA_VISIBLE_DEVICES": "4,5,6,7"})
    assert env["RANK"] == "3" and env["LOCAL_RANK"] == "1" and env["WORLD_SIZE"] == "4"
    assert env["NODE_RANK"] == "1" and env["LOCAL_WORLD_SIZE"] == "2"
    assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "n07"
    assert env["MASTER_PORT"] == "20123"
    assert env["CUDA_VISIBLE_DEVICES"] == "6,7"  # its half of the node's GPUs
    # A job of one task: none of torchrun's variables (as locally), its GPUs still set.
    assert slurm_rank_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1", "SLURM_JOB_ID": "5",
                           "CUDA_VISIBLE_DEVICES": "2"}) == {"CUDA_VISIBLE_DEVICES": "2"}


def test_a_version_is_checked_against_the_partitions_limits() -> None:
    usage = PartitionUsage(4, 16, 12, 0, gpus_per_node=4, max_nodes=2)
    assert partition_problems(usage, "gpu", 2, 4) == {}
    assert partition_problems(usage, "gpu", 3, 8) == {
        "resources.nodes": "partition gpu allows at most 2 node(s) per job; 3 asked for",
        "resources.gpus": "partition gpu has at most 4 GPU(s) on a node; 8 per node asked for"}
    assert partition_problems(PartitionUsage(1, 0, 0, 0), "cpu", 2, 1) == {
        "resources.nodes": "partition cpu has 1 node(s); 2 asked for",
        "resources.gpus": "partition cpu has no GPUs; 1 per node asked for"}


def test_a_slurm_pool_needs_a_partition_and_slurm_formats() -> None:
    with pytest.raises(ValueError, match="needs a partition"):
        PoolSettings(name="c", kind="slurm")
    with pytest.raises(ValueError, match="not a Slurm time limit"):
        pool(time_limit="2h")
    with pytest.raises(ValueError, match="not a Slurm name"):
        pool(account="lab; rm -rf ~")


def test_sbatch_options_from_the_pool_and_the_plan(ctx: Context, tmp_path: Path) -> None:
    plan, _ = plan_version(ctx, tmp_path, "print(1)\n", per_node=2)
    executor = SlurmExecutor(ctx.settings, pool(account="lab", qos="high", constraint="a100",
                                                time_limit="1-00:00:00"), gpus_per_node=4)
    argv = executor.sbatch_argv(plan, Path("/s/batch.sh"))
    assert argv[0] == "sbatch" and argv[-1] == "/s/batch.sh"
    for option in (f"--job-name=traindeck:{plan.job}:V001", f"--partition={PARTITION}",
                   "--nodes=1", "--ntasks-per-node=2", "--gres=gpu:4", "--account=lab",
                   "--qos=high", "--constraint=a100", "--time=1-00:00:00", "--no-requeue"):
        assert option in argv


# -- against the real Slurm ------------------------------------------------------------------


def test_two_tasks_get_the_rank_contract_and_write_their_logs(
        slurm: None, ctx: Context, tmp_path: Path, handles: list[Handle]) -> None:
    plan, version = plan_version(ctx, tmp_path, ECHO_BOOT, per_node=2)
    executor = get_executor("slurm", ctx.settings, pool=pool(), gpus_per_node=2)
    assert isinstance(executor, SlurmExecutor)
    handle = start(executor, plan, handles)
    assert not executor.logs_in_job_folder(handle)  # no container: the wrappers log
    exits = wait_ended(executor, handle)
    assert [(e.exit_code, e.error) for e in exits] == [(0, ""), (0, "")]
    out = Path(version.output)
    envs = [json.loads((out / f"env-{r}.json").read_text()) for r in (0, 1)]
    for rank, env in enumerate(envs):
        assert env["RANK"] == env["LOCAL_RANK"] == env["SLURM_PROCID"] == str(rank)
        assert env["WORLD_SIZE"] == "2" and env["SLURM_JOB_ID"] == handle["job_id"]
        assert env["MASTER_ADDR"] == socket.gethostname().split(".")[0]
        assert env["CUDA_VISIBLE_DEVICES"] == str(rank)  # one of the 2 gres GPUs each
        assert env["TRAINDECK_METRICS_FILE"].endswith(f"metrics.rank{rank}.jsonl")
        assert f"rank {rank} echoed" in log_text(plan, rank)
    assert envs[0]["MASTER_PORT"] == envs[1]["MASTER_PORT"]
    state = job_state(handle["job_id"])
    assert state is not None and state.state == "COMPLETED"


def test_hostile_values_reach_the_script_literally(
        slurm: None, home: Path, tmp_path: Path, handles: list[Handle],
        monkeypatch: pytest.MonkeyPatch) -> None:
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    evil = f"$(touch {marker}); `touch {marker}` ' \" \\ %j %%"
    # Traindeck's own folder (the batch script's words) is as hostile as the parameters.
    odd_home = tmp_path / f"it's a $(touch {marker}) %j home"
    monkeypatch.setenv("TRAINDECK_HOME", str(odd_home))
    get_settings.cache_clear()
    app.store.db.reset_cache()
    ctx = Context.open()
    plan, version = plan_version(ctx, tmp_path, ECHO_BOOT,
                                 parameters={"evil": evil, "lines": "one\ntwo"},
                                 env={"EVIL": evil})
    executor = SlurmExecutor(ctx.settings, pool())
    handle = start(executor, plan, handles)
    assert [e.exit_code for e in wait_ended(executor, handle)] == [0]
    out = Path(version.output)
    argv = json.loads((out / "argv-0.json").read_text())
    assert f"--evil={evil}" in argv and "--lines=one\ntwo" in argv
    assert json.loads((out / "env-0.json").read_text())["EVIL"] == evil
    script = (Path(plan.state_dir) / "slurm-batch.sh").read_text().splitlines()[-1]
    state = Path(plan.state_dir)
    assert shlex.split(script)[-3:] == [
        str(state / "slurm-tasks.json"), f">>{state / 'slurm.out'}", "2>&1"]
    assert (Path(plan.state_dir) / "slurm.out").exists()
    assert not marker.exists()


def test_stop_of_a_queued_and_of_a_running_job(
        slurm: None, ctx: Context, tmp_path: Path, handles: list[Handle]) -> None:
    executor = SlurmExecutor(ctx.settings, pool(), gpus_per_node=2)
    running_plan, _ = plan_version(ctx, tmp_path, SLEEPER)
    running = start(executor, running_plan, handles)
    wait_until(lambda: Path(running_plan.ranks[0].log).exists()
               and "ready" in log_text(running_plan, 0), 60, "the first job's start")
    queued = start(executor, plan_version(ctx, tmp_path, SLEEPER)[0], handles)
    # Slurm says `None` until its scheduler has looked at the job, then `Resources`.
    assert (executor.queue_reason(queued) or "").startswith("waiting")
    wait_until(lambda: executor.queue_reason(queued) == "waiting for resources in partition "
               + PARTITION, 30, "Slurm's reason Resources")
    assert executor.queue_reason(running) is None
    behind = start(executor, plan_version(ctx, tmp_path, SLEEPER)[0], handles)
    wait_until(lambda: (executor.queue_reason(behind) or "").endswith(": 1 job ahead"), 30,
               "a second job waiting behind the first")
    assert partition_usage(PARTITION) == PartitionUsage(1, 2, 2, 2, gpus_per_node=2)
    subprocess.run(["scancel", behind["job_id"]], check=True, timeout=30)
    assert executor.poll(queued) == [None] and executor.poll(running) == [None]

    # A new executor that knows only the recorded handles (as after a crash) adopts them.
    adopted = get_executor("slurm", ctx.settings)
    assert adopted.adoptable(queued) and adopted.adoptable(running)
    adopted.stop(queued, grace=2)
    [exit_] = wait_ended(executor, queued, 30)
    assert exit_.exit_code == -1 and "cancelled" in exit_.error
    began = time.monotonic()
    adopted.stop(running, grace=2)
    [exit_] = wait_ended(executor, running, 30)
    assert exit_.exit_code == 143 and exit_.error == ""  # SIGTERM, through its wrapper
    assert time.monotonic() - began < 20


def test_a_refused_job_is_an_executor_error(ctx: Context, tmp_path: Path, slurm: None) -> None:
    plan, _ = plan_version(ctx, tmp_path, "print(1)\n")
    executor = SlurmExecutor(ctx.settings, pool(), gpus_per_node=64)
    with pytest.raises(ExecutorError, match=r"^slurm: sbatch: .*"):
        executor.start(plan)


# -- watched by a real supervisor ---------------------------------------------------------------

METRICS_BOOT = """\
    import json, os, pathlib, sys, time
    rank = os.environ.get("RANK", "0")  # a job of one process has no rendezvous
    go = pathlib.Path(sys.argv[0]).parent / "go"
    print(f"rank {rank} of {os.environ.get('WORLD_SIZE', '1')} started", flush=True)
    while not go.exists() and "wait" in os.environ.get("MODE", ""):
        time.sleep(0.1)
    with open(os.environ["TRAINDECK_METRICS_FILE"], "a") as f:
        f.write(json.dumps({"step": 1, "accuracy": 0.5 + int(rank)}) + "\\n")
    print(f"rank {rank} done", flush=True)
    time.sleep(600 if os.environ.get("MODE") == "forever" else 0)
"""


def supervise(ctx: Context, tmp_path: Path, handles: list[Handle], executor: SlurmExecutor,
              source: str, **kwargs: Any) -> tuple[Version, Path]:
    """Start a version's Slurm job as the caller does (`start_ranks`), then its detached
    supervisor (`launch`), which adopts the job; the version and its code folder."""
    plan, version = plan_version(ctx, tmp_path, source, **kwargs)
    job = plan.job
    spec = JobSpec.model_validate(json.loads(version.spec_json))
    logs = open_rank_logs(ctx, version, fresh=True)
    handle = start_ranks(ctx, job, version, spec, [], [], executor, logs)
    for rank_log in logs.values():
        rank_log.abandon()
    assert handle is not None
    handles.append(handle)
    launch(ctx, version.id or 0)
    return version, Path(plan.workdir)


def final(ctx: Context, version: Version, timeout: float = 90) -> Version:
    with ctx.db.read() as session:
        job = session.get(Job, version.job_id)
    assert job is not None
    return wait_final(ctx, job.name, "V001", timeout)


def whole_log(version: Version, rank: int = 0) -> str:
    return (Path(version.log_dir) / f"rank-{rank}.log").read_text(encoding="utf-8")


def test_a_supervisor_watches_the_job_to_its_end_with_logs_and_metrics(
        slurm: None, ctx: Context, tmp_path: Path, handles: list[Handle]) -> None:
    executor = SlurmExecutor(ctx.settings, pool())
    version, _ = supervise(ctx, tmp_path, handles, executor, METRICS_BOOT, per_node=2)
    ended = final(ctx, version)
    assert (ended.status, ended.reason, ended.exit_code) == ("succeeded", "", 0)
    for rank in (0, 1):
        text = whole_log(ended, rank)
        assert f"rank {rank} of 2 started" in text and f"rank {rank} done" in text
        assert text.count(f"rank {rank} done") == 1  # exactly once
    assert "2 rank(s) with slurm" in whole_log(ended, 0)
    with ctx.db.read() as session:
        summary = session.exec(select(MetricSummary).where(
            MetricSummary.version_id == ended.id)).all()
    assert {m.name for m in summary} == {"accuracy"}


def test_a_killed_supervisor_is_replaced_and_the_job_adopted(
        slurm: None, ctx: Context, tmp_path: Path, handles: list[Handle]) -> None:
    executor = SlurmExecutor(ctx.settings, pool())
    version, code = supervise(ctx, tmp_path, handles, executor, METRICS_BOOT,
                              env={"MODE": "wait"})
    wait_until(lambda: "started" in whole_log(version), 60, "the rank's start")
    with ctx.db.read() as session:
        row = session.get(Version, version.id)
    assert row is not None and row.supervisor_pid and row.executor == "slurm"
    os.kill(row.supervisor_pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(row.supervisor_pid), 10, "the supervisor's death")
    # A controller slow to answer (a loaded machine) defers the decision to a later pass.
    wait_until(lambda: any("restart" in action for action in reconcile(ctx)), 60,
               "a reconcile that restarts the supervisor")
    (code / "go").touch()
    ended = final(ctx, version)
    assert (ended.status, ended.reason) == ("succeeded", "")
    assert RESTART_EVENT in [e.message for e in version_events(ctx.db, ended.id or 0)]
    assert whole_log(ended).count("rank 0 done") == 1


def test_stop_through_the_supervisor_of_a_queued_and_a_running_version(
        slurm: None, ctx: Context, tmp_path: Path, handles: list[Handle]) -> None:
    executor = SlurmExecutor(ctx.settings, pool(), gpus_per_node=2)
    running, _ = supervise(ctx, tmp_path, handles, executor, METRICS_BOOT,
                           env={"MODE": "forever"})
    wait_until(lambda: "rank 0 done" in whole_log(running), 60, "the first job's start")
    queued, _ = supervise(ctx, tmp_path, handles, executor, METRICS_BOOT)
    wait_until(lambda: executor.queue_reason(handles[-1]), 30, "the second job queued")
    for version in (queued, running):
        with ctx.db.read() as session:
            job = session.get(Job, version.job_id)
        assert job is not None
        stop_version(ctx, job.name, "V001")
        ended = final(ctx, version, timeout=60)
        assert (ended.status, ended.reason) == ("stopped", "stopped by user")
    assert "rank 0 started" not in whole_log(queued)
    states = [job_state(h["job_id"]) for h in handles[-2:]]
    assert all(s is not None and not s.active for s in states), states


def test_a_job_past_its_time_limit_fails_with_that_reason(
        slurm: None, ctx: Context, tmp_path: Path, handles: list[Handle]) -> None:
    executor = SlurmExecutor(ctx.settings, pool(time_limit="1"))  # Slurm's least: a minute
    version, _ = supervise(ctx, tmp_path, handles, executor, SLEEPER)
    ended = final(ctx, version, timeout=180)
    assert (ended.status, ended.reason) == ("failed", "time limit reached (Slurm TIMEOUT)")
    assert "ready" in whole_log(ended)


# -- through `traindeck submit` -----------------------------------------------------------------


HOLDING_BOOT = """\
import os, time
rank = os.environ.get("RANK", "0")  # a job of one process has no rendezvous
print(f"rank {rank} of {os.environ.get('WORLD_SIZE', '1')} started", flush=True)
time.sleep(float(os.environ["HOLD"]))
print(f"rank {rank} done", flush=True)
"""


def test_submit_to_a_slurm_pool_queues_with_slurms_reason_then_runs(
        slurm: None, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's path: a `kind: slurm` pool in the config, `traindeck submit` to it. The
    version is a Slurm job; while Slurm holds it the version is queued with Slurm's words,
    then it runs, its two ranks' logs arrive and it succeeds."""
    monkeypatch.setenv("TRAINDECK_POOLS", json.dumps(
        [{"name": "cluster", "kind": "slurm", "partition": PARTITION}]))

    def traindeck(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True,
                              text=True, timeout=120)

    def spec(name: str, gpus: int, per_node: int, hold: int) -> Path:
        base = tmp_path / name
        (base / "code").mkdir(parents=True)
        (base / "data").mkdir()
        (base / "code" / "train.py").write_text(HOLDING_BOOT)
        (base / "data" / "sample.csv").write_text("x,y\n1,0\n")
        raw = {"name": name, "data": {"paths": ["data"]},
               "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                           "code_dir": "code", "boot_file": "train.py"}},
               "env": {"HOLD": str(hold)}, "output": "out", "log_dir": "logs",
               "resources": {"pool": "cluster", "gpus": gpus,
                             "processes_per_node": per_node}}
        (base / "spec.yaml").write_text(json.dumps(raw))
        return base

    holder = spec("holder", 2, 1, 20)
    waiter = spec("waiter", 2, 2, 0)
    for base in (holder, waiter):
        done = traindeck("submit", str(base / "spec.yaml"))
        assert done.returncode == 0, done.stderr

    def shown(name: str) -> dict[str, Any]:
        out = traindeck("show", name, "--version", "V001", "--json")
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)
        return data["versions"][0] if "versions" in data else data

    held = wait_until(lambda: (v := shown("waiter"))["status"] == "queued"
                      and "waiting for resources in partition debug" in v["reason"] and v,
                      15, "the second version queued with Slurm's reason")
    assert held["runtime"] == "slurm"
    for name in ("holder", "waiter"):
        done = traindeck("wait", name, "--timeout", "120")
        assert done.returncode == 0, (name, shown(name))
    logs = traindeck("logs", "waiter").stdout
    assert "rank 0 of 2 started" in logs and "rank 1 done" in logs


def test_pools_lists_the_partitions_with_the_controllers_figures(
        slurm: None, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINDECK_POOLS", json.dumps(
        [{"name": "cluster", "kind": "slurm", "partition": PARTITION},
         {"name": "typo", "kind": "slurm", "partition": "no-such-partition"}]))
    done = subprocess.run([sys.executable, "-m", "app", "pools", "--json"],
                          capture_output=True, text=True, timeout=60, check=True)
    public, cluster, typo = json.loads(done.stdout)
    assert (public["name"], public["kind"], public["where"]) == ("public", "public",
                                                                 "this machine")
    # Neither Pyxis nor Apptainer here (tests/test_runtime_slurm_containers.py fakes them).
    assert cluster["where"] == f"partition {PARTITION}, no container runtime"
    assert cluster["container"] == "none" and "error" not in cluster
    assert (cluster["nodes"], cluster["gpus"]) == (1, 2)  # ensure-slurm's one node, 2 GPUs
    assert typo["error"] == "no nodes: is the partition's name right?"
