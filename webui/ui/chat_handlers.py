"""What the Chat tab's events do, for a user name and the form's values: testable without a page.

Each method is one event of the tab (named as the event is: tests and /config find events by name);
``webui.ui.chat`` lays out the components and wires them to these.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.services import DocumentQuery, ReplyUpdate, Services
from webui.services.chat import sources_meta
from webui.services.types import ConversationNotFound, HistoryError, SamplingParams, SamplingRequest, sampling_from
from webui.ui.chat_view import edited_text, message_view, stored_view
from webui.ui.feedback import handled, user_message

NO_MODEL_LINE = "**No model loaded.** Load one in the Models tab."
CLOSED_CHAT = (None, [], "", "")  # conversation id, messages, title, notice: no chat open


def document_query(
    picked: Sequence[str] | None, use_collection_settings: bool, k: float, cut_off: float
) -> DocumentQuery | None:
    """The collections to answer from; k and cut-off only when the user chose to override the
    collections' own settings (None lets each collection use what the Documents tab keeps)."""
    if not picked:
        return None
    if use_collection_settings:
        return DocumentQuery(tuple(picked))
    return DocumentQuery(tuple(picked), k=int(k), min_score=float(cut_off))


@dataclass(frozen=True)
class ReplyForm:
    """What a reply is written with: the system prompt, the sampling values and the documents to answer from.

    Values arrive as the page's components hold them (sliders send floats, an empty number None).
    """

    system_prompt: str
    temperature: float
    top_p: float
    top_k: float
    min_p: float
    repeat_penalty: float
    max_tokens: float
    seed: float | None
    collections: Sequence[str] | None
    use_collection_settings: bool
    passages: float
    min_score: float

    def sampling(self) -> SamplingParams:
        return sampling_from(SamplingRequest(
            temperature=float(self.temperature), top_p=float(self.top_p), top_k=int(self.top_k),
            min_p=float(self.min_p), repeat_penalty=float(self.repeat_penalty), max_tokens=int(self.max_tokens),
            seed=int(self.seed) if self.seed is not None else -1,
        ))

    def documents(self) -> DocumentQuery | None:
        return document_query(self.collections, self.use_collection_settings, self.passages, self.min_score)


