"""The chat sidebar's search box, and Export (Markdown and JSON downloads) and Import (a JSON upload) of a chat.

The chat tab places the controls (:func:`search_box`, :func:`transfer_controls`) and hands over its
list, open chat and system prompt (:class:`ChatLinks`); :func:`wire_conversation_tools` does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.errors import UserError
from webui.services import Services
from webui.ui.feedback import as_user, handled
from webui.ui.uploads import discard_uploads, uploaded_paths


class NoChatOpen(UserError):
    """Export was pressed with no chat open (a new chat is saved with its first message)."""

    def __str__(self) -> str:
        return "Open a chat from the list first: the export is of the chat shown."


class NoFileUploaded(UserError):
    """The import event came without a file."""

    def __str__(self) -> str:
        return "Choose a .json file to import."


@dataclass
class ChatTransfer:
    """The Export and Import controls, under the conversation list."""

    export: gr.Button
    markdown: gr.DownloadButton  # the two downloads, shown after Export
    json: gr.DownloadButton
    upload: gr.UploadButton
    status: gr.Markdown


@dataclass
class ChatLinks:
    """What the chat tab hands over: its list, the open chat, the system prompt, and how it opens a chat."""

    conversation_id: gr.State
    conversation_list: gr.Radio
    system_prompt: gr.Textbox
    preset: gr.State  # the preset applied, which the opened chat's header names
    open_chat: Callable[..., Any]  # the chat tab's event that opens a chat: (its id, the preset, the request)
    opened: Sequence[Any]  # that event's outputs


def search_box() -> gr.Textbox:
    """The search box, placed above the conversation list."""
    return gr.Textbox(label="Search chats", placeholder="Words in a title or message", max_lines=1,
                      elem_id="conversation-search")


def transfer_controls() -> ChatTransfer:
    """Export and Import in a closed accordion, placed under the conversation list."""
    with gr.Accordion("Export or import a chat", open=False, elem_id="conversation-transfer"):
        export = gr.Button("Export this chat", size="sm", elem_id="conversation-export")
        with gr.Row():
            markdown = gr.DownloadButton("⇣ Markdown", size="sm", visible=False, min_width=80,
                                         elem_id="conversation-export-markdown")
            json = gr.DownloadButton("⇣ JSON", size="sm", visible=False, min_width=80,
                                     elem_id="conversation-export-json")
        upload = gr.UploadButton("Import a chat (.json)", file_types=[".json"], type="filepath", size="sm",
                                 elem_id="conversation-import")
        gr.Markdown("A JSON exported here, from Open WebUI, or ChatGPT's conversations.json.")
        status = gr.Markdown(elem_id="conversation-transfer-status")
    return ChatTransfer(export, markdown, json, upload, status)


def counted(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def choice_label(title: str, snippet: str) -> str:
    """A search hit as the list shows it: the title, then the matching text."""
    return f"{title} — {snippet}" if snippet else title


class ConversationHandlers:
    """What search, Export and Import do, for a user name and the form's values (testable without a page)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def owner(self, username: str | None) -> str:
        return self.services.user(username).id

    @handled("Searching the chats", lambda message: gr.update())
    def search_conversations(self, username: str | None, text: str | None, current: str | None) -> Any:
        """The list filtered to the chats holding every word; an empty box lists every chat again."""
        hits = self.services.conversations.search(self.owner(username), text or "")
        choices = [(choice_label(h.conversation.title, h.snippet), h.conversation.id) for h in hits]
        shown = {h.conversation.id for h in hits}
        return gr.update(choices=choices, value=current if current in shown else None)

    @handled("Exporting a chat", lambda message: (gr.update(value=None, visible=False),
                                                  gr.update(value=None, visible=False), f"**Not exported:** {message}"))
    def export_conversation(
        self, username: str | None, current: str | None, system_prompt: str | None
    ) -> tuple[Any, ...]:
        """The open chat as Markdown and JSON files to download; the JSON keeps the system prompt too."""
        if not current:
            raise NoChatOpen()
        owner = self.owner(username)
        markdown, exported = self.services.conversations.export_files(owner, current, system_prompt or "")
        return (gr.update(value=str(markdown), visible=True), gr.update(value=str(exported), visible=True),
                "Ready: Markdown to read or share, JSON to import again.")

    @handled("Importing a chat", lambda message: (None, gr.update(), gr.update(), gr.update(), gr.update(),
                                                  f"**Not imported:** {message}"))
    def import_conversation(self, username: str | None, upload: Any, system_prompt: str | None) -> tuple[Any, ...]:
        """Import an uploaded export as new chats; the search is cleared and the list shows every chat,
        the new one picked (and made the open chat at once, so the search that the cleared box
        starts keeps it picked). An export's own system prompt replaces *system_prompt* in its box."""
        owner = self.owner(username)
        paths = uploaded_paths(upload)
        if not paths:
            raise NoFileUploaded()
        try:
            result = self.services.conversations.import_file(owner, paths[0])
        finally:
            discard_uploads(paths)  # the upload's copy holds the chat's text: not kept twice
        first = result.conversations[0]
        everything = self.services.conversations.search(owner, "")
        choices = [(hit.conversation.title, hit.conversation.id) for hit in everything]
        messages = counted(result.message_count, "message")
        if len(result.conversations) == 1:
            status = f"Imported **{first.title}** ({messages}) from {result.source}."
        else:
            status = f"Imported {counted(len(result.conversations), 'chat')} ({messages}) from {result.source}."
        if result.skipped:
            status += f" Left out {counted(result.skipped, 'chat')} without a message."
        prompt = gr.update()
        if result.system_prompt.strip() and result.system_prompt.strip() != (system_prompt or "").strip():
            prompt = gr.update(value=result.system_prompt)
            status += " Its system prompt is now in *System prompt and sampling*."
        return first.id, first.id, gr.update(choices=choices, value=first.id), "", prompt, status


def open_imported(open_chat: Callable[..., Any], outputs: int) -> Callable[..., Any]:
    """The chat tab's open event for the chat just imported; nothing changes when the import failed."""

    def open_imported_chat(imported: str | None, preset: str | None, request: gr.Request) -> Any:
        if not imported:
            return [gr.update()] * outputs
        return open_chat(imported, preset, request)

    return open_imported_chat


def wire_conversation_tools(services: Services, search: gr.Textbox, transfer: ChatTransfer, links: ChatLinks) -> None:
    """Search filters the list as the user types; Export writes the downloads; Import adds and opens the chat."""
    handlers = ConversationHandlers(services)
    imported = gr.State(None)
    # .change, not .input: Gradio sends .input on key presses only, so a paste or Backspace would not search.
    search.change(as_user(handlers.search_conversations), [search, links.conversation_id], [links.conversation_list],
                  queue=False, trigger_mode="always_last")
    transfer.export.click(as_user(handlers.export_conversation), [links.conversation_id, links.system_prompt],
                          [transfer.markdown, transfer.json, transfer.status], queue=False)
    transfer.upload.upload(
        as_user(handlers.import_conversation), [transfer.upload, links.system_prompt],
        [imported, links.conversation_id, links.conversation_list, search, links.system_prompt, transfer.status],
        queue=False,
    ).then(open_imported(links.open_chat, len(links.opened)), [imported, links.preset], list(links.opened),
           queue=False)
