"""How a GGUF file fits this machine: its shape from metadata, GPU layers, and load settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webui.config import Settings
from webui.engine import LoadSettings
from webui.hardware import HardwareInfo
from webui.models.catalog import estimate_kv_cache_mb, plan_gpu_layers


@dataclass(frozen=True)
class ModelShape:
    """The architecture facts that decide memory use, read from GGUF metadata."""

    architecture: str
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int

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
        )


def read_gguf_metadata(path: Path) -> dict[str, str]:
    """GGUF key/values through llama.cpp itself, loading the vocabulary only (no weights)."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        return dict(llm.metadata or {})
    finally:
        llm.close()


def auto_gpu_layers(path: Path, shape: ModelShape, n_ctx: int, hw: HardwareInfo) -> int:
    """GPU layers for ``path``: all when it fits free VRAM, a share when part fits, 0 on CPU."""
    if not hw.gpus or not hw.gpu_offload_supported or shape.n_layers <= 0:
        return 0
    kv_mb = estimate_kv_cache_mb(shape.n_layers, n_ctx, shape.n_embd, shape.n_head, shape.n_head_kv)
    return plan_gpu_layers(
        model_size_mb=path.stat().st_size / 2**20, n_layers=shape.n_layers,
        kv_cache_mb=kv_mb, free_vram_mb=hw.free_vram_mb,
    )


def load_settings_for(path: Path, hw: HardwareInfo, settings: Settings) -> LoadSettings:
    """Load settings from the command line, with ``auto`` GPU layers worked out for this file."""
    n_ctx = settings.ctx_size
    if settings.n_gpu_layers is None:
        shape = ModelShape.from_metadata(read_gguf_metadata(path))
        if shape.n_ctx_train:
            n_ctx = min(n_ctx, shape.n_ctx_train)
        n_gpu_layers = auto_gpu_layers(path, shape, n_ctx, hw)
    else:
        n_gpu_layers = settings.n_gpu_layers
    return LoadSettings(
        n_ctx=n_ctx,
        n_gpu_layers=n_gpu_layers,
        n_threads=settings.threads or hw.cpu_physical_cores,
    )
