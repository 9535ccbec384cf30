"""How a GGUF fits this machine: shape, KV cache, labels, load settings and the memory check, from plain values."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.config import Settings
from webui.hardware import GpuInfo, HardwareInfo
from webui.models.fit import (
    ModelShape,
    fits_label,
    format_param_count,
    llama_file_type_names,
    load_settings_from_options,
    memory_warning,
    param_count_label,
    quant_label,
    resolve_flash_attn,
    resolve_n_ctx,
)
from webui.models.model_settings import ModelLoadOptions

GIB = 2**30
# As Gemma 3 270M's GGUF says it (head_dim 256 is not n_embd / n_head = 160).
GEMMA = {
    "general.architecture": "gemma3", "gemma3.block_count": "18", "gemma3.embedding_length": "640",
    "gemma3.attention.head_count": "4", "gemma3.attention.head_count_kv": "1",
    "gemma3.attention.key_length": "256", "gemma3.context_length": "32768",
    "general.file_type": "15", "general.size_label": "270M",
}
SMOLLM = {
    "general.architecture": "llama", "llama.block_count": "30", "llama.embedding_length": "576",
    "llama.attention.head_count": "9", "llama.attention.head_count_kv": "3", "llama.context_length": "8192",
}
FILE_TYPES = {0: "F32", 3: "Q4_1", 15: "Q4_K_M"}


def machine(ram_total_gb: float = 16, ram_free_gb: float = 12, vram_gb: float = 0, vram_free_gb: float = 0,
            vendor: str = "nvidia", offload: bool | None = True) -> HardwareInfo:
    gpus = (GpuInfo(vendor, "GPU", int(vram_gb * 1024), int(vram_free_gb * 1024)),) if vram_gb else ()
    return HardwareInfo(cpu_physical_cores=8, cpu_logical_cores=16, ram_total_mb=int(ram_total_gb * 1024),
                        ram_available_mb=int(ram_free_gb * 1024), gpus=gpus, gpu_offload_supported=offload)


def test_shape_reads_gemma_head_dim_and_sizes_its_kv_cache_by_cache_type() -> None:
    shape = ModelShape.from_metadata(GEMMA)
    assert (shape.n_layers, shape.n_head_kv, shape.head_dim, shape.n_ctx_train) == (18, 1, 256, 32768)
    # 2 (K and V) * 18 layers * 8192 tokens * 1 kv head * 256 dims * 2 bytes = 144 MiB
    assert shape.kv_cache_mb(8192) == pytest.approx(144.0)
    assert shape.kv_cache_mb(8192, "q8_0") == pytest.approx(144.0 * 34 / 64)
    assert shape.kv_cache_mb(8192, "q4_0") == pytest.approx(144.0 * 18 / 64)


def test_shape_without_key_length_uses_embedding_over_heads() -> None:
    shape = ModelShape.from_metadata(SMOLLM)
    assert shape.head_dim is None
    assert shape.kv_cache_mb(8192) == pytest.approx(2 * 30 * 8192 * 3 * 64 * 2 / 2**20)


def test_quant_comes_from_file_type_then_from_the_file_name() -> None:
    assert quant_label(GEMMA, "whatever.gguf", FILE_TYPES) == "Q4_K_M"
    assert quant_label({}, "Llama-3.2-3B-Instruct-Q6_K_L.gguf", FILE_TYPES) == "Q6_K_L"
    assert quant_label({"general.file_type": "999"}, "model.Q8_0.gguf", FILE_TYPES) == "Q8_0"
    assert quant_label({}, "model.gguf", FILE_TYPES) is None


def test_file_type_names_are_llama_cpps_own() -> None:
    names = llama_file_type_names()
    assert (names[0], names[1], names[3], names[15], names[7]) == ("F32", "F16", "Q4_1", "Q4_K_M", "Q8_0")


@pytest.mark.parametrize(("n", "label"), [(0, ""), (134_515_008, "135M"), (268_098_176, "268M"),
                                          (1_543_714_304, "1.5B"), (8_030_261_248, "8.0B"), (70_553_706_496, "71B")])
def test_parameter_counts_read_like_model_names(n: int, label: str) -> None:
    assert format_param_count(n) == label


def test_size_label_wins_and_the_count_fills_in() -> None:
    assert param_count_label(GEMMA, 268_098_176) == "270M"
    assert param_count_label({"general.size_label": "8x7B"}, 46_700_000_000) == "47B"
    assert param_count_label({}, 134_515_008) == "135M"


@pytest.mark.parametrize(("requested", "default", "trained", "expected"),
                         [(None, 4096, 8192, 4096), (None, 4096, 2048, 2048), (None, 4096, 0, 4096), (16384, 4096, 8192, 16384)])
def test_context_size_default_is_capped_at_training_but_a_choice_is_kept(requested, default, trained, expected) -> None:
    assert resolve_n_ctx(requested, default, trained) == expected


def test_saved_options_map_to_engine_settings_with_app_flags_for_the_rest() -> None:
    options = ModelLoadOptions(n_ctx=1024, n_gpu_layers=7, n_batch=128, flash_attn=True, kv_cache_type="q4_0",
                               use_mmap=False, use_mlock=True, chat_format="gemma")
    loaded = load_settings_from_options(Path("m.gguf"), ModelShape.from_metadata(GEMMA), options, machine(),
                                        Settings(threads=5), size_bytes=GIB)
    assert (loaded.n_ctx, loaded.n_gpu_layers, loaded.n_threads, loaded.n_batch) == (1024, 7, 5, 128)
    assert (loaded.flash_attn, loaded.kv_cache_type, loaded.use_mmap, loaded.use_mlock) == (True, "q4_0", False, True)
    assert loaded.chat_format == "gemma"


def test_auto_everything_uses_the_launchers_rules() -> None:
    shape = ModelShape.from_metadata(SMOLLM)
    cpu_only = load_settings_from_options(Path("m.gguf"), shape, ModelLoadOptions(), machine(), Settings(ctx_size=4096))
    assert (cpu_only.n_ctx, cpu_only.n_gpu_layers, cpu_only.n_threads) == (4096, 0, 8)
    big_gpu = load_settings_from_options(Path("m.gguf"), shape, ModelLoadOptions(), machine(vram_gb=24, vram_free_gb=20),
                                         Settings(), size_bytes=100 * 2**20)
    assert big_gpu.n_gpu_layers == 31, "all 30 blocks plus the output layer"
    small_gpu = load_settings_from_options(Path("m.gguf"), shape, ModelLoadOptions(), machine(vram_gb=2, vram_free_gb=1),
                                           Settings(), size_bytes=4 * GIB)
    assert 0 < small_gpu.n_gpu_layers < 31
    flag = load_settings_from_options(Path("m.gguf"), shape, ModelLoadOptions(), machine(vram_gb=24, vram_free_gb=20),
                                      Settings(n_gpu_layers=3), size_bytes=GIB)
    assert flag.n_gpu_layers == 3, "--n-gpu-layers applies where the model's own setting is auto"


@pytest.mark.parametrize(
    ("choice", "gpu_layers", "kv_cache_type", "hw", "expected"),
    [
        (None, -1, "f16", machine(vram_gb=24, vram_free_gb=20), None),  # all layers on a GPU: llama.cpp's auto
        (None, 7, "f16", machine(vram_gb=24, vram_free_gb=20), None),  # some on a GPU: auto too
        (None, 0, "f16", machine(vram_gb=24, vram_free_gb=20), False),  # the user kept the layers on the CPU
        (None, 0, "f16", machine(), False),  # no GPU
        (None, -1, "f16", machine(vram_gb=24, vram_free_gb=20, offload=False), False),  # a CPU-only llama.cpp build
        (None, 0, "q8_0", machine(), None),  # a quantized KV cache needs it, so llama.cpp's auto turns it on
        (True, 0, "f16", machine(), True),  # the user's choice stands
        (False, -1, "f16", machine(vram_gb=24, vram_free_gb=20), False),
    ],
)
def test_flash_attention_auto_is_on_where_layers_run_on_a_gpu(choice, gpu_layers, kv_cache_type, hw, expected) -> None:
    assert resolve_flash_attn(choice, gpu_layers, kv_cache_type, hw) is expected


def test_default_options_load_with_flash_attention_auto_on_a_gpu_and_off_on_the_cpu() -> None:
    shape = ModelShape.from_metadata(SMOLLM)
    gpu = load_settings_from_options(Path("m.gguf"), shape, ModelLoadOptions(), machine(vram_gb=24, vram_free_gb=20),
                                     Settings(), size_bytes=100 * 2**20)
    cpu = load_settings_from_options(Path("m.gguf"), shape, ModelLoadOptions(), machine(), Settings())
    assert (gpu.flash_attn, cpu.flash_attn) == (None, False)


def test_memory_warning_only_when_it_clearly_cannot_fit() -> None:
    hw = machine(ram_total_gb=16, vram_gb=8)
    assert memory_warning("m.gguf", 4 * GIB, 1024, 8192, hw) is None
    assert memory_warning("m.gguf", 20 * GIB, 1024, 8192, hw) is None, "RAM and VRAM together hold it"
    warning = memory_warning("m.gguf", 20 * GIB, 8 * 1024, 131072, hw)
    assert warning is not None and "m.gguf" in warning and "131072 tokens" in warning and "24.0 GiB" in warning


def test_apple_gpu_memory_is_not_counted_twice() -> None:
    mac = machine(ram_total_gb=16, vram_gb=12, vram_free_gb=12, vendor="apple")
    assert memory_warning("m.gguf", 20 * GIB, 0, 4096, mac) is not None


def test_unknown_memory_gives_no_warning() -> None:
    assert memory_warning("m.gguf", 100 * GIB, 0, 4096, machine(ram_total_gb=0, ram_free_gb=0)) is None


def test_fits_label_for_downloads() -> None:
    hw = machine(ram_total_gb=16, ram_free_gb=8, vram_gb=8, vram_free_gb=6)
    assert fits_label(4 * GIB, hw) == "yes"
    assert fits_label(16 * GIB, hw) == "tight"
    assert fits_label(40 * GIB, hw) == "no"
    assert fits_label(10 * GIB, machine(ram_total_gb=16, ram_free_gb=8, vram_gb=8, vram_free_gb=6, offload=False)) == "tight"
