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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from webui.auth import User
from webui.config import Settings
from webui.engine import Engine, EngineError, InvalidGrammar, Message, NoModelLoaded, SamplingParams, StreamChunk
from webui.errors import UserError
from webui.rag import RagError
from webui.rag.embeddings import EmbeddingModelError
from webui.services.access import NotAuthorized
from webui.services.chat import ChatService, DocumentQuery, sources_meta
from webui.services.documents import DocumentService
from webui.services.models import ModelService

log = logging.getLogger(__name__)

MAX_EMBEDDING_INPUTS = 2048


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


def embedding_base64(vector: Sequence[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _system_and_turns(messages: Sequence[Message]) -> tuple[str, list[Message]]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return system, [m for m in messages if m["role"] != "system"]


class CompletionService:
    """Chat, text completion and embeddings for API callers, each acting as a signed-in user."""

    def __init__(self, settings: Settings, engine: Engine, models: ModelService, chat: ChatService,
                 documents: DocumentService) -> None:
        self._settings = settings
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

    def chat(self, user: User, messages: list[Message], options: GenerationOptions) -> Generation:
        """A chat reply; with ``collections``, answered from those documents like the Chat tab."""
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

    def complete(self, user: User, prompt: str, options: GenerationOptions) -> Generation:
        """A raw continuation of ``prompt`` (no chat template)."""
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
        except (RagError, EmbeddingModelError) as exc:
            raise ServiceBusy(str(exc)) from exc
        return Embeddings(name, vectors, tokens)

    def visible_collections(self, user: User) -> list[str]:
        """Collections this user may answer from (own and shared)."""
        try:
            return self._documents.collection_names(user.id)
        except RagError as exc:
            raise ServiceBusy(str(exc)) from exc


__all__ = [
    "ContextExceeded", "CompletionService", "Embeddings", "FeatureUnavailable", "Generation", "GenerationOptions",
    "InvalidGrammar", "ModelNotAvailable", "NotAuthorized", "RequestRefused", "ServiceBusy", "embedding_base64",
    "grammar_for",
]
