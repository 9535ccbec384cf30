"""The one owner of the llama.cpp model: load, unload, render, stream, cancel, count and fit.

llama-cpp-python's ``Llama`` object is not thread-safe, so every call that touches it goes through
one FIFO lock: a second request waits its turn (and can see its place in line) instead of failing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from webui.prompts.templates import ChatFormat, RenderedPrompt, resolve_chat_format

log = logging.getLogger(__name__)

Message = dict[str, str]
GGUF_MAGIC = b"GGUF"
MIN_REPLY_TOKENS = 64


class EngineError(Exception):
    """Base of the engine's errors; the message is one sentence a user can act on."""


class ModelLoadError(EngineError):
    """The file could not be loaded as a model; whatever was loaded before is still loaded."""


class NoModelLoaded(EngineError):
    """A request arrived while no model is loaded."""


class PromptTooLong(EngineError):
    """Even the newest message alone does not fit the context window."""


class InvalidGrammar(EngineError):
    """A requested output format (JSON schema, GBNF) could not be compiled into a grammar."""


class FifoLock:
    """A lock granted strictly in arrival order, which also tells a waiter its place in line.

    ``threading.Lock`` makes no ordering promise; users sharing one model expect first come,
    first served, and a visible position. Our own because the standard library has none.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()

    @contextmanager
    def hold(self, on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
        """Hold the lock; ``on_wait(position)`` is called while waiting (1 = next in line)."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            last_reported = -1
            while self._queue[0] is not ticket:
                position = self._queue.index(ticket)
                if on_wait and position != last_reported:
                    on_wait(position)
                    last_reported = position
                self._cond.wait(timeout=0.25)
        try:
            yield
        finally:
            with self._cond:
                self._queue.popleft()
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Requests waiting behind the one that holds the lock."""
        with self._cond:
            return max(0, len(self._queue) - 1)


@dataclass(frozen=True)
class LoadSettings:
    """How a model is loaded; saved per model file by the Models tab."""

    n_ctx: int = 4096
    n_gpu_layers: int = 0
    n_threads: int | None = None
    n_batch: int = 512
    flash_attn: bool = False
    kv_cache_type: str = "f16"  # f16 | q8_0 | q4_0
    use_mmap: bool = True
    use_mlock: bool = False
    chat_format: str | None = None  # a family name or Jinja template that overrides the file's own


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
        }


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


def compile_grammar(gbnf: str | None) -> Any:
    """A llama.cpp grammar from GBNF text, or None; a bad grammar is the caller's error."""
    if not gbnf:
        return None
    import llama_cpp

    try:
        return llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
    except ValueError as exc:
        raise InvalidGrammar(f"The output format could not be turned into a grammar: {exc}") from exc


def token_logprobs(raw: dict[str, Any] | None) -> list[TokenLogprob] | None:
    """llama-cpp-python's completion ``logprobs`` block -> one TokenLogprob per token."""
    if not raw or not raw.get("tokens"):
        return None
    tops = raw.get("top_logprobs") or [None] * len(raw["tokens"])
    return [
        TokenLogprob(token=token, logprob=float(logprob or 0.0), top={k: float(v) for k, v in (top or {}).items()})
        for token, logprob, top in zip(raw["tokens"], raw.get("token_logprobs") or [], tops)
    ]


_FINISHED = object()


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
            handoff.put(_FINISHED)

    threading.Thread(target=work, name="llama-generate", daemon=True).start()
    finished = False
    try:
        while not finished:
            batch = [handoff.get()]
            while not handoff.empty():
                batch.append(handoff.get())
            text = ""
            logprobs: list[TokenLogprob] | None = None
            for item in batch:
                if item is _FINISHED:
                    finished = True
                elif isinstance(item, BaseException):
                    finished = True
                    raise item
                elif item.stats is not None:
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
    finally:
        if not finished:
            cancel.set()


