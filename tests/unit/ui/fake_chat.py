"""A fake Services for the Chat tab, the Notebook and the model picker: chats in memory, scripted replies.

The fakes keep what the real services keep (a chat belongs to its owner's id; a stopped key is
remembered) and refuse as they word it, so handler tests assert what a user would see.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from webui.engine import GenerationStats
from webui.services import CompletionUpdate, DocumentQuery, NotAuthorized, ReplyUpdate
from webui.services.chat import EditRefused, check_message_size
from webui.services.models import LoadedModel
from webui.services.tools import ToolsService
from webui.services.types import ConversationNotFound, SamplingParams, StoredMessage, User

from tests.support.tool_turns import PythonServers, ScriptedEngine
from tests.unit.ui.fakes import FakeServices


def stats(tokens: int = 5, *, stopped: bool = False) -> GenerationStats:
    return GenerationStats(prompt_tokens=12, completion_tokens=tokens, ttft_s=0.25, total_s=1.25,
                           stopped_by_user=stopped, dropped_messages=0, finish_reason="stop")


@dataclass
class FakeConversation:
    id: str
    owner: str
    title: str
    messages: list[StoredMessage] = field(default_factory=list)
    collections: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


@dataclass
class ReplyCall:
    """One ``reply_in`` call as the handler made it."""

    owner: str
    session_key: str
    conversation_id: str
    system_prompt: str
    sampling: SamplingParams
    documents: DocumentQuery | None
    thinking: bool | None = None


@dataclass
class FakeChat:
    """The chat service: conversations in a dict; a reply streams the words of ``reply_text``, then saves it.

    A test sets ``reply_error`` (the reply fails after its words) or ``drop_next_reply`` (the chat
    was cleared meanwhile) to script the other endings, and ``reply_thinking`` for thinking streamed
    (word by word, taking 0.5 s a word) before the answer.
    """

    chats: dict[str, FakeConversation] = field(default_factory=dict)
    reply_text: str = "Hello there friend"
    reply_error: str | None = None
    reply_thinking: str = ""
    can_turn_thinking_off: bool = False  # what ``thinking_switch`` says of the loaded model
    drop_next_reply: bool = False
    reply_calls: list[ReplyCall] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    busy_pages: set[str] = field(default_factory=set)  # pages with a reply under way (``replying``)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _chat(self, owner: str, conversation_id: str) -> FakeConversation:
        chat = self.chats.get(conversation_id)
        if chat is None or chat.owner != owner:
            raise ConversationNotFound(conversation_id)
        return chat

    def _append(self, chat: FakeConversation, role: str, content: str, meta: dict[str, Any] | None = None,
                reasoning: str = "") -> None:
        chat.messages.append(StoredMessage(next(self._ids), role, content, datetime.now(), meta or {}, reasoning))

    def conversations(self, owner: str) -> list[FakeConversation]:
        return [c for c in reversed(self.chats.values()) if c.owner == owner]

    def messages(self, owner: str, conversation_id: str) -> list[StoredMessage]:
        return list(self._chat(owner, conversation_id).messages)

    def conversation(self, owner: str, conversation_id: str) -> FakeConversation:
        return self._chat(owner, conversation_id)

    def set_collections(self, owner: str, conversation_id: str, collections: list[str]) -> FakeConversation:
        chat = self._chat(owner, conversation_id)
        chat.collections = tuple(dict.fromkeys(collections))
        return chat

    def set_tools(self, owner: str, conversation_id: str, tools: list[str]) -> FakeConversation:
        chat = self._chat(owner, conversation_id)
        chat.tools = tuple(dict.fromkeys(tools))
        return chat

    def tool_conversation(self, owner: str, conversation_id: str, system_prompt: str) -> list[dict[str, Any]]:
        """As the real one: the system prompt, then each message after the tool turns saved with it."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}]
        for message in self._chat(owner, conversation_id).messages:
            messages += message.meta.get("tool_turns") or []
            messages.append({"role": message.role, "content": message.content})
        return messages

    def save_tool_reply(self, owner: str, conversation_id: str, text: str, meta: dict[str, Any],
                        reasoning: str = "") -> None:
        self._append(self._chat(owner, conversation_id), "assistant", text, meta, reasoning)

    def replying(self, session_key: str) -> bool:
        return session_key in self.busy_pages

    def add_user_message(self, owner: str, conversation_id: str | None, text: str) -> str:
        check_message_size(text)
        if conversation_id is None:
            conversation_id = f"c{next(self._ids)}"
            self.chats[conversation_id] = FakeConversation(conversation_id, owner, text[:40])
        self._append(self._chat(owner, conversation_id), "user", text)
        return conversation_id

    def rename(self, owner: str, conversation_id: str, title: str) -> None:
        self._chat(owner, conversation_id).title = title

    def delete(self, owner: str, conversation_id: str) -> None:
        del self.chats[self._chat(owner, conversation_id).id]

    def clear(self, owner: str, conversation_id: str) -> None:
        self._chat(owner, conversation_id).messages.clear()

    def drop_last_reply(self, owner: str, conversation_id: str) -> None:
        chat = self._chat(owner, conversation_id)
        while chat.messages and chat.messages[-1].role == "assistant":
            chat.messages.pop()

    def edit_user_message(self, owner: str, conversation_id: str, index: int, text: str) -> None:
        chat = self._chat(owner, conversation_id)
        if not text.strip():
            raise EditRefused("An edited message cannot be empty.")
        if not 0 <= index < len(chat.messages) or chat.messages[index].role != "user":
            raise EditRefused("Only your own messages can be edited.")
        chat.messages[index:] = []
        self._append(chat, "user", text.strip())

    def reply_in(self, owner: str, session_key: str, conversation_id: str, *, system_prompt: str,
                 sampling: SamplingParams, documents: DocumentQuery | None = None,
                 thinking: bool | None = None) -> Iterator[ReplyUpdate]:
        chat = self._chat(owner, conversation_id)
        self.reply_calls.append(ReplyCall(owner, session_key, conversation_id, system_prompt, sampling, documents,
                                          thinking))
        thought = "" if thinking is False else self.reply_thinking
        reasoning, seconds = "", None
        for count, word in enumerate(thought.split(), 1):
            reasoning, seconds = f"{reasoning} {word}".strip(), count * 0.5
            yield ReplyUpdate(text="", tokens=count, reasoning=reasoning, thinking_s=seconds)
        text = ""
        for count, word in enumerate(self.reply_text.split(), 1):
            text = f"{text} {word}".strip()
            yield ReplyUpdate(text=text, tokens=count, reasoning=reasoning, thinking_s=seconds)
        if self.drop_next_reply:
            yield ReplyUpdate(text="", done=True, dropped=True)
            return
        done = stats(len(self.reply_text.split()))
        meta = {"stats": done.as_dict(), **({"incomplete": True} if self.reply_error else {}),
                **({"thinking_s": seconds} if seconds is not None else {})}
        self._append(chat, "assistant", text, meta, reasoning)
        yield ReplyUpdate(text=text, done=True, stats=done, error=self.reply_error, reasoning=reasoning,
                          thinking_s=seconds)

    def thinking_switch(self) -> bool:
        return self.can_turn_thinking_off

    def stop(self, session_key: str) -> bool:
        self.stopped.append(session_key)
        return True

    def exact_prompt(self, owner: str, conversation_id: str | None, system_prompt: str, draft: str = "") -> str:
        turns = self.messages(owner, conversation_id) if conversation_id else []
        lines = [f"<system>{system_prompt}"] + [f"<{m.role}>{m.content}" for m in turns]
        return "\n".join(lines + ([f"<user>{draft}"] if draft else []))


