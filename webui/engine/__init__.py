"""The one owner of llama.cpp: load, unload, prepare (render, tokenize, fit), stream, cancel.

``engine`` holds the Engine (its line of requests and its thread), ``prepare`` the one prepare step
and ``fitting`` its pure decisions, ``scheduler`` the continuous batching over one context and
``policy`` its pure decisions, ``sampling`` the per-sequence sampler chains, ``grammar`` output
formats as grammars, ``stops`` stop strings, ``handoff`` chunks handed between threads, ``loading``
what every load shares, ``types`` the data and ``errors`` the failures.
"""

from webui.engine.engine import Engine, ReadWriteLock
from webui.engine.errors import (
    ContextExceeded,
    EngineError,
    InvalidGrammar,
    InvalidSampling,
    ModelLoadError,
    NoModelLoaded,
)
from webui.engine.fitting import MIN_REPLY_TOKENS, choose_messages_to_keep, reply_budget
from webui.engine.grammar import grammar_for
from webui.engine.handoff import pump_in_background
from webui.engine.loading import GGUF_MAGIC, LLAMA_LOAD_LOCK, check_gguf_file
from webui.engine.policy import choose_parallel, common_prefix, kv_bytes_per_token, pick_next
from webui.engine.stops import StopScanner
from webui.engine.types import (
    FittedPrompt,
    GenerationStats,
    LoadSettings,
    Message,
    ModelInfo,
    PromptRequest,
    PromptLookupStats,
    SamplingParams,
    StreamChunk,
    TokenLogprob,
)

__all__ = [
    "GGUF_MAGIC", "LLAMA_LOAD_LOCK", "MIN_REPLY_TOKENS", "ContextExceeded", "Engine", "EngineError", "FittedPrompt",
    "GenerationStats", "InvalidGrammar", "InvalidSampling", "LoadSettings", "Message", "ModelInfo", "ModelLoadError",
    "NoModelLoaded", "PromptLookupStats", "PromptRequest", "ReadWriteLock", "SamplingParams", "StopScanner", "StreamChunk", "TokenLogprob",
    "check_gguf_file", "choose_messages_to_keep", "choose_parallel", "common_prefix", "grammar_for",
    "kv_bytes_per_token", "pick_next", "pump_in_background", "reply_budget",
]
