"""The run engine end to end on the real Docker engine: real supervisors, real containers.

Needs the local image `traindeck/python:3.11` (`scripts/build-test-image`). Without an
engine (or the image) these tests skip, or fail when TRAINDECK_REQUIRE_DOCKER=1.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import count_rows, traindeck_executable, write_yaml
from runtime_helpers import (
    ECHO_BOOT,
    FOUR_METRICS,
    RENDEZVOUS_BOOT,
    STAMPED,
    cli,
    current,
    injected,
    log_lines,
    logreg_spec,
    point_counts,
    script_spec,
    show,
    submit,
    submit_in_process,
    wait,
    wait_status,
)

from app.context import Context
from app.runtime.plan import INSTANCE_LABEL, instance_tag
from app.store.models import Status, Version

pytestmark = pytest.mark.docker


def containers_of(engine: Any, ctx: Context, version: Version) -> list[Any]:
    """Containers (any state) of a version of this test's installation."""
    found = engine.containers.list(all=True, filters={
        "label": [f"{INSTANCE_LABEL}={instance_tag(ctx.settings)}",
                  f"traindeck.version_id={version.id}"]})
    return list(found)


def container_gone(engine: Any, container_id: str) -> bool:
    from docker.errors import NotFound

    try:
        engine.containers.get(container_id)
    except NotFound:
        return True
    return False


def test_success_with_metrics_and_followed_logs(engine: Any, ctx: Context,
                                                tmp_path: Path) -> None:
    ref = submit(logreg_spec(tmp_path, "d-ok", "docker", train_steps=40, log_every=5))
    follower = subprocess.Popen([traindeck_executable(), "logs", "-f", "d-ok"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    followed, err = follower.communicate(timeout=90)
    assert follower.returncode == 0, err
    version = wait(ctx, "d-ok")
    assert (version.status, version.reason, version.exit_code) == ("succeeded", "", 0)
    record = show("d-ok")
    assert set(FOUR_METRICS) | {"loss"} <= set(record["metrics"])
    assert record["metrics"]["accuracy"] > 0.8
    assert point_counts(ctx, ref["id"])["loss"] == (8, 8)
    lines = log_lines(version)
    assert lines[0].startswith("[traindeck] starting d-ok V001: 1 rank(s) with docker")
    assert "python /traindeck/code/train.py --data_url=/traindeck/data/ " \
           "--train_url=/traindeck/output/" in lines[1]
    assert lines[-1] == "[traindeck] succeeded"
    assert followed.splitlines() == lines  # `logs -f` printed all of it, then ended
    assert json.loads((Path(version.output) / "model.json").read_text())["type"]
    assert containers_of(engine, ctx, version) == []  # removed once done


def test_failure_has_exit_code(engine: Any, ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "d-fail", "docker", fail_at_step=3, log_every=1))
    version = wait(ctx, "d-fail")
    assert (version.status, version.reason, version.exit_code) == ("failed", injected(3), 3)
    assert any("injected failure at step 3" in line for line in log_lines(version))
    assert containers_of(engine, ctx, version) == []


def test_stop_removes_the_container(engine: Any, ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "d-stop", "docker", train_steps=10_000, sleep_per_step=0.05))
    version = wait_status(ctx, "d-stop", Status.RUNNING)
    container_id = json.loads(version.handle)["containers"][0]
    assert engine.containers.get(container_id).status == "running"
    assert cli("stop", "d-stop").stdout.strip() == "stopping d-stop V001"
    version = wait(ctx, "d-stop", timeout=40)
    assert (version.status, version.reason, version.exit_code) == (
        "stopped", "stopped by user", 143)
    assert container_gone(engine, container_id)
    assert any("received SIGTERM" in line for line in log_lines(version))


