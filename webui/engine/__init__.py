"""The one owner of llama.cpp: load, unload, render, stream, cancel, count and fit.

``engine`` holds the Engine (its line of requests and its thread), ``scheduler`` the continuous
batching over one context, ``sampling`` the per-sequence sampler chains, ``types`` the data and the
pure decisions.
"""

from webui.engine.engine import Engine, ReadWriteLock
from webui.engine.sampling import compile_grammar
from webui.engine.types import (
    GGUF_MAGIC,
    MIN_REPLY_TOKENS,
    EngineError,
    FittedPrompt,
    GenerationStats,
    LLAMA_LOAD_LOCK,
    InvalidGrammar,
    LoadSettings,
    Message,
    ModelInfo,
    ModelLoadError,
    NoModelLoaded,
    PromptLookupStats,
    PromptTooLong,
    SamplingParams,
    StopScanner,
    StreamChunk,
    TokenLogprob,
    check_gguf_file,
    choose_messages_to_keep,
    choose_parallel,
    common_prefix,
    kv_bytes_per_token,
    pick_next,
    pump_in_background,
)

__all__ = [
    "GGUF_MAGIC", "MIN_REPLY_TOKENS", "Engine", "EngineError", "FittedPrompt", "GenerationStats", "InvalidGrammar", "LLAMA_LOAD_LOCK",
    "LoadSettings", "Message", "ModelInfo", "ModelLoadError", "NoModelLoaded", "PromptLookupStats", "PromptTooLong", "ReadWriteLock",
    "SamplingParams", "StopScanner", "StreamChunk", "TokenLogprob", "check_gguf_file", "choose_messages_to_keep", "compile_grammar",
    "choose_parallel", "common_prefix", "kv_bytes_per_token", "pick_next", "pump_in_background",
]
