"""A run writing to `s3://` whose supervisor is killed still gets its files into the bucket.

Real supervisors killed with SIGKILL, real reconciliation, a real S3 server on loopback
(moto over HTTP): the detached uploader that reconciliation starts sends the output and
the logs written on this disk, and the version's events say so. An upload that fails
(the endpoint is down) is tried again at the next start.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import noop_launcher, require_image, write_yaml
from runtime_helpers import (
    current,
    log_lines,
    submit_in_process,
    wait_for,
    wait_status,
)
from s3server import S3Server, dead_endpoint

from app.context import Context
from app.procs import pid_alive
from app.queries import version_events
from app.runtime.reconcile import pending_dir, queue_upload, reconcile, run_pending_upload
from app.store.models import Status, Version

IMAGE = "traindeck/python:3.11"

# Writes its output, says so, then runs on quietly until it is killed.
WRITE_THEN_WAIT = """\
import os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
out = args["train_url"]
os.makedirs(os.path.join(out, "ckpt"), exist_ok=True)
with open(os.path.join(out, "ckpt", "model.bin"), "wb") as f:
    f.write(b"weights" * 1000)
print("output written", flush=True)
time.sleep(float(args.get("sleep", "300")))
print("woke up", flush=True)
"""


@pytest.fixture
def s3(s3: S3Server) -> S3Server:
    """The suite's loopback S3 server, with a `results` bucket."""
    s3.client().create_bucket(Bucket="results")
    return s3


def remote_spec(base: Path, name: str, runtime: str = "local", sleep: float = 300) -> Path:
    code, data = base / name / "code", base / name / "data"
    code.mkdir(parents=True)
    data.mkdir(parents=True)
    (code / "train.py").write_text(WRITE_THEN_WAIT, encoding="utf-8")
    (data / "sample.csv").write_text("x,y\n1,0\n", encoding="utf-8")
    return write_yaml(base / f"{name}.yaml", {
        "name": name,
        "data": {"paths": [str(data)]},
        "algorithm": {"framework": {"engine": "python", "engine_version": "3.11",
                                    "code_dir": str(code), "boot_file": "train.py"}},
        "parameters": {"sleep": sleep},
        "output": f"s3://results/{name}/out",
        "log_dir": f"s3://results/{name}/logs",
        "resources": {"runtime": runtime},
    })


def bucket(server: S3Server, prefix: str) -> dict[str, bytes]:
    client = server.client()
    listed = client.list_objects_v2(Bucket="results", Prefix=prefix).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket="results", Key=o["Key"])["Body"].read()
            for o in listed}


def kill_supervisor_when_written(ctx: Context, job: str, *, ranks: bool = False) -> Version:
    """Wait until the run has written its output, then SIGKILL its supervisor (and with
    `ranks`, its local ranks too, with their wrappers: the run is lost, as after a reboot)."""
    version = wait_status(ctx, job, Status.RUNNING)
    wait_for(lambda: "output written" in log_lines(current(ctx, job)), 60, "the output")
    pid = version.supervisor_pid or 0
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10, "the supervisor to die")
    if ranks:
        for wrapper in json.loads(version.handle)["pids"]:
            os.killpg(wrapper, signal.SIGKILL)
            wait_for(lambda w=wrapper: not pid_alive(w), 10, "the rank to die")
    return version


def messages(ctx: Context, version_id: int) -> list[str]:
    return [e.message for e in version_events(ctx.db, version_id)]


@pytest.mark.slow
def test_kill_9_then_reconcile_uploads_output_and_logs(s3: S3Server, ctx: Context,
                                                         tmp_path: Path) -> None:
    version_id = submit_in_process(ctx, remote_spec(tmp_path, "lost-s3"))
    kill_supervisor_when_written(ctx, "lost-s3", ranks=True)
    assert bucket(s3, "lost-s3/out/") == {}  # nothing went up while it ran

    started = time.monotonic()
    actions = reconcile(ctx)
    assert time.monotonic() - started < 5  # the upload runs in a process of its own
    assert actions == ["lost-s3/V001: failed (supervisor lost); uploading its output and "
                       "logs in the background"]

    done = "uploaded the output to s3://results/lost-s3/out/V001 and logs to " \
           "s3://results/lost-s3/logs/V001 after the supervisor was lost"
    wait_for(lambda: done in messages(ctx, version_id), 60, "the upload")
    wait_for(lambda: not list(pending_dir(ctx).glob("*.json")), 10, "the marker to go")
    stored = bucket(s3, "lost-s3/")
    assert stored["lost-s3/out/V001/ckpt/model.bin"] == b"weights" * 1000
    log = stored["lost-s3/logs/V001/rank-0.log"].decode()
    assert "output written" in log
    assert "[traindeck] uploaded output: 1 file(s)" in log  # it says so before going up
    assert ("supervisor lost: uploading the output to s3://results/lost-s3/out/V001 and "
            "logs to s3://results/lost-s3/logs/V001 from this machine in the background"
            ) in messages(ctx, version_id)
    version = current(ctx, "lost-s3")
    assert (version.status, version.reason) == ("failed", "supervisor lost (its ranks are gone)")
    assert reconcile(ctx) == []  # nothing is left to do (or uploaded twice)
    assert messages(ctx, version_id).count(done) == 1


