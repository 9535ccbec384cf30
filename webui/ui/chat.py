"""The Chat tab: saved conversations, streaming replies, Send/Stop/Regenerate/Clear, sampling controls."""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.engine import SamplingParams
from webui.history import ConversationNotFound, HistoryError, StoredMessage
from webui.services import DocumentQuery, ReplyUpdate, Services
from webui.services.chat import DEFAULT_PASSAGES, sources_meta
from webui.services.types import DEFAULT_MIN_SCORE
from webui.ui.conversations import ChatLinks, search_box, transfer_controls, wire_conversation_tools
from webui.ui.feedback import user_message, warn

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
    documents: gr.Dropdown  # collections the next message is answered from
    # The open conversation, so another tab (a saved summary) can open one it just made.
    conversation_id: gr.State | None = None
    conversations: gr.Radio | None = None
    chatbot: gr.Chatbot | None = None


def generation_slots(services: Services) -> int:
    """Model events Gradio runs at once: as many as the engine decodes together. More would only wait in
    the engine's line, where Gradio cannot show their position. With no model loaded yet: up to 4."""
    return services.engine.parallel or 4


def stats_line(stats: dict[str, Any]) -> str:
    """The small line under each reply: tokens, speed, time to first token."""
    line = (
        f"{stats['completion_tokens']} tokens · {stats['tokens_per_s']:.1f} tokens/s · "
        f"first token {stats['ttft_ms']:.0f} ms"
    )
    if stats.get("stopped_by_user"):
        line += " · stopped"
    return line


def sources_view(sources: Sequence[dict[str, Any]]) -> str:
    """A collapsible block listing each source (file, page or heading) with its passage text."""
    items = []
    for source in sources:
        text = html.escape(" ".join(str(source.get("text", "")).split()))
        citation = html.escape(str(source.get("citation") or source.get("file_name", "")))
        items.append(f"<p><b>[{source.get('number')}] {citation}</b><br>{text}</p>")
    files = ", ".join(dict.fromkeys(html.escape(str(s.get("file_name", ""))) for s in sources))
    return (f"<details class=\"sources\"><summary>Sources: {files}</summary>\n"
            + "\n".join(items) + "\n</details>")


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


INCOMPLETE_NOTE = "unfinished reply: it was cut off before its end"


def message_view(
    role: str, content: str, stats: dict[str, Any] | None = None, sources: Sequence[dict[str, Any]] | None = None,
    *, incomplete: bool = False,
) -> dict[str, str]:
    """A chatbot message; a reply is followed by its sources and stats, which the model never sees."""
    if sources:
        content = f"{content}\n\n{sources_view(sources)}"
    if stats:
        content = f"{content}\n\n<sub>{stats_line(stats)}</sub>"
    if incomplete:  # saved while it streamed, and the server stopped (or failed) before its end
        content = f"{content}\n\n<sub>{INCOMPLETE_NOTE}</sub>"
    return {"role": role, "content": content}


def stored_view(messages: list[StoredMessage]) -> list[dict[str, str]]:
    return [message_view(m.role, m.content, m.meta.get("stats"), m.meta.get("sources"),
                         incomplete=bool(m.meta.get("incomplete")))
            for m in messages if m.role != "system"]


def edited_text(value: Any) -> str:
    """The text of an edited chatbot message, which Gradio may send as a list of content parts."""
    if isinstance(value, list):
        return "\n".join(edited_text(part) for part in value)
    if isinstance(value, dict):
        return str(value.get("text") or value.get("content") or "")
    return "" if value is None else str(value)


