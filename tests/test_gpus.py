"""The NVML inventory and the scheduler's foreign-load rule, driven by the fake NVML.

The processes on the fake GPUs are real ones (`sleep`), so that their names and users
come from /proc as they would on a GPU machine.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_nvml import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_NOT_SUPPORTED,
    FakeDevice,
    FakeNvml,
    FakeProcess,
    install,
    two_gpus,
)
from runtime_helpers import submit_gpu_version

from app.context import Context
from app.jobs import set_status
from app.runtime.gpus import (
    GpuDevice,
    GpuInfo,
    GpuProcess,
    foreign_load,
    gpu_table_rows,
    handle_pids,
    inventory,
    inventory_json,
    nvml_problem,
    whole_gpus,
)
from app.runtime.scheduler import peek_admission, try_admit
from app.store.models import Status, Version

USER = pwd.getpwuid(os.getuid()).pw_name
HIDDEN_PID = 4_194_305
"""Above Linux's largest pid: a process NVML reports that /proc cannot show."""


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A real process to stand on a fake GPU (its name in /proc is `sleep`)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def nvml_ctx(ctx: Context) -> Context:
    """A context that reads its GPUs from NVML (none declared)."""
    ctx.settings.gpus = None
    return ctx


def gone_pid() -> int:
    """A pid no process has now."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_inventory_reads_each_gpu_and_its_processes(
        monkeypatch: pytest.MonkeyPatch, nvml_ctx: Context,
        sleeper: subprocess.Popen[bytes]) -> None:
    nvml = install(monkeypatch, two_gpus())
    nvml.devices[1].used_mb, nvml.devices[1].utilization = 30_000, 87
    ghost = gone_pid()
    nvml.devices[1].processes = [FakeProcess(sleeper.pid, 29_000), FakeProcess(ghost, None)]
    gpus = inventory(nvml_ctx.settings)
    assert [(g.index, g.uuid, g.memory_total_mb, g.memory_used_mb, g.utilization,
             g.temperature, g.source) for g in gpus] == [
        (0, "GPU-0a1b2c3d-0000-4000-8000-000000000000", 81920, 512, 0, 35, "nvml"),
        (1, "GPU-0a1b2c3d-1111-4000-8000-000000000001", 81920, 30_000, 87, 41, "nvml")]
    assert gpus[1].processes == (GpuProcess(sleeper.pid, 29_000, "sleep", USER),
                                 GpuProcess(ghost, None, "", ""))
    assert [p.describe() for p in gpus[1].processes] == [
        f"pid {sleeper.pid} (sleep, user {USER})", f"pid {ghost}"]
    assert nvml.initialised == 0  # every nvmlInit was shut down again
    data = inventory_json(nvml_ctx.settings)
    assert data["source"] == "nvml"
    assert json.loads(json.dumps(data))["gpus"][1]["label"] == "GPU1"


def test_mig_instances_are_devices_of_their_own(monkeypatch: pytest.MonkeyPatch,
                                                nvml_ctx: Context) -> None:
    no_util = {"utilization": NVML_ERROR_NOT_SUPPORTED}
    nvml = install(monkeypatch, two_gpus())
    nvml.devices[0].mig = [
        FakeDevice(name="NVIDIA A100 MIG 3g.40gb", uuid="MIG-aaaa", total_mb=40_192,
                   used_mb=100, errors=no_util),
        FakeDevice(name="NVIDIA A100 MIG 2g.20gb", uuid="MIG-bbbb", total_mb=19_968,
                   used_mb=0, errors=no_util),
    ]
    gpus = inventory(nvml_ctx.settings)
    assert [(g.label, g.uuid, g.memory_total_mb, g.utilization) for g in gpus] == [
        ("GPU0", "GPU-0a1b2c3d-0000-4000-8000-000000000000", 81920, 0),
        ("GPU0/MIG0", "MIG-aaaa", 40_192, None),
        ("GPU0/MIG1", "MIG-bbbb", 19_968, None),
        ("GPU1", "GPU-0a1b2c3d-1111-4000-8000-000000000001", 81920, 0)]
    assert [g.label for g in whole_gpus(gpus)] == ["GPU0", "GPU1"]


def test_nvml_errors(monkeypatch: pytest.MonkeyPatch, nvml_ctx: Context) -> None:
    nvml = install(monkeypatch, FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED))
    assert inventory(nvml_ctx.settings) == []
    assert nvml_problem() == "no NVIDIA GPU: nvmlInit failed (Driver Not Loaded)"
    nvml = install(monkeypatch, two_gpus())
    assert nvml_problem() == ""
    # A GPU fallen off the bus is left out; one whose optional reads fail stays, unsaid.
    nvml.devices[0].errors = {"memory": NVML_ERROR_GPU_IS_LOST}
    nvml.devices[1].errors = {"processes": NVML_ERROR_NOT_SUPPORTED,
                              "temperature": NVML_ERROR_NOT_SUPPORTED}
    gpus = inventory(nvml_ctx.settings)
    assert [(g.index, g.temperature, g.processes) for g in gpus] == [(1, None, ())]
    assert nvml.initialised == 0


def test_declared_gpus_win_over_nvml(monkeypatch: pytest.MonkeyPatch, ctx: Context) -> None:
    install(monkeypatch, two_gpus())
    ctx.settings.gpus = [0]
    assert inventory(ctx.settings) == [GpuInfo(index=0, name="declared GPU 0")]


def test_foreign_load_wording() -> None:
    gpu = GpuInfo(index=1, name="A100", memory_total_mb=81920, memory_used_mb=73_000,
                  processes=(GpuProcess(4312, 72_704, "python", "ana"),
                             GpuProcess(77, 100, "python", "me")))
    assert foreign_load(gpu, {77}, 0.25) == (
        "GPU1: 71 GB used by pid 4312 (python, user ana) outside Traindeck")
    assert foreign_load(gpu, {77, 4312}, 0.25) == ""  # all Traindeck's own
    assert foreign_load(gpu, set(), 0.0) == ""  # the rule is off
    roomy = GpuInfo(index=0, name="A100", memory_total_mb=81920, memory_used_mb=2048,
                    processes=(GpuProcess(9, None),))
    assert foreign_load(roomy, set(), 0.25) == ""  # plenty left free
    many = GpuInfo(index=0, name="A100", memory_total_mb=8192, memory_used_mb=8000,
                   processes=tuple(GpuProcess(p, None) for p in range(10, 15)))
    assert foreign_load(many, set(), 0.25) == (
        "GPU0: 8 GB used by pid 10, pid 11, pid 12 and 2 more outside Traindeck")


def test_handle_pids_follow_a_local_rank_to_its_children(tmp_path: Path) -> None:
    wrapper = subprocess.Popen(["sh", "-c", "sleep 60 & wait"])
    try:
        children = Path(f"/proc/{wrapper.pid}/task/{wrapper.pid}/children")
        deadline = time.monotonic() + 10
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.01)
        child = int(children.read_text().split()[0])
        handle = json.dumps({"kind": "local", "pids": [wrapper.pid]})
        assert handle_pids([handle]) == {wrapper.pid, child}
        assert os.getpid() not in handle_pids([handle])
        # A container's processes are found by their cgroup; this process has none.
        assert handle_pids([{"kind": "docker", "containers": ["f" * 64]}]) == set()
    finally:
        wrapper.kill()
        wrapper.wait()


def test_scheduler_keeps_off_a_gpu_that_foreign_processes_fill(
        monkeypatch: pytest.MonkeyPatch, nvml_ctx: Context, tmp_path: Path,
        sleeper: subprocess.Popen[bytes]) -> None:
    nvml = install(monkeypatch, two_gpus())
    nvml.devices[0].used_mb = 73_000
    nvml.devices[0].processes = [FakeProcess(sleeper.pid, 72_704)]
    first = submit_gpu_version(nvml_ctx, tmp_path, "first")
    assert peek_admission(nvml_ctx, first).granted == [GpuDevice(1)]
    assert try_admit(nvml_ctx, first).granted == [GpuDevice(1)]
    second = submit_gpu_version(nvml_ctx, tmp_path, "second")
    waiting = try_admit(nvml_ctx, second)
    assert (waiting.granted, waiting.impossible) == (None, False)
    assert waiting.reason == (
        "waiting for 1 GPU(s) in pool public: 0 free; GPU1 held by first/V001; "
        f"GPU0: 71 GB used by pid {sleeper.pid} (sleep, user {USER}) outside Traindeck")
    # The notebook ends: its memory is free again, and the version gets the GPU.
    nvml.devices[0].used_mb, nvml.devices[0].processes = 512, []
    assert try_admit(nvml_ctx, second).granted == [GpuDevice(0)]


def test_scheduler_counts_a_running_version_processes_as_its_own(
        monkeypatch: pytest.MonkeyPatch, nvml_ctx: Context, tmp_path: Path,
        sleeper: subprocess.Popen[bytes]) -> None:
    nvml = install(monkeypatch, two_gpus())
    for device in nvml.devices:  # a version of ours strays onto both GPUs
        device.used_mb, device.processes = 73_000, [FakeProcess(sleeper.pid, 72_704)]
    other = submit_gpu_version(nvml_ctx, tmp_path, "other", gpus=0)
    set_status(nvml_ctx, other, Status.RUNNING)
    with nvml_ctx.db.write() as session:
        version = session.get(Version, other)
        assert version is not None
        version.handle = json.dumps({"kind": "local", "pids": [sleeper.pid]})
        session.add(version)
    vid = submit_gpu_version(nvml_ctx, tmp_path, "two", gpus=2)
    assert try_admit(nvml_ctx, vid).granted == [GpuDevice(0), GpuDevice(1)]


def test_a_lower_threshold_lets_a_version_share(monkeypatch: pytest.MonkeyPatch,
                                                nvml_ctx: Context, tmp_path: Path,
                                                sleeper: subprocess.Popen[bytes]) -> None:
    nvml = install(monkeypatch, two_gpus())
    nvml.devices = nvml.devices[:1]
    nvml.devices[0].used_mb = 73_000
    nvml.devices[0].processes = [FakeProcess(sleeper.pid, 72_704)]
    vid = submit_gpu_version(nvml_ctx, tmp_path, "small")
    assert "outside Traindeck" in try_admit(nvml_ctx, vid).reason
    nvml_ctx.settings.gpu_min_free_fraction = 0.1
    assert try_admit(nvml_ctx, vid).granted == [GpuDevice(0)]


def test_traindeck_gpus_lists_nothing_and_says_why_without_a_driver(home: Path) -> None:
    # No NVIDIA driver here and no `gpus` setting: the command says so and lists nothing.
    if not nvml_problem():
        pytest.skip("an NVIDIA GPU answers here")
    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "app", "gpus", *args], capture_output=True,
                              text=True, check=True).stdout

    assert json.loads(run("--json")) == {"source": "none", "gpus": []}
    assert run().startswith("no GPUs: NVML finds none here")


def test_gpu_check_says_plainly_that_there_is_no_gpu(home: Path) -> None:
    if not nvml_problem():
        pytest.skip("an NVIDIA GPU answers here: run scripts/gpu-check itself")
    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu-check"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("no NVIDIA GPU: nvmlInit failed (")


def test_table_rows(monkeypatch: pytest.MonkeyPatch, nvml_ctx: Context) -> None:
    nvml = install(monkeypatch, two_gpus())
    nvml.devices[1].processes = [FakeProcess(HIDDEN_PID, 100)]
    assert gpu_table_rows(inventory(nvml_ctx.settings)) == [
        ("GPU0", "GPU-0a1b2c3d-0000-4000-8000-000000000000", "NVIDIA A100-SXM4-80GB",
         "512/81920 MiB", "0%", "35°C", "-"),
        ("GPU1", "GPU-0a1b2c3d-1111-4000-8000-000000000001", "NVIDIA A100-SXM4-80GB",
         "512/81920 MiB", "0%", "41°C", f"pid {HIDDEN_PID}")]