def test_the_upload_of_a_deleted_version_is_dropped(s3: S3Server, ctx: Context,
                                                   tmp_path: Path) -> None:
    from app.jobs import set_status, submit
    from app.runtime.control import delete
    from app.specs.spec import load_spec_file

    raw, base = load_spec_file(remote_spec(tmp_path, "gone-s3"))
    ref = submit(ctx, raw, base, launcher=noop_launcher)  # nothing runs
    set_status(ctx, ref.version_id, Status.FAILED, "supervisor lost")
    assert queue_upload(ctx, current(ctx, "gone-s3"))
    marker = pending_dir(ctx) / f"{ref.version_id}.json"
    assert marker.exists()
    delete(ctx, "gone-s3")
    assert run_pending_upload(ctx, ref.version_id) is True  # nothing to record it against
    assert not marker.exists() and bucket(s3, "gone-s3/") == {}


@pytest.mark.slow
def test_an_upload_that_fails_is_tried_again_at_the_next_start(
        s3: S3Server, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version_id = submit_in_process(ctx, remote_spec(tmp_path, "retry-s3"))
    kill_supervisor_when_written(ctx, "retry-s3", ranks=True)
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_endpoint())  # the uploader inherits it
    reconcile(ctx)
    failed = wait_for(lambda: [m for m in messages(ctx, version_id)
                               if "(tried again at the next start)" in m], 60, "a failure")
    assert failed[0].startswith("output upload failed: ")
    marker = pending_dir(ctx) / f"{version_id}.json"
    wait_for(lambda: json.loads(marker.read_text()).get("tries") == 1, 10, "the retry count")
    pending = json.loads(marker.read_text())
    assert pending["next_try"] > time.time() + 30  # not at once: a minute later

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    assert reconcile(ctx) == []  # too early: nothing starts
    time.sleep(1)
    assert marker.exists() and not bucket(s3, "retry-s3/")
    marker.write_text(json.dumps({**pending, "next_try": 0}))  # the minute has passed
    assert reconcile(ctx) == []  # the version is settled; only its upload is left
    wait_for(lambda: not marker.exists(), 60, "the second upload")
    assert "retry-s3/out/V001/ckpt/model.bin" in bucket(s3, "retry-s3/")
    assert any(m.startswith("uploaded the output") for m in messages(ctx, version_id))


@pytest.mark.docker
@pytest.mark.slow
def test_an_adopted_docker_run_that_finished_unwatched_uploads(
        s3: S3Server, ctx: Context, tmp_path: Path, docker_engine: Any) -> None:
    from app.runtime.control import wait_final
    from app.runtime.plan import INSTANCE_LABEL, instance_tag

    require_image(docker_engine, IMAGE)
    try:
        submit_in_process(ctx, remote_spec(tmp_path, "lost-docker", "docker", sleep=3))
        version = kill_supervisor_when_written(ctx, "lost-docker")
        container = docker_engine.containers.get(json.loads(version.handle)["containers"][0])
        wait_for(lambda: (container.reload(), container.status)[1] == "exited", 30,
                 "the container to end")
        reconcile(ctx)  # a new supervisor adopts the ended container and uploads
        version = wait_final(ctx, "lost-docker", None, 90)
        assert (version.status, version.exit_code) == ("succeeded", 0)
        stored = bucket(s3, "lost-docker/")
        assert stored["lost-docker/out/V001/ckpt/model.bin"] == b"weights" * 1000
        assert "woke up" in stored["lost-docker/logs/V001/rank-0.log"].decode()
    finally:
        label = f"{INSTANCE_LABEL}={instance_tag(ctx.settings)}"
        for leftover in docker_engine.containers.list(all=True, filters={"label": label}):
            leftover.remove(force=True)
