"""CPU, RAM and GPU facts, and the llama.cpp build they call for.

Only the standard library is imported at module level: launcher.py uses this module before any
virtualenv exists. pynvml, psutil and llama_cpp are imported lazily and each one is optional.
The parsers are pure functions over the text the vendor tools print, so they are tested on
recorded outputs; ``detect`` is the one place that runs the tools.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# The llama-cpp-python release the launcher installs and scripts/rebuild_llama.py rebuilds when
# none is installed yet. One pin, so the CPU wheel and a GPU rebuild never drift apart.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"

BACKENDS = ("cuda", "rocm", "vulkan", "metal", "cpu")

# CMAKE_ARGS per backend, as llama.cpp's ggml/CMakeLists.txt names the options today
# (GGML_HIPBLAS was renamed GGML_HIP; the old name no longer exists).
# GGML_NATIVE=off builds the portable x86 set (SSE4.2, AVX, AVX2, FMA, F16C, BMI2) instead of
# -march=native, so a wheel that pip caches on one machine also runs on another.
CPU_PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=off"
# For x86 CPUs without AVX2 (older or low-end Celeron/Pentium/Atom parts) the portable build
# would die with "illegal instruction", so those get a build tuned to the CPU at hand.
CPU_NATIVE_CMAKE_ARGS = "-DGGML_NATIVE=on"
GPU_CMAKE_ARGS = {
    "cuda": "-DGGML_CUDA=on",
    "rocm": "-DGGML_HIP=on",
    "vulkan": "-DGGML_VULKAN=on",
    "metal": "-DGGML_METAL=on",
}
_VENDOR_BACKEND = {"nvidia": "cuda", "amd": "rocm", "apple": "metal"}
_TOOLKIT = {
    "cuda": "the CUDA toolkit (nvcc)",
    "rocm": "the ROCm HIP SDK (hipcc, hipconfig)",
    "vulkan": "the Vulkan SDK (glslc)",
    "metal": "the Xcode command line tools",
}

REBUILD_SCRIPT = "scripts/rebuild_llama.py"

# AMD APUs report their BIOS carve-out (64-512 MB) as "VRAM": too small to offload anything,
# and not a reason to build llama.cpp for ROCm.
_MIN_AMD_VRAM_MB = 1024
# macOS lets Metal wire about 2/3 of unified memory on machines with up to 36 GB and about 3/4
# above that (MTLDevice.recommendedMaxWorkingSetSize: 10.7 GB on a 16 GB Mac, 48 GB on 64 GB);
# the rest stays with the OS and applications.
_APPLE_LARGE_RAM_MB = 36 * 1024

_COMMAND_TIMEOUT_S = 10.0
_MIB = 1024 * 1024

Runner = Callable[[list[str]], "str | None"]


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as the vendor tool reports it; memory in MiB."""

    vendor: str  # "nvidia" | "amd" | "apple"
    name: str
    total_mb: int
    free_mb: int
    index: int = 0


