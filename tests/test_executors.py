"""Executors against a real Docker engine and real processes (no mocks)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from app.config import Settings
from app.logs import split_timestamp
from app.runtime.dockerhost import docker_reachable
from app.runtime.executors import (
    Executor,
    ExecutorError,
    LaunchPlan,
    Mount,
    RankExit,
    RankPlan,
    get_executor,
)
from app.runtime.executors.docker import DockerExecutor
from app.runtime.executors.local import LocalExecutor, proc_stat

IMAGE = "traindeck/python:3.11"
INJECTION = "1; touch /tmp/pwned"
SIGTERM_IGNORING = """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print("ready", child.pid, flush=True)
    time.sleep(60)
"""


def py(source: str, python: str = "python3") -> list[str]:
    """argv running a small (dedented) Python script, unbuffered."""
    return [python, "-u", "-c", textwrap.dedent(source)]


def local_py(source: str) -> list[str]:
    return py(source, sys.executable)


def plan_for(argvs: list[list[str]], *, image: str | None = IMAGE, workdir: str = "/",
             mounts: list[Mount] | None = None, network: str | None = None,
             user: tuple[int, int] | None = None, gpus: list[str] | None = None) -> LaunchPlan:
    """A plan with one rank per argv; ranks are named `td-<tag>-<rank>`, unique per call.
    A Docker plan's ranks log into a job folder of its own (`job_log`)."""
    tag = uuid.uuid4().hex[:10]
    state = Path(tempfile.mkdtemp(prefix="exec-test-"))
    _STATE_DIRS.append(state)
    (state / "job").mkdir(mode=0o777)
    (state / "job").chmod(0o777)  # a rank may run as any uid
    if image is not None:
        mounts = [*(mounts or []), Mount(state / "job", "/traindeck/job", read_only=False)]
    return LaunchPlan(
        job="exec-test", version=f"V{tag}", version_id=int(tag[:7], 16), image=image,
        workdir=workdir, mounts=mounts or [],
        ranks=[RankPlan(rank=i, argv=argv, env={"RANK": str(i)}, name=f"td-{tag}-{i}",
                        gpus=gpus or [], log=f"/traindeck/job/rank{i}.log")
               for i, argv in enumerate(argvs)],
        user=user or (os.getuid(), os.getgid()), shm_size="64m", network=network,
        labels={"test.suite": "executors"}, state_dir=str(state),
    )


_STATE_DIRS: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_state_dirs() -> Iterator[None]:
    yield
    while _STATE_DIRS:
        shutil.rmtree(_STATE_DIRS.pop(), ignore_errors=True)


def job_log(plan: LaunchPlan, rank: int = 0) -> str:
    """What a Docker rank's wrapper wrote so far, without the stamps."""
    try:
        text = (Path(plan.state_dir) / "job" / f"rank{rank}.log").read_text()
    except FileNotFoundError:
        return ""
    return "\n".join(split_timestamp(line)[1] for line in text.splitlines())


def wait_line(plan: LaunchPlan, rank: int, start: str, timeout: float = 30) -> None:
    """Wait until a Docker rank's log has a line starting with `start`."""
    deadline = time.monotonic() + timeout
    while not any(line.startswith(start) for line in job_log(plan, rank).splitlines()):
        assert time.monotonic() < deadline, f"no {start!r} from rank {rank}"
        time.sleep(0.05)


def wait_exits(executor: Executor, handle: dict, timeout: float = 30) -> list[RankExit | None]:
    """Poll until every rank has ended."""
    deadline = time.monotonic() + timeout
    while None in (exits := executor.poll(handle)):
        assert time.monotonic() < deadline, "ranks did not end in time"
        time.sleep(0.1)
    return exits


def wait_dead(pid: int | None = None, pgid: int | None = None, timeout: float = 5) -> None:
    """Wait until process `pid` or every process of group `pgid` is gone or a zombie."""
    def alive() -> bool:
        pids = [pid] if pid else [int(p) for p in os.listdir("/proc") if p.isdigit()]
        stats = [s for s in map(proc_stat, pids) if s is not None and s[0] != "Z"]
        return any(pgid is None or s[1] == pgid for s in stats)

    deadline = time.monotonic() + timeout
    while alive():
        assert time.monotonic() < deadline, f"{pid or pgid} is still alive"
        time.sleep(0.02)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("TRAINDECK_HOME", str(tmp_path / "home"))
    return Settings()


# -- Docker ---------------------------------------------------------------------------------


