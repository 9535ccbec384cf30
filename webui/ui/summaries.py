"""The Documents tab's Summarize panel: a document or whole collection summarized with page citations."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import gradio as gr

from webui.errors import UserError
from webui.services import Services
from webui.services.summaries import Summary, SummaryUpdate, summary_sources
from webui.ui.chat import ChatControls, sources_view, stored_view
from webui.ui.feedback import as_user, handled

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
        lines = [f"- **[{html.escape(part.citation)}]** {part.text}" for part in summary.cited_parts]
        return "### The parts summarized before Stop\n\n" + "\n".join(lines)
    head = f"### Summary of {html.escape(summary.subject)}"
    if summary.stopped:
        head += " (stopped before the end)"
    body = summary.text.strip() or "*The model wrote no summary.*"
    if summary.text.strip() and not summary.cites_pages:
        body += "\n\n*The model cited no pages here; the sources below say which pages each part covers.*"
    return f"{head}\n\n{body}\n\n{sources_view(summary_sources(summary))}"


def progress_markdown(update: SummaryUpdate) -> str:
    return f"{html.escape(update.caption)} · {round(update.fraction * 100)}%"


def _not_summarized(message: str) -> tuple[Any, ...]:
    """Outputs (progress, result, last summary, Save button) when a summary cannot run."""
    return f"**Could not summarize:** {html.escape(message)}", gr.update(), None, gr.update(visible=False)


class SummaryHandlers:
    """What the panel's buttons do, for a user name, the page session and the picked collection/document.

    ``session`` is the page session's key: Stop ends the summary this page started, nobody else's.
    """

    def __init__(self, services: Services) -> None:
        self.services = services

    @handled("Summarizing", _not_summarized)
    def summarize_document(
        self, username: str | None, session: str, selected: str | None, file_name: str | None
    ) -> Iterator[tuple[Any, ...]]:
        if not file_name:
            raise UserError("Choose a document under 'Document' first, or summarize the whole collection.")
        yield from self._summarize(username, session, selected, file_name)

    @handled("Summarizing", _not_summarized)
    def summarize_collection(self, username: str | None, session: str, selected: str | None) -> Iterator[tuple[Any, ...]]:
        yield from self._summarize(username, session, selected, None)

    def _summarize(
        self, username: str | None, session: str, selected: str | None, file_name: str | None
    ) -> Iterator[tuple[Any, ...]]:
        """Progress while it runs, then the summary; an error the service reports ends it with its sentence."""
        user = self.services.user(username)
        if not selected:
            raise UserError("Create or choose a collection first.")
        hidden = gr.update(visible=False)
        what = file_name or f"the collection '{selected}'"
        yield f"Starting the summary of {html.escape(what)}…", "", None, hidden
        for update in self.services.summaries.summarize(user, session, selected, file_name):
            if update.error:
                gr.Warning(update.error)
                yield f"**Could not summarize:** {html.escape(update.error)}", "", None, hidden
                return
            if update.done and update.summary is not None:
                summary = update.summary
                yield done_line(summary), summary_markdown(summary), summary, gr.update(visible=bool(summary.text.strip()))
                return
            yield progress_markdown(update), update.text, None, hidden

    def stop_summary(self, session: str) -> None:
        self.services.summaries.stop(session)

    @handled("Saving a summary to the chat",
             lambda message: (f"**Not saved:** {html.escape(message)}", gr.update(), gr.update(), gr.update()))
    def save_summary(self, username: str | None, summary: Summary | None) -> tuple[Any, ...]:
        """Save it as a new chat and open that chat (its id, the conversation list, the messages)."""
        user = self.services.user(username)
        if summary is None:
            raise UserError("There is no summary to save yet: summarize a document first.")
        conversation = self.services.summaries.save_to_chat(user, summary)
        messages = self.services.chat.messages(user.id, conversation)
        gr.Info(f"Saved to the chat as 'Summary of {summary.subject}'.")
        line = f"Saved to the chat as **Summary of {html.escape(summary.subject)}**: open the Chat tab."
        choices = [(c.title, c.id) for c in self.services.chat.conversations(user.id)]
        return line, conversation, gr.update(choices=choices, value=conversation), stored_view(messages)


def primary_summary(file_name: str | None) -> tuple[Any, Any]:
    """Summarize document is the primary button while a document is picked, Summarize collection otherwise."""
    picked = bool(file_name)
    return (gr.update(variant="primary" if picked else "secondary"),
            gr.update(variant="secondary" if picked else "primary"))


def build_summary_panel(
    services: Services, *, collection: gr.Dropdown, document: gr.Dropdown, chat: ChatControls
) -> None:
    """Buttons, progress and result under the document list; events wired here."""
    with gr.Accordion("Summarize", open=True):
        gr.Markdown("Summarize the chosen document, or every document in the collection. Long texts are "
                    "read part by part and the summary cites the pages it comes from.")
        with gr.Row():
            # The primary one follows the Document picker: the document when one is picked, else the collection.
            one = gr.Button("Summarize document", size="sm", elem_id="summarize-document")
            whole = gr.Button("Summarize collection", variant="primary", size="sm", elem_id="summarize-collection")
            stop = gr.Button("Stop summary", variant="stop", size="sm")
        progress = gr.Markdown(elem_id="summary-progress")
        result = gr.Markdown(elem_id="summary-result")
        save = gr.Button("Save to chat", size="sm", visible=False)
    last = gr.State(None)
    handlers = SummaryHandlers(services)

    # These events need the page session too (for Stop), which as_user does not pass.
    def summarize_document(selected: str | None, file_name: str | None, request: gr.Request) -> Iterator[tuple]:
        yield from handlers.summarize_document(request.username, request.session_hash, selected, file_name)

    def summarize_collection(selected: str | None, request: gr.Request) -> Iterator[tuple]:
        yield from handlers.summarize_collection(request.username, request.session_hash, selected)

    def stop_summary(request: gr.Request) -> None:
        handlers.stop_summary(request.session_hash)

    events = dict(outputs=[progress, result, last, save], concurrency_id=SUMMARY_QUEUE, concurrency_limit=1)
    document.change(primary_summary, [document], [one, whole], queue=False)
    one.click(summarize_document, [collection, document], **events)
    whole.click(summarize_collection, [collection], **events)
    stop.click(stop_summary, None, None, queue=False)
    saved = save.click(as_user(handlers.save_summary), [last],
                       [progress, chat.conversation_id, chat.conversations, chat.chatbot], queue=False)
    chat.reopen(saved)  # the new chat opens as picked in the list: plain, no collections, its header
