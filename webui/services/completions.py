"""Generation for the HTTP API: model checks, context checks, output formats, document answers, embeddings.

The OpenAI and Ollama routes translate their wire formats into these calls; everything that decides
(which model, whether the request fits, which grammar, which passages) happens here, with the same
engine queue and document retrieval as the page.
"""

from __future__ import annotations

import base64
import json
import logging
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from webui.auth import User
from webui.config import Settings
from webui.engine import Engine, EngineError, InvalidGrammar, Message, NoModelLoaded, SamplingParams, StreamChunk
from webui.errors import UserError
from webui.rag import RagError
from webui.services.access import NotAuthorized
from webui.services.chat import ChatService, DocumentQuery, sources_meta
from webui.services.documents import DocumentService
from webui.services.models import ModelService

log = logging.getLogger(__name__)

MAX_EMBEDDING_INPUTS = 2048
# Every stop sequence is looked for after every token of the reply, in the engine's one thread: a
# long list would slow everyone's replies. OpenAI allows 4; agents send a handful.
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 100
MAX_TOP_K = 1000  # as a preset may set; a few hundred already keeps every likely token
SEED_RANGE = (-1, 2**32 - 1)  # llama.cpp's seed is 32 bits; -1: a new random seed each time
TEAM_STREAMS_PER_USER = 4  # --max-streams-per-user's default in team mode


class RequestRefused(UserError):
    """A request the client must change; ``str()`` is the sentence, ``status``/``code`` its HTTP form."""

    status = 400
    code = "invalid_request"


class ModelNotAvailable(RequestRefused):
    """The request names a model that is not the loaded one (the message lists those that exist)."""

    status = 404
    code = "model_not_found"


class ContextExceeded(RequestRefused):
    """Prompt plus reply would not fit the loaded model's context window."""

    code = "context_length_exceeded"


class FeatureUnavailable(RequestRefused):
    """The request asks for something this server cannot give (e.g. logprobs without logits)."""

    code = "unsupported_parameter"


class ServiceBusy(RequestRefused):
    """No model is loaded, or the document library cannot be used right now."""

    status = 503
    code = "service_unavailable"


class TooManyStreams(RequestRefused):
    """The caller already has as many replies generating as one user may (--max-streams-per-user)."""

    status = 429
    code = "rate_limit_exceeded"


@dataclass(frozen=True)
class GenerationOptions:
    """What an API request asks of one generation, beyond its messages or prompt."""

    model: str
    sampling: SamplingParams
    max_tokens: int | None = None  # None: as much as the context window leaves
    collections: tuple[str, ...] = ()
    # None: each collection's own k and cut-off (Documents tab), as the Chat tab uses them.
    passages: int | None = None
    min_score: float | None = None


@dataclass
class Generation:
    """A generation ready to stream: ``chunks`` starts the engine on first use; ``cancel`` stops it."""

    model: str
    prompt_tokens: int
    chunks: Iterator[StreamChunk]
    cancel: threading.Event
    sources: list[dict[str, Any]] = field(default_factory=list)
    # Frees the caller's place among its replies at once; the API calls it when the client goes
    # away or the reply ends (it also runs when ``chunks`` ends), and calling it again does nothing.
    release: Callable[[], None] = lambda: None

    def close(self) -> None:
        """Stop the generation, if it still runs, and free its place."""
        self.cancel.set()
        self.release()


@dataclass(frozen=True)
class Embeddings:
    model: str
    vectors: list[list[float]]
    prompt_tokens: int


def grammar_for(response_format: dict[str, Any] | None) -> str | None:
    """GBNF text for an OpenAI ``response_format`` (json_object, json_schema) or Ollama ``format``.

    llama-cpp-python ships both the JSON grammar and the JSON-schema converter; we only pick.
    """
    if not response_format:
        return None
    from llama_cpp import llama_grammar

    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return llama_grammar.JSON_GBNF
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidGrammar("response_format.json_schema.schema must be a JSON schema object.")
        try:
            return llama_grammar.json_schema_to_gbnf(json.dumps(schema))
        except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError, RecursionError) as exc:
            raise InvalidGrammar(f"The JSON schema could not be turned into a grammar: {exc}") from exc
    raise InvalidGrammar(f"Unknown response_format type {kind!r}; use text, json_object or json_schema.")


def sampling_problem(sampling: SamplingParams) -> str | None:
    """Why the engine should not take these sampling settings from a client, or None."""
    if len(sampling.stop) > MAX_STOP_SEQUENCES:
        return f"stop holds {len(sampling.stop)} sequences; at most {MAX_STOP_SEQUENCES} are allowed."
    longest = max(map(len, sampling.stop), default=0)
    if longest > MAX_STOP_CHARS:
        return f"A stop sequence is {longest} characters long; at most {MAX_STOP_CHARS} are allowed."
    if not 0 <= sampling.top_k <= MAX_TOP_K:
        return f"top_k is {sampling.top_k}; it must be between 0 (off) and {MAX_TOP_K}."
    if not SEED_RANGE[0] <= sampling.seed <= SEED_RANGE[1]:
        return (f"seed is {sampling.seed}; it must be between 0 and {SEED_RANGE[1]} "
                "(or -1 for a new random seed each time).")
    return None


