"""Conversation search, and a chat exported as Markdown or JSON and imported back.

The JSON export keeps everything stored per message (role, text, time, a reply's thinking, meta such
as stats and sources), so importing it gives the same chat. Imports also read an Open WebUI export
(``[{"chat": {"messages": [...]}}]``) and a ChatGPT ``conversations.json`` (a tree of messages per
chat, read along its current branch). A file is read whole and checked before anything is saved,
then saved in one transaction: a bad file saves nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from webui.errors import UserError
from webui.history import (
    Conversation,
    HistoryStore,
    ImportedChat,
    ImportedMessage,
    SearchHit,
    StoredMessage,
    title_from_first_message,
)
from webui.services.chat import TOOL_CALLS_KEY

EXPORT_FORMAT = "local-llm-webui.chat"
EXPORT_VERSION = 1
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_IMPORT_MESSAGES = 10_000
MAX_IMPORT_CHATS = 1_000
_ROLES = ("system", "user", "assistant")


class ImportRefused(UserError, ValueError):
    """A file that is not a chat export this app reads, or one over the limits; nothing was saved."""


@dataclass(frozen=True)
class ChatImport:
    """What an import saved: the new chats (the one listed first, first) and the export's system prompt."""

    conversations: list[Conversation]
    message_count: int
    source: str  # "this app's export", "an Open WebUI export", "a ChatGPT export"
    system_prompt: str = ""  # the page's system prompt when this app's export was made
    skipped: int = 0  # chats with no message this app can show (an Open WebUI or ChatGPT export)


@dataclass(frozen=True)
class ReadExport:
    """A file's chats, read and checked, not yet saved."""

    chats: list[ImportedChat]
    source: str
    system_prompt: str = ""
    skipped: int = 0


class ConversationService:
    """Search in a user's chats, and export or import one; every call names the owner."""

    def __init__(self, history: HistoryStore, export_dir: Path | None = None) -> None:
        """*export_dir*: where the downloads are written (the app's private temporary folder, emptied at
        each start); a new temporary folder when None."""
        self._history = history
        self._export_dir = export_dir

    def search(self, owner: str, text: str) -> list[SearchHit]:
        """The owner's chats holding every word of *text* (title or messages); no words: every chat."""
        if not text.split():
            return [SearchHit(conversation, "") for conversation in self._history.list(owner)]
        return self._history.search(owner, text)

    def export_files(self, owner: str, conversation_id: str, system_prompt: str = "") -> list[Path]:
        """Write the chat as Markdown and as JSON to temporary files for the browser to download.

        One folder per user, emptied at each export: the files hold the chat's text, so only the
        latest export of each user is kept, and only until the app restarts.
        """
        conversation = self._history.get(owner, conversation_id)
        messages = self._history.messages(owner, conversation_id)
        if self._export_dir is None:
            self._export_dir = Path(tempfile.mkdtemp(prefix="webui-chats-"))
        user_dir = self._export_dir / "chat-exports" / hashlib.sha256(owner.encode()).hexdigest()[:16]
        shutil.rmtree(user_dir, ignore_errors=True)
        folder = user_dir / uuid.uuid4().hex[:8]
        folder.mkdir(mode=0o700, parents=True)
        stem = file_stem(conversation.title)
        markdown = folder / f"{stem}.md"
        exported = folder / f"{stem}.json"
        # Throwaway copies for one download: no atomic write needed.
        markdown.write_text(chat_markdown(conversation, messages, system_prompt), encoding="utf-8")
        exported.write_text(chat_json(conversation, messages, system_prompt), encoding="utf-8")
        return [markdown, exported]

    def import_file(self, owner: str, path: Path) -> ChatImport:
        """Import the chats of an export file as new chats of *owner*; refuse the file whole or save it whole."""
        size = path.stat().st_size
        if size > MAX_IMPORT_BYTES:
            raise ImportRefused(f"The file is {size / 1024**2:.1f} MB; a chat import can be up to "
                                f"{MAX_IMPORT_BYTES // 1024**2} MB.")
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportRefused("The file is not UTF-8 text, so it is not a chat export.") from exc
        return self.import_text(owner, text)

    def import_text(self, owner: str, text: str) -> ChatImport:
        """``import_file`` for the text of an export."""
        read = read_export(text)
        saved = self._history.import_chats(owner, read.chats)
        return ChatImport(
            conversations=saved[::-1], message_count=sum(len(chat.messages) for chat in read.chats),
            source=read.source, system_prompt=read.system_prompt, skipped=read.skipped,
        )


