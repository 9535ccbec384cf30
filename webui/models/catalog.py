"""Models we suggest by memory and expected speed, and how much of one fits the GPU.

Everything here is a pure function of plain numbers or a ``HardwareInfo``, so the choices are
tested without a model file or a GPU. Memory figures are MiB (``*_mb``) or GiB (``*_gb``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from webui.hardware import HardwareInfo

_MIB = 1024 * 1024

# The context length the catalog's memory thresholds were sized for (see CATALOG below).
SIZING_CONTEXT_TOKENS = 8192


@dataclass(frozen=True)
class CatalogEntry:
    """A downloadable GGUF and the architecture facts needed to estimate its KV cache."""

    label: str
    repo_id: str
    filename: str
    size_mb: int  # file size in MiB, rounded up; approximate
    params_billion: float
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    min_memory_gb: float  # the smallest memory budget (GiB) it is chosen for
    head_dim: int | None = None  # None: n_embd / n_head

    def kv_cache_mb(self, n_ctx: int = SIZING_CONTEXT_TOKENS) -> float:
        """f16 KV cache for ``n_ctx`` tokens."""
        return estimate_kv_cache_mb(self.n_layers, n_ctx, self.n_embd, self.n_head, self.n_head_kv,
                                    head_dim=self.head_dim)


# Smallest first: Qwen3 instruction models, which call tools (their template's <tool_call> format)
# and think (<think> blocks, switched off per chat or request). Repository ids, file names and
# exact sizes are those of the published GGUFs as other projects pin them (ggml-org/Qwen3-4B-GGUF's
# Qwen3-4B-Q4_K_M.gguf is 2,497,280,640 bytes; unsloth/Qwen3-1.7B-GGUF's Qwen3-1.7B-Q4_K_M.gguf is
# 1,107,409,472 bytes; Qwen/Qwen3-8B-GGUF's Qwen3-8B-Q4_K_M.gguf about 5.03 GB), in MiB rounded up.
# A threshold is the weights plus the f16 KV cache at SIZING_CONTEXT_TOKENS plus plan_gpu_layers'
# headroom, rounded up to a half GiB, so the model chosen for a budget also loads fully into it
# (Qwen3's heads are 128 wide whatever the embedding size, so head_dim is given):
#   4B: 2382 + 1152 MiB KV + 512 headroom = 4046 MiB -> 4.0 GiB
#   8B: 4796 + 1152 MiB KV, over 0.9 of the budget (10% headroom) = 6609 MiB -> 6.5 GiB
# That puts the 8B model on an 8 GB graphics card (7.2-7.7 GiB free with a desktop running)
# and on a 16 GB machine without one; 6 GB cards and 8 GB machines get the 4B, smaller ones the 1.7B.
CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        label="Qwen3 1.7B (Q4_K_M; tools, thinking)",
        repo_id="unsloth/Qwen3-1.7B-GGUF",
        filename="Qwen3-1.7B-Q4_K_M.gguf",
        size_mb=1057,
        params_billion=2.03,
        n_layers=28,
        n_embd=2048,
        n_head=16,
        n_head_kv=8,
        min_memory_gb=0.0,
        head_dim=128,
    ),
    CatalogEntry(
        label="Qwen3 4B (Q4_K_M; tools, thinking)",
        repo_id="ggml-org/Qwen3-4B-GGUF",
        filename="Qwen3-4B-Q4_K_M.gguf",
        size_mb=2382,
        params_billion=4.02,
        n_layers=36,
        n_embd=2560,
        n_head=32,
        n_head_kv=8,
        min_memory_gb=4.0,
        head_dim=128,
    ),
    CatalogEntry(
        label="Qwen3 8B (Q4_K_M; tools, thinking)",
        repo_id="Qwen/Qwen3-8B-GGUF",
        filename="Qwen3-8B-Q4_K_M.gguf",
        size_mb=4796,
        params_billion=8.19,
        n_layers=36,
        n_embd=4096,
        n_head=32,
        n_head_kv=8,
        min_memory_gb=6.5,
        head_dim=128,
    ),
)


def memory_budget_mb(hw: HardwareInfo) -> int:
    """Memory a model may fill: free VRAM when llama.cpp can offload to the GPU, else free RAM.

    An unknown offload answer (llama-cpp-python not installed yet) counts as yes when a GPU is
    present, because the launcher installs the build that matches it.
    """
    if hw.gpus and hw.gpu_offload_supported is not False:
        return hw.free_vram_mb
    return hw.ram_available_mb


# --- expected decode speed ---------------------------------------------------------------------
# Generating one token reads every weight once, so decode speed is bound by memory bandwidth:
# tokens/s ~ usable bandwidth / weight bytes. The figures below are what llama.cpp decodes at in
# practice (about 60-70% of the data-sheet peak), rounded down.

# The default model should reach about this speed; below it, replies feel like waiting.
TARGET_TOKENS_PER_S = 10.0

# GPU memory bandwidth in GB/s (data-sheet peak) by a substring of the name the vendor tool
# prints, most specific first. Apple entries are the unified-memory bandwidth of the chip.
_GPU_BANDWIDTH_GBPS: tuple[tuple[str, float], ...] = (
    ("H200", 4800), ("H100", 3350), ("A100", 1555), ("L40S", 864), ("L40", 864), ("A6000", 768), ("V100", 900),
    ("L4", 300), ("T4", 320), ("GB10", 273),
    ("5090", 1792), ("5080", 960), ("5070 Ti", 896), ("5070", 672), ("5060 Ti", 448), ("5060", 448),
    ("4090", 1008), ("4080", 717), ("4070 Ti", 504), ("4070", 504), ("4060 Ti", 288), ("4060", 272),
    ("3090", 936), ("3080", 760), ("3070", 448), ("3060 Ti", 448), ("3060 Laptop", 336), ("3060", 360),
    ("3050", 224), ("2080", 448), ("2070", 448), ("2060", 336), ("1080", 320), ("1070", 256),
    ("1660", 192), ("1650", 128),
    ("7900 XTX", 960), ("7900 XT", 800), ("7800 XT", 624), ("7700 XT", 432), ("7600", 288),
    ("6900 XT", 512), ("6800 XT", 512), ("6800", 512), ("6700 XT", 384), ("6600", 224),
    ("MI300", 5300), ("MI250", 3200), ("MI210", 1600),
    ("M4 Max", 546), ("M4 Pro", 273), ("M4", 120), ("M3 Max", 400), ("M3 Pro", 150), ("M3", 100),
    ("M2 Ultra", 800), ("M2 Max", 400), ("M2 Pro", 200), ("M2", 100),
    ("M1 Ultra", 800), ("M1 Max", 400), ("M1 Pro", 200), ("M1", 68),
)
# A GPU not in the table: about a mid-range card of the last few years (or a base Apple chip).
_UNKNOWN_GPU_BANDWIDTH_GBPS = {"apple": 100.0, "nvidia": 250.0, "amd": 250.0}
# Share of the peak llama.cpp's decode reaches on a GPU.
_GPU_EFFICIENCY = 0.6
# CPUs: one core streams about 6 GB/s through llama.cpp's quantised dot products (measured
# rule of thumb: Llama 3.1 8B Q4_K_M, 4.9 GB, decodes at 2-3 tokens/s on 2 cores), and all cores
# together cannot pass what the memory delivers. We assume two channels of DDR4-3200
# (2 x 25.6 GB/s), the common desktop and laptop setup, at 60% of peak: servers with more
# channels are underestimated, which errs towards a smaller, faster model.
_CPU_GBPS_PER_CORE = 6.0
_CPU_MEMORY_GBPS = 2 * 25.6 * 0.6


@dataclass(frozen=True)
class SpeedEstimate:
    """Expected decode speed for a model on this machine, and what the figure rests on."""

    tokens_per_s: float
    bandwidth_gbps: float
    basis: str  # e.g. "NVIDIA GeForce RTX 4090: ~605 GB/s, 60% of its data-sheet bandwidth"


def usable_bandwidth(hw: HardwareInfo) -> tuple[float, str]:
    """(GB/s llama.cpp can read weights at, a few words on where that figure comes from)."""
    if hw.gpus and hw.gpu_offload_supported is not False:
        gpu = hw.gpus[0]
        peak = next((gbps for key, gbps in _GPU_BANDWIDTH_GBPS if _name_has(gpu.name, key)), None)
        known = peak is not None
        peak = peak if known else _UNKNOWN_GPU_BANDWIDTH_GBPS.get(gpu.vendor, 250.0)
        usable = peak * _GPU_EFFICIENCY
        how = "60% of its data-sheet bandwidth" if known else "assumed for a GPU not in our table"
        return usable, f"{gpu.name}: ~{usable:.0f} GB/s, {how}"
    cores = max(1, hw.cpu_physical_cores or 1)
    usable = min(cores * _CPU_GBPS_PER_CORE, _CPU_MEMORY_GBPS)
    return usable, (
        f"{cores} CPU core{'s' if cores != 1 else ''}: ~{usable:.0f} GB/s, assuming "
        f"~{_CPU_GBPS_PER_CORE:.0f} GB/s per core and at most dual-channel DDR4"
    )


def _name_has(name: str, key: str) -> bool:
    """``key`` as whole words in ``name`` ("L4" is not "L40S"); the table lists "M2 Max" before "M2"."""
    return re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", name, re.IGNORECASE) is not None


def estimate_speed(entry: CatalogEntry, hw: HardwareInfo) -> SpeedEstimate:
    """Decode tokens/s for ``entry`` on ``hw``: usable bandwidth over the bytes of its weights."""
    bandwidth, basis = usable_bandwidth(hw)
    weight_gb = entry.size_mb * _MIB / 1e9
    return SpeedEstimate(bandwidth / weight_gb, bandwidth, basis)


def choose_default(hw: HardwareInfo, catalog: tuple[CatalogEntry, ...] = CATALOG) -> CatalogEntry:
    """The largest entry that fits the memory budget and decodes at about TARGET_TOKENS_PER_S.

    When no fitting entry is that fast, the fastest (smallest) one; when none fits, the smallest.
    """
    budget_gb = memory_budget_mb(hw) / 1024
    fitting = [entry for entry in catalog if entry.min_memory_gb <= budget_gb]
    if not fitting:
        return min(catalog, key=lambda entry: entry.min_memory_gb)
    fast = [e for e in fitting if estimate_speed(e, hw).tokens_per_s >= TARGET_TOKENS_PER_S]
    if not fast:
        return min(fitting, key=lambda entry: entry.size_mb)
    return max(fast, key=lambda entry: entry.min_memory_gb)


def describe_choice(entry: CatalogEntry, hw: HardwareInfo) -> str:
    """One line for the console: the model chosen and the speed it is expected to reach."""
    speed = estimate_speed(entry, hw)
    return (
        f"Default model for this machine: {entry.label}, expected about "
        f"{speed.tokens_per_s:.0f} tokens/s ({speed.basis}; the target is {TARGET_TOKENS_PER_S:.0f})."
    )


def announce_default(hw: HardwareInfo, log: Callable[[str], None]) -> CatalogEntry:
    """``choose_default``, telling the user which model and how fast it should be."""
    entry = choose_default(hw)
    log(describe_choice(entry, hw))
    return entry


def estimate_kv_cache_mb(
    n_layers: int,
    n_ctx: int,
    n_embd: int,
    n_head: int,
    n_head_kv: int,
    bytes_per_element: float = 2,
    head_dim: int | None = None,
) -> float:
    """KV cache size in MiB: K and V, per layer, per token, ``n_head_kv * head_dim`` values each.

    ``head_dim`` defaults to n_embd / n_head; pass it for models where it differs (Gemma 3,
    Qwen3). Grouped-query attention is what makes n_head_kv smaller than n_head.
    """
    if n_head <= 0 or n_head_kv <= 0:
        raise ValueError("n_head and n_head_kv must be positive")
    dim = head_dim if head_dim is not None else n_embd // n_head
    return 2 * n_layers * n_ctx * n_head_kv * dim * bytes_per_element / _MIB


def default_headroom_mb(free_vram_mb: int) -> int:
    """VRAM left unplanned for llama.cpp's compute buffers and CUDA/Metal context: 10%, >=512."""
    return max(512, free_vram_mb // 10)


def plan_gpu_layers(
    *,
    model_size_mb: float,
    n_layers: int,
    kv_cache_mb: float,
    free_vram_mb: int,
    headroom_mb: int | None = None,
) -> int:
    """``n_gpu_layers`` for llama.cpp: everything if it fits, a proportional share if not, or 0.

    llama.cpp counts n_layers + 1 slots: the repeating blocks and the output layer (its
    "offloaded 33/33 layers" for a 32-block model), filled from the output end. So "all" is
    ``n_layers + 1``; ``n_layers`` would leave the large output matrix on the CPU. A partial
    share assumes weights and KV cache spread evenly over the slots; the token embeddings stay
    on the CPU in any case, which makes the estimate err on the safe side.
    """
    if n_layers <= 0:
        raise ValueError("n_layers must be positive")
    if free_vram_mb <= 0:
        return 0
    headroom = default_headroom_mb(free_vram_mb) if headroom_mb is None else headroom_mb
    usable = free_vram_mb - headroom
    needed = model_size_mb + kv_cache_mb
    slots = n_layers + 1
    if needed <= usable:
        return slots
    if usable <= 0:
        return 0
    return int(usable * slots // needed)  # < slots, since needed > usable
