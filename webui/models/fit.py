"""How a GGUF file fits this machine: its shape from metadata, GPU layers, and load settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from webui.config import Settings
from webui.engine import LLAMA_LOAD_LOCK, LoadSettings
from webui.hardware import HardwareInfo
from webui.models.catalog import estimate_kv_cache_mb, plan_gpu_layers
from webui.models.model_settings import ModelLoadOptions

_MIB = 1024 * 1024
# Bytes per KV-cache element for llama.cpp's cache types: f16, and the q8_0 / q4_0 blocks of 32
# values (32 + 2 and 16 + 2 bytes).
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
# What a loaded model needs besides its weights and KV cache (compute buffers, context): a rough floor.
RUNTIME_OVERHEAD_MB = 256
_SIZE_LABEL = re.compile(r"^\d+(\.\d+)?[KMBT]$", re.IGNORECASE)


@dataclass(frozen=True)
class ModelShape:
    """The architecture facts that decide memory use, read from GGUF metadata."""

    architecture: str
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int
    head_dim: int | None = None  # attention.key_length where it differs from n_embd / n_head (Gemma 3)

    def kv_cache_mb(self, n_ctx: int, kv_cache_type: str = "f16") -> float:
        """KV cache size for ``n_ctx`` tokens with llama.cpp's cache type ``kv_cache_type``."""
        if self.n_layers <= 0:
            return 0.0
        return estimate_kv_cache_mb(
            self.n_layers, n_ctx, self.n_embd, self.n_head, self.n_head_kv,
            bytes_per_element=KV_BYTES_PER_ELEMENT.get(kv_cache_type, 2.0), head_dim=self.head_dim,
        )

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelShape:
        arch = metadata.get("general.architecture", "unknown")

        def number(key: str, default: int = 0) -> int:
            try:
                return int(metadata.get(f"{arch}.{key}", default))
            except (TypeError, ValueError):
                return default

        n_head = number("attention.head_count", 1) or 1
        return cls(
            architecture=arch,
            n_layers=number("block_count"),
            n_embd=number("embedding_length"),
            n_head=n_head,
            n_head_kv=number("attention.head_count_kv", n_head) or n_head,
            n_ctx_train=number("context_length"),
            head_dim=number("attention.key_length") or None,
        )


def auto_gpu_layers(
    path: Path,
    shape: ModelShape,
    n_ctx: int,
    hw: HardwareInfo,
    *,
    kv_cache_type: str = "f16",
    size_bytes: int | None = None,
) -> int:
    """GPU layers for ``path``: all when it fits free VRAM, a share when part fits, 0 on CPU.

    ``size_bytes`` is the model's size when it is more than ``path`` alone (a split model's parts).
    """
    if not hw.gpus or not hw.gpu_offload_supported or shape.n_layers <= 0:
        return 0
    kv_mb = shape.kv_cache_mb(n_ctx, kv_cache_type)
    size = path.stat().st_size if size_bytes is None else size_bytes
    return plan_gpu_layers(
        model_size_mb=size / _MIB, n_layers=shape.n_layers,
        kv_cache_mb=kv_mb, free_vram_mb=hw.free_vram_mb,
    )


# -- what the Models tab shows and decides ---------------------------------------------------------


@dataclass(frozen=True)
class GgufFacts:
    """What one vocab-only read of a GGUF tells: its key/values and its parameter count."""

    metadata: dict[str, str]
    n_params: int


def read_gguf_facts(path: Path) -> GgufFacts:
    """Metadata and parameter count through llama.cpp, loading the vocabulary only (no weights).

    llama.cpp counts parameters from the tensor list, which it reads even in vocab-only mode, and
    it checks every tensor lies inside the file, so a truncated GGUF fails here (ValueError).
    """
    import llama_cpp

    with LLAMA_LOAD_LOCK:  # see its comment: loads at once silence the process's stderr for good
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return GgufFacts(metadata=dict(llm.metadata or {}), n_params=int(llama_cpp.llama_model_n_params(llm.model)))
    finally:
        llm.close()


