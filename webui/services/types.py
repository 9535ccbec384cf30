"""The value types, limits and errors the page and the API may name, all from one place.

The faces (``webui.ui``, ``webui.api``) import from ``webui.services`` only; what they need of the
components below (a request's sampling options, a stored message, an engine or document error) is
re-exported here, so the door is one module and import-linter can hold it (pyproject.toml).
"""

from __future__ import annotations

from webui.auth import User
from webui.engine import (
    ContextExceeded,
    EngineError,
    GenerationStats,
    InvalidGrammar,
    InvalidSampling,
    NoModelLoaded,
    SamplingParams,
    StreamChunk,
    TokenLogprob,
)
from webui.history import ConversationNotFound, HistoryError, StoredMessage
from webui.prompts.toolcalls import MAX_TOOLS, ToolCall, ToolCallError, ToolChoice, ToolRequest, ToolSpec
from webui.prompts.presets import ALLOWED_VARIABLES, SAMPLING_PRESETS, Preset, PresetError
from webui.rag import IngestProgress, RagError
from webui.rag.loaders import SUPPORTED_EXTENSIONS
from webui.rag.settings import DEFAULT_MIN_SCORE, MAX_CHUNK_TOKENS, MAX_K, MIN_CHUNK_TOKENS, RetrievalSettings
from webui.services.admission import MessageTooLong, SamplingOutOfBounds, SamplingRequest, sampling_from

__all__ = [
    "ALLOWED_VARIABLES", "DEFAULT_MIN_SCORE", "MAX_CHUNK_TOKENS", "MAX_K", "MIN_CHUNK_TOKENS", "SAMPLING_PRESETS",
    "SUPPORTED_EXTENSIONS", "ContextExceeded", "ConversationNotFound", "EngineError", "GenerationStats",
    "HistoryError", "IngestProgress", "InvalidGrammar", "InvalidSampling", "MessageTooLong", "NoModelLoaded", "Preset", "PresetError",
    "RagError", "RetrievalSettings", "SamplingOutOfBounds", "SamplingParams", "SamplingRequest", "StoredMessage",
    "StreamChunk", "TokenLogprob", "User", "sampling_from", "MAX_TOOLS", "ToolCall", "ToolCallError", "ToolChoice",
    "ToolRequest", "ToolSpec",
]
