"""Which llama.cpp build to install on this machine, in order of preference, and why.

A GPU is only worth a GPU build that can actually be installed: a prebuilt wheel from
llama-cpp-python's own index for the CUDA/ROCm version the driver reports, or a source build when
the compiler for that backend (nvcc, hipconfig/hipcc, the Vulkan SDK's glslc) is present. Without
either, the CPU build is planned and one sentence says what is missing. For the CPU, the build
uses the x86 extensions a probe program proved this CPU executes.

Standard library only (launcher.py runs this before any venv exists). ``plan_builds`` is a pure
function of the facts; ``detect_toolchain`` and ``probe_x86_features`` are the parts that look.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from webui import hardware
from webui.hardware import HardwareInfo, Runner

# llama-cpp-python's wheel index (its README, "Pre-built Wheel"): one folder per backend tag.
# WEBUI_LLAMA_WHEEL_INDEX replaces it, for a mirror or a test server.
WHEEL_INDEX_ROOT = "https://abetlen.github.io/llama-cpp-python/whl"
WHEEL_INDEX_ENV = "WEBUI_LLAMA_WHEEL_INDEX"
# The CUDA versions the pinned release publishes wheels for, per its README.
CUDA_WHEEL_VERSIONS: tuple[tuple[int, int], ...] = (
    (11, 8), (12, 1), (12, 2), (12, 3), (12, 4), (12, 5), (13, 0), (13, 2),
)
ROCM_WHEEL = ("rocm72", (7, 2))  # Linux only
INDEX_TIMEOUT_S = 5.0

REBUILD_COMMAND = f"python3 {hardware.REBUILD_SCRIPT}"

# x86 extensions beyond the portable AVX2 set, each with the gcc/clang flags and a statement that
# executes one of its instructions. cpuinfo is not proof: a VM may list AVX-512 or AMX features
# its hypervisor does not let it run (GGML_NATIVE=on dies with SIGILL on such a VM), so each one
# is compiled into a tiny program and run. The names match llama.cpp's CMake options.
_X86_PROBES: dict[str, tuple[str, str]] = {
    "AVX512": (
        "-mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw",
        "__m512i v = _mm512_set1_epi16((short)seed); v = _mm512_add_epi16(v, v);"
        "__m256i w = _mm256_maskz_add_epi32(0x0f, _mm512_castsi512_si256(v), _mm512_castsi512_si256(v));"
        "out = _mm512_reduce_add_epi32(_mm512_xor_epi64(v, _mm512_castsi256_si512(w)));",
    ),
    "AVX512_VBMI": (
        "-mavx512f -mavx512bw -mavx512vbmi",
        "__m512i v = _mm512_set1_epi8((char)seed);"
        "out = _mm512_reduce_add_epi32(_mm512_permutexvar_epi8(v, v));",
    ),
    "AVX512_VNNI": (
        "-mavx512f -mavx512vnni",
        "__m512i v = _mm512_set1_epi32(seed);"
        "out = _mm512_reduce_add_epi32(_mm512_dpbusd_epi32(v, v, v));",
    ),
    "AVX512_BF16": (
        "-mavx512f -mavx512bf16",
        "__m512 f = _mm512_set1_ps((float)seed);"
        "__m512bh b = _mm512_cvtne2ps_pbh(f, f);"
        "out = (int)_mm512_reduce_add_ps(_mm512_dpbf16_ps(f, b, b));",
    ),
}
_PROBE_TEMPLATE = """#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    volatile int seed = argc + 1;
    int out = 0;
    BODY
    printf("%d\\n", out);
    return 0;
}
"""


@dataclass(frozen=True)
class LlamaBuild:
    """One way to install llama-cpp-python: a prebuilt wheel or a source build with CMake flags."""

    backend: str  # "cuda" | "rocm" | "vulkan" | "metal" | "cpu"
    source: str  # "wheel" (prebuilt, from index_url) | "source" (pip compiles llama.cpp)
    reason: str  # one sentence: why this build
    cmake_args: str = ""
    index_url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    variant: str = ""  # for CPU builds: the instruction sets, e.g. "AVX2" or "AVX-512 (VNNI, BF16)"

    def describe(self) -> str:
        """Short name for the console: "CUDA wheel from …" or "CPU source build (AVX2)"."""
        if self.source == "wheel":
            return f"{self.backend.upper()} prebuilt wheel from {self.index_url}"
        what = f"{self.backend.upper()} source build"
        if self.variant:
            what += f" for {self.variant}"
        return f"{what} with CMAKE_ARGS=\"{self.cmake_args}\""

    @property
    def pip_cache_safe(self) -> bool:
        """pip keys its wheel cache on name and version only, so only one build may use it.

        That is the portable CPU build (what every machine used to get); every other source build
        goes through the launcher's own wheel cache, keyed on the CMake flags.
        """
        return self.source == "source" and self.cmake_args == hardware.CPU_PORTABLE_CMAKE_ARGS

    def cache_key(self, version: str) -> str:
        """Folder name for this build's wheel in the launcher's cache."""
        text = f"{version} {self.backend} {self.cmake_args} {platform.machine()}"
        return f"{self.backend}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Toolchain:
    """What this machine has for running or compiling each llama.cpp GPU backend."""

    cuda_driver_version: tuple[int, int] | None = None  # "CUDA Version" that nvidia-smi prints
    nvcc: str | None = None  # path
    hip_env: Mapping[str, str] = field(default_factory=dict)  # HIPCXX/HIP_PATH; empty: no hipconfig
    rocm_version: tuple[int, int] | None = None
    vulkan_sdk: str | None = None  # path of glslc when the SDK (glslc plus headers/loader) is found
    x86_features: frozenset[str] | None = None  # extensions a probe ran; None: not probed
    system: str = "Linux"
    backend: str = "cpu"  # the GPU backend these facts were gathered for

    def lines(self) -> list[str]:
        """What was found, for the dry run."""
        def found(value: object) -> str:
            return str(value) if value else "not found"

        cuda = ".".join(map(str, self.cuda_driver_version)) if self.cuda_driver_version else None
        rocm = ".".join(map(str, self.rocm_version)) if self.rocm_version else None
        lines = []
        if self.backend == "cuda":
            lines.append(f"CUDA driver version: {found(cuda)}; nvcc: {found(self.nvcc)}")
        if self.backend == "rocm":
            lines.append(f"ROCm: {found(rocm)}; hipconfig: {'found' if self.hip_env else 'not found'}")
        if self.backend in ("cuda", "rocm"):
            lines.append(f"Vulkan SDK (glslc): {found(self.vulkan_sdk)}")
        if self.x86_features is not None:
            extra = ", ".join(sorted(self.x86_features)) or "none beyond AVX2"
            lines.append(f"x86 extensions a probe program ran: {extra}")
        return lines


@dataclass(frozen=True)
class BuildPlan:
    """Builds to try in order (the last is always the CPU build) and what a GPU user misses."""

    candidates: tuple[LlamaBuild, ...]
    missing: str | None = None  # one sentence when a GPU was found but no GPU build is possible

    @property
    def first(self) -> LlamaBuild:
        return self.candidates[0]


# --- pure decisions ----------------------------------------------------------------------------


def parse_cuda_driver_version(nvidia_smi_text: str) -> tuple[int, int] | None:
    """The highest CUDA version the driver supports, from plain ``nvidia-smi``'s header."""
    match = re.search(r"CUDA Version\s*:\s*(\d+)\.(\d+)", nvidia_smi_text or "")
    return (int(match[1]), int(match[2])) if match else None


