"""Chat turns: saved conversations, streamed replies, Stop, and document-grounded answers."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from webui.engine import (
    Engine,
    EngineError,
    GenerationStats,
    Message,
    NoModelLoaded,
    SamplingParams,
)
from webui.history import (
    Conversation,
    HistoryStore,
    StoredMessage,
    title_from_first_message,
)
from webui.prompts.presets import (
    Preset,
    PresetError,
    PresetStore,
    unknown_variables,
)
from webui.rag import (
    NO_RELEVANT_PASSAGES_MESSAGE,
    DocumentLibrary,
    Passage,
    RagError,
    build_context,
    fit_passages,
)
from webui.rag.embeddings import EmbeddingModelError
from webui.rag.pipeline import DEFAULT_MIN_SCORE
from webui.services.documents import DocumentService
from webui.services.presets import model_family
from webui.services.streaming import CancelRegistry, paced_text

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class ReplyUpdate:
    """What the chat page shows while a reply streams: the text so far, then the stats."""

    text: str
    done: bool = False
    stats: GenerationStats | None = None
    notice: str | None = None  # e.g. "2 older messages were left out to fit the context window"
    error: str | None = None
    sources: tuple[Passage, ...] = ()  # the numbered passages a document answer may cite


@dataclass(frozen=True)
class PreparedReply:
    """A reply ready to generate: the filled system prompt, the conversation and its sources.

    ``answer`` is set when the reply is known without the model (no relevant passage), and
    ``error`` when it cannot be given; the UI shows either instead of generating.
    """

    system_prompt: str
    conversation: list[Message]
    sources: tuple[Passage, ...] = ()
    answer: str | None = None
    error: str | None = None


def switching_notice(file_name: str) -> str:
    return f"The model is being switched to {file_name}; your reply starts as soon as it has loaded."


def dropped_notice(count: int) -> str | None:
    if count <= 0:
        return None
    noun = "message was" if count == 1 else "messages were"
    return f"The conversation is longer than the context window: the {count} oldest {noun} left out of this reply."


class ChatService:
    """Chat turns through the engine, with every message saved to the user's history."""

    def __init__(
        self,
        engine: Engine,
        history: HistoryStore,
        *,
        documents: DocumentService | None = None,
        presets: PresetStore | None = None,
    ) -> None:
        self._engine = engine
        self._history = history
        self._documents = documents
        self._presets = presets
        self._cancels = CancelRegistry()

    # -- conversations -----------------------------------------------------------------------

    def conversations(self, owner: str) -> list[Conversation]:
        return self._history.list(owner)

    def messages(self, owner: str, conversation_id: str) -> list[StoredMessage]:
        return self._history.messages(owner, conversation_id)

    def add_user_message(self, owner: str, conversation_id: str | None, text: str) -> str:
        """Save the user's message (starting a conversation if needed); returns the conversation id."""
        if conversation_id is None:
            model = self._engine.info.file if self._engine.info else None
            conversation_id = self._history.create(owner, title_from_first_message(text), model=model).id
        self._history.append(owner, conversation_id, "user", text)
        return conversation_id

    def drop_last_reply(self, owner: str, conversation_id: str) -> None:
        """Forget the assistant's last reply (for Regenerate); the question stays."""
        stored = self._history.messages(owner, conversation_id)
        users = [m for m in stored if m.role == "user"]
        if users:
            self._history.truncate_after(owner, conversation_id, users[-1].id)

    def rename(self, owner: str, conversation_id: str, title: str) -> Conversation:
        return self._history.rename(owner, conversation_id, title)

    def delete(self, owner: str, conversation_id: str) -> None:
        self._history.delete(owner, conversation_id)

    def clear(self, owner: str, conversation_id: str) -> None:
        self._history.clear(owner, conversation_id)

    # -- replies -----------------------------------------------------------------------------

    def prepare_reply(
        self,
        owner: str,
        conversation_id: str,
        *,
        system_prompt: str,
        sampling: SamplingParams,
        documents: DocumentQuery | None = None,
    ) -> PreparedReply:
        """What the model will be asked: the filled system prompt, the conversation, the sources.

        With ``documents`` naming collections, the passages retrieved for the question are trimmed
        to the context window and numbered into the prompt; when none is relevant, the prepared
        reply is the fixed answer saying so and the model is not asked at all.
        """
        stored = self._history.messages(owner, conversation_id)
        conversation: list[Message] = [{"role": m.role, "content": m.content} for m in stored]
        return self.prepare_conversation(owner, conversation, system_prompt=system_prompt, sampling=sampling,
                                         documents=documents)

    def prepare_conversation(
        self,
        owner: str,
        conversation: list[Message],
        *,
        system_prompt: str,
        sampling: SamplingParams,
        documents: DocumentQuery | None = None,
    ) -> PreparedReply:
        """``prepare_reply`` for a conversation given as messages (the HTTP API's), not a saved one."""
        question = conversation[-1]["content"] if conversation and conversation[-1]["role"] == "user" else ""
        model_file = self._engine.info.file if self._engine.info else ""
        if documents is None or not documents.collections:
            system = fill_system_prompt(system_prompt, question=question, context="", model=model_file)
            return PreparedReply(system, conversation)
        try:
            found = self.document_library().retrieve(
                owner, question, documents.collections, k=documents.k, min_score=documents.min_score
            )
        except (RagError, EmbeddingModelError) as exc:
            log.warning("retrieval failed: %s", exc)
            return PreparedReply(system_prompt, conversation, error=str(exc))
        if not found:
            return PreparedReply(system_prompt, conversation, answer=NO_RELEVANT_PASSAGES_MESSAGE)
        template = rag_system_template(system_prompt, self._rag_preset_system())
        try:
            sources = self._fit_sources(template, question, conversation, found, sampling, model_file)
        except EngineError as exc:
            return PreparedReply(system_prompt, conversation, error=str(exc))
        if not sources:
            return PreparedReply(system_prompt, conversation, error=(
                "The question and system prompt leave no room for document passages in this model's "
                "context window; shorten them, lower 'Max new tokens', or load a larger context."))
        system = fill_system_prompt(template, question=question, context=build_context(sources), model=model_file)
        return PreparedReply(system, conversation, tuple(sources))

    def reply_in(
        self,
        owner: str,
        session_key: str,
        conversation_id: str,
        *,
        system_prompt: str,
        sampling: SamplingParams,
        documents: DocumentQuery | None = None,
    ) -> Iterator[ReplyUpdate]:
        """Stream the reply to a saved conversation and save it once complete (or stopped).

        A document answer's sources are saved in the reply's meta, so they show again later.
        """
        prepared = self.prepare_reply(owner, conversation_id, system_prompt=system_prompt, sampling=sampling,
                                      documents=documents)
        if prepared.error:
            yield ReplyUpdate(text="", done=True, error=prepared.error)
            return
        if prepared.answer is not None:
            picked = list(documents.collections) if documents else []
            self._history.append(owner, conversation_id, "assistant", prepared.answer,
                                 meta={"sources": [], "collections": picked})
            yield ReplyUpdate(text=prepared.answer, done=True)
            return
        last: ReplyUpdate | None = None
        for last in self.stream(session_key, prepared.conversation, system_prompt=prepared.system_prompt,
                                sampling=sampling):
            if prepared.sources:
                last = dataclasses.replace(last, sources=prepared.sources)
            yield last
        if last is not None and last.done and not last.error and last.text:
            meta: dict[str, Any] = {"stats": last.stats.as_dict()} if last.stats else {}
            if prepared.sources:
                meta["sources"] = sources_meta(prepared.sources)
            self._history.append(owner, conversation_id, "assistant", last.text, meta=meta)

    def document_library(self) -> DocumentLibrary:
        if self._documents is None:
            raise RagError("Document answers are not available in this app.")
        return self._documents.library

    def _rag_preset_system(self) -> str | None:
        """The document-answering preset's system prompt for the loaded model, if the preset exists."""
        if self._presets is None:
            return None
        try:
            preset = self._presets.get(RAG_PRESET_NAME)
        except PresetError:
            return None
        info = self._engine.info
        return preset.system_for(
            family=model_family(info), architecture=info.architecture if info else None,
            model_name=f"{info.file} {info.name}" if info else "",
        )

    def _fit_sources(
        self, template: str, question: str, conversation: list[Message], found: Sequence[Passage],
        sampling: SamplingParams, model_file: str,
    ) -> list[Passage]:
        """The passages trimmed to the room the context window leaves (before any history is dropped)."""
        info = self._engine.info
        if info is None:
            raise NoModelLoaded("No model is loaded. Load one in the Models tab.")
        empty = fill_system_prompt(template, question=question, context="", model=model_file).strip()
        head: list[Message] = [{"role": "system", "content": empty}] if empty else []

        def prompt_tokens(messages: list[Message]) -> int:
            return len(self._engine.tokenize(self._engine.render(messages)))

        budget = passage_budget(
            info.n_ctx, sampling.max_tokens,
            with_history=prompt_tokens(head + conversation),
            newest_only=prompt_tokens(head + conversation[-1:]),
        )
        return fit_passages(found, budget_tokens=budget, count_tokens=self._engine.count_tokens)

    def stream(
        self,
        session_key: str,
        conversation: Sequence[Message],
        *,
        system_prompt: str,
        sampling: SamplingParams,
    ) -> Iterator[ReplyUpdate]:
        """Stream the assistant's reply to ``conversation`` (whose last message is the user's)."""
        messages: list[Message] = []
        if system_prompt.strip():
            messages.append({"role": "system", "content": system_prompt.strip()})
        messages.extend({"role": m["role"], "content": m["content"]} for m in conversation)
        cancel = self._cancels.start(session_key)
        text = ""
        if self._engine.switching_to:
            yield ReplyUpdate(text="", notice=switching_notice(self._engine.switching_to))
        try:
            for text, stats in paced_text(self._engine.stream_chat(messages, sampling, cancel=cancel)):
                if stats is not None:
                    yield ReplyUpdate(text=text, done=True, stats=stats,
                                      notice=dropped_notice(stats.dropped_messages))
                    return
                yield ReplyUpdate(text=text)
        except EngineError as exc:
            log.warning("chat request failed: %s", exc)
            yield ReplyUpdate(text=text, done=True, error=str(exc))
        finally:
            self._cancels.finish(session_key, cancel)

    def exact_prompt(self, owner: str, conversation_id: str | None, system_prompt: str, draft: str = "") -> str:
        """The text the model would receive for this conversation plus ``draft``, special tokens included.

        Variables are filled as at send time; document passages are not, as they depend on the search.
        """
        turns: list[Message] = []
        if conversation_id:
            turns += [{"role": m.role, "content": m.content} for m in self._history.messages(owner, conversation_id)]
        if draft.strip():
            turns.append({"role": "user", "content": draft.strip()})
        question = turns[-1]["content"] if turns and turns[-1]["role"] == "user" else ""
        system = fill_system_prompt(system_prompt, question=question, context="",
                                    model=self._engine.info.file if self._engine.info else "")
        messages: list[Message] = [{"role": "system", "content": system.strip()}] if system.strip() else []
        messages += turns
        return self._engine.render(messages).text

    def stop(self, session_key: str) -> bool:
        """Ask the running reply of this session to stop; True if one was running."""
        return self._cancels.stop(session_key)