def test_delete_stops_first_and_keeps_files(engine: Any, ctx: Context, tmp_path: Path) -> None:
    submit(logreg_spec(tmp_path, "d-del", "docker", train_steps=10_000, sleep_per_step=0.05))
    version = wait_status(ctx, "d-del", Status.RUNNING)
    container_id = json.loads(version.handle)["containers"][0]
    cli("delete", "d-del", "--yes")
    assert container_gone(engine, container_id)
    assert count_rows(ctx.db)["versions"] == 0
    assert Path(version.log_dir, "rank-0.log").stat().st_size > 0
    assert Path(version.output).is_dir()


def test_missing_image_fails_with_its_name(engine: Any, ctx: Context, tmp_path: Path) -> None:
    missing = f"traindeck/no-such-image:{uuid.uuid4().hex[:8]}"
    data = tmp_path / "data"
    data.mkdir()
    (data / "sample.csv").write_text("x,y\n1,0\n", encoding="utf-8")
    submit(write_yaml(tmp_path / "noimg.yaml", {
        "name": "d-noimg",
        "data": {"paths": [str(data)]},
        "algorithm": {"image": {"name": missing, "command": ["python3", "-c", "print(1)"]}},
        "output": str(tmp_path / "out"),
        "log_dir": str(tmp_path / "logs"),
        "resources": {"runtime": "docker"},
    }))
    version = wait(ctx, "d-noimg")
    assert version.status == "failed"
    assert version.reason.startswith(f"image {missing}: pull failed: "), version.reason
    assert log_lines(version)[-1] == f"[traindeck] failed: {version.reason}"