def build_chat_tab(services: Services, blocks: gr.Blocks) -> ChatControls:
    conversation_id = gr.State(None)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=220):
            new_chat = gr.Button("New chat", variant="secondary")
            search = search_box()
            conversation_list = gr.Radio(label="Conversations", choices=[], elem_id="conversations")
            with gr.Accordion("Rename or delete this chat", open=False):
                title = gr.Textbox(label="Title", max_lines=1)
                rename = gr.Button("Rename", size="sm")
                delete = gr.Button("Delete chat", size="sm", variant="stop")
                confirm_delete = gr.Button("Yes, delete this chat", size="sm", variant="stop", visible=False)
            transfer = transfer_controls()
        with gr.Column(scale=4):
            model_line = gr.Markdown(elem_id="model-line")
            chatbot = gr.Chatbot(
                label="Conversation", height=500, buttons=["copy"], elem_id="chatbot",
                feedback_options=None, placeholder="Type a message below and press Send.",
                editable="user",  # edit one of your messages, and the reply is written again from there
            )
            notice = gr.Markdown(elem_id="chat-notice")
            with gr.Row(equal_height=False):
                documents = gr.Dropdown(
                    label="Documents", choices=[], value=[], multiselect=True, scale=6, elem_id="chat-documents",
                    info="Answer from these collections (add files in the Documents tab); "
                         "leave empty for a plain chat.",
                )
                refresh_documents = gr.Button("↻ Refresh", size="sm", scale=1, min_width=90)
            with gr.Row():
                # lines=1 with room to grow: Gradio then sends on Enter, and Shift+Enter is a new line
                # (a multi-line box does the opposite).
                message = gr.Textbox(
                    label="Message", placeholder="Ask anything… (Enter sends, Shift+Enter starts a new line)",
                    lines=1, max_lines=12, scale=6, elem_id="message", autofocus=True,
                )
                with gr.Column(scale=1, min_width=140):
                    send = gr.Button("Send", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
            with gr.Row():
                regenerate = gr.Button("Regenerate", size="sm")
                clear = gr.Button("Clear", size="sm", elem_id="chat-clear")
            with gr.Row(visible=False) as confirm_clear_row:
                gr.Markdown("Clear every message of this chat? This cannot be undone.")
                confirm_clear = gr.Button("Yes, clear this chat", size="sm", variant="stop",
                                          elem_id="chat-confirm-clear")
                cancel_clear = gr.Button("Cancel", size="sm", elem_id="chat-cancel-clear")
            with gr.Accordion("System prompt and sampling", open=False):
                system_prompt = gr.Textbox(label="System prompt", lines=3, value="You are a helpful assistant.")
                defaults = SamplingParams()
                with gr.Row():
                    temperature = gr.Slider(0, 2, value=defaults.temperature, step=0.05, label="Temperature",
                                            elem_id="temperature")
                    top_p = gr.Slider(0, 1, value=defaults.top_p, step=0.01, label="Top-p")
                    top_k = gr.Slider(0, 200, value=defaults.top_k, step=1, label="Top-k")
                    min_p = gr.Slider(0, 1, value=defaults.min_p, step=0.01, label="Min-p")
                with gr.Row():
                    repeat_penalty = gr.Slider(1, 2, value=defaults.repeat_penalty, step=0.01, label="Repeat penalty")
                    max_tokens = gr.Slider(16, 4096, value=defaults.max_tokens, step=16, label="Max new tokens",
                                           elem_id="max-tokens")
                    seed = gr.Number(value=defaults.seed, precision=0, label="Seed (-1 = random)")
                with gr.Row():
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

    controls = ChatControls(system_prompt, temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed,
                            documents, conversation_id, conversation_list, chatbot)
    sampling_inputs = [system_prompt, temperature, top_p, top_k, min_p, repeat_penalty, max_tokens, seed]

    def owner_of(request: gr.Request) -> str:
        return services.user(request.username).id

    def conversation_choices(owner: str) -> list[tuple[str, str]]:
        return [(c.title, c.id) for c in services.chat.conversations(owner)]

    def describe_model() -> str:
        info = services.models.loaded()
        if info is None:
            return "**No model loaded.** Load one in the Models tab."
        line = f"Model **{info.file}** · chat format **{info.chat_format}** ({info.chat_format_source})"
        if info.chat_format_note:
            line += f" · {info.chat_format_note}"
        return line

    def on_load(request: gr.Request):
        owner = owner_of(request)
        return (gr.update(choices=conversation_choices(owner), value=None), describe_model(),
                document_choices([], request))

    def document_choices(picked: list[str] | None, request: gr.Request):
        """The user's collections (own and shared), keeping the picks that still exist."""
        try:
            names = services.document_actions.collection_names(owner_of(request))
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Listing the collections for the chat")
            return gr.update()
        return gr.update(choices=names, value=[p for p in picked or [] if p in names])

    def open_conversation(selected: str | None, request: gr.Request):
        if not selected:
            return None, [], "", ""
        owner = owner_of(request)
        try:
            conversation = services.chat.messages(owner, selected)
            found = next((c for c in services.chat.conversations(owner) if c.id == selected), None)
            if found is None:  # deleted between the two reads
                raise ConversationNotFound(selected)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Opening a conversation")
            return None, [], "", ""
        return selected, stored_view(conversation), found.title, ""

    def add_user_message(text: str, current: str | None, request: gr.Request):
        text = (text or "").strip()
        if not text:
            return gr.update(), current, gr.update(), gr.update()
        owner = owner_of(request)
        try:
            try:
                current = services.chat.add_user_message(owner, current, text)
            except HistoryError:
                current = services.chat.add_user_message(owner, None, text)
        except ValueError as exc:  # too long: refused before anything is saved; the text stays in the box
            raise gr.Error(str(exc)) from exc
        view = stored_view(services.chat.messages(owner, current))
        return "", current, view, gr.update(choices=conversation_choices(owner), value=current)

    def generate(current: str | None, system: str, temp: float, tp: float, tk: float, mp: float,
                 rp: float, max_new: float, seed_value: float, picked: list[str] | None,
                 use_collection_settings: bool, k: float, cut_off: float,
                 request: gr.Request) -> Iterator[tuple]:
        if current is None:
            return
        owner = owner_of(request)
        saved = stored_view(services.chat.messages(owner, current))
        if not saved or saved[-1]["role"] != "user":
            yield saved, ""
            return
        sampling = SamplingParams(
            temperature=float(temp), top_p=float(tp), top_k=int(tk), min_p=float(mp), repeat_penalty=float(rp),
            max_tokens=int(max_new), seed=int(seed_value if seed_value is not None else -1),
        )
        query = document_query(picked, use_collection_settings, k, cut_off)
        update: ReplyUpdate | None = None
        for update in services.chat.reply_in(owner, request.session_hash, current,
                                             system_prompt=system, sampling=sampling, documents=query):
            if not update.done:
                sources = sources_meta(update.sources) if update.sources else None
                pending = [message_view("assistant", update.text, sources=sources)] if update.text else []
                yield saved + pending, update.notice or ""
        if update is None:
            return
        try:
            shown = stored_view(services.chat.messages(owner, current))
        except HistoryError:  # the chat was deleted while the reply was written: nothing to show
            shown = []
        if update.dropped:  # cleared or deleted meanwhile: no orphan reply, and no error either
            yield shown, ""
            return
        if update.error:
            gr.Warning(update.error)
            yield shown, f"**Error:** {update.error}"
            return
        yield shown, update.notice or ""

    def edit_message(current: str | None, edit: gr.EditData, request: gr.Request):
        """Save the edited question and drop what followed it; the reply is then generated again."""
        owner = owner_of(request)
        if current is None:
            return gr.update(), ""
        index = edit.index if isinstance(edit.index, int) else edit.index[0]
        try:
            services.chat.edit_user_message(owner, current, index, edited_text(edit.value))
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Editing a message")
        try:
            return stored_view(services.chat.messages(owner, current)), ""
        except HistoryError:
            return [], ""

    def drop_last_reply(current: str | None, request: gr.Request):
        if current is None:
            return []
        owner = owner_of(request)
        services.chat.drop_last_reply(owner, current)
        return stored_view(services.chat.messages(owner, current))

    def clear_chat(current: str | None, request: gr.Request):
        owner = owner_of(request)
        if current is not None:
            try:
                services.chat.clear(owner, current)
            except HistoryError:
                pass  # deleted meanwhile (another tab): it is empty either way
        return [], "", gr.update(visible=False)

    def start_new_chat():
        return None, [], "", gr.update(value=None), ""

    def rename_chat(current: str | None, new_title: str, request: gr.Request):
        owner = owner_of(request)
        if current is None or not (new_title or "").strip():
            gr.Warning("Open a conversation and type a title first.")
            return gr.update()
        services.chat.rename(owner, current, new_title.strip())
        return gr.update(choices=conversation_choices(owner), value=current)

    def delete_chat(current: str | None, request: gr.Request):
        owner = owner_of(request)
        if current is not None:
            services.chat.delete(owner, current)
        return None, [], "", gr.update(choices=conversation_choices(owner), value=None), gr.update(visible=False)

    def stop_reply(request: gr.Request) -> None:
        services.chat.stop(request.session_hash)

    def show_exact_prompt(current: str | None, system: str, draft: str, request: gr.Request) -> str:
        try:
            return services.chat.exact_prompt(owner_of(request), current, system, draft)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return f"Cannot render the prompt: {user_message(exc, 'Showing the exact prompt')}"

    blocks.load(on_load, None, [conversation_list, model_line, documents])
    def override_collection_settings() -> bool:
        """A slider the user moves applies from then on, over the collections' own settings."""
        return False

    for slider in (passages, min_score):
        slider.input(override_collection_settings, None, [collection_settings], queue=False)
    refresh_documents.click(document_choices, [documents], [documents], queue=False)
    conversation_list.input(open_conversation, [conversation_list],
                            [conversation_id, chatbot, title, notice], queue=False)
    opened = [conversation_id, chatbot, title, notice]  # what open_conversation shows
    wire_conversation_tools(services, search, transfer,
                            ChatLinks(conversation_id, conversation_list, system_prompt, open_conversation, opened))
    generate_kwargs = dict(
        fn=generate,
        inputs=[conversation_id, *sampling_inputs, documents, collection_settings, passages, min_score],
        outputs=[chatbot, notice],
        concurrency_id=GENERATE_QUEUE, concurrency_limit=generation_slots(services),
    )
    for trigger in (send.click, message.submit):
        # .success: a refused message (too long) starts no reply.
        trigger(add_user_message, [message, conversation_id], [message, conversation_id, chatbot, conversation_list],
                queue=False).success(**generate_kwargs).then(describe_model, None, model_line, queue=False)
    regenerate.click(drop_last_reply, [conversation_id], [chatbot], queue=False).then(**generate_kwargs)
    chatbot.edit(edit_message, [conversation_id], [chatbot, notice], queue=False).then(**generate_kwargs)
    clear.click(lambda: gr.update(visible=True), None, [confirm_clear_row], queue=False)
    cancel_clear.click(lambda: gr.update(visible=False), None, [confirm_clear_row], queue=False)
    confirm_clear.click(clear_chat, [conversation_id], [chatbot, notice, confirm_clear_row], queue=False)
    new_chat.click(start_new_chat, None, [conversation_id, chatbot, title, conversation_list, notice], queue=False)
    rename.click(rename_chat, [conversation_id, title], [conversation_list], queue=False)
    delete.click(lambda: gr.update(visible=True), None, [confirm_delete], queue=False)
    confirm_delete.click(delete_chat, [conversation_id],
                         [conversation_id, chatbot, title, conversation_list, confirm_delete], queue=False)
    stop.click(stop_reply, None, None, queue=False)
    show_prompt.click(show_exact_prompt, [conversation_id, system_prompt, message], [exact_prompt], queue=False)

    def chat(message: str, system_prompt: str = "", max_tokens: int = 512, temperature: float = 0.7,
             seed: int = -1, history: list[dict[str, str]] | None = None,
             request: gr.Request = None) -> Iterator[str]:
        """Stream a reply to ``message`` after an optional ``history`` of {role, content} messages.

        Nothing is saved: this is the endpoint scripts and benchmarks call.
        """
        services.user(request.username if request is not None else None)
        sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
        key = request.session_hash if request is not None and request.session_hash else "api"
        conversation = [{"role": str(m["role"]), "content": str(m["content"])} for m in history or []
                        if m.get("role") in ("user", "assistant")]
        conversation.append({"role": "user", "content": message})
        for update in services.chat.stream(key, conversation, system_prompt=system_prompt, sampling=sampling):
            if update.error:
                raise gr.Error(update.error)
            yield update.text

    gr.api(chat, api_name="chat", concurrency_id=GENERATE_QUEUE, concurrency_limit=generation_slots(services))
    return controls
