"""The Documents tab's Summarize panel: a document or whole collection summarized with page citations."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator

import gradio as gr

from webui.rag import RagError
from webui.rag.summarize import cites_anything, format_places
from webui.services import Services
from webui.services.summaries import Summary, SummaryUpdate, summary_sources
from webui.ui.chat import ChatControls, sources_view, stored_view
from webui.ui.feedback import warn

log = logging.getLogger(__name__)

# Summaries get their own queue: one runs at a time, each of its steps takes its turn at the model
# with everyone's chats, and a long summary never holds the chat queue for minutes.
SUMMARY_QUEUE = "summarize"


def done_line(summary: Summary) -> str:
    """The caption under the buttons once a summary has finished or was stopped."""
    calls = f"{summary.calls} model call{'s' if summary.calls != 1 else ''}"
    if summary.stopped:
        read = f"{len(summary.parts)} of {summary.map_steps} parts" if summary.map_steps > 1 else "the text"
        return f"**Stopped** after summarizing {read} ({calls}, {summary.seconds:.1f} s)."
    parts = f" in {summary.map_steps} parts" if summary.map_steps > 1 else " in one pass"
    return f"**Done:** {summary.passages} passages read{parts} ({calls}, {summary.seconds:.1f} s)."


def summary_markdown(summary: Summary) -> str:
    """The summary with its page citations, then the parts they point into (collapsed)."""
    if summary.stopped and not summary.text.strip():
        if not summary.parts:
            return "*Stopped before any part was summarized.*"
        with_file = summary.with_file
        lines = [f"- **[{html.escape(format_places(p.places, with_file=with_file))}]** {p.text}" for p in summary.parts]
        return "### The parts summarized before Stop\n\n" + "\n".join(lines)
    head = f"### Summary of {html.escape(summary.subject)}"
    if summary.stopped:
        head += " (stopped before the end)"
    body = summary.text.strip() or "*The model wrote no summary.*"
    if summary.text.strip() and not cites_anything(summary.text):  # small models often cite nothing
        body += "\n\n*The model cited no pages here; the sources below say which pages each part covers.*"
    return f"{head}\n\n{body}\n\n{sources_view(summary_sources(summary))}"


def progress_markdown(update: SummaryUpdate) -> str:
    return f"{html.escape(update.caption)} · {round(update.fraction * 100)}%"


def build_summary_panel(
    services: Services, *, collection: gr.Dropdown, document: gr.Dropdown, chat: ChatControls
) -> None:
    """Buttons, progress and result under the document list; events wired here."""
    with gr.Accordion("Summarize", open=True):
        gr.Markdown("Summarize the chosen document, or every document in the collection. Long texts are "
                    "read part by part and the summary cites the pages it comes from.")
        with gr.Row():
            one = gr.Button("Summarize document", size="sm")
            whole = gr.Button("Summarize collection", variant="primary", size="sm")
            stop = gr.Button("Stop summary", variant="stop", size="sm")
        progress = gr.Markdown(elem_id="summary-progress")
        result = gr.Markdown(elem_id="summary-result")
        save = gr.Button("Save to chat", size="sm", visible=False)
    last = gr.State(None)

    def run(selected: str | None, file_name: str | None, request: gr.Request) -> Iterator[tuple]:
        hidden = gr.update(visible=False)
        try:
            user = services.user(request.username)
            if not selected:
                raise RagError("Create or choose a collection first.")
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            yield f"**Could not summarize:** {html.escape(warn(exc, 'Summarizing'))}", gr.update(), None, hidden
            return
        what = file_name or f"the collection '{selected}'"
        yield f"Starting the summary of {html.escape(what)}…", "", None, hidden
        for update in services.summaries.summarize(user, request.session_hash, selected, file_name):
            if update.error:
                gr.Warning(update.error)
                yield f"**Could not summarize:** {html.escape(update.error)}", "", None, hidden
                return
            if update.done and update.summary is not None:
                summary = update.summary
                savable = gr.update(visible=bool(summary.text.strip()))
                yield done_line(summary), summary_markdown(summary), summary, savable
                return
            yield progress_markdown(update), update.text, None, hidden

    def summarize_document(selected: str | None, file_name: str | None, request: gr.Request) -> Iterator[tuple]:
        if not file_name:
            message = "Choose a document under 'Document' first, or summarize the whole collection."
            gr.Warning(message)
            yield f"**Could not summarize:** {message}", gr.update(), None, gr.update(visible=False)
            return
        yield from run(selected, file_name, request)

    def summarize_collection(selected: str | None, request: gr.Request) -> Iterator[tuple]:
        yield from run(selected, None, request)

    def stop_summary(request: gr.Request) -> None:
        services.summaries.stop(request.session_hash)

    chat_outputs = [chat.conversation_id, chat.conversations, chat.chatbot]

    def save_summary(summary: Summary | None, request: gr.Request):
        unchanged = [gr.update() for _ in chat_outputs]
        try:
            user = services.user(request.username)
            if summary is None:
                raise RagError("There is no summary to save yet: summarize a document first.")
            conversation = services.summaries.save_to_chat(user, summary)
            messages = services.chat.messages(user.id, conversation)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return f"**Not saved:** {html.escape(warn(exc, 'Saving a summary to the chat'))}", *unchanged
        gr.Info(f"Saved to the chat as 'Summary of {summary.subject}'.")
        line = f"Saved to the chat as **Summary of {html.escape(summary.subject)}**: open the Chat tab."
        choices = [(c.title, c.id) for c in services.chat.conversations(user.id)]
        return line, conversation, gr.update(choices=choices, value=conversation), stored_view(messages)

    events = dict(outputs=[progress, result, last, save], concurrency_id=SUMMARY_QUEUE, concurrency_limit=1)
    one.click(summarize_document, [collection, document], **events)
    whole.click(summarize_collection, [collection], **events)
    stop.click(stop_summary, None, None, queue=False)
    save.click(save_summary, [last], [progress, *chat_outputs], queue=False)
