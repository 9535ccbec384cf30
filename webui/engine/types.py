"""The engine's data: how a model is loaded and sampled, what a request asks, and what comes back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webui.prompts.toolcalls import ReplyFormat, ToolCall, ToolRequest

# {"role", "content"}, plus "tool_calls" / "tool_call_id" / "name" / "reasoning_content" on tool turns
# (the shape is described in webui.prompts.toolcalls.types).
Message = dict[str, Any]


@dataclass(frozen=True)
class LoadSettings:
    """How a model is loaded; saved per model file by the Models tab."""

    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None
    n_batch: int = 512
    flash_attn: bool | None = False  # None: llama.cpp turns it on for each device that supports it
    kv_cache_type: str = "f16"  # f16 | q8_0 | q4_0
    use_mmap: bool = True
    use_mlock: bool = False
    chat_format: str | None = None  # a family name or Jinja template that overrides the file's own
    prompt_lookup: bool = True  # draft tokens from the prompt and reply, verified by the model (same text, sooner)
    draft_model: Path | None = None  # a small GGUF with the same vocabulary that drafts instead (speculative decoding)


@dataclass(frozen=True)
class SamplingParams:
    """How a reply is sampled and how long it may get."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int | None = 512  # None: as many as the context window leaves (the API's default)
    seed: int = -1  # -1: a new random seed each time
    stop: tuple[str, ...] = ()  # extra stop strings, on top of the chat format's own
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    grammar: str | None = None  # GBNF text that constrains the output (JSON mode, JSON schema)
    logprobs: int | None = None  # when set, each chunk carries this many top alternatives per token
    typical_p: float = 1.0  # 1.0: off
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias) pairs; -inf bans a token
    ignore_eos: bool = False  # end-of-generation tokens are banned: the reply runs to max_tokens (benchmarks)
    grammar_lazy: bool = False  # the grammar applies only from a trigger on (tool_choice auto)
    grammar_triggers: tuple[str, ...] = ()  # regex patterns that start a lazy grammar
    grammar_trigger_tokens: tuple[str, ...] = ()  # token texts (special tokens) that start a lazy grammar


@dataclass(frozen=True)
class ModelInfo:
    """What /status and the UI say about the loaded model."""

    path: Path
    architecture: str
    name: str
    n_ctx: int
    n_ctx_train: int
    n_layers: int
    n_gpu_layers: int
    size_bytes: int
    chat_format: str
    chat_format_source: str
    chat_format_note: str | None
    flash_attn: bool | None = False  # as loaded; None: llama.cpp turned it on where the device supports it
    metadata: dict[str, str] = field(repr=False, default_factory=dict)
    writes_reasoning: bool = False  # its chat template writes thinking (<think>, harmony's analysis...)

    @property
    def file(self) -> str:
        return self.path.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "path": str(self.path),
            "name": self.name,
            "architecture": self.architecture,
            "n_ctx": self.n_ctx,
            "n_ctx_train": self.n_ctx_train,
            "n_layers": self.n_layers,
            "n_gpu_layers": self.n_gpu_layers,
            "size_bytes": self.size_bytes,
            "chat_format": self.chat_format,
            "chat_format_source": self.chat_format_source,
            "chat_format_note": self.chat_format_note,
        }


@dataclass(frozen=True)
class PromptRequest:
    """What a reply is asked for before it meets a model: a chat's messages, or a raw text, and its sampling.

    ``strict`` refuses a prompt and reply budget that do not fit (the API: a client's max_tokens is
    kept or refused); otherwise the oldest turns are dropped and the reply budget shrinks to the room
    left (the page: a long chat goes on).
    """

    sampling: SamplingParams
    messages: tuple[Message, ...] = ()
    text: str | None = None  # set: a raw continuation with no chat template (the notebook, /v1/completions)
    strict: bool = False
    tools: ToolRequest | None = None  # functions the model may call, rendered through its own template
    thinking: bool | None = None  # False: ask a reasoning template not to think; None: the template's default


@dataclass(frozen=True)
class FittedPrompt:
    """A request made ready for the loaded model once: rendered, tokenized, fitted to the context, checked.

    The stream runs exactly this; only a model loaded while it waits makes the engine prepare it again.
    """

    request: PromptRequest
    tokens: list[int]  # what the model evaluates (none for a remote server, which tokenizes itself)
    prompt_tokens: int  # len(tokens), or a remote server's estimate
    sampling: SamplingParams  # the request's, with max_tokens fitted to the room left
    stop: tuple[str, ...]  # the chat format's stop strings, then the request's own
    messages: tuple[Message, ...] = ()  # the turns kept: the oldest that did not fit are dropped
    dropped_messages: int = 0
    load_number: int = -1  # which load of the local engine it was fitted for; -1: none (a remote server)
    reply_format: ReplyFormat = ReplyFormat()  # how the reply is parsed into answer, thinking and tool calls

    @property
    def max_tokens(self) -> int:
        """The reply's token budget."""
        assert self.sampling.max_tokens is not None, "a fitted prompt always has a budget"
        return self.sampling.max_tokens


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    total_s: float
    stopped_by_user: bool
    dropped_messages: int
    finish_reason: str
    cached_tokens: int = 0  # prompt tokens reused from this conversation's cache, not evaluated again
    # The request's own stop string that ended the reply (never the chat format's end markers), for faces
    # that name it (Anthropic's stop_sequence); None when the reply ended otherwise.
    stop_sequence: str | None = None
    drafted_tokens: int = 0  # tokens prompt lookup proposed for this reply
    accepted_tokens: int = 0  # ... of which the model confirmed (each saved a pass)

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - self.ttft_s
        if self.completion_tokens <= 1 or decode_s <= 0:
            return 0.0
        return (self.completion_tokens - 1) / decode_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "ttft_ms": round(self.ttft_s * 1000, 1),
            "total_s": round(self.total_s, 3),
            "tokens_per_s": round(self.tokens_per_s, 2),
            "stopped_by_user": self.stopped_by_user,
            "dropped_messages": self.dropped_messages,
            "finish_reason": self.finish_reason,
            "cached_tokens": self.cached_tokens,
            "drafted_tokens": self.drafted_tokens,
            "accepted_tokens": self.accepted_tokens,
        }


@dataclass(frozen=True)
class PromptLookupStats:
    """Prompt lookup since the model was loaded: whether it runs, whether greedy replies draft too (only where
    llama.cpp computes passes of several tokens bit for bit as passes of one), tokens drafted and accepted."""

    enabled: bool
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    greedy_drafts: bool = False
    draft_model: str | None = None  # the draft model's file when one drafts instead of the prompt

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else None

    def as_dict(self) -> dict[str, Any]:
        rate = self.acceptance_rate
        return {"enabled": self.enabled, "draft_model": self.draft_model, "greedy_drafts": self.greedy_drafts,
                "drafted_tokens": self.drafted_tokens,
                "accepted_tokens": self.accepted_tokens, "acceptance_rate": None if rate is None else round(rate, 3)}


@dataclass(frozen=True)
class StreamChunk:
    """One step of a streamed reply: new answer text, thinking text or tool calls, and the stats once it is done."""

    text: str = ""
    stats: GenerationStats | None = None
    logprobs: list[TokenLogprob] | None = None
    reasoning: str = ""  # thinking, split out of the answer
    tool_calls: tuple[ToolCall, ...] = ()  # calls completed in this step (finish_reason "tool_calls")


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability and its most likely alternatives (OpenAI's shape)."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)