def streams_per_user(settings: Settings, *, team_mode: bool) -> int:
    """How many replies one API caller may generate at once; 0: no limit."""
    if settings.max_streams_per_user is not None:
        return settings.max_streams_per_user
    return TEAM_STREAMS_PER_USER if team_mode else 0


class StreamSlots:
    """Replies generating at once per user, so one user's many streams cannot take every worker
    thread and engine slot the others need (a listing or another user's reply would wait)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no limit
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def take(self, owner: str) -> Callable[[], None]:
        """A place for one of ``owner``'s replies, or TooManyStreams; call the result to free it."""
        with self._lock:
            if self.limit and self._held[owner] >= self.limit:
                raise TooManyStreams(
                    f"You already have {self._held[owner]} replies generating, and this server allows "
                    f"{self.limit} at once per user. Wait for one to finish, then send this again.")
            self._held[owner] += 1
        freed = threading.Event()

        def release() -> None:
            with self._lock:
                if freed.is_set():
                    return
                freed.set()
                self._held[owner] -= 1
                if not self._held[owner]:
                    del self._held[owner]

        return release


def _released_at_end(chunks: Iterator[StreamChunk], release: Callable[[], None]) -> Iterator[StreamChunk]:
    try:
        yield from chunks
    finally:
        release()


