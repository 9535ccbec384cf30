"""The engine's data types, errors and pure decisions (trimming, stop strings, fairness, slot count)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webui.errors import UserError
from webui.prompts.templates import RenderedPrompt

Message = dict[str, str]
GGUF_MAGIC = b"GGUF"
MIN_REPLY_TOKENS = 64


class EngineError(UserError):
    """Base of the engine's errors; the message is one sentence a user can act on."""


class ModelLoadError(EngineError):
    """The file could not be loaded as a model; whatever was loaded before is still loaded."""


class NoModelLoaded(EngineError):
    """A request arrived while no model is loaded."""


class PromptTooLong(EngineError):
    """Even the newest message alone does not fit the context window."""


class InvalidGrammar(EngineError):
    """A requested output format (JSON schema, GBNF) could not be compiled into a grammar."""


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


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    seed: int = -1  # -1: a new random seed each time
    stop: tuple[str, ...] = ()  # extra stop strings, on top of the chat format's own
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    grammar: str | None = None  # GBNF text that constrains the output (JSON mode, JSON schema)
    logprobs: int | None = None  # when set, each chunk carries this many top alternatives per token


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
class FittedPrompt:
    """A conversation cut to fit the context window, rendered and tokenized."""

    messages: list[Message]
    rendered: RenderedPrompt
    tokens: list[int]
    dropped_messages: int
    max_tokens: int


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
    """Prompt lookup since the model was loaded: whether it runs, tokens drafted and accepted (for /status)."""

    enabled: bool
    drafted_tokens: int = 0
    accepted_tokens: int = 0

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else None

    def as_dict(self) -> dict[str, Any]:
        rate = self.acceptance_rate
        return {"enabled": self.enabled, "drafted_tokens": self.drafted_tokens,
                "accepted_tokens": self.accepted_tokens, "acceptance_rate": None if rate is None else round(rate, 3)}


@dataclass(frozen=True)
class StreamChunk:
    """One step of a streamed reply: new text, and the stats once it is done."""

    text: str = ""
    stats: GenerationStats | None = None
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token's log-probability and its most likely alternatives (OpenAI's shape)."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


def check_gguf_file(path: Path) -> None:
    """Cheap checks before handing a file to llama.cpp, for clearer messages than its own."""
    if not path.is_file():
        raise ModelLoadError(f"Model file not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path.name} is not a GGUF model file (it does not start with 'GGUF').")


