"""Which llama.cpp build the launcher tries first, on recorded hardware and faked toolchains."""

from __future__ import annotations

import http.server
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hardware_fakes import (
    RecordedRunner,
    fake_nvcc,
    fake_nvidia_smi,
    fake_rocm,
    hardware_with,
    nvidia,
    recorded,
    write_tool,
)
from webui import build_plan, hardware
from webui.build_plan import Toolchain, cpu_build, plan_builds
from webui.hardware import GpuInfo

ALL_AVX512 = frozenset({"AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"})
RTX_4090 = GpuInfo("nvidia", "NVIDIA GeForce RTX 4090", 24564, 23871)
RX_7900 = GpuInfo("amd", "Radeon RX 7900 XTX", 24560, 23538)


def no_index(tag: str) -> bool:
    return False


def index_with(*tags: str):
    return lambda tag: tag in tags


# --- NVIDIA --------------------------------------------------------------------------------------


def test_nvidia_driver_without_toolkit_or_index_plans_the_cpu_build_and_says_what_is_missing() -> None:
    hw = hardware_with(gpus=(RTX_4090,))
    plan = plan_builds(hw, Toolchain(cuda_driver_version=(12, 4)), no_index)
    assert [b.backend for b in plan.candidates] == ["cpu"]
    assert plan.missing is not None
    assert "RTX 4090" in plan.missing and "nvcc" in plan.missing and "cu124" in plan.missing
    assert plan.missing.endswith("python3 scripts/rebuild_llama.py")
    assert plan.missing.count(". ") == 0, "one sentence"


def test_prebuilt_cuda_wheel_comes_first_then_the_source_build() -> None:
    hw = hardware_with(gpus=(RTX_4090,))
    plan = plan_builds(hw, Toolchain(cuda_driver_version=(12, 4), nvcc="/usr/local/cuda/bin/nvcc"),
                       index_with("cu124"), index_root="https://example.invalid/whl")
    wheel, source, cpu = plan.candidates
    assert (wheel.backend, wheel.source, wheel.index_url) == ("cuda", "wheel", "https://example.invalid/whl/cu124")
    assert (source.backend, source.source, source.cmake_args) == ("cuda", "source", "-DGGML_CUDA=on")
    assert cpu.backend == "cpu" and plan.missing is None


def test_nvcc_alone_gives_the_cuda_source_build() -> None:
    plan = plan_builds(hardware_with(gpus=(RTX_4090,)), Toolchain(nvcc="/opt/cuda/bin/nvcc"), no_index)
    assert plan.first.cmake_args == "-DGGML_CUDA=on" and plan.first.source == "source"


@pytest.mark.parametrize(
    ("driver", "tag"),
    [((12, 4), "cu124"), ((12, 8), "cu125"), ((13, 1), "cu130"), ((13, 2), "cu132"), ((12, 0), None),
     ((11, 4), None), ((11, 8), "cu118"), (None, None)],
)
def test_the_wheel_folder_never_needs_a_newer_cuda_than_the_driver_runs(driver, tag) -> None:
    assert build_plan.cuda_wheel_tag(driver) == tag


def test_cuda_version_from_the_recorded_nvidia_smi_table() -> None:
    assert build_plan.parse_cuda_driver_version(recorded("nvidia_smi_rtx4090_plain.txt")) == (12, 4)
    assert build_plan.parse_cuda_driver_version(recorded("nvidia_smi_h200_plain.txt")) == (13, 0)  # driver 580
    assert build_plan.parse_cuda_driver_version(recorded("nvidia_smi_no_driver.txt")) is None


def test_vulkan_sdk_is_the_gpu_route_when_the_vendor_toolkit_is_missing() -> None:
    plan = plan_builds(hardware_with(gpus=(RTX_4090,)), Toolchain(vulkan_sdk="/usr/bin/glslc"), no_index)
    assert [(b.backend, b.cmake_args) for b in plan.candidates[:1]] == [("vulkan", "-DGGML_VULKAN=on")]
    assert plan.missing is None


