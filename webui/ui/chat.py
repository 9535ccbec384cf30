"""The Chat tab's layout: the chats sidebar, the conversation with its message box, the reply settings.

What each event does lives in ``ChatHandlers`` (chat_handlers.py); how messages look in chat_view.py;
how the page fits the window (the message box pinned under the conversation, the sidebar a drawer on
a phone) in theme.py's CSS, which finds these components by their ``elem_id``; the rows' "⋯" menus and
the drawer's opening and closing in chat_script.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.services import Services
from webui.services.chat import DEFAULT_PASSAGES
from webui.services.types import DEFAULT_MIN_SCORE, SamplingParams, SamplingRequest, sampling_from
from webui.ui.chat_handlers import ChatHandlers, ReplyForm
from webui.ui.chat_script import (DRAWER_TOGGLE_ID, ROW_MENU_ID, ROW_PICK_ID, ROW_PICK_JS, VERSION_PICK_ID,
                                   VERSION_PICK_JS)
from webui.ui.chat_tools import ToolChatHandlers
from webui.ui.chat_view import sources_view, stored_view
from webui.ui.conversations import ChatLinks, search_box, transfer_controls, wire_conversation_tools
from webui.ui.feedback import as_user
from webui.ui.forms import form_components, with_form

# sources_view and stored_view live in chat_view.py; named here too for the summaries tab, which shows
# saved chats as this tab does and imports them from this module.
__all__ = ["GENERATE_QUEUE", "ChatControls", "ChatSidebar", "build_chat_tab", "generation_slots", "new_page_key",
           "sources_view", "stored_view"]

GENERATE_QUEUE = "generate"  # one queue for every event that runs the model, so users see their position


@dataclass
class ChatControls:
    """Components other tabs (presets, documents) read or set."""

    system_prompt: gr.Textbox
    temperature: gr.Slider
    top_p: gr.Slider
    top_k: gr.Slider
    min_p: gr.Slider
    repeat_penalty: gr.Slider
    max_tokens: gr.Slider
    seed: gr.Number
    documents: gr.Dropdown  # the open chat's collections (saved with it), which its replies answer from
    # The open conversation, so another tab (a saved summary) can open one it just made.
    conversation_id: gr.State | None = None
    conversations: gr.Radio | None = None
    chatbot: gr.Chatbot | None = None
    preset: gr.State | None = None  # the name of the preset applied to the chat (Presets tab), for the header
    header: gr.Markdown | None = None  # the line above the conversation: model, preset, collections
    open_chat: Any = None  # the event that opens the chat in ``conversation_id`` (see ``reopen``)
    restore_tools: Any = None  # then picks that chat's own tools again (chat_tools.py)
    refresh_header: Any = None  # the event that writes the header anew: ``event.then(**refresh_header)``

    def reopen(self, event: Any) -> Any:
        """Chain, after ``event`` set ``conversation_id``, the opening of that chat (messages, title,
        its collections, the header), as picking it in the list does."""
        opened = event.then(**self.open_chat)
        return opened.then(**self.restore_tools) if self.restore_tools else opened


@dataclass
class RowMenu:
    """The menu a row's "⋯" opens (placed beside that row by chat_script.py): Rename and Delete for its chat."""

    panel: gr.Column
    pick: gr.Button  # pressed by the page's script with the row's chat id (ROW_PICK_JS)
    picked: gr.Textbox
    chat_id: gr.State  # the chat whose row opened the menu (not necessarily the open one)
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    confirm_row: gr.Row
    confirm_delete: gr.Button
    close: gr.Button


@dataclass
class ChatSidebar:
    """The chats column: New chat, search, the list with a menu on each row, export and import; a drawer
    that the header's "Chats" opens on a phone."""

    new_chat: gr.Button
    conversations: gr.Radio
    row_menu: RowMenu
    search: gr.Textbox  # search and transfer: webui/ui/conversations.py
    transfer: Any