class ChatHandlers:
    """The Chat tab's events: the chat list, sending and streaming replies, edits, Clear, rename, delete."""

    def __init__(self, services: Services) -> None:
        self.services = services

    # -- helpers -------------------------------------------------------------------------------

    def owner(self, username: str | None) -> str:
        """The id that owns the signed-in user's chats."""
        return self.services.user(username).id

    def conversation_choices(self, owner: str) -> list[tuple[str, str]]:
        return [(c.title, c.id) for c in self.services.chat.conversations(owner)]

    def shown(self, owner: str, conversation_id: str) -> list[dict[str, str]]:
        """The chat as saved; empty when it was deleted meanwhile (another tab, another page)."""
        try:
            return stored_view(self.services.chat.messages(owner, conversation_id))
        except HistoryError:
            return []

    def describe_model(self) -> str:
        """The line above the conversation: the model and the chat format it is prompted with."""
        info = self.services.models.loaded()
        if info is None:
            return NO_MODEL_LINE
        line = f"Model **{info.file}** · chat format **{info.chat_format}** ({info.chat_format_source})"
        if info.chat_format_note:
            line += f" · {info.chat_format_note}"
        return line

    # -- the sidebar ---------------------------------------------------------------------------

    @handled("Opening the chat page", lambda message: (gr.update(), gr.update(), gr.update()))
    def on_load(self, username: str | None) -> tuple[Any, str, Any]:
        """The user's chats (none open), the model line and the collections to answer from."""
        owner = self.owner(username)
        return (gr.update(choices=self.conversation_choices(owner), value=None), self.describe_model(),
                self.document_choices(username, []))

    @handled("Listing the collections for the chat", lambda message: gr.update())
    def document_choices(self, username: str | None, picked: Sequence[str] | None) -> Any:
        """The user's collections (own and shared), keeping the picks that still exist."""
        names = self.services.document_actions.collection_names(self.owner(username))
        return gr.update(choices=names, value=[p for p in picked or [] if p in names])

    @handled("Opening a conversation", lambda message: CLOSED_CHAT)
    def open_conversation(self, username: str | None, selected: str | None) -> tuple[Any, ...]:
        if not selected:
            return CLOSED_CHAT
        owner = self.owner(username)
        conversation = self.services.chat.messages(owner, selected)
        found = next((c for c in self.services.chat.conversations(owner) if c.id == selected), None)
        if found is None:  # deleted between the two reads
            raise ConversationNotFound(selected)
        return selected, stored_view(conversation), found.title, ""

    def start_new_chat(self) -> tuple[Any, ...]:
        return None, [], "", gr.update(value=None), ""

    @handled("Renaming a chat", lambda message: gr.update())
    def rename_chat(self, username: str | None, current: str | None, new_title: str | None) -> Any:
        owner = self.owner(username)
        if current is None or not (new_title or "").strip():
            gr.Warning("Open a conversation and type a title first.")
            return gr.update()
        self.services.chat.rename(owner, current, (new_title or "").strip())
        return gr.update(choices=self.conversation_choices(owner), value=current)

    @handled("Deleting a chat", lambda message: (gr.update(),) * 4 + (gr.update(visible=False),))
    def delete_chat(self, username: str | None, current: str | None) -> tuple[Any, ...]:
        owner = self.owner(username)
        if current is not None:
            self.services.chat.delete(owner, current)
        return (None, [], "", gr.update(choices=self.conversation_choices(owner), value=None),
                gr.update(visible=False))

    # -- messages and replies ------------------------------------------------------------------

    def add_user_message(self, username: str | None, text: str | None, current: str | None) -> tuple[Any, ...]:
        """Save the typed message (starting a chat if none is open) and empty the box.

        A refusal (too long) is raised as ``gr.Error``, so the event fails, the text stays in the box
        and no reply starts (the reply is chained with ``.success``).
        """
        text = (text or "").strip()
        if not text:
            return gr.update(), current, gr.update(), gr.update()
        try:
            owner = self.owner(username)
            try:
                current = self.services.chat.add_user_message(owner, current, text)
            except HistoryError:  # the open chat was deleted meanwhile: the message starts a new one
                current = self.services.chat.add_user_message(owner, None, text)
            view = stored_view(self.services.chat.messages(owner, current))
            choices = self.conversation_choices(owner)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            raise gr.Error(user_message(exc, "Sending a message")) from exc
        return "", current, view, gr.update(choices=choices, value=current)

    @handled("Writing a reply", lambda message: (gr.update(), f"**Error:** {message}"))
    def generate(self, username: str | None, page_key: str, current: str | None,
                 form: ReplyForm) -> Iterator[tuple[Any, str]]:
        """Stream the reply to the chat's last message; then show the chat as saved, with its stats."""
        if current is None:
            return
        owner = self.owner(username)
        saved = self.shown(owner, current)
        if not saved or saved[-1]["role"] != "user":
            yield saved, ""
            return
        update: ReplyUpdate | None = None
        for update in self.services.chat.reply_in(owner, page_key, current, system_prompt=form.system_prompt,
                                                  sampling=form.sampling(), documents=form.documents()):
            if not update.done:
                sources = sources_meta(update.sources) if update.sources else None
                pending = [message_view("assistant", update.text, sources=sources)] if update.text else []
                yield saved + pending, update.notice or ""
        if update is None:
            return
        shown = self.shown(owner, current)
        if update.dropped:  # cleared or deleted meanwhile: no orphan reply, and no error either
            yield shown, ""
            return
        if update.error:
            gr.Warning(update.error)
            yield shown, f"**Error:** {update.error}"
            return
        yield shown, update.notice or ""

    def edit_message(self, username: str | None, current: str | None, index: int | Sequence[int],
                     value: Any) -> tuple[Any, str]:
        """Save the edited question and drop what followed it; the reply is then generated again."""
        if current is None:
            return gr.update(), ""
        owner = self.owner(username)
        position = index if isinstance(index, int) else index[0]
        try:
            self.services.chat.edit_user_message(owner, current, position, edited_text(value))
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            gr.Warning(user_message(exc, "Editing a message"))  # the chat is shown as saved, unedited
        return self.shown(owner, current), ""

    @handled("Regenerating a reply", lambda message: gr.update())
    def drop_last_reply(self, username: str | None, current: str | None) -> list[dict[str, str]]:
        if current is None:
            return []
        owner = self.owner(username)
        self.services.chat.drop_last_reply(owner, current)
        return self.shown(owner, current)

    @handled("Clearing a chat", lambda message: (gr.update(), "", gr.update(visible=False)))
    def clear_chat(self, username: str | None, current: str | None) -> tuple[Any, ...]:
        owner = self.owner(username)
        if current is not None:
            try:
                self.services.chat.clear(owner, current)
            except HistoryError:
                pass  # deleted meanwhile (another tab): it is empty either way
        return [], "", gr.update(visible=False)

    @handled("Stopping a reply", lambda message: None)
    def stop_reply(self, username: str | None, page_key: str) -> None:
        self.services.user(username)  # a signed-out page stops nothing
        self.services.chat.stop(page_key)

    def show_exact_prompt(self, username: str | None, current: str | None, system: str | None,
                          draft: str | None) -> str:
        """The text the model would receive, special tokens included; or why it cannot be shown."""
        try:
            return self.services.chat.exact_prompt(self.owner(username), current, system or "", draft or "")
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return f"Cannot render the prompt: {user_message(exc, 'Showing the exact prompt')}"