def test_gpu_request_the_engine_cannot_serve_fails_clearly(
        engine: Any, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINDECK_GPUS", "[0, 1]")  # declared: this engine has none
    submit(logreg_spec(tmp_path, "d-gpu", "docker"))
    spec = script_spec(tmp_path, "d-gpu2", "print('never')\n", "docker", gpus=1)
    submit(spec)
    version = wait(ctx, "d-gpu2")
    assert version.status == "failed"
    assert version.reason.startswith("GPU request cannot be served: "), version.reason
    assert version.allocated_gpus == "0"
    assert wait(ctx, "d-gpu").status == "succeeded"  # a CPU version asks for no device
    assert containers_of(engine, ctx, version) == []


def test_parameters_never_pass_through_a_shell(engine: Any, ctx: Context,
                                               tmp_path: Path) -> None:
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    evil = f"1; touch {marker}"
    submit(script_spec(tmp_path, "d-inject", ECHO_BOOT, "docker", parameters={"evil": evil}))
    version = wait(ctx, "d-inject")
    assert version.status == "succeeded", version.reason
    argv = json.loads((Path(version.output) / "argv-0.json").read_text())
    assert argv[0] == "/traindeck/code/train.py"
    assert f"--evil={evil}" in argv
    assert not Path(marker).exists()


COUNT_BOOT = """\
for i in range(5):
    print(f"line {i}", flush=True)
"""


def test_a_command_with_a_newline_loses_no_output(engine: Any, ctx: Context,
                                                  tmp_path: Path) -> None:
    """The command note then spans lines; the stream is still replayed to the line."""
    submit(script_spec(tmp_path, "d-newline", COUNT_BOOT, "docker",
                       parameters={"note": "two\nlines"}))
    version = wait(ctx, "d-newline")
    assert version.status == "succeeded", version.reason
    lines = log_lines(version)
    assert [line for line in lines if line.startswith("line ")] == [
        f"line {i}" for i in range(5)]
    assert lines[1].endswith("'--note=two")  # shell-quoted, as it would be typed
    assert lines[2] == "[traindeck] lines'"  # the rest of the command, marked as ours


def test_two_ranks_on_one_network(engine: Any, ctx: Context, tmp_path: Path) -> None:
    submit(script_spec(tmp_path, "d-ranks", RENDEZVOUS_BOOT, "docker", nodes=2))
    version = wait(ctx, "d-ranks")
    assert version.status == "succeeded", version.reason
    handle = json.loads(version.handle)
    envs = [json.loads((Path(version.output) / f"env-{r}.json").read_text()) for r in (0, 1)]
    for rank, env in enumerate(envs):
        assert env["RANK"] == env["NODE_RANK"] == str(rank)
        assert env["WORLD_SIZE"] == "2"
        assert env["MASTER_ADDR"] == handle["names"][0]
        assert env["MASTER_PORT"] == "29500"
        assert env["HOSTNAME"] == handle["names"][rank]
        assert env["HOME"] == "/traindeck/job/home"
        assert env["TRAINDECK_METRICS_FILE"] == f"/traindeck/job/metrics.rank{rank}.jsonl"
    assert "rank 0 got hello from rank 1" in log_lines(version, 0)
    assert "rank 1 sent" in log_lines(version, 1)
    assert containers_of(engine, ctx, version) == []
    assert engine.networks.list(names=[handle["network"]]) == []


def test_every_log_line_is_stamped_and_nothing_is_left_running(
        engine: Any, ctx: Context, tmp_path: Path) -> None:
    source = "import sys\nfor i in range(500):\n    print(f'line {i}')\n" \
             "sys.stderr.write('to stderr\\n')\nprint('partial without newline', end='')\n"
    submit(script_spec(tmp_path, "d-lines", source, "docker"))
    version = wait(ctx, "d-lines")
    assert version.status == "succeeded"
    text = (Path(version.log_dir) / "rank-0.log").read_text()
    assert all(STAMPED.match(line) for line in text.splitlines())
    lines = log_lines(version)
    assert [x for x in lines if x.startswith("line ")] == [f"line {i}" for i in range(500)]
    # One pipe for both, as in a terminal: the last line ends without its newline.
    assert lines[-3:-1] == ["to stderr", "partial without newline"]
    assert current(ctx, "d-lines").status == "succeeded"


HOSTILE = """
    import json, os, sys
    canary = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--canary="))
    print("sees", sorted(os.listdir("/traindeck")), flush=True)
    forged = {"handle": {}, "logs": {"0": [canary, canary]}, "plan": {}}
    for folder in ("/traindeck/job", "/traindeck/output", "/traindeck"):
        for name in ("handoff.json", "own-lines.rank0", "exit.rank0"):
            try:
                with open(os.path.join(folder, name), "w") as f:
                    f.write(json.dumps(forged) if name.endswith(".json") else "0\\n")
            except OSError as exc:
                print("refused", folder, name, type(exc).__name__, flush=True)
    os.symlink(canary, "/traindeck/job/metrics.rank0.jsonl.link")
    print("done forging", flush=True)
    sys.exit(3)
"""


def test_a_job_cannot_reach_traindecks_own_state(engine: Any, ctx: Context,
                                                 tmp_path: Path) -> None:
    """The trust boundary: a hostile job forges every control file it can think of; its
    version still ends truthfully, with its own log, and nothing lands on the host."""
    canary = tmp_path / "canary"
    submit(script_spec(tmp_path, "hostile", HOSTILE, "docker",
                       parameters={"canary": str(canary)}))
    version = wait(ctx, "hostile")
    lines = log_lines(version)
    assert (version.status, version.exit_code) == ("failed", 3), lines
    assert "sees ['code', 'data', 'job', 'lib', 'output']" in lines  # no state in sight
    assert "done forging" in lines
    assert lines.count("done forging") == 1 and lines[-1].startswith("[traindeck] failed")
    assert not canary.exists()
    state = ctx.settings.data_dir / "versions" / str(version.id)
    counter = (state / "own-lines.rank0").read_bytes()
    assert set(counter) == {ord("\n")}  # Traindeck's own count, not the job's "0"


SWAP_LOG = """
    import os, sys, time
    secret, how = sys.argv[1].split("=", 1)[1], sys.argv[2].split("=", 1)[1]
    os.remove("/traindeck/job/rank0.log")  # the file its rank wrapper writes
    if how == "link":
        os.symlink(secret, "/traindeck/job/rank0.log")
    else:
        os.mkfifo("/traindeck/job/rank0.log")
    time.sleep(3)  # the supervisor has started and looked by now
    print("after the swap", flush=True)
"""


@pytest.mark.parametrize("how", ["link", "fifo"])
def test_a_job_that_swaps_its_log_file_reads_no_host_file(
        engine: Any, ctx: Context, tmp_path: Path, how: str) -> None:
    """The job can write the file its wrapper logs to: replaced by a link to a host file
    (which the container cannot see, but the host could) or by a FIFO, it is not copied,
    and the version still ends."""
    secret = tmp_path / "secret"
    secret.write_text("HOST-SECRET\n", encoding="utf-8")
    submit(script_spec(tmp_path, f"swap-{how}", SWAP_LOG, "docker",
                       parameters={"secret": str(secret), "how": how}))
    version = wait(ctx, f"swap-{how}")
    assert version.status == "succeeded", version.reason
    text = (Path(version.log_dir) / "rank-0.log").read_text()
    assert "HOST-SECRET" not in text
    assert "[traindeck] rank0.log of the job's folder not copied: " in text


def _image_without_python(engine: Any) -> str:
    """A copy of the test image with its Python removed (made once)."""
    from docker.errors import ImageNotFound

    name = "traindeck-test/no-python:1"
    try:
        engine.images.get(name)
    except ImageNotFound:
        box = engine.containers.run("traindeck/python:3.11",
                                    ["sh", "-c", "rm -f /usr/bin/python*"], detach=True)
        box.wait()
        box.commit(*name.split(":"))
        box.remove()
    return name


def _image_spec(tmp_path: Path, name: str, image: str, command: list[str]) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "sample.csv").write_text("x,y\n1,0\n", encoding="utf-8")
    return write_yaml(tmp_path / f"{name}.yaml", {
        "name": name, "data": {"paths": [str(data)]},
        "algorithm": {"image": {"name": image, "command": command}},
        "output": str(tmp_path / name / "out"), "log_dir": str(tmp_path / name / "logs"),
        "resources": {"runtime": "docker"},
    })