# -- export ------------------------------------------------------------------------------------


def file_stem(title: str) -> str:
    """A file name for a chat from its title: letters, digits and dashes, at most 60 characters."""
    stem = re.sub(r"[^\w]+", "-", title, flags=re.UNICODE).strip("-_").lower()[:60].rstrip("-_")
    return stem or "chat"


def chat_json(conversation: Conversation, messages: Sequence[StoredMessage], system_prompt: str = "") -> str:
    """The chat as this app's JSON export: everything stored per message, and the page's system prompt."""
    document = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(),
        "title": conversation.title,
        "model": conversation.model,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "system_prompt": system_prompt,
        **({"versions": conversation.versions} if conversation.versions else {}),
        "messages": [{"role": m.role, "content": m.content, "created_at": m.created_at.isoformat(),
                      **({"reasoning": m.reasoning} if m.reasoning else {}), "meta": m.meta,
                      # the other versions of what follows it (earlier replies, earlier branches of an edit)
                      **({"versions": m.versions} if m.versions else {})} for m in messages],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def chat_markdown(conversation: Conversation, messages: Sequence[StoredMessage], system_prompt: str = "") -> str:
    """The chat as Markdown to read or share: a heading per message with its time, sources listed."""
    lines = [f"# {conversation.title}", ""]
    about = f"Exported {_shown_time(datetime.now(timezone.utc))}"
    if conversation.model:
        about += f" · model {conversation.model}"
    lines += [f"*{about}*", ""]
    if system_prompt.strip():
        lines += ["## System prompt", "", *[f"> {line}" for line in system_prompt.strip().splitlines()], ""]
    names = {"user": "You", "assistant": "Assistant", "system": "System"}
    for message in messages:
        lines += [f"### {names.get(message.role, message.role)} · {_shown_time(message.created_at)}", ""]
        if message.reasoning.strip():
            seconds = message.meta.get("thinking_s")
            summary = f"Thinking ({seconds:.1f} s)" if isinstance(seconds, (int, float)) else "Thinking"
            lines += [f"<details><summary>{summary}</summary>", "", message.reasoning.strip(), "", "</details>", ""]
        lines += _tool_calls_markdown(message.meta)
        lines += [message.content.rstrip(), ""]
        sources = [str(s.get("citation") or s.get("file_name") or "") for s in message.meta.get("sources") or []
                   if isinstance(s, dict)]
        if any(sources):
            lines += ["Sources: " + "; ".join(f"[{n}] {s}" for n, s in enumerate(sources, 1) if s), ""]
        if message.meta.get("incomplete"):
            lines += ["*(unfinished reply: it was cut off before its end)*", ""]
    return "\n".join(lines)


def _tool_calls_markdown(meta: dict[str, Any]) -> list[str]:
    """A reply's tool calls (saved by the chat page), each folded: arguments, result, error."""
    lines: list[str] = []
    for call in meta.get(TOOL_CALLS_KEY) or []:
        if not isinstance(call, dict):
            continue
        took = call.get("duration_s")
        summary = f"Tool {call.get('name', '')}" + (f" ({took:.2f} s)" if isinstance(took, (int, float)) else "")
        if call.get("skipped"):
            summary += " (not run)"
        lines += [f"<details><summary>{summary}</summary>", "", "Arguments:", "", "```json",
                  json.dumps(call.get("arguments") or {}, ensure_ascii=False, indent=1), "```", ""]
        if call.get("result"):
            lines += ["Result:", "", "```", str(call["result"]).rstrip(), "```", ""]
        if call.get("error"):
            lines += [f"Error: {call['error']}", ""]
        lines += ["</details>", ""]
    return lines


