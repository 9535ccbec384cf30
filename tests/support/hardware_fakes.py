"""Stand-ins for the vendor tools, replaying outputs recorded under tests/unit/data/hardware/."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from webui.hardware import GpuInfo, HardwareInfo

DATA = Path(__file__).resolve().parent.parent / "unit" / "data" / "hardware"


def recorded(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


@dataclass
class RecordedRunner:
    """A ``run`` for ``hardware.detect``: program -> recorded stdout (absent: not installed)."""

    outputs: dict[str, str]
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: list[str]) -> str | None:
        self.calls.append(argv)
        return self.outputs.get(argv[0])

    def programs(self) -> list[str]:
        return [argv[0] for argv in self.calls]


class FakeNVMLError(Exception):
    """Plays pynvml.NVMLError."""


@dataclass
class _Memory:
    total: int
    free: int


class FakeNvml:
    """The six pynvml functions detect uses, answering with values recorded from a real card."""

    NVMLError = FakeNVMLError

    def __init__(self, devices: list[dict[str, object]], init_error: bool = False) -> None:
        self.devices = devices
        self.init_error = init_error
        self.shutdowns = 0

    @classmethod
    def from_recording(cls, name: str) -> FakeNvml:
        devices = json.loads(recorded(name))["devices"]
        for device in devices:
            text = str(device["name"])
            # The recording marks names that pynvml returned as bytes with "b:".
            device["name"] = text[2:].encode() if text.startswith("b:") else text
        return cls(devices)

    def nvmlInit(self) -> None:  # noqa: N802 (pynvml's names)
        if self.init_error:
            raise FakeNVMLError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:  # noqa: N802
        return self.devices[handle]["name"]  # type: ignore[return-value]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> _Memory:  # noqa: N802
        device = self.devices[handle]
        return _Memory(int(device["total"]), int(device["free"]))  # type: ignore[call-overload]


def hardware_with(
    *,
    gpus: tuple[GpuInfo, ...] = (),
    offload: bool | None = None,
    ram_available_mb: int = 16 * 1024,
    avx2: bool | None = True,
) -> HardwareInfo:
    """A HardwareInfo with plain values, for decisions that depend on a few of them."""
    return HardwareInfo(
        cpu_physical_cores=8,
        cpu_logical_cores=16,
        ram_total_mb=max(ram_available_mb, 32 * 1024),
        ram_available_mb=ram_available_mb,
        gpus=gpus,
        gpu_offload_supported=offload,
        cpu_avx2=avx2,
    )


def nvidia(free_mb: int, total_mb: int | None = None) -> GpuInfo:
    return GpuInfo("nvidia", "NVIDIA test card", total_mb or free_mb, free_mb)
