"""The system-metrics sampler: fake NVML for the GPUs, a real process for CPU and memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_nvml import NVML_ERROR_GPU_IS_LOST, FakeNvml, install, two_gpus
from runtime_helpers import submit_gpu_version
from sqlmodel import col, select

from app.context import Context
from app.queries import version_events
from app.readmodels import gpu_compare_rows
from app.runtime.sampler import Sampler, gpu_summary
from app.store.models import GpuAllocation, MetricPointRow

WORKER = """\
import os, sys, time
go, done = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.01)
block = bytearray(64 * 2**20)  # resident: written below
for i in range(0, len(block), 4096):
    block[i] = 1
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
open(done, "w").close()
time.sleep(60)
"""


@pytest.fixture
def rank(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    """A local 'rank': a shell whose child burns CPU and holds 64 MB once `go` exists."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go, done = tmp_path / "go", tmp_path / "done"
    proc = subprocess.Popen(["sh", "-c", f'"{sys.executable}" {script} {go} {done} & wait'])
    yield proc, go, done
    subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False)
    proc.kill()
    proc.wait()


def version_on_gpus(ctx: Context, base: Path, gpus: list[int]) -> int:
    vid = submit_gpu_version(ctx, base, "sampled", gpus=len(gpus))
    with ctx.db.write() as session:
        session.add_all([GpuAllocation(gpu=g, version_id=vid) for g in gpus])
    return vid


def points(ctx: Context, vid: int) -> list[tuple[str, int, float]]:
    with ctx.db.read() as session:
        return list(session.exec(
            select(MetricPointRow.name, MetricPointRow.step, MetricPointRow.value)
            .where(MetricPointRow.version_id == vid).order_by(col(MetricPointRow.id))).all())


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def test_samples_gpus_and_processes_and_warns_about_an_idle_gpu(
        monkeypatch: pytest.MonkeyPatch, ctx: Context, tmp_path: Path,
        rank: tuple[subprocess.Popen[bytes], Path, Path]) -> None:
    nvml = install(monkeypatch, two_gpus())
    nvml.devices[0].utilization, nvml.devices[0].used_mb = 63, 20_480
    vid = version_on_gpus(ctx, tmp_path, [0, 1])
    proc, go, done = rank
    handle = json.dumps({"kind": "local", "pids": [proc.pid]})
    sampler = Sampler(ctx, vid, handle, interval=600).start()  # the test samples itself
    go.touch()
    wait_for(done)
    first = sampler.sample()
    assert {k: v for k, v in first.items() if k.startswith("sys/gpu")} == {
        "sys/gpu0/util": 63, "sys/gpu0/memory_mb": 20_480,
        "sys/gpu1/util": 0, "sys/gpu1/memory_mb": 512}
    assert first["sys/cpu_percent"] > 0  # 0.3 s of CPU since the start
    assert first["sys/rss_mb"] >= 64
    nvml.devices[0].utilization = 71
    sampler.sample()
    sampler.stop()
    assert nvml.initialised == 0
    stored = points(ctx, vid)
    assert ("sys/gpu0/util", 0, 63) in stored and ("sys/gpu0/util", 1, 71) in stored
    warnings = [e.message for e in version_events(ctx.db, vid) if e.kind == "warning"]
    assert warnings == ["GPU1 stayed at 0% for the whole run: is the script using CUDA?"]
    assert gpu_summary(ctx.db, [vid]) == {
        vid: {"gpu_memory_peak_mb": 20_480, "gpu_util_mean": 33.5}}
    # A supervisor restarted for the version goes on with the next step.
    again = Sampler(ctx, vid, handle, interval=600).start()
    again.sample()
    again.stop()
    assert ("sys/gpu0/util", 2, 71) in points(ctx, vid)


def test_a_mig_instance_is_sampled_by_its_uuid(monkeypatch: pytest.MonkeyPatch, ctx: Context,
                                               tmp_path: Path) -> None:
    from fake_nvml import NVML_ERROR_NOT_SUPPORTED, FakeDevice

    nvml = install(monkeypatch, two_gpus())
    nvml.devices[0].used_mb = 30_000  # the whole GPU's figure: not the instance's
    nvml.devices[0].mig = [FakeDevice(uuid="MIG-aaaa", total_mb=40_192, used_mb=700,
                                      errors={"utilization": NVML_ERROR_NOT_SUPPORTED})]
    vid = submit_gpu_version(ctx, tmp_path, "on-mig")
    with ctx.db.write() as session:
        session.add(GpuAllocation(gpu=0, mig_index=0, uuid="MIG-aaaa", version_id=vid))
    sampler = Sampler(ctx, vid, None, interval=600).start()
    assert sampler.sample() == {"sys/gpu0/mig0/memory_mb": 700}
    sampler.sample()
    sampler.stop()
    assert gpu_summary(ctx.db, [vid]) == {vid: {"gpu_memory_peak_mb": 700}}
    # No utilisation is known for it: no warning that it stayed idle.
    assert [e.message for e in version_events(ctx.db, vid) if e.kind == "warning"] == []