def llama_file_type_names() -> dict[int, str]:
    """``general.file_type`` number -> quant name ("Q4_K_M"), from llama.cpp's own LLAMA_FTYPE_* enum."""
    import llama_cpp

    names: dict[int, str] = {}
    for attr in dir(llama_cpp):
        if attr.startswith("LLAMA_FTYPE_") and attr != "LLAMA_FTYPE_GUESSED":
            names[int(getattr(llama_cpp, attr))] = attr.removeprefix("LLAMA_FTYPE_").split("_", 1)[1]
    return names


def quant_label(metadata: Mapping[str, str], file_name: str, file_type_names: Mapping[int, str]) -> str | None:
    """The quantization: ``general.file_type`` when the file says it, else the one in its name."""
    from webui.models.download import parse_quant

    try:
        file_type = int(metadata["general.file_type"])
    except (KeyError, TypeError, ValueError):
        file_type = None
    if file_type is not None and file_type in file_type_names:
        return file_type_names[file_type]
    return parse_quant(file_name)


def format_param_count(n_params: int) -> str:
    """135_000_000 -> "135M", 1_540_000_000 -> "1.5B"; "" when unknown."""
    if n_params <= 0:
        return ""
    for divisor, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n_params >= divisor:
            value = n_params / divisor
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n_params)


def param_count_label(metadata: Mapping[str, str], n_params: int) -> str:
    """``general.size_label`` when it looks like one ("135M", "8x7B" is left to the count), else computed."""
    label = str(metadata.get("general.size_label", "")).strip()
    return label if _SIZE_LABEL.match(label) else format_param_count(n_params)


def resolve_n_ctx(requested: int | None, default: int, n_ctx_train: int) -> int:
    """The context size to load with: the user's number as given; else the app default, capped at training."""
    if requested is not None:
        return requested
    return min(default, n_ctx_train) if n_ctx_train > 0 else default


def resolve_flash_attn(choice: bool | None, gpu_layers: int, kv_cache_type: str, hw: HardwareInfo) -> bool | None:
    """Flash attention for a load: the user's on/off as given; auto is on where layers run on a GPU.

    ``None`` in the result lets llama.cpp turn it on for each device that supports it (as its server's
    ``-fa auto`` does). On an H200 it gave +16% single-user decode, +20% at 8 users, and cheap copies
    of a sequence's state. On the CPU auto means off: for Gemma 3 270M on 2 cores it gained ~5% decode,
    but 135 new prompt tokens behind 1,800 cached took 1.64x as long as behind none, against 1.29x
    without it (``llama-bench -p 135 -n 0 -d 0,1800 -fa 0,1``): every long chat's next turn is slower.
    A quantized KV cache needs it, so there auto leaves it to llama.cpp too.
    """
    if choice is not None:
        return choice
    on_gpu = gpu_layers != 0 and bool(hw.gpus) and hw.gpu_offload_supported is not False
    return None if on_gpu or kv_cache_type != "f16" else False


def load_settings_from_options(
    path: Path,
    shape: ModelShape,
    options: ModelLoadOptions,
    hw: HardwareInfo,
    settings: Settings,
    *,
    size_bytes: int | None = None,
) -> LoadSettings:
    """The engine's LoadSettings for a file: saved per-model options first, the app's flags for the rest.

    ``n_gpu_layers=None`` in both means auto, worked out by :func:`auto_gpu_layers` as at start-up.
    """
    n_ctx = resolve_n_ctx(options.n_ctx, settings.ctx_size, shape.n_ctx_train)
    gpu_layers = options.n_gpu_layers if options.n_gpu_layers is not None else settings.n_gpu_layers
    if gpu_layers is None:
        gpu_layers = auto_gpu_layers(path, shape, n_ctx, hw, kv_cache_type=options.kv_cache_type, size_bytes=size_bytes)
    return LoadSettings(
        n_ctx=n_ctx,
        n_gpu_layers=gpu_layers,
        n_threads=options.n_threads or settings.threads or hw.cpu_physical_cores,
        n_batch=options.n_batch,
        flash_attn=resolve_flash_attn(options.flash_attn, gpu_layers, options.kv_cache_type, hw),
        kv_cache_type=options.kv_cache_type,
        use_mmap=options.use_mmap,
        use_mlock=options.use_mlock,
        chat_format=options.chat_format or None,
        prompt_lookup=options.prompt_lookup,
    )