@pytest.fixture
def docker_exec(settings: Settings) -> Iterator[tuple[DockerExecutor, list[dict]]]:
    """A DockerExecutor and a list of handles it cleans up at teardown."""
    executor = get_executor("docker", settings)
    assert isinstance(executor, DockerExecutor)
    problem = "" if docker_reachable(settings) else "no reachable Docker engine"
    if not problem:
        import docker

        try:
            executor._docker().images.get(IMAGE)
        except docker.errors.ImageNotFound:
            problem = f"image {IMAGE} missing (run scripts/build-test-image)"
    if problem:
        if os.environ.get("TRAINDECK_REQUIRE_DOCKER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    handles: list[dict] = []
    yield executor, handles
    for handle in handles:
        executor.cleanup(handle)


def network_names(executor: DockerExecutor, name: str) -> list[dict]:
    """Labels of the networks called exactly `name`."""
    found = executor._docker().networks.list(names=[name])
    return [n.attrs["Labels"] for n in found if n.name == name]


@pytest.mark.docker
def test_docker_mounts_user_and_literal_argv(docker_exec, tmp_path: Path) -> None:
    executor, handles = docker_exec
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    out.mkdir()
    out.chmod(0o777)  # the rank runs as an arbitrary uid
    (data / "input.txt").write_text("hello")
    script = """
        import os, sys
        print("argv", sys.argv[1:], "ids", os.getuid(), os.getgid(), "cwd", os.getcwd())
        with open("/out/result.txt", "w") as f:
            f.write(open("/data/input.txt").read().upper())
        try:
            open("/data/new.txt", "w")
        except OSError as exc:
            print("ro-denied", exc.errno)
    """
    plan = plan_for([[*py(script), INJECTION]], workdir="/out", user=(4321, 4322),
                    mounts=[Mount(data, "/data"), Mount(out, "/out", read_only=False)])
    handle = executor.start(plan)
    handles.append(handle)
    assert handle == {"kind": "docker", "containers": handle["containers"],
                      "names": [plan.ranks[0].name], "network": None}
    assert wait_exits(executor, handle) == [RankExit(rank=0, exit_code=0)]
    text = job_log(plan)
    assert f"argv {[INJECTION]!r} ids 4321 4322 cwd /out" in text
    assert "ro-denied 30" in text  # EROFS
    assert (out / "result.txt").read_text() == "HELLO"
    assert (out / "result.txt").stat().st_uid == 4321
    assert not (data / "new.txt").exists()
    import docker

    container = executor._docker().containers.get(handle["containers"][0])
    with pytest.raises(docker.errors.NotFound):
        container.get_archive("/tmp/pwned")  # the `touch` never ran
    host = container.attrs["HostConfig"]
    assert (host["Init"], host["Privileged"], host["AutoRemove"]) == (True, False, False)


@pytest.mark.docker
def test_docker_exit_code_labels_find_and_cleanup(docker_exec) -> None:
    executor, handles = docker_exec
    plan = plan_for([py("import sys; sys.exit(3)")])
    handle = executor.start(plan)
    handles.append(handle)
    assert wait_exits(executor, handle) == [RankExit(rank=0, exit_code=3)]
    assert executor.adoptable(handle)
    found = executor.find_containers(plan.version_id)
    assert [c.id for c in found] == handle["containers"]
    assert {k: v for k, v in found[0].labels.items() if k.startswith(("traindeck.", "test."))} == {
        "traindeck.job": "exec-test", "traindeck.version": plan.version,
        "traindeck.version_id": str(plan.version_id), "traindeck.rank": "0",
        "test.suite": "executors",
    }

    executor.cleanup(handle)
    executor.cleanup(handle)  # idempotent
    assert executor.find_containers(plan.version_id) == []
    assert not executor.adoptable(handle)
    assert executor.poll(handle) == [RankExit(rank=0, exit_code=-1, error="container removed")]
    executor.stop(handle, grace=1)  # nothing left to stop: no error


@pytest.mark.docker
def test_docker_stop_kills_sigterm_ignoring_ranks_in_parallel(docker_exec) -> None:
    executor, handles = docker_exec
    plan = plan_for([py(SIGTERM_IGNORING), py(SIGTERM_IGNORING)])
    handle = executor.start(plan)
    handles.append(handle)
    for rank in (0, 1):
        wait_line(plan, rank, "ready")
    begun = time.monotonic()
    executor.stop(handle, grace=2)
    elapsed = time.monotonic() - begun
    # Both ranks wait out the grace together: ~2 s, not ~4 s.
    assert 1.9 <= elapsed < 3.9, elapsed  # one after the other would take 4 s or more
    assert executor.poll(handle) == [RankExit(0, 137), RankExit(1, 137)]


@pytest.mark.docker
def test_docker_start_failures_leave_nothing_behind(docker_exec) -> None:
    executor, handles = docker_exec
    plan = plan_for([["true"]], image="traindeck/does-not-exist:0")
    with pytest.raises(ExecutorError, match=r"^image traindeck/does-not-exist:0: pull failed: \S"):
        executor.start(plan)
    assert executor.find_containers(plan.version_id) == []
    # A GPU request fails only at start, once the network and both containers exist.
    network = f"td-net-{uuid.uuid4().hex[:8]}"
    plan = plan_for([py("print(1)"), py("print(1)")], network=network, gpus=["0"])
    try:
        handles.append(executor.start(plan))
    except ExecutorError as exc:
        assert str(exc).startswith("GPU request cannot be served: "), exc
    else:
        pytest.skip("this engine serves GPU requests")
    assert executor.find_containers(plan.version_id) == []
    assert network_names(executor, network) == []


@pytest.mark.docker
def test_docker_ranks_reach_each_other_by_name(docker_exec) -> None:
    executor, handles = docker_exec
    network = f"td-net-{uuid.uuid4().hex[:8]}"
    server = """
        import socket
        conn, _ = socket.create_server(("", 29500)).accept()
        print("got", conn.recv(100).decode())
    """
    client = """
        import socket, time
        server = socket.gethostname()[:-1] + "0"  # td-<tag>-1 -> td-<tag>-0
        for _ in range(100):
            try:
                sock = socket.create_connection((server, 29500), timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        sock.sendall(b"hello from rank 1")
    """
    plan = plan_for([py(server), py(client)], network=network)
    handle = executor.start(plan)
    handles.append(handle)
    assert handle["network"] == network
    assert [labels["traindeck.version_id"] for labels in network_names(executor, network)] == [
        str(plan.version_id)
    ]
    assert wait_exits(executor, handle) == [RankExit(0, 0), RankExit(1, 0)]
    assert "got hello from rank 1" in job_log(plan, 0)
    executor.cleanup(handle)
    assert network_names(executor, network) == []


# -- Local ------------------------------------------------------------------------------------


def local_plan(argvs: list[list[str]], tmp_path: Path, workdir: Path | None = None) -> LaunchPlan:
    """A local plan whose ranks log to `tmp_path/rank-N.log` (state in `tmp_path/state`)."""
    plan = plan_for(argvs, image=None, workdir=str(workdir or tmp_path))
    (tmp_path / "state").mkdir(exist_ok=True)
    ranks = [RankPlan(rank=r.rank, argv=r.argv, env=r.env, name=r.name,
                      log=str(tmp_path / f"rank-{r.rank}.log")) for r in plan.ranks]
    return dataclasses.replace(plan, ranks=ranks, state_dir=str(tmp_path / "state"))


def log_text(tmp_path: Path, rank: int = 0) -> list[str]:
    """The lines of a local rank's log, without their stamps."""
    path = tmp_path / f"rank-{rank}.log"
    return [split_timestamp(line)[1] for line in path.read_text().splitlines()]


@pytest.fixture
def local_exec(settings: Settings) -> Iterator[tuple[LocalExecutor, list[dict]]]:
    executor = get_executor("local", settings)
    assert isinstance(executor, LocalExecutor)
    handles: list[dict] = []
    yield executor, handles
    for handle in handles:
        executor.stop(handle, grace=0)


def wait_for_line(tmp_path: Path, prefix: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        with suppress(FileNotFoundError):
            for line in log_text(tmp_path):
                if line.startswith(prefix):
                    return line
        assert time.monotonic() < deadline, f"no line {prefix!r} in the log"
        time.sleep(0.02)


def test_local_success_literal_argv_and_env(local_exec, tmp_path: Path) -> None:
    executor, handles = local_exec
    script = """
        import os, sys
        print("argv", sys.argv[1:], "rank", os.environ["RANK"], "path", bool(os.environ["PATH"]))
        open("result.txt", "w").write("done")
    """
    handle = executor.start(local_plan([[*local_py(script), INJECTION]], tmp_path))
    handles.append(handle)
    assert handle["kind"] == "local"
    assert handle["start_times"][0] == proc_stat(handle["pids"][0])[2]  # type: ignore[index]
    assert wait_exits(executor, handle) == [RankExit(rank=0, exit_code=0)]
    assert log_text(tmp_path) == [f"argv {[INJECTION]!r} rank 0 path True"]
    assert (tmp_path / "result.txt").read_text() == "done"
    assert not Path("/tmp/pwned").exists() and not (tmp_path / "pwned").exists()
    assert executor.adoptable(handle)  # ended, with its status recorded
    executor.cleanup(handle)


def test_local_exit_codes(local_exec, tmp_path: Path) -> None:
    executor, handles = local_exec
    plan = local_plan([local_py("import sys; sys.exit(3)"),
                       local_py("import os, signal; os.kill(os.getpid(), signal.SIGTERM)")],
                      tmp_path)
    handle = executor.start(plan)
    handles.append(handle)
    assert wait_exits(executor, handle) == [RankExit(0, 3), RankExit(1, 128 + 15)]


def test_local_stop_kills_the_tree_after_grace(local_exec, tmp_path: Path) -> None:
    executor, handles = local_exec
    handle = executor.start(local_plan([local_py(SIGTERM_IGNORING)], tmp_path))
    handles.append(handle)
    child = int(wait_for_line(tmp_path, "ready").split()[1])
    begun = time.monotonic()
    executor.stop(handle, grace=1)
    elapsed = time.monotonic() - begun
    assert 0.9 <= elapsed < 3, elapsed
    assert executor.poll(handle) == [RankExit(rank=0, exit_code=137)]
    wait_dead(child)


DAEMONIZING = """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()  # a daemon: its own session, out of the rank's process group
        if os.fork() == 0:
            print("daemon", os.getpid(), flush=True)
            time.sleep(120)
        os._exit(0)
    time.sleep({wait})
    print("main done", flush=True)
"""


def test_local_leftovers_and_setsid_daemons_die_with_the_main_process(
        local_exec, tmp_path: Path) -> None:
    executor, handles = local_exec
    handle = executor.start(local_plan([local_py(DAEMONIZING.format(wait=0.5))], tmp_path))
    handles.append(handle)
    daemon = int(wait_for_line(tmp_path, "daemon").split()[1])
    assert wait_exits(executor, handle) == [RankExit(rank=0, exit_code=0)]
    wait_dead(daemon)
    assert log_text(tmp_path)[-1] == "main done"


def test_local_stop_ends_setsid_daemons_too(local_exec, tmp_path: Path) -> None:
    executor, handles = local_exec
    handle = executor.start(local_plan([local_py(DAEMONIZING.format(wait=60))], tmp_path))
    handles.append(handle)
    daemon = int(wait_for_line(tmp_path, "daemon").split()[1])
    executor.stop(handle, grace=1)
    assert executor.poll(handle)[0] is not None
    wait_dead(daemon)


def test_local_log_throughput(local_exec, tmp_path: Path) -> None:
    executor, handles = local_exec
    script = 'import sys; sys.stdout.writelines(f"line {i}\\n" for i in range(200_000))'
    begun = time.monotonic()
    handle = executor.start(local_plan([local_py(script)], tmp_path))
    handles.append(handle)
    assert wait_exits(executor, handle) == [RankExit(rank=0, exit_code=0)]
    elapsed = time.monotonic() - begun
    lines = log_text(tmp_path)
    assert len(lines) == 200_000 and lines[-1] == "line 199999"
    assert elapsed < 4.0, elapsed  # far above 100,000 lines/s


def test_local_missing_interpreter_kills_started_ranks(local_exec, tmp_path: Path) -> None:
    executor, _ = local_exec
    marker = f"time.sleep(60)  # {uuid.uuid4().hex}"
    plan = local_plan([local_py(f"import time; {marker}"), [str(tmp_path / "no-python"), "x.py"]],
                      tmp_path)
    reason = f"cannot run {tmp_path / 'no-python'}: No such file"
    with pytest.raises(ExecutorError, match=re.escape(reason)):
        executor.start(plan)
    for entry in (p for p in os.listdir("/proc") if p.isdigit()):
        with suppress(OSError), open(f"/proc/{entry}/cmdline", "rb") as f:
            if marker.encode() in f.read():
                wait_dead(int(entry))
    with pytest.raises(ExecutorError, match=r"working directory .*missing-dir"):
        executor.start(local_plan([local_py("pass")], tmp_path, tmp_path / "missing-dir"))


def test_local_ranks_outlive_their_starter_and_are_adopted(settings: Settings,
                                                           tmp_path: Path) -> None:
    """Any executor object (a new supervisor) can watch ranks another one started."""
    starter = LocalExecutor(settings)
    handle = starter.start(local_plan([local_py(SIGTERM_IGNORING)], tmp_path))
    wait_for_line(tmp_path, "ready")
    successor = LocalExecutor(settings)
    assert successor.adoptable(handle)
    assert successor.poll(handle) == [None]
    stale = {**handle, "start_times": [handle["start_times"][0] + 1]}
    assert successor.poll(stale)[0] is not None  # pid reuse guard: not the same process
    successor.stop(handle, grace=0.5)
    assert successor.poll(handle) == [RankExit(rank=0, exit_code=137)]