def parse_rocm_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from ROCm's ``.info/version`` file or ``hipconfig --version``."""
    match = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


def cuda_wheel_tag(driver: tuple[int, int] | None) -> str | None:
    """The newest wheel folder ("cu124") the driver can run: same major version, not newer."""
    if driver is None:
        return None
    usable = [v for v in CUDA_WHEEL_VERSIONS if v[0] == driver[0] and v <= driver]
    return f"cu{usable[-1][0]}{usable[-1][1]}" if usable else None


def cpu_build(cpu_avx2: bool | None, x86_features: frozenset[str] | None) -> LlamaBuild:
    """The CPU build: portable AVX2, plus the AVX-512 extensions a probe proved this CPU runs."""
    if cpu_avx2 is False:
        return LlamaBuild(
            "cpu", "source", "this x86 CPU has no AVX2, so llama.cpp is tuned to it (-march=native)",
            hardware.CPU_NATIVE_CMAKE_ARGS, variant="native",
        )
    features = x86_features or frozenset()
    if cpu_avx2 and "AVX512" in features:
        extras = [name for name in ("AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16") if name in features]
        flags = " ".join(f"-DGGML_{name}=ON" for name in ("AVX512", *extras))
        label = "AVX-512" + (f" ({', '.join(e.removeprefix('AVX512_') for e in extras)})" if extras else "")
        return LlamaBuild(
            "cpu", "source",
            f"a probe program ran {label} instructions on this CPU, which process prompts faster "
            "than the portable AVX2 build",
            f"{hardware.CPU_PORTABLE_CMAKE_ARGS} {flags}", variant=label,
        )
    why = "the portable x86 build (AVX2)" if cpu_avx2 else "the portable build"
    return LlamaBuild(
        "cpu", "source", f"{why}, which runs on any CPU of this kind",
        hardware.CPU_PORTABLE_CMAKE_ARGS, variant="AVX2" if cpu_avx2 else "",
    )


