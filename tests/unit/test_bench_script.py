"""scripts/bench.py's pure parts: GPU layers read from a recorded /status, --only, the build line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
STATUS = Path(__file__).parent / "data" / "bench" / "status-cpu.json"  # GET /status of the app on this CPU box


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", REPO_ROOT / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # its dataclasses look their module up while being made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench", None)


def test_gpu_layers_come_from_the_recorded_status_of_a_cpu_app(bench) -> None:
    assert bench.gpu_layers_from_status(json.loads(STATUS.read_text())) == 0


@pytest.mark.parametrize(("app_layers", "tool_ngl"), [(20, 20), (-1, 999), (0, 0)])
def test_gpu_layers_of_an_offloading_app_reach_the_raw_model_and_the_tools(bench, app_layers, tool_ngl) -> None:
    status = json.loads(STATUS.read_text())
    status["model"]["n_gpu_layers"] = app_layers
    layers = bench.gpu_layers_from_status(status)
    assert layers == app_layers  # what Llama(n_gpu_layers=...) gets: -1 means all there too
    assert bench.tool_gpu_layers(layers) == tool_ngl  # llama-bench's -ngl has no -1


@pytest.mark.parametrize("status", [{"model": None}, {"model": {"file": "x.gguf"}}, {"model": {"n_gpu_layers": "0"}},
                                    {"model": {"n_gpu_layers": True}}, []])
def test_a_status_without_a_model_is_an_error_not_zero_layers(bench, status) -> None:
    with pytest.raises(ValueError, match="n_gpu_layers"):
        bench.gpu_layers_from_status(status)


def test_only_picks_parts_in_their_order_and_refuses_unknown_ones(bench) -> None:
    assert bench.parse_parts("") == bench.PARTS
    assert bench.parse_parts("users, decode") == ("decode", "users")
    with pytest.raises(ValueError, match="unknown part"):
        bench.parse_parts("decode,speed")


def test_build_line_names_the_variant_and_the_enabled_features(bench) -> None:
    info = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | AVX512 = 0 | OPENMP = 1 | "
    assert bench.build_line(info) == "AVX2 [SSE3 SSSE3 AVX AVX2 F16C FMA OPENMP]"


def test_help_lists_every_part() -> None:
    result = subprocess.run([sys.executable, "scripts/bench.py", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    for part in ("decode", "ttft", "users", "turns", "baselines"):
        assert part in result.stdout
    assert "--only" in result.stdout


def test_the_engine_benchmark_explains_its_options() -> None:
    result = subprocess.run([sys.executable, "scripts/bench_engine.py", "--help"], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=120, check=True)
    for option in ("--gpu-layers", "--flash-attn", "--bin-dir", "--users"):
        assert option in result.stdout