@dataclass
class FakeModels:
    """The model service: what is loaded, the local names, and loads that only admins may start."""

    loaded_model: LoadedModel | None = None
    local: list[str] = field(default_factory=list)
    parallel: int = 0
    load_error: Exception | None = None
    waits: list[int] = field(default_factory=list)  # queue positions a load reports before it starts

    def loaded(self) -> LoadedModel | None:
        return self.loaded_model

    def names(self) -> list[str]:
        return list(self.local)

    def load(self, user: User, name: str, *, on_wait: Any = None) -> LoadedModel:
        if not user.is_admin:
            raise NotAuthorized("Only an admin can manage models.")
        for position in self.waits:
            on_wait(position)
            time.sleep(0.5)  # the reply being written, which the picker's handler says it waits for
        if self.load_error is not None:
            raise self.load_error
        self.loaded_model = loaded_model(name)
        return self.loaded_model


def loaded_model(file: str = "tiny.gguf", note: str | None = None) -> LoadedModel:
    return LoadedModel(file=file, name="Tiny", architecture="llama", n_ctx=2048, n_gpu_layers=0,
                       chat_format="chatml", chat_format_source="gguf", chat_format_note=note, flash_attn="auto")


@dataclass
class FakeDocumentActions:
    collections: dict[str, list[str]] = field(default_factory=dict)  # owner id -> collection names

    def collection_names(self, owner: str) -> list[str]:
        return list(self.collections.get(owner, []))


@dataclass
class FakeNotebook:
    """Raw completion: the continuation streams in ``words``; an empty prompt is refused as the real one does."""

    words: list[str] = field(default_factory=lambda: [" green", " and", " blue."])
    error: str | None = None
    calls: list[tuple[str, str, SamplingParams]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def complete(self, session_key: str, prompt: str, sampling: SamplingParams) -> Iterator[CompletionUpdate]:
        self.calls.append((session_key, prompt, sampling))
        if not prompt.strip():
            yield CompletionUpdate(text="", done=True, error="Type some text for the model to continue.")
            return
        text = ""
        for word in self.words:
            text += word
            yield CompletionUpdate(text=text)
        yield CompletionUpdate(text=text, done=True, stats=None if self.error else stats(len(self.words)),
                               error=self.error)

    def stop(self, session_key: str) -> bool:
        self.stopped.append(session_key)
        return True


@dataclass
class FakeChatServices(FakeServices):
    """Services for the chat page's handlers; ``alice`` is an admin, ``bob`` is not (ids differ from names)."""

    chat: FakeChat = field(default_factory=FakeChat)
    models: FakeModels = field(default_factory=lambda: FakeModels(loaded_model(), ["tiny.gguf", "small.gguf"]))
    document_actions: FakeDocumentActions = field(default_factory=FakeDocumentActions)
    notebook: FakeNotebook = field(default_factory=FakeNotebook)
    # The real tool loop over a scripted engine (tests/support/tool_turns.py); tests replace it with their own.
    tools: ToolsService = field(default_factory=lambda: ToolsService(
        ScriptedEngine([]), chat=None, documents=None, mcp=PythonServers({})))  # type: ignore[arg-type]
    users: dict[str, User] = field(default_factory=lambda: {
        "alice": User("alice", is_admin=True, id="u-alice"), "bob": User("bob", is_admin=False, id="u-bob")})
