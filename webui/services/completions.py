"""Generation for the HTTP API: model checks, document answers, streams per user, embeddings.

The OpenAI and Ollama routes translate their wire formats into these calls; everything that decides
(which model, which passages) happens here, and whether a request fits goes through the page's own
admission path (``admission.admit``), engine queue and document retrieval.
"""

from __future__ import annotations

import base64
import logging
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from webui.auth import User
from webui.config import Settings
from webui.engine import (
    Engine,
    EngineError,
    FittedPrompt,
    GenerationStats,
    Message,
    PromptRequest,
    SamplingParams,
    StreamChunk,
)
from webui.engine.router import RemoteModelEngine, as_router
from webui.errors import UserError
from webui.prompts.toolcalls import ToolRequest
from webui.rag import RagError
from webui.services.access import NotAuthorized
from webui.services.admission import admit
from webui.services.chat import ChatService, DocumentQuery, sources_meta
from webui.services.documents import DocumentService
from webui.services.models import ModelService

log = logging.getLogger(__name__)

MAX_EMBEDDING_INPUTS = 2048
TEAM_STREAMS_PER_USER = 4  # --max-streams-per-user's default in team mode


class RequestRefused(UserError):
    """A request the client must change; ``str()`` is the sentence, ``status``/``code`` its HTTP form."""

    status = 400
    code = "invalid_request"


class ModelNotAvailable(RequestRefused):
    """The request names a model that is not the loaded one (the message lists those that exist)."""

    status = 404
    code = "model_not_found"


class FeatureUnavailable(RequestRefused):
    """The request asks for something this server cannot give (e.g. logprobs without logits)."""

    code = "unsupported_parameter"


class ServiceBusy(RequestRefused):
    """A model could not be loaded for the request, or the document library cannot be used right now."""

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
    sampling: SamplingParams  # max_tokens None: as many as the context window leaves
    collections: tuple[str, ...] = ()
    # None: each collection's own k and cut-off (Documents tab), as the Chat tab uses them.
    passages: int | None = None
    min_score: float | None = None
    tools: ToolRequest | None = None  # functions the model may call
    thinking: bool | None = None  # False: ask a reasoning model not to think; None: its template's default


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
        self._router = as_router(engine)  # the remote models an API client may name
        self._models = models
        self._chat = chat
        self._documents = documents

    # -- models -------------------------------------------------------------------------------

    def require_model(self, user: User, requested: str) -> str:
        """The name of the model that answers ``requested``; else 404 with the names that exist."""
        return self._serving(user, requested)[0]

    def _serving(self, user: User, requested: str) -> tuple[str, Engine | RemoteModelEngine]:
        """The model that answers ``requested``, by name, and the engine that runs it.

        The model in use answers through the app's engine. A local model must be the loaded one: only
        an admin, and only with ``--api-allow-model-switch``, may load another this way (a client must
        not switch the model under everyone's page). A listed remote model answers from its server
        without being put in use, so the page keeps its model.
        """
        loaded = self._models.loaded()
        entry = self._models.find(requested) if requested else None
        if entry is not None and entry.loaded and loaded is not None:
            return loaded.file, self._engine
        if entry is not None and self._settings.api_model_switch and user.is_admin:
            log.info("API call by %s loads %s", user.name, entry.name)
            try:
                return self._models.load_by_request(user, entry.name).file, self._engine
            except EngineError as exc:
                raise ServiceBusy(str(exc)) from exc
        remote = self._router.remote_engine(entry.name) if entry is not None and entry.where != "local" else None
        if remote is not None:
            return remote.model.file, remote
        names = ", ".join(self._models.names()) or "none"
        now = f"The loaded model is {loaded.file}." if loaded else "No model is loaded."
        if entry is not None:
            raise ModelNotAvailable(f"The model {entry.name} exists but is not loaded. {now} "
                                    f"Local models: {names}.")
        raise ModelNotAvailable(f"The model {requested!r} does not exist. {now} Local models: {names}.")

    # -- generation ---------------------------------------------------------------------------

    def _counted(self, user: User, start: Callable[[], Generation]) -> Generation:
        """``start()``'s generation, counted among ``user``'s replies until it ends."""
        release = self._streams.take(user.id)
        try:
            generation = start()
        except BaseException:
            release()
            raise
        return replace(generation, chunks=_released_at_end(generation.chunks, release), release=release)

    def chat(self, user: User, messages: list[Message], options: GenerationOptions) -> Generation:
        """A chat reply; with ``collections``, answered from those documents like the Chat tab."""
        return self._counted(user, lambda: self._start_chat(user, messages, options))

    def complete(self, user: User, prompt: str, options: GenerationOptions) -> Generation:
        """A raw continuation of ``prompt`` (no chat template)."""
        return self._counted(user, lambda: self._start_completion(user, prompt, options))

    def count_chat_tokens(self, user: User, messages: list[Message], options: GenerationOptions) -> int:
        """The prompt tokens of a chat with its tools, rendered through the model's own template (the
        engine's prepare step); nothing is generated. ContextExceeded if it does not fit the window."""
        self.require_model(user, options.model)
        request = PromptRequest(replace(options.sampling, max_tokens=None), messages=tuple(messages), strict=True,
                                tools=options.tools, thinking=options.thinking)
        return admit(self._engine, request).prompt_tokens

    def _start_chat(self, user: User, messages: list[Message], options: GenerationOptions) -> Generation:
        model, engine = self._serving(user, options.model)
        sources: list[dict[str, Any]] = []
        if options.collections:
            if not messages or messages[-1]["role"] != "user":
                raise RequestRefused("To answer from collections, the last message must be the user's question.")
            system, turns = _system_and_turns(messages)
            prepared = self._chat.prepare_conversation(
                user.id, turns, system_prompt=system, sampling=options.sampling,
                documents=DocumentQuery(tuple(options.collections), k=options.passages, min_score=options.min_score),
            )
            if prepared.error:
                raise RequestRefused(prepared.error)
            if prepared.answer is not None:
                return self._fixed(model, prepared.answer)
            sources = sources_meta(prepared.sources)
            messages = ([{"role": "system", "content": prepared.system_prompt}] if prepared.system_prompt.strip()
                        else []) + prepared.conversation
        prompt = admit(engine, PromptRequest(options.sampling, messages=tuple(messages), strict=True,
                                             tools=options.tools, thinking=options.thinking))
        return self._generation(user, model, engine, prompt, sources)

    def _start_completion(self, user: User, prompt: str, options: GenerationOptions) -> Generation:
        model, engine = self._serving(user, options.model)
        fitted = admit(engine, PromptRequest(options.sampling, text=prompt, strict=True))
        return self._generation(user, model, engine, fitted, [])

    def _generation(self, user: User, model: str, engine: Engine | RemoteModelEngine, prompt: FittedPrompt,
                    sources: list[dict[str, Any]]) -> Generation:
        """The prepared prompt queued for ``engine``, as the routes stream it."""
        cancel = threading.Event()
        stream = engine.stream(prompt, cancel=cancel, user=user.id)
        return Generation(model, prompt.prompt_tokens, self._guarded(stream, prompt.sampling), cancel, sources)

    @staticmethod
    def _fixed(model: str, text: str) -> Generation:
        """A reply known without the model (no passage was relevant), streamed like any other."""

        def chunks() -> Iterator[StreamChunk]:
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
    "CompletionService", "Embeddings", "FeatureUnavailable", "Generation", "GenerationOptions", "ModelNotAvailable",
    "NotAuthorized", "RequestRefused", "ServiceBusy", "StreamSlots", "TooManyStreams", "embedding_base64",
]