def embedding_base64(vector: Sequence[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _system_and_turns(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


class CompletionService:
    """Chat, text completion and embeddings for API callers, each acting as a signed-in user."""

    def __init__(self, settings: Settings, engine: Engine, models: ModelService, chat: ChatService,
                 documents: DocumentService, *, team_mode: bool = False) -> None:
        self._settings = settings
        self._streams = StreamSlots(streams_per_user(settings, team_mode=team_mode))
        self._engine = engine
        self._models = models
        self._chat = chat
        self._documents = documents

    # -- models -------------------------------------------------------------------------------

    def require_model(self, user: User, requested: str) -> str:
        """The loaded model's name when ``requested`` names it; else 404 with the names that exist.

        Only an admin, and only with ``--api-allow-model-switch``, may load another model this way:
        a client must not switch the model under everyone's page.
        """
        loaded = self._models.loaded()
        entry = self._models.find(requested) if requested else None
        if entry is not None and entry.loaded and loaded is not None:
            return loaded.file
        if entry is not None and self._settings.api_model_switch and user.is_admin:
            log.info("API call by %s loads %s", user.name, entry.name)
            try:
                return self._models.load_by_request(user, entry.name).file
            except EngineError as exc:
                raise ServiceBusy(str(exc)) from exc
        names = ", ".join(self._models.names()) or "none"
        now = f"The loaded model is {loaded.file}." if loaded else "No model is loaded."
        if entry is not None:
            raise ModelNotAvailable(f"The model {entry.name} exists but is not loaded. {now} "
                                    f"Local models: {names}.")
        raise ModelNotAvailable(f"The model {requested!r} does not exist. {now} Local models: {names}.")

    # -- generation ---------------------------------------------------------------------------

    def _budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        """The reply's token budget; refuses a prompt or budget the context window cannot hold."""
        loaded = self._models.loaded()
        if loaded is None:
            raise ServiceBusy("No model is loaded. An admin can load one in the Models tab.")
        n_ctx = loaded.n_ctx
        if max_tokens is not None and max_tokens > n_ctx:
            raise ContextExceeded(f"max_tokens is {max_tokens}, but this model's context window holds {n_ctx} "
                                  "tokens in all (prompt and reply).")
        if prompt_tokens >= n_ctx:
            raise ContextExceeded(f"The prompt has {prompt_tokens} tokens, but this model's context window holds "
                                  f"{n_ctx}. Shorten it.")
        room = n_ctx - prompt_tokens
        if max_tokens is not None and max_tokens > room:
            raise ContextExceeded(f"The prompt has {prompt_tokens} tokens and max_tokens asks for {max_tokens}, "
                                  f"but the context window holds {n_ctx}; ask for at most {room}.")
        return max_tokens if max_tokens is not None else room

    def _counted(self, user: User, options: GenerationOptions, start: Callable[[], Generation]) -> Generation:
        """``start()``'s generation, checked first and counted among ``user``'s replies until it ends."""
        problem = sampling_problem(options.sampling)
        if problem:
            raise RequestRefused(problem)
        release = self._streams.take(user.id)
        try:
            generation = start()
        except BaseException:
            release()
            raise
        return replace(generation, chunks=_released_at_end(generation.chunks, release), release=release)

    def chat(self, user: User, messages: list[Message], options: GenerationOptions) -> Generation:
        """A chat reply; with ``collections``, answered from those documents like the Chat tab."""
        return self._counted(user, options, lambda: self._start_chat(user, messages, options))

    def complete(self, user: User, prompt: str, options: GenerationOptions) -> Generation:
        """A raw continuation of ``prompt`` (no chat template)."""
        return self._counted(user, options, lambda: self._start_completion(user, prompt, options))

    def _start_chat(self, user: User, messages: list[Message], options: GenerationOptions) -> Generation:
        model = self.require_model(user, options.model)
        sources: list[dict[str, Any]] = []
        if options.collections:
            if not messages or messages[-1]["role"] != "user":
                raise RequestRefused("To answer from collections, the last message must be the user's question.")
            system, turns = _system_and_turns(messages)
            budget_hint = options.max_tokens or options.sampling.max_tokens
            prepared = self._chat.prepare_conversation(
                user.id, turns, system_prompt=system, sampling=replace(options.sampling, max_tokens=budget_hint),
                documents=DocumentQuery(tuple(options.collections), k=options.passages, min_score=options.min_score),
            )
            if prepared.error:
                raise RequestRefused(prepared.error)
            if prepared.answer is not None:
                return self._fixed(model, prepared.answer)
            sources = sources_meta(prepared.sources)
            messages = ([{"role": "system", "content": prepared.system_prompt}] if prepared.system_prompt.strip()
                        else []) + prepared.conversation
        try:
            prompt_tokens = len(self._engine.tokenize(self._engine.render(messages)))
        except NoModelLoaded as exc:
            raise ServiceBusy(str(exc)) from exc
        sampling = self._sampling(options, prompt_tokens)
        cancel = threading.Event()
        stream = self._engine.stream_chat(messages, sampling, cancel=cancel, user=user.id)
        return Generation(model, prompt_tokens, self._guarded(stream, sampling), cancel, sources)

    def _start_completion(self, user: User, prompt: str, options: GenerationOptions) -> Generation:
        model = self.require_model(user, options.model)
        try:
            prompt_tokens = self._engine.count_tokens(prompt) + 1  # + the BOS token the engine adds
        except NoModelLoaded as exc:
            raise ServiceBusy(str(exc)) from exc
        sampling = self._sampling(options, prompt_tokens)
        cancel = threading.Event()
        stream = self._engine.stream_completion(prompt, sampling, cancel=cancel, user=user.id)
        return Generation(model, prompt_tokens, self._guarded(stream, sampling), cancel)

    def _sampling(self, options: GenerationOptions, prompt_tokens: int) -> SamplingParams:
        if options.sampling.grammar:
            from webui.engine import compile_grammar

            compile_grammar(options.sampling.grammar)  # a bad grammar is refused before the queue
        return replace(options.sampling, max_tokens=self._budget(prompt_tokens, options.max_tokens))

    @staticmethod
    def _fixed(model: str, text: str) -> Generation:
        """A reply known without the model (no passage was relevant), streamed like any other."""

        def chunks() -> Iterator[StreamChunk]:
            from webui.engine import GenerationStats

            yield StreamChunk(text=text)
            yield StreamChunk(stats=GenerationStats(prompt_tokens=0, completion_tokens=0, ttft_s=0.0, total_s=0.0,
                                                    stopped_by_user=False, dropped_messages=0, finish_reason="stop"))

        return Generation(model, 0, chunks(), threading.Event())

    @staticmethod
    def _guarded(stream: Iterator[StreamChunk], sampling: SamplingParams) -> Iterator[StreamChunk]:
        """llama-cpp-python refuses logprobs unless the model was loaded with logits_all (slower for
        every user), and says so with a bare ValueError: turn that one case into a clear refusal."""
        started = False
        try:
            for chunk in stream:
                started = True
                yield chunk
        except ValueError as exc:
            if sampling.logprobs is not None and not started:
                raise FeatureUnavailable(
                    "logprobs are not available from this server: llama.cpp keeps only the last token's "
                    "logits here (logits_all is off, which keeps decoding fast for everyone)."
                ) from exc
            raise

    # -- embeddings ---------------------------------------------------------------------------

    def embedding_model(self) -> str:
        """The sentence-transformers model the documents use, by name."""
        return self._documents.library.embedder.model_name

    def embed(self, user: User, model: str, texts: list[str]) -> Embeddings:
        """Vectors from the app's sentence-transformers model (the one documents are searched with)."""
        if not texts:
            raise RequestRefused("input must hold at least one text.")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise RequestRefused(f"input holds {len(texts)} texts; at most {MAX_EMBEDDING_INPUTS} per request.")
        try:
            embedder = self._documents.library.embedder
            name = embedder.model_name
            model = model.removesuffix(":latest")
            if model and model not in (name, name.rsplit("/", 1)[-1]) and not model.endswith(f"/{name}"):
                raise ModelNotAvailable(f"The embedding model {model!r} does not exist here; use {name!r}.")
            vectors = embedder.embed(texts)
            tokens = sum(embedder.count_tokens(t) for t in texts)
        except RagError as exc:
            raise ServiceBusy(str(exc)) from exc
        return Embeddings(name, vectors, tokens)


__all__ = [
    "ContextExceeded", "CompletionService", "Embeddings", "FeatureUnavailable", "Generation", "GenerationOptions",
    "InvalidGrammar", "ModelNotAvailable", "NotAuthorized", "RequestRefused", "ServiceBusy", "StreamSlots",
    "TooManyStreams", "embedding_base64", "grammar_for", "sampling_problem",
]
