"""Chat turns: saved conversations, streamed replies, Stop, and document-grounded answers."""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from webui.engine import (
    Engine,
    EngineError,
    GenerationStats,
    Message,
    NoModelLoaded,
    PromptRequest,
    SamplingParams,
    StreamChunk,
)
from webui.errors import UserError
from webui.history import (
    Conversation,
    HistoryError,
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
from webui.prompts.templates import resolve_chat_format
from webui.prompts.toolcalls import has_thinking_switch
from webui.rag import (
    NO_RELEVANT_PASSAGES_MESSAGE,
    DocumentLibrary,
    Passage,
    RagError,
    build_context,
    fit_passages,
)
from webui.services.admission import admit, check_message_size
from webui.services.documents import DocumentService
from webui.services.presets import model_family
from webui.services.streaming import CancelRegistry, UpdatePacer

log = logging.getLogger(__name__)

# In a reply's meta: the call records the page shows (ToolCallRecord.as_meta), and the assistant turns with
# tool_calls and the tool results the reply was written from, which the model is shown again next time.
TOOL_CALLS_KEY = "tool_calls"
TOOL_TURNS_KEY = "tool_turns"


@dataclass(frozen=True)
class ReplyUpdate:
    """What the chat page shows while a reply streams: the text so far, then the stats."""

    text: str
    done: bool = False
    stats: GenerationStats | None = None
    notice: str | None = None  # e.g. "2 older messages were left out to fit the context window"
    error: str | None = None
    sources: tuple[Passage, ...] = ()  # the numbered passages a document answer may cite
    dropped: bool = False  # the chat was cleared or deleted while the reply was written: nothing was kept
    tokens: int | None = None  # the reply's tokens so far, for the page's "Writing… 57 tokens" (None: unknown)
    reasoning: str = ""  # the reply's thinking so far, split out of its text
    thinking_s: float | None = None  # how long the model thought (so far, while it still thinks)


@dataclass
class ThinkingClock:
    """Follows a reply's chunks to keep its thinking apart from its answer and time it: from the first
    thinking chunk to the first answer chunk after it (or to now, while it still thinks)."""

    text: str = ""
    _started: float | None = None
    _ended: float | None = None

    def follow(self, chunks: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
        for chunk in chunks:
            if chunk.reasoning:
                self._started = self._started or time.monotonic()
                self.text += chunk.reasoning
            elif chunk.text and self._started is not None and self._ended is None:
                self._ended = time.monotonic()
            yield chunk

    @property
    def seconds(self) -> float | None:
        if self._started is None:
            return None
        return round((self._ended or time.monotonic()) - self._started, 1)


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


SAVE_INTERVAL_S = 2.0  # a streaming reply is saved this often, so a killed server loses at most this much
DEFAULT_REPLY_TOKENS = 512  # the room passages leave a reply when its request sets no max_tokens (the API)


class EditRefused(UserError, ValueError):
    """An edit of a chat message that cannot be saved: empty, or not one of the user's own messages."""


@dataclass
class ActiveReplies:
    """The replies being written into each conversation, so Clear and Delete can drop them."""

    _flags: dict[str, dict[str, threading.Event]] = field(default_factory=dict)  # chat -> session -> flag
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def start(self, conversation_id: str, session_key: str) -> threading.Event:
        with self._guard:
            flag = threading.Event()
            self._flags.setdefault(conversation_id, {})[session_key] = flag
            return flag

    def drop(self, conversation_id: str) -> list[str]:
        """Flag every reply into ``conversation_id`` as dropped; returns their session keys."""
        with self._guard:
            flags = self._flags.get(conversation_id, {})
            for flag in flags.values():
                flag.set()
            return list(flags)

    def finish(self, conversation_id: str, session_key: str, flag: threading.Event) -> None:
        with self._guard:
            flags = self._flags.get(conversation_id, {})
            if flags.get(session_key) is flag:
                del flags[session_key]
            if not flags:
                self._flags.pop(conversation_id, None)


@dataclass
class _ReplySaver:
    """Saves a reply while it streams: from its first words, marked incomplete, then every few seconds."""

    history: HistoryStore
    owner: str
    conversation_id: str
    question_id: int | None
    message_id: int | None = None
    saved_at: float = 0.0

    def progress(self, text: str, meta: dict[str, Any], reasoning: str = "") -> None:
        """Save ``text`` if nothing is saved yet or SAVE_INTERVAL_S has passed; HistoryError if the chat is gone."""
        if self.message_id is None or time.monotonic() - self.saved_at >= SAVE_INTERVAL_S:
            self.save(text, {**meta, "incomplete": True}, reasoning)

    def save(self, text: str, meta: dict[str, Any], reasoning: str = "") -> None:
        if self.message_id is None:
            self.message_id = self.history.append_reply(
                self.owner, self.conversation_id, self.question_id, text, meta=meta, reasoning=reasoning).id
        else:
            self.history.update_message(self.owner, self.conversation_id, self.message_id, text, meta=meta,
                                        reasoning=reasoning)
        self.saved_at = time.monotonic()


def switching_notice(file_name: str) -> str:
    return f"The model is being switched to {file_name}; your reply starts as soon as it has loaded."


def dropped_notice(count: int) -> str | None:
    if count <= 0:
        return None
    noun = "message was" if count == 1 else "messages were"
    return f"The conversation is longer than the context window: the {count} oldest {noun} left out of this reply."


@dataclass
class BusyPages:
    """The pages (session keys) with a reply under way, so a second Send from one page is refused, and
    a Stop pressed before the reply's first token (while the prompt is read) is kept, not lost."""

    _stops: dict[str, threading.Event] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, key: str) -> threading.Event | None:
        """Mark ``key`` busy and return its Stop flag; None if it already was busy."""
        with self._guard:
            if key in self._stops:
                return None
            self._stops[key] = flag = threading.Event()
            return flag

    def release(self, key: str) -> None:
        with self._guard:
            self._stops.pop(key, None)

    def holds(self, key: str) -> bool:
        with self._guard:
            return key in self._stops

    def stop(self, key: str) -> bool:
        with self._guard:
            flag = self._stops.get(key)
        if flag is None:
            return False
        flag.set()
        return True


class ReplyInProgress(UserError):
    """A page asked for a second reply while its first was still being written."""

    def __str__(self) -> str:
        return "A reply is still being written: wait for it to finish, or press Stop."


class ChatService:
    """Chat turns through the engine, with every message saved to the user's history."""

    def __init__(
        self,
        engine: Engine,
        history: HistoryStore,
        *,
        documents: DocumentService | None = None,
        presets: PresetStore | None = None,
        pacer: UpdatePacer | None = None,
    ) -> None:
        """``pacer`` shares the page's redraws among all replies streaming at once (the notebook's too)."""
        self._engine = engine
        self._history = history
        self._documents = documents
        self._presets = presets
        self._cancels = CancelRegistry()
        self._pacer = pacer or UpdatePacer()
        self._active = ActiveReplies()
        self._writing = BusyPages()

    # -- conversations -----------------------------------------------------------------------

    def conversations(self, owner: str) -> list[Conversation]:
        return self._history.list(owner)

    def messages(self, owner: str, conversation_id: str) -> list[StoredMessage]:
        return self._history.messages(owner, conversation_id)

    def conversation(self, owner: str, conversation_id: str) -> Conversation:
        """One chat of the owner (its title and the collections it answers from)."""
        return self._history.get(owner, conversation_id)

    def set_collections(self, owner: str, conversation_id: str, collections: Sequence[str]) -> Conversation:
        """Keep the collections this chat answers from, so they are picked again when it is opened."""
        return self._history.set_collections(owner, conversation_id, collections)

    def set_tools(self, owner: str, conversation_id: str, tools: Sequence[str]) -> Conversation:
        """Keep the tools this chat's replies may call, so they are picked again when it is opened."""
        return self._history.set_tools(owner, conversation_id, tools)

    def tool_conversation(self, owner: str, conversation_id: str, system_prompt: str) -> list[Message]:
        """The saved chat as a reply with tools asks the model: the filled system prompt, then each message,
        a reply preceded by the tool-call turns and results it was written from (``TOOL_TURNS_KEY``)."""
        stored = self._history.messages(owner, conversation_id)
        question = stored[-1].content if stored and stored[-1].role == "user" else ""
        model_file = self._engine.info.file if self._engine.info else ""
        system = fill_system_prompt(system_prompt, question=question, context="", model=model_file)
        messages: list[Message] = [{"role": "system", "content": system}] if system.strip() else []
        for message in stored:
            if message.role == "system":
                continue
            messages.extend(message.meta.get(TOOL_TURNS_KEY) or [])
            messages.append({"role": message.role, "content": message.content})
        return messages

    def save_tool_reply(self, owner: str, conversation_id: str, text: str, meta: dict[str, Any],
                        reasoning: str = "") -> None:
        """Save a reply written with tools as the answer to the chat's last question (its calls in ``meta``);
        HistoryError if the chat was deleted meanwhile."""
        stored = self._history.messages(owner, conversation_id)
        question_id = stored[-1].id if stored and stored[-1].role == "user" else None
        _ReplySaver(self._history, owner, conversation_id, question_id).save(text, meta, reasoning)

    def replying(self, session_key: str) -> bool:
        """Whether a reply of this page (its session key) is being prepared or written now."""
        return self._writing.holds(session_key)

    def add_user_message(self, owner: str, conversation_id: str | None, text: str) -> str:
        """Save the user's message (starting a conversation if needed); returns the conversation id.

        MessageTooLong if it is over the cap; nothing is saved then.
        """
        check_message_size(text)
        if conversation_id is None:
            model = self._engine.info.file if self._engine.info else None
            conversation_id = self._history.create(owner, title_from_first_message(text), model=model).id
        self._history.append(owner, conversation_id, "user", text)
        return conversation_id

    def drop_last_reply(self, owner: str, conversation_id: str) -> None:
        """Put the assistant's last reply aside as a version (for Regenerate); the question stays, and
        the new reply is shown as the last version, with a switch back to this one."""
        stored = self._history.messages(owner, conversation_id)
        users = [m for m in stored if m.role == "user"]
        if users:
            self._history.truncate_after(owner, conversation_id, users[-1].id, keep_version=True)

    def switch_version(self, owner: str, conversation_id: str, message_id: int, number: int) -> None:
        """Show version ``number`` (1-based) of the branch that message ``message_id`` starts; the chat
        continues from it. A reply still being written into the chat is dropped, as for an edit."""
        self._drop_replies(conversation_id)
        self._history.switch_version(owner, conversation_id, message_id, number)

    def rename(self, owner: str, conversation_id: str, title: str) -> Conversation:
        return self._history.rename(owner, conversation_id, title)

    def edit_user_message(self, owner: str, conversation_id: str, index: int, text: str) -> None:
        """Replace the user's message at ``index`` (as the chat page lists them) and drop what followed.

        The reply is then generated again from there; a reply still being written is dropped.
        """
        text = text.strip()
        if not text:
            raise EditRefused("An edited message cannot be empty.")
        check_message_size(text)
        shown = [m for m in self._history.messages(owner, conversation_id) if m.role != "system"]
        if not 0 <= index < len(shown) or shown[index].role != "user":
            raise EditRefused("Only your own messages can be edited.")
        self._drop_replies(conversation_id)
        self._history.edit_and_truncate(owner, conversation_id, shown[index].id, text, keep_version=True)
        first_question = next(m for m in shown if m.role == "user")
        if first_question.id == shown[index].id and not self._history.get(owner, conversation_id).renamed:
            self._history.rename(owner, conversation_id, title_from_first_message(text), by_user=False)

    def delete(self, owner: str, conversation_id: str) -> None:
        """Delete a chat; a reply still being written into it is stopped and dropped."""
        self._history.delete(owner, conversation_id)
        self._drop_replies(conversation_id)

    def clear(self, owner: str, conversation_id: str) -> None:
        """Empty a chat; a reply still being written into it is stopped and dropped."""
        self._history.clear(owner, conversation_id)
        self._drop_replies(conversation_id)

    def _drop_replies(self, conversation_id: str) -> None:
        for session_key in self._active.drop(conversation_id):
            self._cancels.stop(session_key)

    # -- replies -----------------------------------------------------------------------------

    def prepare_conversation(
        self,
        owner: str,
        conversation: list[Message],
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
        question = conversation[-1]["content"] if conversation and conversation[-1]["role"] == "user" else ""
        model_file = self._engine.info.file if self._engine.info else ""
        if documents is None or not documents.collections:
            system = fill_system_prompt(system_prompt, question=question, context="", model=model_file)
            return PreparedReply(system, conversation)
        try:
            found = self.document_library().retrieve(
                owner, question, documents.collections, k=documents.k, min_score=documents.min_score
            )
        except RagError as exc:
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
        thinking: bool | None = None,
    ) -> Iterator[ReplyUpdate]:
        """Stream the reply to a saved conversation, saving it (and its thinking) as it streams.

        The reply is saved, marked incomplete, from its first words and again every SAVE_INTERVAL_S,
        so a server killed mid-reply keeps what was written; done (or stopped) it is saved whole. A
        document answer's sources are saved in its meta, so they show again later. When the chat is
        cleared or deleted meanwhile, the reply is stopped and nothing comes back: the last update
        has ``dropped`` set. While it streams each update carries its token count; a second reply
        asked for by the same page meanwhile raises ReplyInProgress. ``thinking`` False asks a template
        that has the switch (``thinking_switch``) not to think.
        """
        stopped = self._writing.claim(session_key)
        if stopped is None:
            raise ReplyInProgress(session_key)
        try:
            yield from self._reply_in(owner, session_key, conversation_id, system_prompt=system_prompt,
                                      sampling=sampling, documents=documents, stopped=stopped, thinking=thinking)
        finally:
            self._writing.release(session_key)

    def _reply_in(
        self, owner: str, session_key: str, conversation_id: str, *, system_prompt: str,
        sampling: SamplingParams, documents: DocumentQuery | None, stopped: threading.Event,
        thinking: bool | None = None,
    ) -> Iterator[ReplyUpdate]:
        stored = self._history.messages(owner, conversation_id)  # read once for the whole reply
        question_id = stored[-1].id if stored and stored[-1].role == "user" else None
        conversation: list[Message] = [{"role": m.role, "content": m.content} for m in stored]
        prepared = self.prepare_conversation(owner, conversation, system_prompt=system_prompt, sampling=sampling,
                                             documents=documents)
        if prepared.error:
            yield ReplyUpdate(text="", done=True, error=prepared.error)
            return
        saver = _ReplySaver(self._history, owner, conversation_id, question_id)
        if prepared.answer is not None:
            picked = list(documents.collections) if documents else []
            try:
                saver.save(prepared.answer, {"sources": [], "collections": picked})
            except HistoryError:
                yield ReplyUpdate(text="", done=True, dropped=True)
                return
            yield ReplyUpdate(text=prepared.answer, done=True)
            return
        meta: dict[str, Any] = {"sources": sources_meta(prepared.sources)} if prepared.sources else {}
        dropped = self._active.start(conversation_id, session_key)
        last: ReplyUpdate | None = None
        try:
            for last in self.stream(session_key, prepared.conversation, system_prompt=prepared.system_prompt,
                                    sampling=sampling, user=owner, conversation_id=conversation_id,
                                    stopped_early=stopped, thinking=thinking):
                if prepared.sources:
                    last = dataclasses.replace(last, sources=prepared.sources)
                if dropped.is_set():
                    continue  # Clear or Delete also pressed Stop: the stream ends within a token
                if last.done:
                    break
                if last.text or last.reasoning:
                    try:
                        saver.progress(last.text, with_thinking_time(meta, last), last.reasoning)
                    except HistoryError:
                        self._drop_replies(conversation_id)
                        continue
                    last = dataclasses.replace(last, tokens=self._count_reply_tokens(last.reasoning + last.text))
                yield last
        finally:
            self._active.finish(conversation_id, session_key, dropped)
        if last is None:
            return
        if dropped.is_set():
            log.info("a reply was dropped: its chat was cleared or deleted while it was written")
            yield ReplyUpdate(text="", done=True, dropped=True)
            return
        if last.text or last.reasoning:
            final = with_thinking_time(meta, last)
            if last.stats:
                final["stats"] = last.stats.as_dict()
            if last.error:
                final["incomplete"] = True  # what was written before the failure is kept, marked
            try:
                saver.save(last.text, final, last.reasoning)
            except HistoryError:
                yield ReplyUpdate(text="", done=True, dropped=True)
                return
        yield last

    def _count_reply_tokens(self, text: str) -> int | None:
        """The tokens of a reply so far (the engine merges tokens into chunks, so they are counted, not
        the chunks); None where the engine cannot count (a remote model, a model being switched)."""
        try:
            return self._engine.count_tokens(text)
        except Exception:  # noqa: BLE001 - a count is a nicety: the reply goes on without it
            return None

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

        count = self._engine.count_prompt_tokens
        budget = passage_budget(
            info.n_ctx, sampling.max_tokens or DEFAULT_REPLY_TOKENS,
            with_history=count(head + conversation),
            newest_only=lambda: count(head + conversation[-1:]),
        )
        return fit_passages(found, budget_tokens=budget, count_tokens=self._engine.count_tokens)

    def stream(
        self,
        session_key: str,
        conversation: Sequence[Message],
        *,
        system_prompt: str,
        sampling: SamplingParams,
        user: str | None = None,
        conversation_id: str | None = None,
        stopped_early: threading.Event | None = None,
        thinking: bool | None = None,
    ) -> Iterator[ReplyUpdate]:
        """Stream the assistant's reply to ``conversation`` (whose last message is the user's), its
        thinking apart from its text.

        ``user`` and ``conversation_id`` let the engine share slots fairly and reuse the chat's cache;
        ``stopped_early`` set (a Stop pressed before the stream began) stops it at once. Only each
        message's role and content reach the model: a reply's thinking is never sent back.
        """
        messages: list[Message] = []
        if system_prompt.strip():
            messages.append({"role": "system", "content": system_prompt.strip()})
        messages.extend({"role": m["role"], "content": m["content"]} for m in conversation)
        cancel = self._cancels.start(session_key)
        if stopped_early is not None and stopped_early.is_set():  # checked after start: see stop()
            cancel.set()
        text = ""
        thought = ThinkingClock()
        if self._engine.switching_to:
            yield ReplyUpdate(text="", notice=switching_notice(self._engine.switching_to))
        try:
            prompt = admit(self._engine, PromptRequest(sampling, messages=tuple(messages), thinking=thinking))
            chunks = self._engine.stream(prompt, cancel=cancel, user=user, conversation=conversation_id)
            for text, stats in self._pacer.paced_text(thought.follow(chunks)):
                if stats is not None:
                    yield ReplyUpdate(text=text, done=True, stats=stats, notice=dropped_notice(stats.dropped_messages),
                                      reasoning=thought.text, thinking_s=thought.seconds)
                    return
                yield ReplyUpdate(text=text, reasoning=thought.text, thinking_s=thought.seconds)
        except UserError as exc:  # a refusal (too long, out of bounds, over the context) or an engine failure
            log.warning("chat request failed: %s", exc)
            yield ReplyUpdate(text=text, done=True, error=str(exc), reasoning=thought.text,
                              thinking_s=thought.seconds)
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

    def thinking_switch(self) -> bool:
        """Whether the loaded model's chat template can be asked not to think (it reads ``enable_thinking``):
        the page hides its "Think" switch otherwise, where it would do nothing."""
        info = self._engine.info
        if info is None:
            return False
        load = self._engine.load_settings
        try:
            chat_format = resolve_chat_format(info.metadata, model_name=info.file, bos_token="", eos_token="",
                                              override=load.chat_format if load else None)
        except ValueError:  # an override that does not render: the model would not have loaded with it
            return False
        return has_thinking_switch(chat_format.template)

    def stop(self, session_key: str) -> bool:
        """Ask the running reply of this session to stop; True if one was running.

        A chat reply still being prepared (documents searched, the model busy) is flagged first, so
        the stream stops as it starts; the flag is set before the stream's own, which ``stream`` reads
        after registering it, so no Stop falls between the two.
        """
        early = self._writing.stop(session_key)
        return self._cancels.stop(session_key) or early



RAG_PRESET_NAME = "Document answers (RAG)"
DEFAULT_PASSAGES = 4
CONTEXT_MARGIN_TOKENS = 16  # passages counted alone vs inside the template differ by a few tokens
MIN_PASSAGE_TOKENS = 256  # below this the passages would be too cut to answer: drop history instead
_CONTEXT_PLACEHOLDER = re.compile(r"(?<!\{)\{context\}(?!\})")
_PASSAGES_ONLY = "Passages:\n{context}"  # used when the document preset is gone or has no {context}


@dataclass(frozen=True)
class DocumentQuery:
    """Which collections a chat message is answered from, and how many passages to retrieve.

    ``k`` and ``min_score`` left as None take each collection's own settings (Documents tab).
    """

    collections: tuple[str, ...]
    k: int | None = None
    min_score: float | None = None


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
    newest_only: int | Callable[[], int],
    margin: int = CONTEXT_MARGIN_TOKENS,
    min_passage_tokens: int = MIN_PASSAGE_TOKENS,
) -> int:
    """Tokens left for passages: passages are trimmed first, history is dropped only after.

    ``with_history``/``newest_only`` are the prompt's tokens (without passages) with the whole
    conversation / with the newest message only (a callable is counted only when the history leaves
    too little room). The reply keeps at most half the window, since a reply with no room for its
    sources is worth less than a shorter one.
    """
    reply = min(max_tokens, n_ctx // 2)
    room = n_ctx - reply - with_history - margin
    if room >= min_passage_tokens:
        return room
    newest = newest_only() if callable(newest_only) else newest_only
    return max(0, n_ctx - reply - newest - margin)


def with_thinking_time(meta: dict[str, Any], update: ReplyUpdate) -> dict[str, Any]:
    """A reply's meta with how long it thought, when it did, shown in its Thinking block's summary."""
    return dict(meta, thinking_s=update.thinking_s) if update.thinking_s is not None else dict(meta)


def sources_meta(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """The passages as saved in a reply's meta (JSON), so its sources show when it is reopened."""
    return [
        {
            "number": p.number, "file_name": p.file_name, "page": p.page, "heading": p.heading,
            "collection": p.collection, "score": round(p.score, 4), "citation": p.citation, "text": p.text,
        }
        for p in passages
    ]