def choose_messages_to_keep(
    messages: Sequence[Message], fits: Callable[[list[Message]], bool]
) -> tuple[list[Message], int]:
    """Drop the oldest turns (never system messages, never the newest message) until ``fits``.

    Returns the kept messages and how many were dropped. Pure, so it is tested without a model.
    """
    system = [m for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    dropped = 0
    while True:
        candidate = system + turns
        if fits(candidate) or len(turns) <= 1:
            return candidate, dropped
        # Drop a whole user/assistant exchange where possible, so the model never sees a reply
        # whose question was cut away.
        step = 2 if len(turns) > 2 and turns[0]["role"] == "user" and turns[1]["role"] == "assistant" else 1
        turns = turns[step:]
        dropped += step


# llama-cpp-python quiets a model load by pointing the process's stdout and stderr at /dev/null and
# back (its suppress_stdout_stderr). Two loads at once in different threads (the engine loading while
# the Models tab reads a file's metadata) interleave that, and the later one restores /dev/null: the
# terminal and the app's log go silent for good. So every load in the process takes this one lock; it
# is module-level because the file descriptors it guards are process-wide.
LLAMA_LOAD_LOCK = threading.Lock()


STREAM_END = object()  # handed over after a reply's last chunk


def stream_ends(items: Sequence[object]) -> bool:
    """Whether a batch of handed-over items ends the reply (its end marker, or an error to raise)."""
    return any(item is STREAM_END or isinstance(item, BaseException) for item in items)


def merge_handed_over(items: Sequence[object]) -> Iterator[StreamChunk]:
    """Items a producer handed over since the consumer last looked: their texts merged into one chunk.

    A slow consumer (a web page: a thread hop, a diff and a network write per update) then gets one
    update for many tokens. A chunk with stats stays apart and in order; an error is raised here.
    """
    text = ""
    logprobs: list[TokenLogprob] | None = None
    for item in items:
        if isinstance(item, BaseException):
            raise item
        if not isinstance(item, StreamChunk):
            continue  # the end marker
        if item.stats is not None:
            if text or logprobs:
                yield StreamChunk(text=text, logprobs=logprobs)
                text, logprobs = "", None
            yield item
        else:
            text += item.text
            if item.logprobs is not None:
                logprobs = (logprobs or []) + item.logprobs
    if text or logprobs:
        yield StreamChunk(text=text, logprobs=logprobs)


def pump_in_background(
    produce: Callable[[threading.Event], Iterator[StreamChunk]], cancel: threading.Event
) -> Iterator[StreamChunk]:
    """Run a generation in its own thread and hand the consumer everything produced since it last looked.

    Decoding then never waits for the consumer (a web page receiving each update costs a thread
    hop, a diff and a network write per token); a slow consumer gets the new text merged into one
    chunk. If the consumer goes away early, ``cancel`` is set so llama.cpp stops and frees the lock.
    """
    handoff: queue.SimpleQueue[object] = queue.SimpleQueue()

    def work() -> None:
        try:
            for chunk in produce(cancel):
                handoff.put(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            handoff.put(exc)
        finally:
            handoff.put(STREAM_END)

    threading.Thread(target=work, name="llama-generate", daemon=True).start()
    finished = False
    try:
        while not finished:
            batch = [handoff.get()]
            while not handoff.empty():
                batch.append(handoff.get())
            finished = stream_ends(batch)
            yield from merge_handed_over(batch)
    finally:
        if not finished:
            cancel.set()


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share (the part of a cached prompt that is reused)."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class StopScanner:
    """Finds stop strings in streamed text, holding back only a tail that may be the start of one.

    Stop strings can span tokens, so text that could begin one is kept until the next piece decides.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """(text safe to show now, whether a stop string was found); after a stop, nothing more counts."""
        buffer = self._held + text
        hits = [i for i in (buffer.find(stop) for stop in self._stops) if i >= 0]
        if hits:
            self._held = ""
            return buffer[: min(hits)], True
        keep = 0
        for stop in self._stops:
            for length in range(min(len(stop) - 1, len(buffer)), keep, -1):
                if buffer.endswith(stop[:length]):
                    keep = length
                    break
        self._held = buffer[len(buffer) - keep:] if keep else ""
        return buffer[: len(buffer) - keep], False

    def flush(self) -> str:
        """What was held back, once the reply ends without a stop string."""
        held, self._held = self._held, ""
        return held


def pick_next(waiting_users: Sequence[str | None], active: Mapping[str, int]) -> int:
    """Which waiting request gets the next free slot: the user holding the fewest slots, first come first.

    Requests without a user (single-user mode) all count as holding none, so the line stays FIFO;
    in team mode a user never gets a second slot while someone holding fewer waits.
    """
    best, best_key = 0, None
    for index, user in enumerate(waiting_users):
        key = active.get(user, 0) if user is not None else 0
        if best_key is None or key < best_key:
            best, best_key = index, key
    return best


def choose_parallel(requested: int | None, kv_bytes_per_sequence: int, free_bytes: int) -> int:
    """How many sequences one context holds: the flag when given, else up to 4 while their KV cache
    takes at most half of the free memory (the rest is for weights, compute buffers and the OS)."""
    if requested:
        return max(1, requested)
    if free_bytes <= 0 or kv_bytes_per_sequence <= 0:
        return 4
    for n in (4, 3, 2):
        if n * kv_bytes_per_sequence <= free_bytes // 2:
            return n
    return 1


def kv_bytes_per_token(metadata: Mapping[str, str], bytes_per_value: float) -> int:
    """Bytes of K and V cache one token takes, from a GGUF's metadata (0 when it does not say)."""
    arch = metadata.get("general.architecture", "")

    def number(key: str) -> int:
        try:
            return int(float(metadata.get(f"{arch}.{key}", "0") or 0))
        except ValueError:
            return 0

    layers, heads = number("block_count"), number("attention.head_count")
    kv_heads = number("attention.head_count_kv") or heads
    head_dim = number("attention.key_length") or (number("embedding_length") // heads if heads else 0)
    value_dim = number("attention.value_length") or head_dim
    return int(layers * kv_heads * (head_dim + value_dim) * bytes_per_value)