def test_the_thread_samples_on_its_own_and_zero_turns_it_off(
        monkeypatch: pytest.MonkeyPatch, ctx: Context, tmp_path: Path) -> None:
    nvml = install(monkeypatch, two_gpus())
    nvml.devices[0].utilization = 5
    vid = version_on_gpus(ctx, tmp_path, [0])
    nvml.calls.clear()  # (submit checked the pool's GPUs)
    off = Sampler(ctx, vid, None, interval=0).start()
    off.stop()
    assert nvml.calls == [] and points(ctx, vid) == []
    sampler = Sampler(ctx, vid, None, interval=0.05).start()
    deadline = time.monotonic() + 30
    while len(points(ctx, vid)) < 4:
        assert time.monotonic() < deadline, "the sampler stored nothing"
        time.sleep(0.05)
    sampler.stop()
    names = {name for name, _, _ in points(ctx, vid)}
    assert names == {"sys/gpu0/util", "sys/gpu0/memory_mb"}  # no process to measure
    assert not [e for e in version_events(ctx.db, vid) if e.kind == "warning"]


def test_no_driver_or_a_lost_gpu_leaves_the_gpu_metrics_out(
        monkeypatch: pytest.MonkeyPatch, ctx: Context, tmp_path: Path) -> None:
    install(monkeypatch, two_gpus())
    vid = version_on_gpus(ctx, tmp_path, [0, 1])
    install(monkeypatch, FakeNvml(init_error=9))  # the driver went away since
    sampler = Sampler(ctx, vid, None, interval=600).start()
    assert sampler.sample() == {}
    sampler.stop()
    nvml = install(monkeypatch, two_gpus())
    nvml.devices[1].errors = {"utilization": NVML_ERROR_GPU_IS_LOST}
    sampler = Sampler(ctx, vid, None, interval=600).start()
    assert set(sampler.sample()) == {"sys/gpu0/util", "sys/gpu0/memory_mb"}
    sampler.stop()


SPINNER = """\
import time
block = bytearray(96 * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
start = time.process_time()
while time.process_time() - start < 3:
    pass
"""


def test_a_real_local_run_gets_its_cpu_and_memory_as_sys_metrics(
        make_project: Any, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The supervisor samples the version's own processes while they run.
    monkeypatch.setenv("TRAINDECK_SYSTEM_METRICS_SECONDS", "0.2")
    from app.jobs import submit
    from app.runtime.control import wait_final

    ctx = Context.open()
    project = make_project(name="spinner", boot=SPINNER)
    submit(ctx, project.spec, project.base)
    ended = wait_final(ctx, "spinner", "V001", 60)
    assert ended.status == "succeeded", ended.reason
    found: dict[str, float] = {}
    for name, _, value in points(ctx, ended.id or 0):
        found[name] = max(value, found.get(name, 0.0))
    assert found.get("sys/cpu_percent", 0) > 0, found
    assert found.get("sys/rss_mb", 0) > 90, found


def test_compare_shows_each_versions_gpu_peak_memory_and_mean_utilisation(
        monkeypatch: pytest.MonkeyPatch, ctx: Context, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import noop_launcher

    from app.cli.main import main
    from app.jobs import create_version, modified_spec

    install(monkeypatch, two_gpus())
    first = submit_gpu_version(ctx, tmp_path, "gpujob")
    _, spec, parent = modified_spec(ctx, "gpujob", "V001")
    second = create_version(ctx, "gpujob", spec, parent, launcher=noop_launcher).version_id
    samples = {first: [("sys/gpu0/util", 40.0), ("sys/gpu0/util", 60.0),
                       ("sys/gpu0/memory_mb", 900.0), ("sys/gpu0/memory_mb", 1200.0)],
               second: [("sys/gpu0/util", 0.0), ("sys/gpu0/memory_mb", 10.0)]}
    with ctx.db.write() as session:
        session.add_all([MetricPointRow(version_id=vid, name=name, step=step, value=value,
                                        wall_time=0.0)
                         for vid, points_ in samples.items()
                         for step, (name, value) in enumerate(points_)])
    capsys.readouterr()
    assert main(["compare", "gpujob", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpu"] == {
        "V001": {"gpu_memory_peak_mb": 1200.0, "gpu_util_mean": 50.0},
        "V002": {"gpu_memory_peak_mb": 10.0, "gpu_util_mean": 0.0}}
    assert main(["compare", "gpujob"]) == 0
    table = capsys.readouterr().out
    assert "GPU memory peak (MiB)" in table and "GPU utilisation mean (%)" in table
    # A version without samples has no figure; a figure no version has is no row.
    assert gpu_compare_rows({first: {"gpu_memory_peak_mb": 5.0}}, [first, second]) == [
        ("GPU memory peak (MiB)", [5.0, None])]