def plan_builds(
    hw: HardwareInfo, tools: Toolchain, index_has: Callable[[str], bool], index_root: str = WHEEL_INDEX_ROOT
) -> BuildPlan:
    """Builds to try, best first. ``index_has(tag)``: whether the wheel index serves that folder."""
    cpu = cpu_build(hw.cpu_avx2, tools.x86_features)
    backend = hardware.backend_for(hw)
    if backend == "cpu":
        return BuildPlan((cpu,))
    gpu = hw.gpus[0].name
    found: list[LlamaBuild] = []
    tried: list[str] = []  # what was looked for, for the sentence when nothing is there

    def wheel(tag: str, label: str) -> None:
        if index_has(tag):
            found.append(LlamaBuild(backend, "wheel",
                                    f"a prebuilt {label} wheel exists for this machine; nothing to compile",
                                    index_url=f"{index_root}/{tag}"))
        else:
            tried.append(f"a prebuilt {label} wheel ({index_root}/{tag} is unreachable or lacks this version)")

    if backend == "cuda":
        tag = cuda_wheel_tag(tools.cuda_driver_version)
        if tag:
            wheel(tag, f"CUDA {tag[2:-1]}.{tag[-1]}")
        else:
            tried.append("a prebuilt CUDA wheel (no supported CUDA version reported by nvidia-smi)")
        if tools.nvcc:
            found.append(LlamaBuild("cuda", "source", f"nvcc is installed ({tools.nvcc})",
                                    hardware.GPU_CMAKE_ARGS["cuda"]))
        else:
            tried.append("the CUDA toolkit (nvcc)")
    elif backend == "rocm":
        tag, version = ROCM_WHEEL
        if tools.system == "Linux" and tools.rocm_version == version:
            wheel(tag, "ROCm 7.2")
        else:
            tried.append("a prebuilt ROCm wheel (it needs ROCm 7.2 on Linux)")
        if tools.hip_env:
            found.append(LlamaBuild("rocm", "source", "the ROCm HIP SDK is installed (hipconfig)",
                                    hardware.GPU_CMAKE_ARGS["rocm"], env=dict(tools.hip_env)))
        else:
            tried.append("the ROCm HIP SDK (hipconfig)")
    elif backend == "metal":
        found.append(LlamaBuild("metal", "source", "Apple silicon: llama.cpp builds with Metal",
                                hardware.GPU_CMAKE_ARGS["metal"]))
    if backend in ("cuda", "rocm"):
        if tools.vulkan_sdk:
            found.append(LlamaBuild("vulkan", "source", f"the Vulkan SDK is installed ({tools.vulkan_sdk})",
                                    hardware.GPU_CMAKE_ARGS["vulkan"]))
        else:
            tried.append("the Vulkan SDK (glslc)")
    missing = None
    if not found:
        missing = (
            f"Found {gpu}, but not {', nor '.join(tried)}, so llama.cpp is built for the CPU; "
            f"install one of them, then run: {REBUILD_COMMAND}"
        )
    return BuildPlan((*found, cpu), missing)


# --- looking at the machine ----------------------------------------------------------------------