class Engine:
    """Owns the ``llama_cpp.Llama`` instance; every method is safe to call from any thread."""

    def __init__(self, *, prompt_cache_mb: int = 0) -> None:
        """``prompt_cache_mb`` > 0 keeps model states of recent conversations in RAM, so users who
        take turns do not wipe each other's prompt prefix (llama.cpp only keeps the last one)."""
        self._prompt_cache_mb = prompt_cache_mb
        self._lock = FifoLock()
        self._llm: Any = None
        self._info: ModelInfo | None = None
        self._format: ChatFormat | None = None
        self._load_settings: LoadSettings | None = None
        self._switching_to: str | None = None

    # -- loading -----------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo | None:
        return self._info

    @property
    def load_settings(self) -> LoadSettings | None:
        return self._load_settings

    @property
    def queue_length(self) -> int:
        return self._lock.waiting

    @property
    def switching_to(self) -> str | None:
        """The file a model switch is loading (or waiting to load), so waiting users can be told."""
        return self._switching_to

    def load(self, path: Path, settings: LoadSettings, *, on_wait: Callable[[int], None] | None = None) -> ModelInfo:
        """Load ``path``, replacing the current model only once the new one has loaded.

        A switch waits for the running generation. If the new file fails, the previous model is
        restored, so a bad file never leaves the app without a model.
        """
        path = Path(path)
        check_gguf_file(path)
        self._switching_to = path.name
        try:
            with self._lock.hold(on_wait):
                previous = (self._info.path, self._load_settings) if self._info and self._load_settings else None
                self._release()
                try:
                    self._open(path, settings)
                except ModelLoadError:
                    if previous is not None:
                        log.warning("restoring %s after a failed load of %s", previous[0].name, path.name)
                        self._open(*previous)
                    raise
                assert self._info is not None
                return self._info
        finally:
            self._switching_to = None

    def unload(self) -> None:
        with self._lock.hold():
            self._release()

    def _release(self) -> None:
        if self._llm is not None:
            self._llm.close()
        self._llm = None
        self._info = None
        self._format = None
        self._load_settings = None

    def _open(self, path: Path, settings: LoadSettings) -> None:
        import llama_cpp

        kv_types = {"f16": llama_cpp.GGML_TYPE_F16, "q8_0": llama_cpp.GGML_TYPE_Q8_0, "q4_0": llama_cpp.GGML_TYPE_Q4_0}
        if settings.kv_cache_type not in kv_types:
            raise ModelLoadError(f"Unknown KV cache type {settings.kv_cache_type!r}; use one of {', '.join(kv_types)}.")
        kv_type = kv_types[settings.kv_cache_type]
        started = time.perf_counter()
        try:
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_gpu_layers=settings.n_gpu_layers,
                n_threads=settings.n_threads,
                n_batch=min(settings.n_batch, settings.n_ctx),
                flash_attn=settings.flash_attn,
                type_k=kv_type,
                type_v=kv_type,
                use_mmap=settings.use_mmap,
                use_mlock=settings.use_mlock,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            log.error("llama.cpp failed to load %s: %s", path, exc)
            raise ModelLoadError(
                f"llama.cpp could not load {path.name}: the file is damaged, incomplete, of an "
                f"unsupported architecture, or too large for this machine's memory ({exc})."
            ) from exc
        if self._prompt_cache_mb > 0:
            llm.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=self._prompt_cache_mb * 2**20))
        metadata = dict(llm.metadata or {})
        architecture = metadata.get("general.architecture", "unknown")
        bos = llm.detokenize([llm.token_bos()], special=True).decode("utf-8", "ignore") if llm.token_bos() >= 0 else ""
        eos = llm.detokenize([llm.token_eos()], special=True).decode("utf-8", "ignore") if llm.token_eos() >= 0 else ""
        try:
            chat_format = resolve_chat_format(
                metadata, model_name=path.name, bos_token=bos, eos_token=eos, override=settings.chat_format
            )
        except ValueError as exc:
            llm.close()
            raise ModelLoadError(f"The chat format override for {path.name} is invalid: {exc}") from exc
        self._llm = llm
        self._format = chat_format
        self._load_settings = settings
        self._info = ModelInfo(
            path=path,
            architecture=architecture,
            name=metadata.get("general.name", path.stem),
            n_ctx=llm.n_ctx(),
            n_ctx_train=int(metadata.get(f"{architecture}.context_length", 0) or 0),
            n_layers=int(metadata.get(f"{architecture}.block_count", 0) or 0),
            n_gpu_layers=settings.n_gpu_layers,
            size_bytes=path.stat().st_size,
            chat_format=chat_format.name,
            chat_format_source=chat_format.source,
            chat_format_note=chat_format.note,
            metadata=metadata,
        )
        log.info(
            "loaded %s (%s, n_ctx=%d, gpu layers=%d, format=%s) in %.1fs",
            path.name, architecture, self._info.n_ctx, settings.n_gpu_layers, chat_format.name,
            time.perf_counter() - started,
        )

    def _require_model(self) -> Any:
        if self._llm is None:
            raise NoModelLoaded("No model is loaded. Load one in the Models tab.")
        return self._llm

    # -- prompts and tokens ------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> RenderedPrompt:
        """The exact text the model receives for ``messages``, special tokens included."""
        self._require_model()
        assert self._format is not None
        return self._format.render(list(messages))

    def tokenize(self, rendered: RenderedPrompt) -> list[int]:
        llm = self._require_model()
        return llm.tokenize(rendered.text.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    def count_tokens(self, text: str) -> int:
        llm = self._require_model()
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def fit(self, messages: Sequence[Message], max_tokens: int) -> FittedPrompt:
        """Cut ``messages`` to fit the context with room for the reply; oldest turns go first.

        When even the newest message leaves less than ``max_tokens`` of room, the reply budget
        shrinks down to ``MIN_REPLY_TOKENS`` before the request is refused.
        """
        llm = self._require_model()
        n_ctx = llm.n_ctx()
        reserve = min(max_tokens, n_ctx - 1)

        def prompt_tokens(candidate: list[Message]) -> list[int]:
            return self.tokenize(self.render(candidate))

        kept, dropped = choose_messages_to_keep(messages, lambda c: len(prompt_tokens(c)) + reserve <= n_ctx)
        tokens = prompt_tokens(kept)
        room = n_ctx - len(tokens)
        if room < min(reserve, MIN_REPLY_TOKENS):
            raise PromptTooLong(
                f"The message is too long for this model's context window: it needs {len(tokens)} tokens "
                f"and the context holds {n_ctx}. Shorten it, or load the model with a larger context size."
            )
        return FittedPrompt(
            messages=kept,
            rendered=self.render(kept),
            tokens=tokens,
            dropped_messages=dropped,
            max_tokens=min(reserve, room),
        )

    # -- generation --------------------------------------------------------------------------

    def stream_chat(
        self,
        messages: Sequence[Message],
        sampling: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> Iterator[StreamChunk]:
        """Stream a reply to a chat; the last chunk carries the stats."""
        # ``user`` and ``conversation`` name who asks and which chat this continues: the scheduler
        # uses them for fairness between users and to keep a conversation's cache.

        def produce(stop_flag: threading.Event) -> Iterator[StreamChunk]:
            with self._lock.hold(on_wait):
                fitted = self.fit(messages, sampling.max_tokens)
                yield from self._generate(
                    fitted.tokens, (*fitted.rendered.stop, *sampling.stop), replace(sampling, max_tokens=fitted.max_tokens),
                    cancel=stop_flag, dropped=fitted.dropped_messages,
                )

        return pump_in_background(produce, cancel or threading.Event())

    def stream_completion(
        self,
        text: str,
        sampling: SamplingParams,
        *,
        cancel: threading.Event | None = None,
        on_wait: Callable[[int], None] | None = None,
        user: str | None = None,
        conversation: str | None = None,
    ) -> Iterator[StreamChunk]:
        """Raw continuation of ``text`` with no chat template (the notebook mode)."""

        def produce(stop_flag: threading.Event) -> Iterator[StreamChunk]:
            with self._lock.hold(on_wait):
                llm = self._require_model()
                tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
                room = llm.n_ctx() - len(tokens)
                if room < MIN_REPLY_TOKENS:
                    tokens = tokens[:1] + tokens[-(llm.n_ctx() - MIN_REPLY_TOKENS - 1):]
                    room = MIN_REPLY_TOKENS
                yield from self._generate(tokens, sampling.stop, replace(sampling, max_tokens=min(sampling.max_tokens, room)),
                                          cancel=stop_flag, dropped=0)

        return pump_in_background(produce, cancel or threading.Event())

    def _generate(
        self,
        tokens: list[int],
        stop: Sequence[str],
        sampling: SamplingParams,
        *,
        cancel: threading.Event | None,
        dropped: int,
    ) -> Iterator[StreamChunk]:
        llm = self._require_model()
        started = time.perf_counter()
        first_token_at: float | None = None
        pieces: list[str] = []
        finish_reason = "stop"
        stopped_by_user = False
        stream = llm.create_completion(
            prompt=tokens,
            max_tokens=sampling.max_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repeat_penalty=sampling.repeat_penalty,
            seed=None if sampling.seed < 0 else sampling.seed,
            stop=list(stop) or None,
            presence_penalty=sampling.presence_penalty,
            frequency_penalty=sampling.frequency_penalty,
            grammar=compile_grammar(sampling.grammar),
            logprobs=sampling.logprobs,
            stream=True,
        )
        try:
            for chunk in stream:
                if cancel is not None and cancel.is_set():
                    stopped_by_user = True
                    finish_reason = "cancelled"
                    break
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
                if text:
                    if first_token_at is None:
                        first_token_at = time.perf_counter()
                    pieces.append(text)
                    yield StreamChunk(text=text, logprobs=token_logprobs(choice.get("logprobs")))
        finally:
            # Closing the generator is what makes llama.cpp stop decoding right away.
            stream.close()
        finished = time.perf_counter()
        reply = "".join(pieces)
        completion_tokens = len(llm.tokenize(reply.encode("utf-8"), add_bos=False, special=True)) if reply else 0
        yield StreamChunk(
            stats=GenerationStats(
                prompt_tokens=len(tokens),
                completion_tokens=completion_tokens,
                ttft_s=(first_token_at or finished) - started,
                total_s=finished - started,
                stopped_by_user=stopped_by_user,
                dropped_messages=dropped,
                finish_reason=finish_reason,
            )
        )