@dataclass(frozen=True)
class HardwareInfo:
    """What this machine offers for running a model; built once at start-up by ``detect``."""

    cpu_physical_cores: int
    cpu_logical_cores: int
    ram_total_mb: int
    ram_available_mb: int
    gpus: tuple[GpuInfo, ...]
    # llama_cpp.llama_supports_gpu_offload(); None when llama_cpp cannot be imported (yet).
    gpu_offload_supported: bool | None
    # Whether an x86 CPU has AVX2; None on other architectures or when unknown.
    cpu_avx2: bool | None = None

    @property
    def total_vram_mb(self) -> int:
        return sum(gpu.total_mb for gpu in self.gpus)

    @property
    def free_vram_mb(self) -> int:
        return sum(gpu.free_mb for gpu in self.gpus)

    @property
    def gpu_vendor(self) -> str | None:
        return self.gpus[0].vendor if self.gpus else None

    def summary_lines(self) -> list[str]:
        """A few lines for the launcher and the log: cores, memory, GPUs, offload support."""
        ram = (
            f"RAM {_gib(self.ram_total_mb)} total, {_gib(self.ram_available_mb)} available"
            if self.ram_total_mb
            else "RAM unknown"
        )
        lines = [
            f"CPU: {self.cpu_physical_cores} physical / {self.cpu_logical_cores} logical cores; "
            + ram
        ]
        if not self.gpus:
            lines.append("GPU: none found; models run on the CPU")
        for gpu in self.gpus:
            lines.append(
                f"GPU {gpu.index}: {gpu.name} ({gpu.vendor}), "
                f"{_gib(gpu.free_mb)} free of {_gib(gpu.total_mb)}"
            )
        if self.gpus:
            offload = {
                True: "yes",
                False: "no (llama-cpp-python was built for the CPU only)",
                None: "unknown (llama-cpp-python is not installed yet)",
            }[self.gpu_offload_supported]
            lines.append(f"llama.cpp GPU offload: {offload}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for GET /status, with the derived totals included."""
        data = asdict(self)
        data["gpus"] = [asdict(gpu) for gpu in self.gpus]
        data["total_vram_mb"] = self.total_vram_mb
        data["free_vram_mb"] = self.free_vram_mb
        data["gpu_vendor"] = self.gpu_vendor
        return data


def _gib(mb: int) -> str:
    return f"{mb / 1024:.1f} GiB"


def _to_int(text: str) -> int | None:
    match = re.search(r"\d+", text)
    return int(match.group()) if match else None


# --- parsers: pure functions over recorded tool output ---------------------------------------


def parse_nvidia_smi_csv(text: str) -> list[GpuInfo]:
    """GPUs from ``nvidia-smi --query-gpu=index,name,memory.total,memory.free --format=csv,...``.

    Accepts the ``noheader,nounits`` form and the one with a header and "MiB" units. An "[N/A]"
    total becomes 0 (nothing will be offloaded to it); an "[N/A]" free is taken as the total.
    """
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) < 4 or not fields[0].isdigit():
            continue  # blank line, header row, or an error message
        index = int(fields[0])
        # The name sits between the index and the two memory columns; rejoin it in case it
        # ever carries a comma.
        name = ", ".join(fields[1:-2]) or f"NVIDIA GPU {index}"
        total = _to_int(fields[-2]) or 0
        free = _to_int(fields[-1])
        gpus.append(
            GpuInfo("nvidia", name, total, total if free is None else min(free, total), index)
        )
    return gpus


def gpus_from_nvml(nvml: Any) -> list[GpuInfo]:
    """GPUs through NVML (the ``pynvml`` module, or any object with the same six functions).

    Raises whatever ``nvmlInit`` raises when the driver is missing; ``detect`` handles that.
    """
    nvml.nvmlInit()
    try:
        gpus = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            if isinstance(name, bytes):
                name = name.decode("utf-8", "replace")
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                GpuInfo("nvidia", name, int(memory.total) // _MIB, int(memory.free) // _MIB, index)
            )
        return gpus
    finally:
        nvml.nvmlShutdown()