# --- AMD -----------------------------------------------------------------------------------------


def test_rocm_with_hipconfig_builds_from_source_with_its_compiler() -> None:
    hip = {"HIPCXX": "/opt/rocm/llvm/bin/clang", "HIP_PATH": "/opt/rocm"}
    plan = plan_builds(hardware_with(gpus=(RX_7900,)), Toolchain(hip_env=hip), no_index)
    assert plan.first.cmake_args == "-DGGML_HIP=on" and dict(plan.first.env) == hip


def test_rocm_7_2_takes_the_prebuilt_wheel_when_the_index_has_it() -> None:
    plan = plan_builds(hardware_with(gpus=(RX_7900,)), Toolchain(rocm_version=(7, 2)), index_with("rocm72"))
    assert (plan.first.backend, plan.first.source) == ("rocm", "wheel")
    assert plan.first.index_url.endswith("/rocm72")


def test_amd_card_without_rocm_falls_back_to_the_cpu_and_names_hipconfig() -> None:
    plan = plan_builds(hardware_with(gpus=(RX_7900,)), Toolchain(rocm_version=(6, 1)), index_with("rocm72"))
    assert [b.backend for b in plan.candidates] == ["cpu"]
    assert "hipconfig" in plan.missing and "ROCm 7.2" in plan.missing


# --- CPU -----------------------------------------------------------------------------------------


def test_cpu_without_gpu_needs_no_toolkit_and_no_sentence() -> None:
    plan = plan_builds(hardware_with(), Toolchain(x86_features=frozenset()), no_index)
    assert [b.cmake_args for b in plan.candidates] == ["-DGGML_NATIVE=off"] and plan.missing is None


def test_avx512_build_only_with_what_the_probe_ran() -> None:
    build = cpu_build(True, ALL_AVX512)
    assert build.cmake_args.split() == ["-DGGML_NATIVE=off", "-DGGML_AVX512=ON", "-DGGML_AVX512_VBMI=ON",
                                        "-DGGML_AVX512_VNNI=ON", "-DGGML_AVX512_BF16=ON"]
    assert "NATIVE=on" not in build.cmake_args, "-march=native dies with SIGILL on VMs that hide AMX"
    partial = cpu_build(True, frozenset({"AVX512", "AVX512_VNNI"}))
    assert partial.cmake_args.endswith("-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON")
    assert partial.variant == "AVX-512 (VNNI)"


def test_extensions_without_avx512_foundation_or_avx2_are_ignored() -> None:
    assert cpu_build(True, frozenset({"AVX512_VNNI"})).cmake_args == "-DGGML_NATIVE=off"
    assert cpu_build(True, None).cmake_args == "-DGGML_NATIVE=off"
    assert cpu_build(False, ALL_AVX512).cmake_args == "-DGGML_NATIVE=on"
    assert cpu_build(None, None).cmake_args == "-DGGML_NATIVE=off"


def test_only_the_portable_build_uses_pips_version_keyed_cache() -> None:
    assert cpu_build(True, frozenset()).pip_cache_safe
    assert not cpu_build(True, ALL_AVX512).pip_cache_safe
    a, b = cpu_build(True, ALL_AVX512), cpu_build(True, frozenset({"AVX512"}))
    assert a.cache_key("0.3.36") != b.cache_key("0.3.36") != b.cache_key("0.3.37")


def _fake_compiler(bin_dir: Path, program: str) -> str:
    """A 'cc' that writes ``program`` (a shell script) wherever -o points."""
    body = program.replace("'", "'\\''")
    return str(write_tool(bin_dir, "cc", (
        'while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done\n'
        f"printf '%s\\n' '#!/bin/sh' '{body}' > \"$out\"; chmod +x \"$out\"\n"
    )))