RAG_PRESET_NAME = "Document answers (RAG)"
DEFAULT_PASSAGES = 4
CONTEXT_MARGIN_TOKENS = 16  # passages counted alone vs inside the template differ by a few tokens
MIN_PASSAGE_TOKENS = 256  # below this the passages would be too cut to answer: drop history instead
_CONTEXT_PLACEHOLDER = re.compile(r"(?<!\{)\{context\}(?!\})")
_PASSAGES_ONLY = "Passages:\n{context}"  # used when the document preset is gone or has no {context}


@dataclass(frozen=True)
class DocumentQuery:
    """Which collections a chat message is answered from, and how many passages to retrieve."""

    collections: tuple[str, ...]
    k: int = DEFAULT_PASSAGES
    min_score: float = DEFAULT_MIN_SCORE


def fill_system_prompt(text: str, **values: str) -> str:
    """``{question}``, ``{context}``, ``{date}``... filled by the presets module.

    A hand-typed prompt may contain braces that are not variables ("reply as {answer}"); those are
    kept as written instead of refusing to send.
    """
    for name in dict.fromkeys(unknown_variables(text)):
        text = text.replace("{" + name + "}", "{{" + name + "}}")
    return Preset(name="system prompt").fill(text, **values)


def rag_system_template(system_prompt: str, preset_system: str | None) -> str:
    """The system prompt for a document answer, still holding ``{context}``.

    The chat's own prompt is used when it already places ``{context}`` (the RAG preset was
    applied); otherwise the document preset's prompt follows the chat's, so its instructions
    (language, tone) still hold.
    """
    if _CONTEXT_PLACEHOLDER.search(system_prompt):
        return system_prompt
    rag = preset_system if preset_system and _CONTEXT_PLACEHOLDER.search(preset_system) else _PASSAGES_ONLY
    own = system_prompt.strip()
    return f"{own}\n\n{rag}" if own else rag


def passage_budget(
    n_ctx: int,
    max_tokens: int,
    *,
    with_history: int,
    newest_only: int,
    margin: int = CONTEXT_MARGIN_TOKENS,
    min_passage_tokens: int = MIN_PASSAGE_TOKENS,
) -> int:
    """Tokens left for passages: passages are trimmed first, history is dropped only after.

    ``with_history``/``newest_only`` are the prompt's tokens (without passages) with the whole
    conversation / with the newest message only. The reply keeps at most half the window, since a
    reply with no room for its sources is worth less than a shorter one.
    """
    reply = min(max_tokens, n_ctx // 2)
    room = n_ctx - reply - with_history - margin
    if room >= min_passage_tokens:
        return room
    return max(0, n_ctx - reply - newest_only - margin)


def sources_meta(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """The passages as saved in a reply's meta (JSON), so its sources show when it is reopened."""
    return [
        {
            "number": p.number, "file_name": p.file_name, "page": p.page, "heading": p.heading,
            "collection": p.collection, "score": round(p.score, 4), "citation": p.citation, "text": p.text,
        }
        for p in passages
    ]