@dataclass
class ReplySettings:
    """The settings column's components; ``form_inputs`` are those a reply is written with."""

    documents: gr.Dropdown
    refresh_documents: gr.Button
    tools: gr.Dropdown
    tool_first: gr.Checkbox
    tools_note: gr.Markdown
    system_prompt: gr.Textbox
    temperature: gr.Slider
    top_p: gr.Slider
    top_k: gr.Slider
    min_p: gr.Slider
    repeat_penalty: gr.Slider
    max_tokens: gr.Slider
    seed: gr.Number
    collection_settings: gr.Checkbox
    passages: gr.Slider
    min_score: gr.Slider
    think: gr.Checkbox
    show_prompt: gr.Button
    exact_prompt: gr.Textbox
    model_line: gr.Markdown

    def form_inputs(self) -> list[Any]:
        """The components, in ReplyForm's field order."""
        return form_components(
            ReplyForm, system_prompt=self.system_prompt, temperature=self.temperature, top_p=self.top_p,
            top_k=self.top_k, min_p=self.min_p, repeat_penalty=self.repeat_penalty, max_tokens=self.max_tokens,
            seed=self.seed, collections=self.documents, use_collection_settings=self.collection_settings,
            passages=self.passages, min_score=self.min_score, think=self.think, tools=self.tools,
            tool_first=self.tool_first,
        )


def generation_slots(services: Services) -> int:
    """Model events Gradio runs at once: as many as the engine decodes together. More would only wait in
    the engine's line, where Gradio cannot show their position. With no model loaded yet: up to 4."""
    return services.models.parallel or 4


def new_page_key() -> str:
    """A key per open page, so Stop stops the reply this page started (a ``gr.State`` calls it on load)."""
    return uuid.uuid4().hex


def build_row_menu() -> RowMenu:
    """The one menu for every row of the list, hidden until a row's "⋯" is pressed."""
    pick = gr.Button("Open the row's menu", visible="hidden", elem_id=ROW_PICK_ID)
    picked = gr.Textbox(visible="hidden", elem_id="chat-row-picked")
    chat_id = gr.State(None)
    with gr.Column(visible=False, elem_id=ROW_MENU_ID) as panel:
        title = gr.Textbox(label="Title", max_lines=1, elem_id="chat-row-title")
        with gr.Row(equal_height=True):
            rename = gr.Button("Rename", size="sm", variant="primary", elem_id="chat-row-rename")
            delete = gr.Button("Delete", size="sm", variant="stop", elem_id="chat-row-delete")
            close = gr.Button("Cancel", size="sm", elem_id="chat-row-close")
        with gr.Row(visible=False, equal_height=True, elem_id="chat-row-confirm") as confirm_row:
            gr.Markdown("Delete this chat and all its messages? This cannot be undone.")
            confirm_delete = gr.Button("Yes, delete this chat", size="sm", variant="stop",
                                       elem_id="chat-row-confirm-delete")
    return RowMenu(panel, pick, picked, chat_id, title, rename, delete, confirm_row, confirm_delete, close)


def build_chat_sidebar() -> ChatSidebar:
    """The chats column (events are wired by ``build_chat_tab``)."""
    with gr.Column(scale=1, min_width=200, elem_id="chat-sidebar"):
        new_chat = gr.Button("New chat", variant="secondary", elem_id="chat-new")
        search = search_box()
        conversations = gr.Radio(label="Conversations", choices=[], elem_id="conversations")
        row_menu = build_row_menu()
        transfer = transfer_controls()
    return ChatSidebar(new_chat, conversations, row_menu, search, transfer)


