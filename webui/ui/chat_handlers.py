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
from webui.services.chat import ReplyInProgress, sources_meta
from webui.services.types import HistoryError, SamplingParams, SamplingRequest, sampling_from
from webui.ui.chat_view import chat_header, edited_text, message_view, stored_view, writing_notice
from webui.ui.feedback import handled, user_message

NO_MODEL_LINE = "**No model loaded.** Load one in the Models tab."
CLOSED_CHAT = (None, [], "")  # conversation id, messages, notice: no chat open
MENU_CLOSED = gr.update(visible=False)  # a row's menu (Rename, Delete) once its action is done


def composer(busy: bool) -> tuple[Any, Any, Any, Any]:
    """The message box, Send, Stop and Regenerate while a reply is written (busy) or not.

    Busy, the box and Send are off and Stop is on, so a second message cannot be sent on top of the
    reply; idle, Stop is off (there is nothing to stop).
    """
    return (gr.update(interactive=not busy), gr.update(interactive=not busy), gr.update(interactive=busy),
            gr.update(interactive=not busy))


COMPOSER_UNCHANGED = (gr.update(),) * 4


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
    """What a reply is written with: the system prompt, the sampling values, the documents to answer from,
    and whether a reasoning model may think first.

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
    think: bool = True
    tools: Sequence[str] | None = None  # the tools the model may call (chat_tools.py); none: a plain reply
    tool_first: bool = False  # the reply's first round must call one of them

    def sampling(self) -> SamplingParams:
        return sampling_from(SamplingRequest(
            temperature=float(self.temperature), top_p=float(self.top_p), top_k=int(self.top_k),
            min_p=float(self.min_p), repeat_penalty=float(self.repeat_penalty), max_tokens=int(self.max_tokens),
            seed=int(self.seed) if self.seed is not None else -1,
        ))

    def documents(self) -> DocumentQuery | None:
        return document_query(self.collections, self.use_collection_settings, self.passages, self.min_score)

    def thinking(self) -> bool | None:
        """None leaves thinking as the model's template has it (on for a reasoning model); False turns it off."""
        return None if self.think else False


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
        """The model line under the settings: the model and the chat format it is prompted with."""
        info = self.services.models.loaded()
        if info is None:
            return NO_MODEL_LINE
        line = f"Model **{info.file}** · chat format **{info.chat_format}** ({info.chat_format_source})"
        if info.chat_format_note:
            line += f" · {info.chat_format_note}"
        return line

    def header(self, preset: str | None, collections: Sequence[str] | None) -> str:
        """The line above the conversation: model, preset, and the collections this chat answers from."""
        info = self.services.models.loaded()
        return chat_header(info.file if info else None, preset, list(collections or []))

    @handled("Checking whether the model can think", lambda message: gr.update(visible=False))
    def think_switch(self) -> Any:
        """The "Think" switch shows only where the loaded model's template can turn thinking off."""
        return gr.update(visible=self.services.chat.thinking_switch())

    def collection_names(self, owner: str) -> list[str]:
        return self.services.document_actions.collection_names(owner)

    # -- the sidebar ---------------------------------------------------------------------------

    @handled("Opening the chat page", lambda message: (gr.update(),) * 4)
    def on_load(self, username: str | None) -> tuple[Any, str, Any, str]:
        """The user's chats (none open), the model line, the collections to pick from (none picked), the header."""
        owner = self.owner(username)
        return (gr.update(choices=self.conversation_choices(owner), value=None), self.describe_model(),
                self.document_choices(username, []), self.header(None, []))

    @handled("Listing the collections for the chat", lambda message: gr.update())
    def document_choices(self, username: str | None, picked: Sequence[str] | None) -> Any:
        """The user's collections (own and shared), keeping the picks that still exist."""
        names = self.collection_names(self.owner(username))
        return gr.update(choices=names, value=[p for p in picked or [] if p in names])

    @handled("Choosing the chat's documents", lambda message: gr.update())
    def save_collections(self, username: str | None, current: str | None, picked: Sequence[str] | None,
                         preset: str | None) -> str:
        """The picked collections belong to the open chat: saved with it at once (a new chat saves them
        with its first message); the header says what it now answers from."""
        if current is not None:
            try:
                self.services.chat.set_collections(self.owner(username), current, list(picked or []))
            except HistoryError:
                pass  # deleted meanwhile (another page): its first message will start a new chat
        return self.header(preset, picked)

    @handled("Opening a conversation", lambda message: (*CLOSED_CHAT, gr.update(), gr.update()))
    def open_conversation(self, username: str | None, selected: str | None, preset: str | None) -> tuple[Any, ...]:
        """The chat's messages and its own collections picked again (those that still exist)."""
        owner = self.owner(username)
        if not selected:
            return (*CLOSED_CHAT, gr.update(value=[]), self.header(preset, []))
        found = self.services.chat.conversation(owner, selected)
        conversation = self.services.chat.messages(owner, selected)
        names = self.collection_names(owner)
        picked = [name for name in found.collections if name in names]
        return (selected, stored_view(conversation), "", gr.update(choices=names, value=picked),
                self.header(preset, picked))

    def start_new_chat(self, preset: str | None) -> tuple[Any, ...]:
        """An empty chat, plain: no collections picked until the user picks some for it."""
        return None, [], gr.update(value=None), "", gr.update(value=[]), self.header(preset, [])

    @handled("Opening the chat's menu", lambda message: (gr.update(),) * 4)
    def open_row_menu(self, username: str | None, chat_id: str | None) -> tuple[Any, ...]:
        """The menu of one row of the list: Rename, its box holding the chat's title now, and Delete
        (its confirmation hidden until asked)."""
        if not chat_id:
            return gr.update(), gr.update(), gr.update(), gr.update()
        title = self.services.chat.conversation(self.owner(username), chat_id).title
        return chat_id, gr.update(value=title), gr.update(visible=True), gr.update(visible=False)

    @handled("Renaming a chat", lambda message: (gr.update(), gr.update()))
    def rename_chat(self, username: str | None, chat_id: str | None, new_title: str | None) -> tuple[Any, Any]:
        """Rename the row's chat; the list shows the new title (the open chat stays picked) and the menu closes."""
        owner = self.owner(username)
        if chat_id is None or not (new_title or "").strip():
            gr.Warning("Type a title for the chat first.")
            return gr.update(), gr.update()
        self.services.chat.rename(owner, chat_id, (new_title or "").strip())
        return gr.update(choices=self.conversation_choices(owner)), MENU_CLOSED

    @handled("Deleting a chat", lambda message: (gr.update(),) * 5 + (MENU_CLOSED, MENU_CLOSED))
    def delete_chat(self, username: str | None, chat_id: str | None, current: str | None,
                    preset: str | None) -> tuple[Any, ...]:
        """Delete the row's chat (its menu asked first). The open chat closes only if it is the one deleted."""
        owner = self.owner(username)
        if chat_id is not None:
            self.services.chat.delete(owner, chat_id)
        listing = self.conversation_choices(owner)
        if chat_id != current:
            return (gr.update(), gr.update(), gr.update(choices=listing), gr.update(), gr.update(),
                    MENU_CLOSED, MENU_CLOSED)
        return (None, [], gr.update(choices=listing, value=None), gr.update(value=[]), self.header(preset, []),
                MENU_CLOSED, MENU_CLOSED)

    # -- messages and replies ------------------------------------------------------------------

    def add_user_message(self, username: str | None, page_key: str, text: str | None, current: str | None,
                         picked: Sequence[str] | None) -> tuple[Any, ...]:
        """Save the typed message (starting a chat if none is open) with the chat's collections, empty the
        box, and turn the composer busy until the reply ends (``composer``).

        A refusal (too long, or a reply of this page still being written) is raised as ``gr.Error``, so
        the event fails, the text stays in the box and no reply starts (it is chained with ``.success``).
        """
        text = (text or "").strip()
        if not text:
            return (gr.update(), current, gr.update(), gr.update(), *COMPOSER_UNCHANGED[1:])
        try:
            if self.services.chat.replying(page_key):
                raise ReplyInProgress(page_key)
            owner = self.owner(username)
            try:
                current = self.services.chat.add_user_message(owner, current, text)
            except HistoryError:  # the open chat was deleted meanwhile: the message starts a new one
                current = self.services.chat.add_user_message(owner, None, text)
            self.services.chat.set_collections(owner, current, list(picked or []))
            view = stored_view(self.services.chat.messages(owner, current))
            choices = self.conversation_choices(owner)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            raise gr.Error(user_message(exc, "Sending a message")) from exc
        box, send, stop, regenerate = composer(busy=True)
        return (gr.update(value="", interactive=False), current, view, gr.update(choices=choices, value=current),
                send, stop, regenerate)

    @handled("Writing a reply", lambda message: (gr.update(), f"**Error:** {message}"))
    def generate(self, username: str | None, page_key: str, current: str | None,
                 form: ReplyForm) -> Iterator[tuple[Any, str]]:
        """Stream the reply to the chat's last message (its thinking folded above it), saying how many tokens
        are written; then show the chat as saved, with its stats."""
        if current is None:
            return
        owner = self.owner(username)
        saved = self.shown(owner, current)
        if not saved or saved[-1]["role"] != "user":
            yield saved, ""
            return
        yield saved, writing_notice(None)
        update: ReplyUpdate | None = None
        for update in self.services.chat.reply_in(owner, page_key, current, system_prompt=form.system_prompt,
                                                  sampling=form.sampling(), documents=form.documents(),
                                                  thinking=form.thinking()):
            if not update.done:
                sources = sources_meta(update.sources) if update.sources else None
                pending = [message_view("assistant", update.text, sources=sources, reasoning=update.reasoning,
                                        thinking_s=update.thinking_s, still_thinking=not update.text)
                           ] if update.text or update.reasoning else []
                yield saved + pending, writing_notice(update.tokens, update.notice)
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

    def reply_finished(self, preset: str | None, picked: Sequence[str] | None) -> tuple[Any, ...]:
        """After a reply (done, stopped or failed): the composer idle again, the model line and header anew."""
        return (*composer(busy=False), self.describe_model(), self.header(preset, picked))

    def edit_message(self, username: str | None, current: str | None, index: int | Sequence[int],
                     value: Any) -> tuple[Any, ...]:
        """Save the edited question and drop what followed it; the reply is then generated again."""
        if current is None:
            return (gr.update(), "", *COMPOSER_UNCHANGED)
        owner = self.owner(username)
        position = index if isinstance(index, int) else index[0]
        try:
            self.services.chat.edit_user_message(owner, current, position, edited_text(value))
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            gr.Warning(user_message(exc, "Editing a message"))  # the chat is shown as saved, unedited
        return (self.shown(owner, current), "", *composer(busy=True))

    @handled("Regenerating a reply", lambda message: (gr.update(), *COMPOSER_UNCHANGED))
    def drop_last_reply(self, username: str | None, current: str | None) -> tuple[Any, ...]:
        if current is None:
            return ([], *COMPOSER_UNCHANGED)
        owner = self.owner(username)
        self.services.chat.drop_last_reply(owner, current)
        return (self.shown(owner, current), *composer(busy=True))

    @handled("Switching to another version", lambda message: gr.update())
    def switch_version(self, username: str | None, current: str | None, pick: str | None) -> Any:
        """Show the version picked under a reply ("message id:version", from the page's script); the chat
        continues from it."""
        if current is None or not pick:
            return gr.update()
        owner = self.owner(username)
        message_id, _, number = pick.partition(":")
        try:
            self.services.chat.switch_version(owner, current, int(message_id), int(number))
        except ValueError:
            gr.Warning("That version could not be read: pick it again.")
        return self.shown(owner, current)

    @handled("Showing the chat's title", lambda message: gr.update())
    def refresh_list(self, username: str | None, current: str | None) -> Any:
        """The chat list after a message, with the chat's title: a new chat's, or one that follows its
        edited first message."""
        if current is None:
            return gr.update()
        owner = self.owner(username)
        return gr.update(choices=self.conversation_choices(owner), value=current)

    @handled("Showing the chat", lambda message: gr.update())
    def show_saved(self, username: str | None, current: str | None) -> Any:
        """The chat as saved: what the conversation shows again if anything emptied it in the browser alone."""
        if current is None:
            return []
        return self.shown(self.owner(username), current)

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
        self.services.tools.stop(page_key)  # a reply with tools: its loop, a waiting Run/Skip, a running call

    def show_exact_prompt(self, username: str | None, current: str | None, system: str | None,
                          draft: str | None) -> str:
        """The text the model would receive, special tokens included; or why it cannot be shown."""
        try:
            return self.services.chat.exact_prompt(self.owner(username), current, system or "", draft or "")
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return f"Cannot render the prompt: {user_message(exc, 'Showing the exact prompt')}"
