"""Models we suggest by memory budget, and the arithmetic that says how much of one fits the GPU.

Everything here is a pure function of plain numbers or a ``HardwareInfo``, so the choices are
tested without a model file or a GPU. Memory figures are MiB (``*_mb``) or GiB (``*_gb``).
"""

from __future__ import annotations

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

    def kv_cache_mb(self, n_ctx: int = SIZING_CONTEXT_TOKENS) -> float:
        """f16 KV cache for ``n_ctx`` tokens."""
        return estimate_kv_cache_mb(self.n_layers, n_ctx, self.n_embd, self.n_head, self.n_head_kv)


# Smallest first. Repo ids, file names and architectures are those of the published GGUFs; file
# sizes are approximate (from the hub's listing, converted to MiB and rounded up).
# A threshold is the weights plus the f16 KV cache at SIZING_CONTEXT_TOKENS plus plan_gpu_layers'
# headroom, rounded up to a half GiB, so the model chosen for a budget also loads fully into it:
#   3B: 1950 + 896 MiB KV + 512 headroom = 3358 MiB -> 4.0 GiB
#   8B: 4700 + 1024 MiB KV, over 0.9 of the budget (10% headroom) = 6360 MiB -> 7.0 GiB
# That puts the 8B model on an 8 GB graphics card (7.2-7.7 GiB free with a desktop running)
# and on a 16 GB machine without one; 8 GB machines get the 3B, smaller ones the 1.5B.
CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        label="Qwen2.5 1.5B Instruct (Q4_K_M)",
        repo_id="bartowski/Qwen2.5-1.5B-Instruct-GGUF",
        filename="Qwen2.5-1.5B-Instruct-Q4_K_M.gguf",
        size_mb=950,
        params_billion=1.54,
        n_layers=28,
        n_embd=1536,
        n_head=12,
        n_head_kv=2,
        min_memory_gb=0.0,
    ),
    CatalogEntry(
        label="Llama 3.2 3B Instruct (Q4_K_M)",
        repo_id="bartowski/Llama-3.2-3B-Instruct-GGUF",
        filename="Llama-3.2-3B-Instruct-Q4_K_M.gguf",
        size_mb=1950,
        params_billion=3.21,
        n_layers=28,
        n_embd=3072,
        n_head=24,
        n_head_kv=8,
        min_memory_gb=4.0,
    ),
    CatalogEntry(
        label="Llama 3.1 8B Instruct (Q4_K_M)",
        repo_id="bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
        filename="Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
        size_mb=4700,
        params_billion=8.03,
        n_layers=32,
        n_embd=4096,
        n_head=32,
        n_head_kv=8,
        min_memory_gb=7.0,
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


def choose_default(hw: HardwareInfo, catalog: tuple[CatalogEntry, ...] = CATALOG) -> CatalogEntry:
    """The largest catalog entry whose threshold the budget meets; the smallest one otherwise."""
    budget_gb = memory_budget_mb(hw) / 1024
    fitting = [entry for entry in catalog if entry.min_memory_gb <= budget_gb]
    if not fitting:
        return min(catalog, key=lambda entry: entry.min_memory_gb)
    return max(fitting, key=lambda entry: entry.min_memory_gb)


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