def build_reply_settings() -> ReplySettings:
    """The settings column: the collections to answer from, the system prompt and sampling, the exact prompt."""
    with gr.Column(scale=1, min_width=240, elem_id="chat-settings"):
        documents = gr.Dropdown(
            label="Documents", choices=[], value=[], multiselect=True, elem_id="chat-documents",
            info="Answer from these collections (add files in the Documents tab); leave empty for a plain chat.",
        )
        refresh_documents = gr.Button("↻ Refresh collections", size="sm", elem_id="chat-documents-refresh")
        tools = gr.Dropdown(
            label="Tools", choices=[], value=[], multiselect=True, elem_id="chat-tools",
            info="Tools the model may call in this chat (calculator, clock, your documents, MCP servers); "
                 "leave empty for a plain chat.",
        )
        # For a model that rarely calls on its own (a small one with the generic JSON format).
        tool_first = gr.Checkbox(value=False, label="Call a tool first", elem_id="chat-tool-first",
                                 info="The reply starts with a call of one of the picked tools.")
        tools_note = gr.Markdown(elem_id="chat-tools-note")
        # Shown only for a model whose template can turn thinking off (ChatHandlers.think_switch).
        think = gr.Checkbox(value=True, label="Think", visible=False, elem_id="chat-think",
                            info="Let the model think before it answers; its thinking shows folded above the reply.")
        with gr.Accordion("System prompt and sampling", open=False):
            system_prompt = gr.Textbox(label="System prompt", lines=3, value="You are a helpful assistant.")
            defaults = SamplingParams()
            temperature = gr.Slider(0, 2, value=defaults.temperature, step=0.05, label="Temperature",
                                    elem_id="temperature")
            top_p = gr.Slider(0, 1, value=defaults.top_p, step=0.01, label="Top-p")
            top_k = gr.Slider(0, 200, value=defaults.top_k, step=1, label="Top-k")
            min_p = gr.Slider(0, 1, value=defaults.min_p, step=0.01, label="Min-p")
            repeat_penalty = gr.Slider(1, 2, value=defaults.repeat_penalty, step=0.01, label="Repeat penalty")
            max_tokens = gr.Slider(16, 4096, value=defaults.max_tokens, step=16, label="Max new tokens",
                                   elem_id="max-tokens")
            seed = gr.Number(value=defaults.seed, precision=0, label="Seed (-1 = random)")
            # Checked, each collection answers with its own k and cut-off (Documents tab);
            # moving a slider unchecks it, so the sliders apply only once touched.
            collection_settings = gr.Checkbox(
                value=True, label="Use each collection's own k and cut-off (Documents tab)",
                elem_id="chat-collection-settings",
            )
            passages = gr.Slider(1, 12, value=DEFAULT_PASSAGES, step=1, elem_id="chat-passages",
                                 label="Document passages to retrieve (k)")
            min_score = gr.Slider(0, 1, value=DEFAULT_MIN_SCORE, step=0.01, elem_id="chat-min-score",
                                  label="Relevance cut-off (0-1, higher = stricter)")
        with gr.Accordion("Exact prompt", open=False):
            show_prompt = gr.Button("Show the exact prompt", size="sm")
            exact_prompt = gr.Textbox(label="What the model receives (special tokens included)", lines=12,
                                      max_lines=30, interactive=False, elem_id="exact-prompt")
        model_line = gr.Markdown(elem_id="model-line")
    return ReplySettings(documents, refresh_documents, tools, tool_first, tools_note, system_prompt, temperature,
                         top_p, top_k, min_p, repeat_penalty, max_tokens, seed, collection_settings, passages,
                         min_score, think, show_prompt, exact_prompt, model_line)