@pytest.mark.skipif(sys.platform == "win32", reason="shell scripts")
def test_a_probe_killed_by_sigill_means_the_extension_is_not_used(tmp_path: Path) -> None:
    if build_plan.platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86 only")
    dies = _fake_compiler(tmp_path / "dies", "kill -ILL $$")
    assert build_plan.probe_x86_features(dies) == frozenset()
    runs = _fake_compiler(tmp_path / "runs", "exit 0")
    assert build_plan.probe_x86_features(runs) == ALL_AVX512


def test_the_real_probe_agrees_with_the_cpu_flags_it_can_check() -> None:
    features = build_plan.probe_x86_features()
    if features is None:
        pytest.skip("no C compiler or not x86")
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512f" not in flags.split():
        assert "AVX512" not in features, "a CPU without AVX-512 cannot have run the probe"


# --- looking at the machine ----------------------------------------------------------------------


def _env(tmp_path: Path, bin_dir: Path) -> dict[str, str]:
    """PATH with only the fakes and the basics; toolkit roots pointed at empty folders."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    return {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "CUDA_HOME": str(empty),
            "ROCM_PATH": str(empty), "VULKAN_SDK": ""}


def test_toolchain_finds_fake_nvidia_smi_version_and_nvcc(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_nvidia_smi(bin_dir)
    fake_nvcc(bin_dir)
    hw = hardware_with(gpus=(nvidia(24000),))
    tools = build_plan.detect_toolchain(hw, hardware.run_command, _env(tmp_path, bin_dir), probe=lambda: ALL_AVX512)
    assert tools.cuda_driver_version == (12, 4)
    assert tools.nvcc == str(bin_dir / "nvcc")
    assert tools.x86_features == ALL_AVX512


def test_toolchain_reads_hipconfig_for_the_hip_compiler(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_rocm(bin_dir, Path("/opt/rocm-6.2"))
    hw = hardware_with(gpus=(RX_7900,))
    env = _env(tmp_path, bin_dir)
    tools = build_plan.detect_toolchain(hw, hardware.run_command, env, probe=lambda: frozenset())
    assert dict(tools.hip_env) == {"HIPCXX": "/opt/rocm-6.2/llvm/bin/clang", "HIP_PATH": "/opt/rocm-6.2"}


def test_toolchain_without_any_tool(tmp_path: Path) -> None:
    runner = RecordedRunner({})
    tools = build_plan.detect_toolchain(hardware_with(gpus=(RTX_4090,)), runner, _env(tmp_path, tmp_path / "none"),
                                        probe=lambda: None)
    assert (tools.cuda_driver_version, tools.nvcc, tools.vulkan_sdk) == (None, None, None)


# --- the wheel index -----------------------------------------------------------------------------


@pytest.fixture
def wheel_index(tmp_path: Path) -> Iterator[str]:
    """A simple index on 127.0.0.1 listing llama-cpp-python 0.3.36 under cu124 only."""
    page = tmp_path / "whl" / "cu124" / "llama-cpp-python" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text('<a href="llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl">wheel</a>\n')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/whl"
    finally:
        server.shutdown()
        server.server_close()


def test_index_check_needs_the_exact_version(wheel_index: str) -> None:
    assert build_plan.wheel_index_has("cu124", "0.3.36", wheel_index)
    assert not build_plan.wheel_index_has("cu124", "0.3.37", wheel_index)
    assert not build_plan.wheel_index_has("cu121", "0.3.36", wheel_index)


def test_unreachable_index_is_a_quick_no() -> None:
    assert not build_plan.wheel_index_has("cu124", "0.3.36", "http://127.0.0.1:9", timeout_s=2)


def test_build_plan_needs_only_the_standard_library() -> None:
    # launcher.py imports it with the system python3, before .venv exists.
    import ast

    tree = ast.parse(Path(build_plan.__file__).read_text())
    names = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert names <= set(sys.stdlib_module_names) | {"__future__", "webui"}