def _tool(name: str, env: Mapping[str, str], roots: tuple[str, ...], default_root: str) -> str | None:
    """``name`` on PATH, else in ROOT/bin for the first root variable set (else ``default_root``)."""
    on_path = shutil.which(name, path=env.get("PATH"))
    if on_path:
        return on_path
    root = next((env[var] for var in roots if env.get(var)), default_root)
    candidate = Path(root) / "bin" / name
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def detect_toolchain(
    hw: HardwareInfo,
    run: Runner = hardware.run_command,
    env: Mapping[str, str] | None = None,
    probe: Callable[[], frozenset[str] | None] | None = None,
) -> Toolchain:
    """Look for the drivers' versions and the compilers of the backend ``hw``'s GPU would use."""
    env = os.environ if env is None else env
    system = platform.system()
    backend = hardware.backend_for(hw)
    cuda = nvcc = rocm = vulkan = None
    hip: dict[str, str] = {}
    if backend == "cuda":
        smi = shutil.which("nvidia-smi", path=env.get("PATH")) or "nvidia-smi"
        cuda = parse_cuda_driver_version(run([smi]) or "")
        nvcc = _tool("nvcc", env, ("CUDA_HOME", "CUDA_PATH"), "/usr/local/cuda")
    if backend == "rocm":
        hipconfig = _tool("hipconfig", env, ("ROCM_PATH", "HIP_PATH"), "/opt/rocm")
        if hipconfig:
            hip = hardware.hip_compiler_env(lambda argv: run([hipconfig, *argv[1:]]))
            if env.get("HIPCXX"):  # the user's own compiler settings win
                hip = {key: env[key] for key in ("HIPCXX", "HIP_PATH") if env.get(key)}
        root = next((env[var] for var in ("ROCM_PATH",) if env.get(var)), "/opt/rocm")
        rocm = parse_rocm_version(_read(Path(root) / ".info" / "version"))
    if backend in ("cuda", "rocm"):
        glslc = _tool("glslc", env, ("VULKAN_SDK",), "/usr")
        has_sdk = bool(env.get("VULKAN_SDK")) or bool(shutil.which("vulkaninfo", path=env.get("PATH")))
        vulkan = glslc if glslc and has_sdk else None
    features = None
    if hw.cpu_avx2:
        features = (probe or probe_x86_features)()
    return Toolchain(cuda, nvcc, hip, rocm, vulkan, features, system, backend)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def probe_x86_features(compiler: str | None = None, timeout_s: float = 30.0) -> frozenset[str] | None:
    """The extensions of ``_X86_PROBES`` whose probe program compiles and runs here.

    None when no C compiler exists (a source build would fail anyway). A program killed by SIGILL
    means the CPU (or the VM) does not execute that extension, whatever cpuinfo says.
    """
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc or platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    ran: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="webui-cpu-probe-") as tmp:
        for name, (flags, body) in _X86_PROBES.items():
            source = Path(tmp) / f"{name}.c"
            binary = Path(tmp) / name
            source.write_text(_PROBE_TEMPLATE.replace("BODY", body))
            try:
                built = subprocess.run([cc, "-O1", *flags.split(), str(source), "-o", str(binary)],
                                       capture_output=True, timeout=timeout_s, check=False)
                if built.returncode != 0:
                    continue  # a compiler too old for the extension cannot build it either
                result = subprocess.run([str(binary)], capture_output=True, timeout=timeout_s, check=False)
            except (OSError, subprocess.SubprocessError):
                continue
            if result.returncode == 0:
                ran.add(name)
    return frozenset(ran)


def wheel_index_url() -> str:
    return os.environ.get(WHEEL_INDEX_ENV, WHEEL_INDEX_ROOT).rstrip("/")


def wheel_index_has(tag: str, version: str, root: str | None = None, timeout_s: float = INDEX_TIMEOUT_S) -> bool:
    """Whether ``root/tag``'s simple index lists llama-cpp-python ``version`` (one short request)."""
    url = f"{root or wheel_index_url()}/{tag}/llama-cpp-python/"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (https or a test's http)
            page = response.read(4_000_000).decode("utf-8", "replace")
    except (OSError, ValueError, urllib.error.URLError):
        return False
    return f"llama_cpp_python-{version}-" in page