def build_chat_tab(services: Services, blocks: gr.Blocks) -> ChatControls:
    """Chats | the conversation with its message box | the reply settings; returns what other tabs use."""
    handlers = ChatHandlers(services)
    tool_handlers = ToolChatHandlers(services, handlers)
    page_key = gr.State(new_page_key)
    conversation_id = gr.State(None)
    with gr.Row(equal_height=False, elem_id="chat-page"):
        sidebar = build_chat_sidebar()
        with gr.Column(scale=4, min_width=320, elem_id="chat-main"):
            with gr.Row(equal_height=True, elem_id="chat-header-row"):
                # Shown on a phone only (theme.py), where it opens the sidebar as a drawer (chat_script.py).
                gr.Button("☰ Chats", size="sm", scale=0, min_width=90, elem_id=DRAWER_TOGGLE_ID)
                header = gr.Markdown(elem_id="chat-header")
            # Gradio's own trash icon on the chatbot would empty the view and leave the saved chat as it
            # was; it has no setting to hide it, so theme.py's CSS hides it and its event shows the saved
            # chat again. The one Clear is ours, below, with its confirmation.
            chatbot = gr.Chatbot(
                label="Conversation", buttons=["copy"], elem_id="chatbot", feedback_options=None,
                placeholder="Type a message below and press Send.",
                editable="user",  # edit one of your messages, and the reply is written again from there
            )
            notice = gr.Markdown(elem_id="chat-notice")
            # Pressed by the page's script when a version arrow under a reply is clicked (chat_script.py).
            version_pick = gr.Button("Switch version", visible="hidden", elem_id=VERSION_PICK_ID)
            picked_version = gr.Textbox(visible="hidden", elem_id="version-picked")
            # Shown while a call of a tool that is not trusted waits for the user (chat_tools.py).
            with gr.Row(visible=False, equal_height=True, elem_id="tool-confirm-row") as tool_confirm_row:
                run_call = gr.Button("Run", size="sm", variant="primary", elem_id="tool-run")
                skip_call = gr.Button("Skip", size="sm", elem_id="tool-skip")
            waiting_call = gr.Textbox(visible=False, elem_id="tool-waiting-call")
            with gr.Row(equal_height=False, elem_id="composer"):
                # The open chat's collections, as the settings column's Documents picker holds them
                # (kept alike by the events below): each a chip with its x; the list opens on "+ Documents".
                attached = gr.Dropdown(
                    label="+ Documents", choices=[], value=[], multiselect=True, scale=0, min_width=200,
                    elem_id="composer-documents",
                )
                # lines=1 with room to grow: Gradio then sends on Enter, and Shift+Enter is a new line
                # (a multi-line box does the opposite).
                message = gr.Textbox(
                    label="Message", placeholder="Ask anything… (Enter sends, Shift+Enter starts a new line)",
                    lines=1, max_lines=8, scale=6, min_width=160, elem_id="message", autofocus=True,
                    show_label=False,
                )
                with gr.Column(scale=0, min_width=96, elem_id="composer-buttons"):
                    send = gr.Button("Send", variant="primary", size="sm", elem_id="chat-send")
                    # Off until a reply is being written (composer() in chat_handlers.py turns them over).
                    stop = gr.Button("Stop", variant="stop", size="sm", elem_id="chat-stop", interactive=False)
            with gr.Row(equal_height=True, elem_id="chat-actions"):
                regenerate = gr.Button("Regenerate", size="sm")
                clear = gr.Button("Clear", size="sm", elem_id="chat-clear")
                # In the same row, so the question shows where Clear was pressed (never below the window).
                with gr.Row(visible=False, equal_height=True, elem_id="chat-confirm-clear-row") as confirm_clear_row:
                    gr.Markdown("Clear every message of this chat? This cannot be undone.")
                    confirm_clear = gr.Button("Yes, clear this chat", size="sm", variant="stop",
                                              elem_id="chat-confirm-clear")
                    cancel_clear = gr.Button("Cancel", size="sm", elem_id="chat-cancel-clear")
        settings = build_reply_settings()

    # -- events ---------------------------------------------------------------------------------
    preset = gr.State(None)  # set by the Presets tab's Apply
    documents = settings.documents
    blocks.load(as_user(handlers.on_load), None, [sidebar.conversations, settings.model_line, documents, header])
    think_switch = dict(fn=handlers.think_switch, inputs=None, outputs=[settings.think], queue=False)
    blocks.load(**think_switch)
    tools, tools_note = settings.tools, settings.tools_note
    restore_tools = dict(fn=as_user(tool_handlers.restore_tools), inputs=[conversation_id],
                         outputs=[tools, tools_note], queue=False)
    blocks.load(**restore_tools)
    chat_outputs = [conversation_id, chatbot, sidebar.conversations, notice, documents, header]
    # On a phone, New chat and picking a chat also close the drawer (in the browser: chat_script.py).
    sidebar.new_chat.click(handlers.start_new_chat, [preset], chat_outputs, queue=False).then(**restore_tools)
    opened = [conversation_id, chatbot, notice, documents, header]  # what open_conversation shows
    open_chat = dict(fn=as_user(handlers.open_conversation), inputs=[conversation_id, preset], outputs=opened,
                     queue=False)
    sidebar.conversations.input(as_user(handlers.open_conversation), [sidebar.conversations, preset], opened,
                                queue=False).then(**restore_tools)
    wire_conversation_tools(services, sidebar.search, sidebar.transfer,
                            ChatLinks(conversation_id, sidebar.conversations, settings.system_prompt, preset,
                                      as_user(handlers.open_conversation), opened))
    wire_row_menu(handlers, sidebar, conversation_id, preset, opened_outputs=[chatbot, documents, header],
                  restore_tools=restore_tools)

    for slider in (settings.passages, settings.min_score):
        slider.input(override_collection_settings, None, [settings.collection_settings], queue=False)
    settings.refresh_documents.click(as_user(handlers.document_choices), [documents], [documents], queue=False)
    # .input: only the user's own picks are saved with the chat (opening a chat sets the value too).
    documents.input(as_user(handlers.save_collections), [conversation_id, documents, preset], [header], queue=False)
    # The chip beside the message box holds the same picks: whatever sets the picker (a chat opened, New
    # chat, the Documents tab) sets the chip too, and the chip's own picks set the picker and are saved.
    # Opening the chip lists the collections anew (one made in the Documents tab since).
    documents.change(as_user(handlers.document_choices), [documents], [attached], queue=False)
    attached.focus(as_user(handlers.document_choices), [attached], [attached], queue=False)
    attached.input(as_user(handlers.document_choices), [attached], [documents], queue=False)
    attached.input(as_user(handlers.save_collections), [conversation_id, attached, preset], [header], queue=False)
    tools.input(as_user(tool_handlers.save_tools), [conversation_id, tools], None, queue=False)

    composer_outputs = [message, send, stop, regenerate]
    generate = dict(
        fn=as_user(with_form(tool_handlers.generate, ReplyForm)),
        inputs=[page_key, conversation_id, *settings.form_inputs()],
        outputs=[chatbot, notice, tool_confirm_row, waiting_call], concurrency_id=GENERATE_QUEUE,
        concurrency_limit=generation_slots(services),
    )
    # .then, which runs however the reply ended (done, stopped, failed): the composer is idle again.
    finished = dict(fn=handlers.reply_finished, inputs=[preset, documents],
                    outputs=[*composer_outputs, settings.model_line, header], queue=False)
    refresh_list = dict(fn=as_user(handlers.refresh_list), inputs=[conversation_id],
                        outputs=[sidebar.conversations], queue=False)
    for trigger in (send.click, message.submit):
        # .success: a refused message (too long, or sent while a reply is written) starts no reply.
        trigger(as_user(handlers.add_user_message), [page_key, message, conversation_id, documents],
                [message, conversation_id, chatbot, sidebar.conversations, send, stop, regenerate], queue=False,
                ).success(**refresh_list).success(**generate).then(**finished).then(**think_switch)
    regenerate.click(as_user(handlers.drop_last_reply), [conversation_id], [chatbot, *composer_outputs],
                     queue=False).then(**generate).then(**finished)

    def edit_message(current: str | None, edit: gr.EditData, request: gr.Request) -> tuple:
        """The edited message's place and text from Gradio's event data, for the handler."""
        return handlers.edit_message(request.username, current, edit.index, edit.value)

    chatbot.edit(edit_message, [conversation_id], [chatbot, notice, *composer_outputs], queue=False,
                 ).then(**refresh_list).then(**generate).then(**finished)
    # The pick comes from the page's script (a global it sets), not from a component.
    version_pick.click(as_user(handlers.switch_version), [conversation_id, picked_version], [chatbot],
                       js=VERSION_PICK_JS, queue=False)
    chatbot.clear(as_user(handlers.show_saved), [conversation_id], [chatbot], queue=False)
    clear.click(lambda: gr.update(visible=True), None, [confirm_clear_row], queue=False)
    cancel_clear.click(lambda: gr.update(visible=False), None, [confirm_clear_row], queue=False)
    confirm_clear.click(as_user(handlers.clear_chat), [conversation_id], [chatbot, notice, confirm_clear_row],
                        queue=False)
    stop.click(as_user(handlers.stop_reply), [page_key], None, queue=False)
    run_call.click(as_user(tool_handlers.run_call), [page_key, waiting_call], [tool_confirm_row, waiting_call],
                   queue=False)
    skip_call.click(as_user(tool_handlers.skip_call), [page_key, waiting_call], [tool_confirm_row, waiting_call],
                    queue=False)
    settings.show_prompt.click(as_user(handlers.show_exact_prompt), [conversation_id, settings.system_prompt, message],
                               [settings.exact_prompt], queue=False)
    build_chat_api(services)
    return ChatControls(settings.system_prompt, settings.temperature, settings.top_p, settings.top_k, settings.min_p,
                        settings.repeat_penalty, settings.max_tokens, settings.seed, settings.documents,
                        conversation_id, sidebar.conversations, chatbot, preset, header, open_chat, restore_tools,
                        dict(fn=handlers.header, inputs=[preset, documents], outputs=[header], queue=False))


