"""scripts/bench.py's pure parts: GPU layers read from a recorded /status, --only, the build line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.scripts import loaded_script

REPO_ROOT = Path(__file__).resolve().parents[2]
STATUS = Path(__file__).parent / "data" / "bench" / "status-cpu.json"  # GET /status of the app on this CPU box


@pytest.fixture(scope="module")
def bench():
    with loaded_script("bench") as module:
        yield module


def test_offload_comes_from_the_recorded_status_of_a_cpu_app(bench) -> None:
    offload = bench.Offload.from_status(json.loads(STATUS.read_text()))
    assert offload == bench.Offload(gpu_layers=0, flash_attn="off")
    # llama.cpp's tools default to -fa auto, which on the CPU turns it on: they must be told the app's off
    assert offload.tool_args() == ["-ngl", "0", "-fa", "off"]


@pytest.mark.parametrize(("app_layers", "flash_attn", "tool_args"),
                         [(20, "auto", ["-ngl", "20", "-fa", "auto"]), (-1, "on", ["-ngl", "999", "-fa", "on"]),
                          (0, "off", ["-ngl", "0", "-fa", "off"])])
def test_an_offloading_apps_layers_and_flash_attention_reach_the_raw_model_and_the_tools(
        bench, app_layers, flash_attn, tool_args) -> None:
    status = json.loads(STATUS.read_text())
    status["model"].update(n_gpu_layers=app_layers, flash_attn=flash_attn)
    offload = bench.Offload.from_status(status)
    assert offload.gpu_layers == app_layers  # what Llama(n_gpu_layers=...) gets: -1 means all there too
    assert offload.tool_args() == tool_args  # llama-bench's -ngl has no -1


@pytest.mark.parametrize(("status", "named"), [
    ({"model": None}, "n_gpu_layers"), ({"model": {"file": "x.gguf"}}, "n_gpu_layers"),
    ({"model": {"n_gpu_layers": "0"}}, "n_gpu_layers"), ({"model": {"n_gpu_layers": True}}, "n_gpu_layers"),
    ([], "n_gpu_layers"), ({"model": {"n_gpu_layers": 0}}, "flash_attn"),
    ({"model": {"n_gpu_layers": 0, "flash_attn": False}}, "flash_attn"),
])
def test_a_status_without_a_model_is_an_error_not_a_guess(bench, status, named) -> None:
    with pytest.raises(ValueError, match=named):
        bench.Offload.from_status(status)


def test_process_cpu_seconds_reads_what_this_process_used(bench) -> None:
    import os
    import time

    sum(i * i for i in range(2_000_000))  # some CPU time to read
    measured, own = bench.process_cpu_seconds(os.getpid()), time.process_time()
    assert measured is not None and abs(measured - own) < 0.1, (measured, own)
    assert bench.process_cpu_seconds(2**22 + 12345) is None, "no such process: no figure, not zero"


def test_turn_times_are_the_median_of_each_conversations_turn_over_rounds(bench) -> None:
    rounds = [[[0.5, 0.9], [0.4, 0.7]], [[0.6, 0.6], [0.5, 0.8]], [[0.7, 0.8], [0.3, 0.6]]]  # rounds x conversations x turns
    assert bench.median_turns(rounds) == [[0.6, 0.8], [0.4, 0.7]]


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