def _shown_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# -- import ------------------------------------------------------------------------------------


def read_export(text: str) -> ReadExport:
    """The chats of an export's text, checked against the limits; ImportRefused says what is wrong."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser goes
        raise ImportRefused(f"The file is not valid JSON ({_short(exc)}), so it is not a chat export.") from exc
    items = data if isinstance(data, list) else [data]
    if isinstance(data, dict) and "format" in data:
        read = _read_own(data)
    elif items and all(isinstance(item, dict) and isinstance(item.get("mapping"), dict) for item in items):
        read = _read_each(items, _read_chatgpt, "a ChatGPT export")
    elif items and all(isinstance(item, dict) and isinstance(item.get("chat"), dict) for item in items):
        read = _read_each(items, _read_open_webui, "an Open WebUI export")
    else:
        raise ImportRefused(
            "This file is not a chat export this app can read. Import a chat exported here as JSON, an "
            "Open WebUI export (a list of chats with \"chat\": {\"messages\": ...}) or a ChatGPT "
            "conversations.json.")
    count = sum(len(chat.messages) for chat in read.chats)
    if count > MAX_IMPORT_MESSAGES:
        raise ImportRefused(f"The file holds {count:,} messages; an import can hold up to "
                            f"{MAX_IMPORT_MESSAGES:,}. Split it, or import fewer chats at once.")
    return read


class _StatsIn(BaseModel):
    """A reply's stats as the page shows them: these three must be numbers; the rest is kept as is."""

    model_config = ConfigDict(extra="allow")
    completion_tokens: int
    tokens_per_s: float
    ttft_ms: float


class _MetaIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    stats: _StatsIn | None = None
    sources: list[dict[str, Any]] | None = None
    incomplete: bool | None = None
    collections: list[str] | None = None
    thinking_s: float | None = None


class _MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str
    created_at: datetime | None = None
    reasoning: str = ""  # a reply's thinking; absent from exports made before it was kept
    meta: _MetaIn = Field(default_factory=_MetaIn)
    versions: dict[str, Any] | None = None  # other versions of what follows (regenerated, edited)


class _ChatIn(BaseModel):
    """This app's JSON export (version 1); unknown fields are refused, so a typo is named, not lost."""

    model_config = ConfigDict(extra="forbid")
    format: str  # checked before, with a sentence of its own
    version: int
    exported_at: datetime | None = None
    title: str = ""
    model: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    system_prompt: str = ""
    versions: dict[str, Any] | None = None  # other versions of the first message's branch (edits)
    messages: list[_MessageIn]


def _read_own(data: dict[str, Any]) -> ReadExport:
    if data.get("format") != EXPORT_FORMAT:
        raise ImportRefused(f"This file's format is {str(data.get('format'))[:60]!r}, not this app's chat "
                            f"export ({EXPORT_FORMAT!r}).")
    if data.get("version") != EXPORT_VERSION:
        raise ImportRefused(f"This chat export is version {str(data.get('version'))[:20]}; this app reads "
                            f"version {EXPORT_VERSION}. Update the app to import it.")
    try:
        chat = _ChatIn.model_validate(data)
    except ValidationError as exc:
        raise ImportRefused(f"This chat export is damaged: {_first_problem(exc)}. Nothing was imported.") from exc
    messages = tuple(ImportedMessage(m.role, m.content, m.created_at, m.meta.model_dump(exclude_unset=True),
                                     m.reasoning, m.versions) for m in chat.messages)
    imported = ImportedChat(chat.title, messages, chat.model, chat.created_at, chat.updated_at, chat.versions)
    return ReadExport([imported], "this app's export", system_prompt=chat.system_prompt)


def _first_problem(error: ValidationError) -> str:
    """Pydantic's first error as "message 3, role: Input should be ..." (messages counted from 1)."""
    problem = error.errors()[0]
    where = list(problem["loc"])
    if len(where) >= 2 and where[0] == "messages" and isinstance(where[1], int):
        where = [f"message {where[1] + 1}", *where[2:]]
    place = ", ".join(str(part) for part in where)
    return f"{place}: {problem['msg']}" if place else str(problem["msg"])


