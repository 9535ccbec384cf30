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


# --- vendor tools as programs on PATH, for the launcher run as a subprocess --------------------


def write_tool(bin_dir: Path, name: str, script: str) -> Path:
    """An executable shell script ``bin_dir/name``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(0o755)
    return path


def _print_file(path: Path) -> str:
    return f"cat '{path}'\n"


def fake_nvidia_smi(bin_dir: Path, csv: str = "nvidia_smi_rtx4090.csv",
                    plain: str = "nvidia_smi_rtx4090_plain.txt") -> Path:
    """nvidia-smi replaying a recorded card: the CSV query, or the plain table with the CUDA version."""
    return write_tool(bin_dir, "nvidia-smi", (
        'case "$*" in\n'
        f"  *--query-gpu*) {_print_file(DATA / csv).strip()} ;;\n"
        f"  *) {_print_file(DATA / plain).strip()} ;;\n"
        "esac\n"
    ))


def fake_nvcc(bin_dir: Path) -> Path:
    return write_tool(bin_dir, "nvcc", 'echo "Cuda compilation tools, release 12.4, V12.4.131"\n')


def fake_rocm(bin_dir: Path, rocm_root: Path, recording: str = "rocm_smi_7900xtx.json",
              with_hipconfig: bool = True) -> None:
    """rocm-smi replaying a recorded card, and (optionally) hipconfig for a ROCm root."""
    write_tool(bin_dir, "rocm-smi", _print_file(DATA / recording))
    if with_hipconfig:
        write_tool(bin_dir, "hipconfig", (
            'case "$1" in\n'
            f"  -l) echo '{rocm_root}/llvm/bin' ;;\n"
            f"  -R) echo '{rocm_root}' ;;\n"
            "  *) echo 'HIP version: 6.2.41133' ;;\n"
            "esac\n"
        ))