def memory_needed_mb(size_bytes: int, kv_cache_mb: float) -> float:
    """Weights plus KV cache plus a floor for llama.cpp's compute buffers."""
    return size_bytes / _MIB + kv_cache_mb + RUNTIME_OVERHEAD_MB


def memory_capacity_mb(hw: HardwareInfo) -> int:
    """All the memory a model could ever fill: RAM plus VRAM (Apple's GPU memory is the RAM itself)."""
    vram = 0 if hw.gpu_vendor == "apple" or hw.gpu_offload_supported is False else hw.total_vram_mb
    return hw.ram_total_mb + vram


def memory_warning(file_name: str, size_bytes: int, kv_cache_mb: float, n_ctx: int, hw: HardwareInfo) -> str | None:
    """A one-sentence warning when the model clearly cannot fit all of RAM plus VRAM; None otherwise.

    Totals, not free memory: the model being replaced is unloaded first, and the OS can drop its
    file cache, so only a model larger than the whole machine is sure to fail.
    """
    capacity = memory_capacity_mb(hw)
    if capacity <= 0:
        return None  # memory unknown: do not guess
    needed = memory_needed_mb(size_bytes, kv_cache_mb)
    if needed <= capacity:
        return None
    return (
        f"{file_name} needs about {needed / 1024:.1f} GiB ({size_bytes / 2**30:.1f} GiB of weights and "
        f"{kv_cache_mb / 1024:.1f} GiB of KV cache for {n_ctx} tokens), more than this machine's "
        f"{capacity / 1024:.1f} GiB of RAM and VRAM: lower the context size or pick a smaller file."
    )


@dataclass(frozen=True)
class FitVerdict:
    """Whether a download will fit this machine, and the few words that say why."""

    label: str  # "yes" | "tight" | "no"
    reason: str  # "needs about 2.9 GiB; 11.2 GiB of RAM is free"


def fit_verdict(size_bytes: int, hw: HardwareInfo) -> FitVerdict:
    """"yes" when it fits the memory free now with room for a modest context, "tight" when only all of
    RAM + VRAM holds it (other programs must give way), "no" when the whole machine is too small."""
    needed = size_bytes / _MIB * 1.2 + RUNTIME_OVERHEAD_MB  # 20% for a modest KV cache
    discrete = hw.gpu_vendor != "apple" and hw.gpu_offload_supported is not False and bool(hw.gpus)
    free = hw.ram_available_mb + (hw.free_vram_mb if discrete else 0)
    where = "RAM and VRAM" if discrete else "RAM"
    capacity = memory_capacity_mb(hw)
    needs = f"needs about {needed / 1024:.1f} GiB"
    if needed <= free:
        return FitVerdict("yes", f"{needs}; {free / 1024:.1f} GiB of {where} is free")
    if needed <= capacity:
        return FitVerdict("tight", f"{needs}, more than the {free / 1024:.1f} GiB of {where} free now but within "
                                   f"the {capacity / 1024:.1f} GiB this machine has: close other programs first")
    return FitVerdict("no", f"{needs}, more than this machine's {capacity / 1024:.1f} GiB of {where}")


def fits_label(size_bytes: int, hw: HardwareInfo) -> str:
    """:func:`fit_verdict`'s "yes", "tight" or "no" alone."""
    return fit_verdict(size_bytes, hw).label
