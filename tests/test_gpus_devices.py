"""Physical devices: allocations name each GPU's UUID, MIG instances are booked on their
own, and a version's ranks (local processes, Docker device requests) get the very device
it was given. Driven by the fake NVML: no GPU exists here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_nvml import NVML_ERROR_NOT_SUPPORTED, FakeDevice, FakeNvml, install, two_gpus
from helpers import noop_launcher, run_cli
from rich.console import Console
from runtime_helpers import script_spec, submit_gpu_version
from sqlmodel import select

from app.context import Context
from app.jobs import submit
from app.machine import gpu_board
from app.queries import version_info
from app.runtime.gpus import GpuDevice, allocatable, inventory, whole_gpus
from app.runtime.plan import build_plan
from app.runtime.scheduler import gpu_shortage, try_admit
from app.specs.spec import JobSpec, load_spec_file
from app.store.models import GpuAllocation, Version
from app.tui.widgets.version_overview import details_table

GPU1_UUID = "GPU-0a1b2c3d-1111-4000-8000-000000000001"


def mig_machine() -> FakeNvml:
    """GPU0 split into two MIG instances (utilisation is not reported for them), GPU1 whole."""
    nvml = two_gpus()
    no_util = {"utilization": NVML_ERROR_NOT_SUPPORTED}
    nvml.devices[0].mig = [
        FakeDevice(name="NVIDIA A100 MIG 3g.40gb", uuid="MIG-aaaa", total_mb=40_192,
                   errors=no_util),
        FakeDevice(name="NVIDIA A100 MIG 2g.20gb", uuid="MIG-bbbb", total_mb=19_968,
                   errors=no_util),
    ]
    return nvml


@pytest.fixture
def nvml_ctx(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> Context:
    """A context whose GPUs come from the fake NVML's MIG machine."""
    ctx.settings.gpus = None
    install(monkeypatch, mig_machine())
    return ctx


def plan_of(ctx: Context, version_id: int, devices: list[GpuDevice]) -> Any:
    """The launch plan of a version on `devices`, as its supervisor builds it."""
    with ctx.db.read() as session:
        version = session.get(Version, version_id)
    assert version is not None
    spec = JobSpec.model_validate(json.loads(version.spec_json))
    return build_plan(ctx.settings, spec.name, version, spec, devices)


def test_mig_instances_are_booked_by_uuid_and_a_split_gpu_is_not(
        nvml_ctx: Context, tmp_path: Path) -> None:
    assert [g.label for g in allocatable(inventory(nvml_ctx.settings))] == [
        "GPU0/MIG0", "GPU0/MIG1", "GPU1"]
    assert gpu_shortage(nvml_ctx.settings, "public", 4, 1) == (
        "pool public has 3 GPU(s) on this machine; 4 GPU(s) asked for")
    ids = [submit_gpu_version(nvml_ctx, tmp_path, name) for name in ("a", "b", "c", "d")]
    granted = [try_admit(nvml_ctx, vid).granted for vid in ids[:3]]
    assert granted == [[GpuDevice(0, 0)], [GpuDevice(0, 1)], [GpuDevice(1)]]
    assert [d.uuid for [d] in granted] == ["MIG-aaaa", "MIG-bbbb", GPU1_UUID]  # type: ignore[misc]
    with nvml_ctx.db.read() as session:
        rows = session.exec(select(GpuAllocation.gpu, GpuAllocation.mig_index,
                                   GpuAllocation.uuid, GpuAllocation.version_id)).all()
    assert sorted(rows) == [(0, 0, "MIG-aaaa", ids[0]), (0, 1, "MIG-bbbb", ids[1]),
                            (1, -1, GPU1_UUID, ids[2])]
    assert try_admit(nvml_ctx, ids[0]).granted == [GpuDevice(0, 0)]  # asked again: the same
    waiting = try_admit(nvml_ctx, ids[3])
    assert waiting.reason == ("waiting for 1 GPU(s) in pool public: 0 free; "
                              "GPU0/MIG0 held by a/V001; GPU0/MIG1 held by b/V001; "
                              "GPU1 held by c/V001")
    # The overview and `show` name the devices a version got, index and UUID.
    infos = [version_info(nvml_ctx.db, name) for name in ("a", "c")]
    assert [(i.allocated_gpus, i.allocated_uuids) for i in infos] == [
        ("0/MIG0", "MIG-aaaa"), ("1", GPU1_UUID)]
    # The GPUs screen's board names every version on one of GPU0's instances.
    board = gpu_board(nvml_ctx.settings, nvml_ctx.db, whole_gpus(inventory(nvml_ctx.settings)))
    assert [(g.index, g.holder) for g in board.gpus] == [(0, "a/V001, b/V001"), (1, "c/V001")]
    code, out = run_cli("show", "c")
    assert code == 0 and f"  devices     GPU1 {GPU1_UUID}\n" in out, out
    console = Console(width=120, record=True)
    console.print(details_table(infos[0]))
    assert "Devices    GPU0/MIG0 MIG-aaaa" in console.export_text()


def test_a_local_rank_sees_its_mig_instance_by_uuid(nvml_ctx: Context, tmp_path: Path) -> None:
    mig, other, whole = (submit_gpu_version(nvml_ctx, tmp_path, name)
                         for name in ("mig", "other", "whole"))
    on_mig = plan_of(nvml_ctx, mig, try_admit(nvml_ctx, mig).granted or [])
    env = on_mig.ranks[0].env
    assert (env["CUDA_VISIBLE_DEVICES"], env["CUDA_DEVICE_ORDER"]) == ("MIG-aaaa", "PCI_BUS_ID")
    assert on_mig.ranks[0].gpus == ["MIG-aaaa"]
    try_admit(nvml_ctx, other)  # takes MIG1
    on_gpu = plan_of(nvml_ctx, whole, try_admit(nvml_ctx, whole).granted or [])
    assert on_gpu.ranks[0].env["CUDA_VISIBLE_DEVICES"] == "1"  # PCI bus order, as NVML's


def test_declared_gpus_have_no_uuid(ctx: Context, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, mig_machine())
    ctx.settings.gpus = [0]  # declared GPUs win: NVML is not asked
    vid = submit_gpu_version(ctx, tmp_path, "declared")
    assert try_admit(ctx, vid).granted == [GpuDevice(0)]
    info = version_info(ctx.db, "declared")
    assert (info.allocated_gpus, info.allocated_uuids) == ("0", "")


@pytest.mark.docker
def test_the_docker_device_request_names_the_mig_instance(
        engine: Any, nvml_ctx: Context, tmp_path: Path) -> None:
    from app.runtime.executors.docker import DockerExecutor

    raw, base = load_spec_file(script_spec(tmp_path, "in-docker", "print(1)\n", "docker",
                                           gpus=1))
    vid = submit(nvml_ctx, raw, base, launcher=noop_launcher).version_id
    plan = plan_of(nvml_ctx, vid, try_admit(nvml_ctx, vid).granted or [])
    executor = DockerExecutor(nvml_ctx.settings, engine)
    plan = executor.prepare(plan, None, may_wait=True) or plan
    # Created, not started: this engine has no NVIDIA runtime to serve the request.
    container = executor._create(engine, plan, 0, {})
    try:
        requests = engine.api.inspect_container(container)["HostConfig"]["DeviceRequests"]
        assert [r["DeviceIDs"] for r in requests] == [["MIG-aaaa"]]
        assert "CUDA_VISIBLE_DEVICES" not in plan.ranks[0].env  # the runtime sets it
    finally:
        engine.api.remove_container(container, force=True)
