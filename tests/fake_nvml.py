"""A stand-in for `pynvml` (nvidia-ml-py): exactly the calls Traindeck makes, no more.

No GPU exists on the machines the suite runs on, so the GPU path meets this double
instead: several GPUs, MIG instances, processes on them and NVML errors, all set up by
the test. `install(monkeypatch, nvml)` puts it where `import pynvml` finds it (the one
mock the project allows: GPUs do not exist here).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

MIB = 2**20
NVML_TEMPERATURE_GPU = 0
NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_GPU_IS_LOST = 15


class NVMLError(Exception):
    """An NVML failure, with the driver's error code as `value` (as pynvml has it)."""

    MESSAGES = {NVML_ERROR_UNINITIALIZED: "Uninitialized",
                NVML_ERROR_NOT_SUPPORTED: "Not Supported", NVML_ERROR_NOT_FOUND: "Not Found",
                NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
                NVML_ERROR_GPU_IS_LOST: "GPU is lost"}

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return self.MESSAGES.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeProcess:
    """A compute process on a GPU: `used_mb` None where NVML cannot say (as on WDDM)."""

    pid: int
    used_mb: int | None


@dataclass
class FakeDevice:
    """A GPU or a MIG instance; `errors` maps a call's short name to the error code it raises."""

    name: str = "NVIDIA A100-SXM4-80GB"
    uuid: str = ""
    total_mb: int = 81920
    used_mb: int = 0
    utilization: int = 0
    temperature: int = 35
    processes: list[FakeProcess] = field(default_factory=list)
    mig: list[FakeDevice] | None = None
    """MIG instances when MIG mode is on; None for a GPU without MIG."""
    errors: dict[str, int] = field(default_factory=dict)

    def check(self, call: str) -> None:
        if call in self.errors:
            raise NVMLError(self.errors[call])


@dataclass
class FakeNvml:
    """The machine the double answers for."""

    devices: list[FakeDevice] = field(default_factory=list)
    init_error: int | None = None
    """An error `nvmlInit` raises (no driver: NVML_ERROR_DRIVER_NOT_LOADED)."""
    initialised: int = 0
    calls: list[str] = field(default_factory=list)

    def module(self) -> ModuleType:
        """A `pynvml` module whose functions answer from this machine."""
        module = ModuleType("pynvml")
        for name, value in globals().items():
            if name.startswith("NVML_") or name == "NVMLError":
                setattr(module, name, value)
        for name in dir(self):
            if name.startswith("nvml"):
                setattr(module, name, getattr(self, name))
        return module

    def _device(self, handle: Any, call: str) -> FakeDevice:
        self.calls.append(call)
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        assert isinstance(handle, FakeDevice), f"{call}: not a device handle: {handle!r}"
        handle.check(call)
        return handle

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeDevice:
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if not 0 <= index < len(self.devices):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return self._device(self.devices[index], "handle")

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeDevice:
        if self.initialised <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        for device in self.devices:
            for found in [device, *(device.mig or [])]:
                if found.uuid == uuid:
                    return self._device(found, "handle")
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._device(handle, "uuid").uuid

    def nvmlDeviceGetName(self, handle: Any) -> str:
        return self._device(handle, "name").name

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> SimpleNamespace:
        device = self._device(handle, "memory")
        return SimpleNamespace(total=device.total_mb * MIB, used=device.used_mb * MIB,
                               free=(device.total_mb - device.used_mb) * MIB)

    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._device(handle, "utilization").utilization, memory=0)

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:
        assert sensor == NVML_TEMPERATURE_GPU
        return self._device(handle, "temperature").temperature

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> list[SimpleNamespace]:
        device = self._device(handle, "processes")
        return [SimpleNamespace(pid=p.pid, usedGpuMemory=None if p.used_mb is None
                                else p.used_mb * MIB) for p in device.processes]

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:
        device = self._device(handle, "mig_mode")
        if device.mig is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [NVML_DEVICE_MIG_ENABLE, NVML_DEVICE_MIG_ENABLE]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int:
        self._device(handle, "mig_count")
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> FakeDevice:
        device = self._device(handle, "mig_handle")
        if device.mig is None or index >= len(device.mig):
            raise NVMLError(NVML_ERROR_NOT_FOUND)  # an empty slot, as on a real GPU
        return device.mig[index]


def two_gpus() -> FakeNvml:
    """Two idle A100s with fixed UUIDs."""
    return FakeNvml(devices=[
        FakeDevice(uuid="GPU-0a1b2c3d-0000-4000-8000-000000000000", used_mb=512),
        FakeDevice(uuid="GPU-0a1b2c3d-1111-4000-8000-000000000001", used_mb=512,
                   temperature=41),
    ])


def install(monkeypatch: pytest.MonkeyPatch, nvml: FakeNvml) -> FakeNvml:
    """Make `import pynvml` find `nvml` for the rest of the test."""
    monkeypatch.setitem(sys.modules, "pynvml", nvml.module())
    return nvml
