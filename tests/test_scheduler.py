"""GPU admission with real supervisors: atomic, first come first served, self-explaining.

No GPU exists here, so the tests declare two (`TRAINDECK_GPUS=[0, 1]`): the scheduler
only books indices. The versions run as local processes (a Docker engine could not
serve the device requests) and hold their GPU for a couple of seconds.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from helpers import traindeck_executable
from runtime_helpers import current, script_spec, submit_in_process, wait, wait_status

from app.context import Context
from app.jobs import submit
from app.queries import version_events
from app.runtime.gpus import GpuDevice
from app.runtime.scheduler import peek_admission, try_admit
from app.specs.spec import load_spec_file
from app.store.models import Status, Version

HOLD_BOOT = """\
import json, os, sys, time
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
os.makedirs(args["train_url"], exist_ok=True)
with open(os.path.join(args["train_url"], "gpu.json"), "w") as f:
    json.dump({"cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}, f)
print("holding GPU", os.environ.get("CUDA_VISIBLE_DEVICES"), flush=True)
if "until" in args:  # hold until the test creates this file
    while not os.path.exists(args["until"]):
        time.sleep(0.05)
else:
    time.sleep(float(args.get("seconds", "2")))
"""


@pytest.fixture
def gpu_ctx(home: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    """A context whose machine declares GPUs 0 and 1 (inherited by every supervisor)."""
    monkeypatch.setenv("TRAINDECK_GPUS", "[0, 1]")
    return Context.open()


def hold_spec(base: Path, name: str, gpus: int, seconds: float = 2.0, nodes: int = 1,
              until: Path | None = None) -> Path:
    """A version holding its GPUs `seconds` long, or until the file `until` exists."""
    parameters: dict[str, float | str] = {"seconds": seconds}
    if until is not None:
        parameters["until"] = str(until)
    return script_spec(base, name, HOLD_BOOT, gpus=gpus, nodes=nodes, parameters=parameters)


def reasons(ctx: Context, version: Version) -> list[str]:
    """Messages of the version's `queued` status events, oldest first."""
    return [e.message for e in reversed(version_events(ctx.db, version.id or 0))
            if e.status == Status.QUEUED.value]


def most_running_at_once(versions: list[Version]) -> int:
    """The largest number of versions whose [started, finished) intervals overlap."""
    marks: list[tuple[datetime, int]] = []
    for v in versions:
        assert v.started_at is not None and v.finished_at is not None
        marks += [(v.started_at, 1), (v.finished_at, -1)]
    running = peak = 0
    for _, delta in sorted(marks, key=lambda m: (m[0], m[1])):  # ends before starts on ties
        running += delta
        peak = max(peak, running)
    return peak


def test_three_submitters_two_gpus(gpu_ctx: Context, tmp_path: Path) -> None:
    # Every version holds its GPU until the release: however slowly the three submitting
    # processes start, the first two hold both GPUs and the last waits for them first.
    release = tmp_path / "release"
    specs = [hold_spec(tmp_path, f"g{i}", gpus=1, until=release) for i in range(3)]
    submitters = [subprocess.Popen([traindeck_executable(), "submit", "--json", str(s)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for s in specs]
    for proc in submitters:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert json.loads(out)["status"] == "initializing"
    first, second, last = sorted((current(gpu_ctx, f"g{i}") for i in range(3)),
                                 key=lambda v: v.id or 0)
    # The last may queue an instant behind an earlier one not yet admitted; release only
    # once both GPUs are held and it waits for them, or the first two need not overlap.
    for early in (first, second):
        wait_status(gpu_ctx, _job(gpu_ctx, early), Status.RUNNING)
    wait_status(gpu_ctx, _job(gpu_ctx, last), Status.QUEUED,
                predicate=lambda v: v.reason.count(" held by ") == 2)
    release.touch()
    versions = [wait(gpu_ctx, f"g{i}", timeout=90) for i in range(3)]
    assert [v.status for v in versions] == ["succeeded"] * 3, [v.reason for v in versions]
    assert most_running_at_once(versions) == 2
    for a in versions:  # overlapping runs never share a GPU
        for b in versions:
            if a.id != b.id and a.started_at < b.finished_at and b.started_at < a.finished_at:
                assert set(a.allocated_gpus.split(",")).isdisjoint(b.allocated_gpus.split(","))
    for v in versions:  # each rank saw exactly the GPU it was given
        seen = json.loads((Path(v.output) / "gpu.json").read_text())["cuda"]
        assert seen == v.allocated_gpus and seen in ("0", "1")
    # First come, first served: the last created waited, and said for whom.
    by_id = sorted(versions, key=lambda v: v.id or 0)
    waiter = by_id[-1]
    assert waiter.started_at >= min(v.finished_at for v in by_id[:2])  # type: ignore[type-var]
    assert waiter.queued_at is not None
    holders = {v.allocated_gpus: _job(gpu_ctx, v) for v in by_id[:2]}
    said = reasons(gpu_ctx, waiter)
    # Which holders a reason names depends on when the waiter looked (one or both GPUs
    # taken); it names at least one, and every one it names is right.
    held = [part.strip() for r in said for part in re.split(r"[;,] ", r) if " held by " in part]
    assert held, said
    assert all(any(part == f"GPU{g} held by {job}/V001" for g, job in holders.items())
               for part in held), said
    # The first two may wait an instant behind an earlier version not yet admitted
    # (first come, first served), but never for a GPU someone holds.
    assert all(" held by " not in r for v in by_id[:2] for r in reasons(gpu_ctx, v))


def _job(ctx: Context, version: Version) -> str:
    from app.store.models import Job

    with ctx.db.read() as session:
        job = session.get(Job, version.job_id)
        assert job is not None
        return job.name


def test_more_gpus_than_the_pool_is_refused_at_submit(gpu_ctx: Context, tmp_path: Path) -> None:
    from app.errors import SpecError
    from app.queries import list_jobs

    for name, gpus, nodes, asked in (("greedy", 3, 1, "3 GPU(s)"),
                                     ("greedy-nodes", 1, 3, "1 GPU(s) × 3 nodes")):
        with pytest.raises(SpecError) as refused:
            submit_in_process(gpu_ctx, hold_spec(tmp_path, name, gpus=gpus, nodes=nodes))
        assert refused.value.lines() == [
            f"{tmp_path / f'{name}.yaml'}: resources.gpus: pool public has 2 GPU(s) on "
            f"this machine; {asked} asked for"]
    assert list_jobs(gpu_ctx.db) == []  # nothing half-written


def test_a_pool_that_shrank_after_submit_fails_the_version_at_once(
        gpu_ctx: Context, tmp_path: Path) -> None:
    from helpers import noop_launcher

    from app.jobs import submit
    from app.runtime.launcher import launch
    from app.specs.spec import load_spec_file

    gpu_ctx.settings.gpus = [0, 1, 2]
    raw, base = load_spec_file(hold_spec(tmp_path, "greedy", gpus=3))
    vid = submit(gpu_ctx, raw, base, launcher=noop_launcher).version_id
    gpu_ctx.settings.gpus = [0, 1]  # the machine lost a GPU before the version started
    launch(gpu_ctx, vid)
    version = wait(gpu_ctx, "greedy", timeout=30)
    assert version.status == "failed"
    assert version.reason == "asks for 3 GPU(s) but pool public has 2"
    assert version.started_at is None and version.allocated_gpus == ""


def test_first_come_first_served_and_stop_while_queued(gpu_ctx: Context,
                                                       tmp_path: Path) -> None:
    release_a = tmp_path / "release-a"
    submit_in_process(gpu_ctx, hold_spec(tmp_path, "fifo-a", gpus=1, until=release_a))
    wait_status(gpu_ctx, "fifo-a", Status.RUNNING)
    # b needs both GPUs: it waits for a. c needs one, and one is free: but b is first.
    submit_in_process(gpu_ctx, hold_spec(tmp_path, "fifo-b", gpus=2, seconds=1.5))
    wait_status(gpu_ctx, "fifo-b", Status.QUEUED)
    submit_in_process(gpu_ctx, hold_spec(tmp_path, "fifo-c", gpus=1, seconds=1))
    c = wait_status(gpu_ctx, "fifo-c", Status.QUEUED,
                    predicate=lambda v: "earlier version(s) first (fifo-b/V001)" in v.reason)
    assert re.search(r": 1 free; GPU\d held by fifo-a/V001; 1 earlier version", c.reason)
    submit_in_process(gpu_ctx, hold_spec(tmp_path, "fifo-d", gpus=1, seconds=1))
    wait_status(gpu_ctx, "fifo-d", Status.QUEUED)
    from app.runtime.control import stop_version

    assert stop_version(gpu_ctx, "fifo-d") == "stopping fifo-d V001"
    d = wait(gpu_ctx, "fifo-d", timeout=20)
    assert (d.status, d.reason, d.started_at) == ("stopped", "stopped by user", None)
    release_a.touch()
    a, b, c = (wait(gpu_ctx, j, timeout=60) for j in ("fifo-a", "fifo-b", "fifo-c"))
    assert [x.status for x in (a, b, c)] == ["succeeded"] * 3
    assert b.allocated_gpus == "0,1"
    assert a.finished_at <= b.started_at  # type: ignore[operator]
    assert b.finished_at <= c.started_at  # type: ignore[operator]


def test_a_peek_decides_as_the_write_would_and_books_nothing(gpu_ctx: Context,
                                                             tmp_path: Path) -> None:
    ids = []
    for name in ("first", "second"):
        raw, base = load_spec_file(hold_spec(tmp_path, name, gpus=2))
        ids.append(submit(gpu_ctx, raw, base, launcher=lambda c, v: None).version_id)
    first, second = ids
    both = [GpuDevice(0), GpuDevice(1)]
    assert peek_admission(gpu_ctx, first).granted == both
    assert peek_admission(gpu_ctx, first).granted == both  # nothing was booked
    assert try_admit(gpu_ctx, first).granted == both
    waiting = peek_admission(gpu_ctx, second)
    assert waiting.granted is None
    assert waiting.reason == try_admit(gpu_ctx, second).reason
    assert "GPU0 held by first/V001" in waiting.reason