def test_an_image_without_python_fails_saying_so(engine: Any, ctx: Context,
                                                 tmp_path: Path) -> None:
    image = _image_without_python(engine)
    submit(_image_spec(tmp_path, "d-nopython", image, ["sh", "-c", "echo hi"]))
    version = wait(ctx, "d-nopython")
    assert version.status == "failed"
    assert "the image has no python3 on its PATH" in version.reason, version.reason


def test_a_command_that_cannot_run_says_why(engine: Any, ctx: Context,
                                            tmp_path: Path) -> None:
    submit(_image_spec(tmp_path, "d-norun", "traindeck/python:3.11", ["no-such-program"]))
    version = wait(ctx, "d-norun")
    assert (version.status, version.exit_code) == ("failed", 127)
    assert version.reason.startswith("cannot run no-such-program: "), version.reason


FLOOD_THEN_TRACEBACK = """
    import sys
    sys.stdout.writelines(f"line {i}\\n" for i in range(300_000))
    sys.stdout.flush()
    raise RuntimeError("the end of a flood")
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["cli", "in-process"])
def test_a_flood_then_a_traceback_keeps_every_line(engine: Any, ctx: Context,
                                                   tmp_path: Path, how: str) -> None:
    """Through `traindeck submit` and as the TUI submits (in its own process, which then
    stays): the version ends once its log, copied from the job's folder, is complete."""
    spec = script_spec(tmp_path, "flood", FLOOD_THEN_TRACEBACK, "docker")
    if how == "cli":
        submit(spec)
    else:
        submit_in_process(ctx, spec)
    version = wait(ctx, "flood", timeout=300)
    lines = log_lines(version)
    numbered = [x for x in lines if x.startswith("line ")]
    assert numbered == [f"line {i}" for i in range(300_000)]  # each once, in order
    # stderr (the traceback) and stdout share one pipe, as in a terminal
    assert lines.count("RuntimeError: the end of a flood") == 1
    assert lines[-1].startswith("[traindeck] failed: exit code 1")
    assert version.status == "failed" and version.exit_code == 1