def _read_each(
    items: list[dict[str, Any]], read_one: Callable[[dict[str, Any]], ImportedChat], source: str
) -> ReadExport:
    """Every chat of a list export; a chat with nothing to show is skipped, a malformed one refuses the file."""
    if len(items) > MAX_IMPORT_CHATS:
        raise ImportRefused(f"The file holds {len(items):,} chats; an import can hold up to {MAX_IMPORT_CHATS:,}.")
    chats = []
    for number, item in enumerate(items, 1):
        try:
            chat = read_one(item)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, OSError) as exc:
            raise ImportRefused(f"Chat {number} of {source} cannot be read ({_short(exc)}). "
                                "Nothing was imported.") from exc
        if chat.messages:
            chats.append(chat)
    if not chats:
        raise ImportRefused(f"This file is {source}, but none of its chats has a message to import.")
    # Oldest first, so the most recent chat is saved last and listed at the top.
    chats.sort(key=lambda chat: chat.updated_at or datetime.min.replace(tzinfo=timezone.utc))
    return ReadExport(chats, source, skipped=len(items) - len(chats))


def _read_open_webui(item: dict[str, Any]) -> ImportedChat:
    chat = item["chat"]
    raw = chat.get("messages")
    if not isinstance(raw, list):  # older exports keep only the tree: follow the branch shown
        history = chat.get("history") or {}
        tree, node, raw = history.get("messages") or {}, history.get("currentId"), []
        while node is not None and node in tree and len(raw) <= MAX_IMPORT_MESSAGES:
            raw.append(tree[node])
            node = tree[node].get("parentId")
        raw.reverse()
    messages = []
    for message in raw:
        content = _text_of(message.get("content"))
        if message.get("role") in _ROLES and content.strip():
            messages.append(ImportedMessage(message["role"], content, _epoch(message.get("timestamp"))))
    models = chat.get("models") or []
    return ImportedChat(
        title=str(item.get("title") or chat.get("title") or _first_question(messages)), messages=tuple(messages),
        model=str(models[0]) if models else None,
        created_at=_epoch(item.get("created_at")), updated_at=_epoch(item.get("updated_at")),
    )


def _read_chatgpt(item: dict[str, Any]) -> ImportedChat:
    """The messages on the branch that ends at ``current_node``: the answers that were kept."""
    mapping = item["mapping"]
    node, branch = item.get("current_node"), []
    while node is not None and node in mapping and len(branch) <= 4 * MAX_IMPORT_MESSAGES:
        branch.append(mapping[node].get("message"))
        node = mapping[node].get("parent")
    messages = []
    model = None
    for message in reversed(branch):
        if not message:
            continue
        role = (message.get("author") or {}).get("role")
        metadata = message.get("metadata") or {}
        content = message.get("content") or {}
        if role not in _ROLES or metadata.get("is_visually_hidden_from_conversation") \
                or content.get("content_type") not in ("text", "multimodal_text"):
            continue  # tool calls, browsing, code runs, hidden instructions: nothing this page shows
        text = "\n".join(part for part in content.get("parts") or [] if isinstance(part, str))
        if text.strip():
            messages.append(ImportedMessage(role, text, _epoch(message.get("create_time"))))
            model = metadata.get("model_slug") or model
    return ImportedChat(
        title=str(item.get("title") or _first_question(messages)), messages=tuple(messages), model=model,
        created_at=_epoch(item.get("create_time")), updated_at=_epoch(item.get("update_time")),
    )


def _first_question(messages: Sequence[ImportedMessage]) -> str:
    """A title for a chat exported without one, as a new chat gets from its first message."""
    return title_from_first_message(next((m.content for m in messages if m.role == "user"), ""))


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content
                         if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _epoch(value: Any) -> datetime | None:
    """Seconds since 1970 (milliseconds when that large) as a time; None when absent."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = value / 1000 if value > 1e11 else value
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _short(exc: BaseException) -> str:
    return str(exc)[:120] or type(exc).__name__