def _load_json_object(text: str | None) -> dict[str, Any]:
    """The JSON object in a tool's output; rocm-smi may print warnings before it."""
    if not text or "{" not in text:
        return {}
    try:
        data = json.loads(text[text.index("{") :])
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_rocm_smi_json(meminfo_json: str, product_json: str | None = None) -> list[GpuInfo]:
    """AMD GPUs from ``rocm-smi --showmeminfo vram --json`` (and ``--showproductname --json``).

    Both may also come as one document (``rocm-smi --showproductname --showmeminfo vram --json``).
    Key case differs between ROCm releases ("Card series" vs "Card Series"), so keys are matched
    without case. Cards under 1 GiB (APU carve-outs) are left out.
    """
    memory = _load_json_object(meminfo_json)
    products = _load_json_object(product_json)
    gpus = []
    for card, values in memory.items():
        match = re.fullmatch(r"card(\d+)", card)
        if not match or not isinstance(values, dict):
            continue
        facts = {key.lower(): str(value) for key, value in values.items()}
        extra = products.get(card)
        if isinstance(extra, dict):
            facts.update({key.lower(): str(value) for key, value in extra.items()})
        total = _to_int(facts.get("vram total memory (b)", ""))
        if total is None:
            continue
        used = _to_int(facts.get("vram total used memory (b)", "")) or 0
        total_mb = total // _MIB
        if total_mb < _MIN_AMD_VRAM_MB:
            continue
        name = next(
            (
                facts[key]
                for key in ("card series", "card model", "card sku")
                if facts.get(key, "").strip() and not facts[key].startswith("0x")
            ),
            "AMD GPU",
        )
        gpus.append(GpuInfo("amd", name, total_mb, max(total - used, 0) // _MIB, int(match[1])))
    return sorted(gpus, key=lambda gpu: gpu.index)


def _parse_key_values(text: str) -> dict[str, str]:
    pairs = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


def apple_metal_budget_mb(ram_total_mb: int) -> int:
    """Unified memory Metal may use: about 2/3 of RAM up to 36 GB, 3/4 above (see top)."""
    share = 3 / 4 if ram_total_mb > _APPLE_LARGE_RAM_MB else 2 / 3
    return int(ram_total_mb * share)


def parse_apple_sysctl(sysctl_text: str) -> GpuInfo | None:
    """The Apple-silicon GPU from ``sysctl hw.memsize machdep.cpu.brand_string hw.optional.arm64``.

    None on Intel Macs or garbage. Memory is unified, so total and free are the Metal budget;
    ``detect`` lowers free to the RAM actually available.
    """
    facts = _parse_key_values(sysctl_text)
    brand = facts.get("machdep.cpu.brand_string", "")
    if facts.get("hw.optional.arm64") != "1" and not brand.startswith("Apple"):
        return None
    memsize = _to_int(facts.get("hw.memsize", ""))
    if not memsize:
        return None
    budget = apple_metal_budget_mb(memsize // _MIB)
    return GpuInfo("apple", f"{brand or 'Apple silicon'} GPU", budget, budget, 0)


def parse_proc_cpuinfo(text: str) -> tuple[int | None, bool | None]:
    """Physical core count and AVX2 support from Linux ``/proc/cpuinfo``.

    Cores are distinct (physical id, core id) pairs; on CPUs that do not list them (most ARM
    boards) every processor counts as a core. AVX2 is None when no x86 "flags" line exists.
    """
    cores: set[tuple[str, str]] = set()
    processors = 0
    avx2: bool | None = None
    physical_id = "0"
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            processors += 1
        elif key == "physical id":
            physical_id = value
        elif key == "core id":
            cores.add((physical_id, value))
        elif key == "flags" and avx2 is None:
            avx2 = "avx2" in value.split()
    physical = len(cores) or processors or None
    return physical, avx2


def parse_proc_meminfo(text: str) -> tuple[int, int]:
    """(total, available) MiB from Linux ``/proc/meminfo``; (0, 0) when unreadable."""
    facts = _parse_key_values(text)
    total_kb = _to_int(facts.get("MemTotal", "")) or 0
    available_kb = _to_int(facts.get("MemAvailable", ""))
    if available_kb is None:  # kernels before 3.14
        available_kb = sum(_to_int(facts.get(key, "")) or 0 for key in ("MemFree", "Cached"))
    return total_kb // 1024, available_kb // 1024


def parse_vm_stat(text: str, ram_total_mb: int) -> int:
    """Available MiB on macOS from ``vm_stat``: free, inactive and speculative pages."""
    match = re.search(r"page size of (\d+) bytes", text)
    page = int(match[1]) if match else 4096
    facts = _parse_key_values(text)
    pages = sum(
        _to_int(facts.get(key, "")) or 0
        for key in ("Pages free", "Pages inactive", "Pages speculative")
    )
    available = pages * page // _MIB
    return min(available, ram_total_mb) if ram_total_mb else available


# --- running the tools -------------------------------------------------------------------------


def run_command(argv: list[str]) -> str | None:
    """stdout of a command, or None when it is missing, fails or hangs (a missing tool = no GPU)."""
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def llama_gpu_offload_supported() -> bool | None:
    """Whether the llama-cpp-python importable here was built with a GPU backend; None if absent."""
    try:
        import llama_cpp
    except (ImportError, OSError, RuntimeError):
        # RuntimeError/OSError: the package is there but its shared library failed to load.
        return None
    return bool(llama_cpp.llama_supports_gpu_offload())


def llama_cpu_variant(system_info: str) -> str:
    """The x86 level a llama.cpp build was compiled for, from ``llama_print_system_info()``.

    "AVX-512 (VBMI, VNNI, BF16)", "AVX2", "AVX" or "" (not x86, or nothing reported).
    """
    enabled = set(re.findall(r"([A-Z0-9_]+) = 1", system_info or ""))
    if "AVX512" in enabled:
        extras = [name.removeprefix("AVX512_") for name in ("AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16")
                  if name in enabled]
        return "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
    return next((name for name in ("AVX2", "AVX", "SSE3") if name in enabled), "")


def gpu_offload_supported_in(python: str, run: Runner = run_command) -> bool | None:
    """The same question for another interpreter (the launcher asks the venv's python)."""
    output = run(
        [python, "-c", "import llama_cpp; print(llama_cpp.llama_supports_gpu_offload())"]
    )
    last = output.strip().splitlines()[-1] if output and output.strip() else ""
    return {"True": True, "False": False}.get(last)


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


# A marker, never mutated: "import pynvml if it is installed".
_AUTO: Any = object()


def _nvml_gpus(nvml: Any) -> list[GpuInfo]:
    if nvml is None:
        return []
    errors: tuple[type[BaseException], ...] = (OSError,)
    nvml_error = getattr(nvml, "NVMLError", None)
    if isinstance(nvml_error, type) and issubclass(nvml_error, BaseException):
        errors += (nvml_error,)
    try:
        return gpus_from_nvml(nvml)
    except errors:
        return []  # no NVIDIA driver (NVMLError_LibraryNotFound, DriverNotLoaded, ...)


def detect_gpus(
    run: Runner = run_command, nvml: Any = _AUTO, system: str | None = None
) -> list[GpuInfo]:
    """GPUs in order of trust: NVML, nvidia-smi, rocm-smi, then Apple silicon on macOS."""
    gpus = _nvml_gpus(_import_pynvml() if nvml is _AUTO else nvml)
    if gpus:
        return gpus
    smi = run(
        [
            "nvidia-smi",
            "--query-gpu=index,name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ]
    )
    gpus = parse_nvidia_smi_csv(smi or "")
    if gpus:
        return gpus
    rocm = run(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json"])
    gpus = parse_rocm_smi_json(rocm or "")
    if gpus:
        return gpus
    if (system or platform.system()) == "Darwin":
        sysctl = run(["sysctl", "hw.memsize", "machdep.cpu.brand_string", "hw.optional.arm64"])
        apple = parse_apple_sysctl(sysctl or "")
        if apple:
            return [apple]
    return []


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return ""


def _usable_logical_cores() -> int:
    # Affinity, not os.cpu_count(): a container pinned to 2 of 64 host CPUs must use 2 threads.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def detect_cpu(
    run: Runner = run_command, system: str | None = None
) -> tuple[int, int, bool | None]:
    """(physical cores, logical cores, AVX2) usable by this process."""
    logical = _usable_logical_cores()
    system = system or platform.system()
    physical: int | None = None
    avx2: bool | None = None
    if system == "Linux":
        physical, avx2 = parse_proc_cpuinfo(_read("/proc/cpuinfo"))
    if physical is None:
        try:
            import psutil

            physical = psutil.cpu_count(logical=False)
        except ImportError:
            pass
    if physical is None and system == "Darwin":
        physical = _to_int(run(["sysctl", "-n", "hw.physicalcpu"]) or "")
    physical = min(physical or logical, logical)
    return physical, logical, avx2


def detect_memory(run: Runner = run_command, system: str | None = None) -> tuple[int, int]:
    """(total, available) RAM in MiB; (0, 0) when nothing can tell."""
    try:
        import psutil

        memory = psutil.virtual_memory()
        return memory.total // _MIB, memory.available // _MIB
    except ImportError:
        pass
    system = system or platform.system()
    if system == "Linux":
        return parse_proc_meminfo(_read("/proc/meminfo"))
    if system == "Darwin":
        total = (_to_int(run(["sysctl", "-n", "hw.memsize"]) or "") or 0) // _MIB
        return total, parse_vm_stat(run(["vm_stat"]) or "", total)
    return 0, 0


def detect(
    run: Runner = run_command,
    nvml: Any = _AUTO,
    *,
    system: str | None = None,
    offload_probe: Callable[[], bool | None] = llama_gpu_offload_supported,
) -> HardwareInfo:
    """Look at this machine. Never raises because a tool is missing: that means no such GPU.

    ``nvml``: the pynvml module or a fake; None skips NVML; by default pynvml if installed.
    ``system``: platform.system() unless given (tests pass "Darwin").
    """
    system = system or platform.system()
    physical, logical, avx2 = detect_cpu(run, system)
    ram_total, ram_available = detect_memory(run, system)
    gpus = detect_gpus(run, nvml, system)
    if ram_available:
        # Unified memory: Metal cannot have more than what the OS has free right now.
        gpus = [
            GpuInfo(g.vendor, g.name, g.total_mb, min(g.free_mb, ram_available), g.index)
            if g.vendor == "apple"
            else g
            for g in gpus
        ]
    return HardwareInfo(
        cpu_physical_cores=physical,
        cpu_logical_cores=logical,
        ram_total_mb=ram_total,
        ram_available_mb=ram_available,
        gpus=tuple(gpus),
        gpu_offload_supported=offload_probe(),
        cpu_avx2=avx2,
    )


# --- the llama.cpp build ----------------------------------------------------------------------


def backend_for(hw: HardwareInfo) -> str:
    """"cuda", "rocm", "metal" or "cpu": the llama.cpp backend for the first GPU found."""
    return _VENDOR_BACKEND.get(hw.gpu_vendor or "", "cpu")


def cmake_args_for_backend(backend: str, cpu_avx2: bool | None = None) -> str:
    """CMAKE_ARGS for a backend name; raises ValueError for an unknown one."""
    if backend in GPU_CMAKE_ARGS:
        return GPU_CMAKE_ARGS[backend]
    if backend == "cpu":
        return CPU_NATIVE_CMAKE_ARGS if cpu_avx2 is False else CPU_PORTABLE_CMAKE_ARGS
    raise ValueError(f"unknown llama.cpp backend {backend!r}; expected one of {BACKENDS}")


def llama_cmake_args(hw: HardwareInfo) -> str:
    """CMAKE_ARGS that build llama-cpp-python for this machine's GPU (or portably for its CPU)."""
    return cmake_args_for_backend(backend_for(hw), hw.cpu_avx2)


def llama_install_command(
    python: str, backend_cmake_args: str, version: str | None, force: bool = False
) -> tuple[dict[str, str], list[str]]:
    """(extra environment, argv) that installs llama-cpp-python built with ``backend_cmake_args``.

    pip caches the wheels it builds keyed by name and version only, not by CMAKE_ARGS, so any
    build other than the portable CPU one skips the cache entirely (``--no-cache-dir`` neither
    reads nor writes it): a cached CPU wheel is never mistaken for a CUDA one, and a GPU wheel
    never lands in the cache for another install to pick up. ``force`` reinstalls over an
    existing build and leaves the other dependencies alone. Merge the environment into
    os.environ before running argv.
    """
    argv = [python, "-m", "pip", "install"]
    if force:
        argv += ["--force-reinstall", "--no-deps"]
    if force or backend_cmake_args != CPU_PORTABLE_CMAKE_ARGS:
        argv.append("--no-cache-dir")
    argv.append(f"llama-cpp-python=={version}" if version else "llama-cpp-python")
    return {"CMAKE_ARGS": backend_cmake_args}, argv


def hip_compiler_env(run: Runner = run_command) -> dict[str, str]:
    """HIPCXX and HIP_PATH from ``hipconfig``, as llama.cpp's HIP build instructions set them.

    Empty when hipconfig is missing or the variables are already set by the user.
    """
    if os.environ.get("HIPCXX"):
        return {}
    llvm = (run(["hipconfig", "-l"]) or "").strip()
    root = (run(["hipconfig", "-R"]) or "").strip()
    if not llvm or not root:
        return {}
    return {"HIPCXX": f"{llvm}/clang", "HIP_PATH": root}


def rebuild_hint(hw: HardwareInfo) -> str | None:
    """What to tell a user whose GPU goes unused because llama-cpp-python is a CPU build."""
    if not hw.gpus or hw.gpu_offload_supported is not False:
        return None
    backend = backend_for(hw)
    args = llama_cmake_args(hw)
    return (
        f"Found {hw.gpus[0].name}, but the installed llama-cpp-python was built without GPU "
        f"support, so models run on the CPU. To rebuild it for {backend.upper()} "
        f"(several minutes; needs {_TOOLKIT[backend]}), run: python3 {REBUILD_SCRIPT} "
        f'(it runs: CMAKE_ARGS="{args}" pip install --force-reinstall --no-deps '
        "--no-cache-dir llama-cpp-python==<the installed version> in .venv)."
    )
