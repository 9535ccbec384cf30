"""Hardware detection on recorded tool outputs, and the llama.cpp build it leads to."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.hardware_fakes import (
    FakeNvml,
    RecordedRunner,
    hardware_with,
    nvidia,
    recorded,
)
from webui import hardware
from webui.hardware import GpuInfo

REPO_ROOT = Path(__file__).resolve().parents[2]
GARBAGE = ["", "\n\n", "not,a,gpu", "{", "null", "[1, 2]", "\x00\xff binary noise"]


# --- nvidia-smi --------------------------------------------------------------------------------


def test_nvidia_smi_single_gpu() -> None:
    gpus = hardware.parse_nvidia_smi_csv(recorded("nvidia_smi_rtx4090.csv"))
    assert gpus == [GpuInfo("nvidia", "NVIDIA GeForce RTX 4090", 24564, 23871, 0)]


def test_nvidia_smi_h200_recorded_on_a_lent_gpu_machine() -> None:
    gpus = hardware.parse_nvidia_smi_csv(recorded("nvidia_smi_h200.csv"))
    assert gpus == [GpuInfo("nvidia", "NVIDIA H200", 143771, 143156, 0)]


def test_nvidia_smi_two_gpus_with_header_and_units() -> None:
    gpus = hardware.parse_nvidia_smi_csv(recorded("nvidia_smi_2x_a100_header.csv"))
    assert [(g.index, g.name, g.total_mb, g.free_mb) for g in gpus] == [
        (0, "NVIDIA A100-SXM4-80GB", 81920, 81050),
        (1, "NVIDIA A100-SXM4-80GB", 81920, 40119),
    ]


def test_nvidia_smi_laptop_gpu_with_trailing_blank_line() -> None:
    (gpu,) = hardware.parse_nvidia_smi_csv(recorded("nvidia_smi_laptop_3060.csv"))
    assert gpu == GpuInfo("nvidia", "NVIDIA GeForce RTX 3060 Laptop GPU", 6144, 5863, 0)


def test_nvidia_smi_not_available_memory_counts_as_zero() -> None:
    (gpu,) = hardware.parse_nvidia_smi_csv(recorded("nvidia_smi_gb10_na.csv"))
    assert (gpu.vendor, gpu.name, gpu.total_mb, gpu.free_mb) == ("nvidia", "NVIDIA GB10", 0, 0)


@pytest.mark.parametrize("text", [*GARBAGE, recorded("nvidia_smi_no_driver.txt")])
def test_nvidia_smi_garbage_gives_no_gpu(text: str) -> None:
    assert hardware.parse_nvidia_smi_csv(text) == []


# --- NVML ----------------------------------------------------------------------------------------


def test_nvml_reads_names_as_bytes_or_str_and_converts_bytes_to_mib() -> None:
    nvml = FakeNvml.from_recording("nvml_2gpus.json")
    gpus = hardware.gpus_from_nvml(nvml)
    assert gpus == [
        GpuInfo("nvidia", "NVIDIA GeForce RTX 4090", 24564, 23871, 0),  # 23871.3 MiB, rounded down
        GpuInfo("nvidia", "NVIDIA GeForce RTX 3090", 24576, 24260, 1),
    ]
    assert nvml.shutdowns == 1


def test_installed_pynvml_without_a_driver_means_no_nvml_gpu() -> None:
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        assert hardware.detect_gpus(run=RecordedRunner({}), nvml=pynvml, system="Linux") == []
    else:  # a machine with an NVIDIA driver: the real card must come back
        pynvml.nvmlShutdown()
        assert hardware.detect_gpus(run=RecordedRunner({}), nvml=pynvml, system="Linux")


# --- rocm-smi ------------------------------------------------------------------------------------


def test_rocm_smi_combined_json_skips_the_apu_carve_out() -> None:
    gpus = hardware.parse_rocm_smi_json(recorded("rocm_smi_7900xtx.json"))
    assert gpus == [GpuInfo("amd", "Radeon RX 7900 XTX", 24560, 23538, 0)]


def test_rocm_smi_separate_documents_old_key_case_and_warning_line() -> None:
    gpus = hardware.parse_rocm_smi_json(
        recorded("rocm_smi_meminfo_6800xt.json"), recorded("rocm_smi_product_6800xt.json")
    )
    # 15707.9 MiB free, rounded down
    assert gpus == [GpuInfo("amd", "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]", 16368, 15707, 0)]


def test_rocm_smi_without_product_names_still_finds_the_card() -> None:
    (gpu,) = hardware.parse_rocm_smi_json(recorded("rocm_smi_meminfo_6800xt.json"))
    assert (gpu.name, gpu.total_mb) == ("AMD GPU", 16368)


@pytest.mark.parametrize("text", [*GARBAGE, '{"system": {"Driver version": "6.7.0"}}'])
def test_rocm_smi_garbage_gives_no_gpu(text: str) -> None:
    assert hardware.parse_rocm_smi_json(text, text) == []


# --- Apple ---------------------------------------------------------------------------------------


def test_apple_m2_16gb_gets_two_thirds_of_unified_memory() -> None:
    gpu = hardware.parse_apple_sysctl(recorded("sysctl_apple_m2_16gb.txt"))
    assert gpu == GpuInfo("apple", "Apple M2 GPU", 10922, 10922, 0)


def test_apple_m2_max_64gb_gets_three_quarters() -> None:
    gpu = hardware.parse_apple_sysctl(recorded("sysctl_apple_m2max_64gb.txt"))
    assert gpu is not None and gpu.total_mb == 48 * 1024


@pytest.mark.parametrize("text", [*GARBAGE, recorded("sysctl_intel_mac.txt")])
def test_intel_mac_or_garbage_is_not_apple_silicon(text: str) -> None:
    assert hardware.parse_apple_sysctl(text) is None


# --- CPU and RAM ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        ("cpuinfo_i7_4c8t.txt", (4, True)),
        ("cpuinfo_celeron_j1900.txt", (4, False)),
        ("cpuinfo_raspberry_pi4.txt", (4, None)),
    ],
)
def test_proc_cpuinfo_physical_cores_and_avx2(recording: str, expected: tuple) -> None:
    assert hardware.parse_proc_cpuinfo(recorded(recording)) == expected


def test_proc_cpuinfo_garbage() -> None:
    assert hardware.parse_proc_cpuinfo("") == (None, None)


def test_proc_meminfo_total_and_available() -> None:
    assert hardware.parse_proc_meminfo(recorded("meminfo_32gb.txt")) == (32000, 20480)
    assert hardware.parse_proc_meminfo("garbage") == (0, 0)


def test_vm_stat_counts_free_inactive_and_speculative_pages() -> None:
    pages = 12345 + 234567 + 6789
    expected = pages * 16384 // (1024 * 1024)
    assert hardware.parse_vm_stat(recorded("vm_stat_m2.txt"), 16384) == expected
    assert hardware.parse_vm_stat("", 16384) == 0


# --- detect() with recorded tools ----------------------------------------------------------------


def _detect(outputs: dict[str, str], nvml: object = None, system: str = "Linux"):
    run = RecordedRunner(outputs)
    hw = hardware.detect(run, nvml, system=system, offload_probe=lambda: None)
    return hw, run


def test_detect_prefers_nvml_and_skips_the_tools() -> None:
    hw, run = _detect(
        {"nvidia-smi": recorded("nvidia_smi_rtx4090.csv")},
        nvml=FakeNvml.from_recording("nvml_2gpus.json"),
    )
    assert [g.name for g in hw.gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090"]
    assert "nvidia-smi" not in run.programs()
    assert hw.total_vram_mb == 24564 + 24576 and hw.gpu_vendor == "nvidia"


def test_detect_falls_back_to_nvidia_smi_when_nvml_has_no_driver() -> None:
    hw, _ = _detect(
        {"nvidia-smi": recorded("nvidia_smi_2x_a100_header.csv")},
        nvml=FakeNvml([], init_error=True),
    )
    assert len(hw.gpus) == 2 and hw.free_vram_mb == 81050 + 40119


def test_detect_amd_when_only_rocm_smi_answers() -> None:
    hw, run = _detect({"rocm-smi": recorded("rocm_smi_7900xtx.json")})
    assert hw.gpu_vendor == "amd" and hw.gpus[0].name == "Radeon RX 7900 XTX"
    assert run.programs()[:2] == ["nvidia-smi", "rocm-smi"]


def test_detect_apple_on_darwin_caps_free_memory_at_available_ram() -> None:
    hw, _ = _detect({"sysctl": recorded("sysctl_apple_m2_16gb.txt")}, system="Darwin")
    (gpu,) = hw.gpus
    assert gpu.vendor == "apple" and gpu.total_mb == 10922
    assert gpu.free_mb == min(10922, hw.ram_available_mb)


def test_detect_does_not_ask_sysctl_for_a_gpu_off_macos() -> None:
    hw, run = _detect({"sysctl": recorded("sysctl_apple_m2_16gb.txt")}, system="Linux")
    assert hw.gpus == () and "sysctl" not in run.programs()


def test_detect_with_no_tools_is_cpu_only_and_still_counts_cpu_and_ram() -> None:
    hw, _ = _detect({})
    assert hw.gpus == () and hw.gpu_vendor is None and hw.total_vram_mb == 0
    assert 1 <= hw.cpu_physical_cores <= hw.cpu_logical_cores
    assert 0 < hw.ram_available_mb <= hw.ram_total_mb


def test_detect_on_this_machine_never_raises() -> None:
    hw = hardware.detect()
    assert hw.cpu_physical_cores <= hw.cpu_logical_cores
    assert hw.gpu_offload_supported == hardware.llama_gpu_offload_supported()
    json.dumps(hw.as_dict())


def test_run_command_returns_stdout_or_none() -> None:
    assert hardware.run_command([sys.executable, "-c", "print('hi')"]) == "hi\n"
    assert hardware.run_command([sys.executable, "-c", "raise SystemExit(3)"]) is None
    assert hardware.run_command(["surely-no-such-tool-xyz"]) is None


def test_gpu_offload_probe_in_another_interpreter_matches_this_one() -> None:
    assert hardware.gpu_offload_supported_in(sys.executable) == (
        hardware.llama_gpu_offload_supported()
    )
    assert hardware.gpu_offload_supported_in("surely-no-such-python") is None


# --- summary and JSON ----------------------------------------------------------------------------


def test_summary_names_each_gpu_and_the_offload_state() -> None:
    hw = hardware_with(gpus=(nvidia(23871, 24564),), offload=False)
    text = "\n".join(hw.summary_lines())
    assert "NVIDIA test card" in text and "23.3 GiB free of 24.0 GiB" in text
    assert "built for the CPU only" in text


def test_summary_without_gpu_says_cpu() -> None:
    assert "none found" in "\n".join(hardware_with().summary_lines())


def test_as_dict_is_json_and_carries_derived_totals() -> None:
    hw = hardware_with(gpus=(nvidia(1000, 2000), nvidia(3000, 4000)), offload=True)
    data = json.loads(json.dumps(hw.as_dict()))
    assert data["total_vram_mb"] == 6000 and data["free_vram_mb"] == 4000
    assert data["gpus"][1]["free_mb"] == 3000 and data["gpu_vendor"] == "nvidia"


# --- the llama.cpp build -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpus", "avx2", "expected"),
    [
        ((nvidia(8000),), True, "-DGGML_CUDA=on"),
        ((GpuInfo("amd", "RX 7900 XTX", 24560, 23538),), True, "-DGGML_HIP=on"),
        ((GpuInfo("apple", "Apple M2 GPU", 10922, 10922),), None, "-DGGML_METAL=on"),
        ((), True, "-DGGML_NATIVE=off"),
        ((), None, "-DGGML_NATIVE=off"),
        ((), False, "-DGGML_NATIVE=on"),
    ],
)
def test_cmake_args_follow_the_first_gpu(gpus: tuple, avx2: bool | None, expected: str) -> None:
    assert hardware.llama_cmake_args(hardware_with(gpus=gpus, avx2=avx2)) == expected


def test_unknown_backend_is_rejected() -> None:
    assert hardware.cmake_args_for_backend("vulkan") == "-DGGML_VULKAN=on"
    with pytest.raises(ValueError, match="sycl"):
        hardware.cmake_args_for_backend("sycl")


def test_rebuild_hint_only_when_a_gpu_sits_unused() -> None:
    assert hardware.rebuild_hint(hardware_with()) is None
    assert hardware.rebuild_hint(hardware_with(gpus=(nvidia(8000),), offload=True)) is None
    assert hardware.rebuild_hint(hardware_with(gpus=(nvidia(8000),), offload=None)) is None
    hint = hardware.rebuild_hint(hardware_with(gpus=(nvidia(8000),), offload=False))
    assert hint is not None
    assert "python3 scripts/rebuild_llama.py" in hint and 'CMAKE_ARGS="-DGGML_CUDA=on"' in hint
    assert "--force-reinstall" in hint and "--no-cache-dir" in hint and "CUDA toolkit" in hint


def test_first_cpu_install_may_use_the_wheel_cache() -> None:
    env, argv = hardware.llama_install_command("py", "-DGGML_NATIVE=off", "0.3.36", force=False)
    assert env == {"CMAKE_ARGS": "-DGGML_NATIVE=off"}
    assert argv == ["py", "-m", "pip", "install", "llama-cpp-python==0.3.36"]


def test_gpu_install_never_touches_the_wheel_cache() -> None:
    env, argv = hardware.llama_install_command("py", "-DGGML_CUDA=on", "0.3.36", force=False)
    assert env["CMAKE_ARGS"] == "-DGGML_CUDA=on"
    assert "--no-cache-dir" in argv and "--force-reinstall" not in argv


def test_forced_rebuild_replaces_only_llama_cpp_python() -> None:
    _, argv = hardware.llama_install_command("py", "-DGGML_NATIVE=off", None, force=True)
    assert argv == [
        "py", "-m", "pip", "install",
        "--force-reinstall", "--no-deps", "--no-cache-dir", "llama-cpp-python",
    ]  # fmt: skip


def test_hip_env_comes_from_hipconfig(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIPCXX", raising=False)
    # hipconfig answers -l and -R differently; RecordedRunner keys on the program only.
    answers = {"-l": "/opt/rocm/llvm/bin\n", "-R": "/opt/rocm\n"}
    env = hardware.hip_compiler_env(lambda argv: answers.get(argv[1]))
    assert env == {"HIPCXX": "/opt/rocm/llvm/bin/clang", "HIP_PATH": "/opt/rocm"}
    assert hardware.hip_compiler_env(RecordedRunner({})) == {}


def test_hardware_module_imports_only_the_standard_library() -> None:
    tree = ast.parse((REPO_ROOT / "webui" / "hardware.py").read_text(encoding="utf-8"))
    top_level = {
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert top_level <= set(sys.stdlib_module_names) | {"__future__"}


# --- scripts/rebuild_llama.py --------------------------------------------------------------------


def _rebuild_script():
    spec = importlib.util.spec_from_file_location(
        "rebuild_llama", REPO_ROOT / "scripts" / "rebuild_llama.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rebuild_script_prints_the_cuda_command_for_the_installed_version() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/rebuild_llama.py", "--print", "--backend", "cuda",
         "--python", sys.executable],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    installed = _rebuild_script().installed_version(sys.executable)
    version = installed or hardware.LLAMA_CPP_PYTHON_VERSION
    assert result.stdout.strip() == (
        f"CMAKE_ARGS=-DGGML_CUDA=on {sys.executable} -m pip install --force-reinstall "
        f"--no-deps --no-cache-dir llama-cpp-python=={version}"
    )


def test_rebuild_plan_for_detected_amd_sets_the_hip_compiler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HIPCXX", raising=False)
    script = _rebuild_script()
    run = RecordedRunner(
        {"rocm-smi": recorded("rocm_smi_7900xtx.json"), "hipconfig": "/opt/rocm\n"}
    )
    hw = hardware.detect(run, None, system="Linux", offload_probe=lambda: False)
    backend, env, argv = script.plan(None, "/venv/bin/python", run, hw)
    assert backend == "rocm" and env["CMAKE_ARGS"] == "-DGGML_HIP=on"
    assert env["HIP_PATH"] == "/opt/rocm"
    # The fake interpreter does not exist, so the pinned version is used.
    assert argv[-1] == f"llama-cpp-python=={hardware.LLAMA_CPP_PYTHON_VERSION}"


@pytest.mark.parametrize(
    ("system_info", "variant"),
    [
        ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | "
         "OPENMP = 1 | REPACK = 1 | ", "AVX2"),
        ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
         "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | ", "AVX-512 (VBMI, VNNI, BF16)"),
        ("CPU : NEON = 1 | ARM_FMA = 1 | FP16_VA = 1 | DOTPROD = 1 | ", ""),
        ("", ""),
    ],
)
def test_the_cpu_level_a_llama_build_reports(system_info: str, variant: str) -> None:
    assert hardware.llama_cpu_variant(system_info) == variant