def wire_row_menu(handlers: ChatHandlers, sidebar: ChatSidebar, conversation_id: gr.State, preset: gr.State, *,
                  opened_outputs: list[Any], restore_tools: dict[str, Any]) -> None:
    """A row's "⋯" opens its menu; Rename renames that row's chat; Delete asks, then deletes it (closing it
    if it was the open chat: ``opened_outputs`` are the conversation, the picker and the header)."""
    menu = sidebar.row_menu
    chatbot, documents, header = opened_outputs
    menu.pick.click(as_user(handlers.open_row_menu), [menu.picked], [menu.chat_id, menu.title, menu.panel,
                                                                     menu.confirm_row], js=ROW_PICK_JS, queue=False)
    for trigger in (menu.rename.click, menu.title.submit):
        trigger(as_user(handlers.rename_chat), [menu.chat_id, menu.title], [sidebar.conversations, menu.panel],
                queue=False)
    menu.delete.click(lambda: gr.update(visible=True), None, [menu.confirm_row], queue=False)
    menu.confirm_delete.click(
        as_user(handlers.delete_chat), [menu.chat_id, conversation_id, preset],
        [conversation_id, chatbot, sidebar.conversations, documents, header, menu.confirm_row, menu.panel],
        queue=False,
    ).then(**restore_tools)
    menu.close.click(lambda: (gr.update(visible=False),) * 2, None, [menu.panel, menu.confirm_row], queue=False)


def override_collection_settings() -> bool:
    """A slider the user moves applies from then on, over the collections' own settings."""
    return False


def build_chat_api(services: Services) -> None:
    """The public "chat" endpoint scripts and benchmarks call (scripts/bench.py); nothing is saved."""

    def chat(message: str, system_prompt: str = "", max_tokens: int = 512, temperature: float = 0.7,
             seed: int = -1, history: list[dict[str, str]] | None = None,
             request: gr.Request = None) -> Iterator[str]:
        """Stream a reply to ``message`` after an optional ``history`` of {role, content} messages.

        Nothing is saved: this is the endpoint scripts and benchmarks call.
        """
        services.user(request.username if request is not None else None)
        sampling = sampling_from(SamplingRequest(temperature=temperature, max_tokens=max_tokens, seed=seed))
        key = request.session_hash if request is not None and request.session_hash else "api"
        conversation = [{"role": str(m["role"]), "content": str(m["content"])} for m in history or []
                        if m.get("role") in ("user", "assistant")]
        conversation.append({"role": "user", "content": message})
        for update in services.chat.stream(key, conversation, system_prompt=system_prompt, sampling=sampling):
            if update.error:
                raise gr.Error(update.error)
            yield update.text

    gr.api(chat, api_name="chat", concurrency_id=GENERATE_QUEUE, concurrency_limit=generation_slots(services))
