"""The Documents tab's Summarize panel: a document or whole collection summarized with page citations."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import gradio as gr

from webui.errors import UserError
from webui.services import Services
from webui.services.summaries import Summary, SummaryJob, SummaryRunning, SummaryUpdate, summary_sources
from webui.ui.chat import ChatControls, sources_view, stored_view
from webui.ui.feedback import as_user, handled

# Following a summary gets its own queue, so a page waiting on one never holds a chat's place. The
# summaries themselves run as the service's jobs (one per user); a follower only waits on updates.
SUMMARY_QUEUE = "summarize"
SUMMARY_FOLLOWERS = 32


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


def saved_line(update: SummaryUpdate) -> str:
    """Where the finished summary was saved, under its done line."""
    if update.conversation is None or update.summary is None:
        return ""
    return f" Saved to the chat as **Summary of {html.escape(update.summary.subject)}**."


def _not_summarized(message: str) -> tuple[Any, ...]:
    """Outputs (progress, result, saved chat, Open button) when a summary cannot run."""
    return f"**Could not summarize:** {html.escape(message)}", gr.update(), gr.update(), gr.update()


class SummaryHandlers:
    """What the panel's buttons do, for a user name and the picked collection/document.

    A summary runs as its user's background job; these handlers start it and follow its updates, so
    closing the page stops only the following. Stop ends the user's own running summary, nobody else's.
    """

    def __init__(self, services: Services) -> None:
        self.services = services

    @handled("Summarizing", _not_summarized)
    def summarize_document(
        self, username: str | None, selected: str | None, file_name: str | None
    ) -> Iterator[tuple[Any, ...]]:
        if not file_name:
            raise UserError("Choose a document under 'Document' first, or summarize the whole collection.")
        yield from self._start(username, selected, file_name)

    @handled("Summarizing", _not_summarized)
    def summarize_collection(self, username: str | None, selected: str | None) -> Iterator[tuple[Any, ...]]:
        yield from self._start(username, selected, None)

    @handled("Showing the last summary", _not_summarized)
    def resume(self, username: str | None) -> Iterator[tuple[Any, ...]]:
        """On page load: the user's running summary followed again, or their last finished one shown."""
        job = self.services.summaries.job(self.services.user(username))
        if job is None:
            yield gr.update(), gr.update(), gr.update(), gr.update()
            return
        yield from self._follow(job, warn=False)

    def _start(self, username: str | None, selected: str | None, file_name: str | None) -> Iterator[tuple[Any, ...]]:
        user = self.services.user(username)
        if not selected:
            raise UserError("Create or choose a collection first.")
        try:
            job = self.services.summaries.start(user, selected, file_name)
        except SummaryRunning as exc:  # one at a time: say so, and show the one running
            gr.Warning(str(exc))
            job = self.services.summaries.job(user)
            if job is None:  # it ended in between: nothing to show but the sentence
                raise
        yield from self._follow(job, warn=True)

    @staticmethod
    def _follow(job: SummaryJob, *, warn: bool) -> Iterator[tuple[Any, ...]]:
        """Progress while the job runs, then its summary (and the chat it was saved as) or its error."""
        hidden = gr.update(visible=False)
        for update in job.updates():
            if not update.done:
                yield progress_markdown(update), update.text, None, hidden
                continue
            summary = update.summary
            if update.error or summary is None:
                error = update.error or "The summary ended without a result."
                if warn:
                    gr.Warning(error)
                problem = f"**Could not summarize:** {html.escape(error)}"
                if summary is None:
                    yield problem, "", None, hidden
                    return
                yield f"{done_line(summary)} {problem}", summary_markdown(summary), None, hidden
                return
            yield (done_line(summary) + saved_line(update), summary_markdown(summary), update.conversation,
                   gr.update(visible=update.conversation is not None))

    @handled("Stopping a summary", lambda message: None)
    def stop_summary(self, username: str | None) -> None:
        self.services.summaries.stop(self.services.user(username))

    @handled("Opening a summary's chat",
             lambda message: (f"**Not opened:** {html.escape(message)}", gr.update(), gr.update(), gr.update()))
    def open_chat(self, username: str | None, conversation: str | None) -> tuple[Any, ...]:
        """Open the chat the summary was saved as (its id, the conversation list, the messages)."""
        user = self.services.user(username)
        if not conversation:
            raise UserError("There is no saved summary yet: summarize a document first.")
        messages = self.services.chat.messages(user.id, conversation)
        choices = [(c.title, c.id) for c in self.services.chat.conversations(user.id)]
        title = next((title for title, key in choices if key == conversation), "the summary")
        line = f"Opened **{html.escape(title)}** in the Chat tab."
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
                    "read part by part and the summary cites the pages it comes from. It keeps running "
                    "if you close the page, and is saved as a chat when done.")
        with gr.Row():
            # The primary one follows the Document picker: the document when one is picked, else the collection.
            one = gr.Button("Summarize document", size="sm", elem_id="summarize-document")
            whole = gr.Button("Summarize collection", variant="primary", size="sm", elem_id="summarize-collection")
            stop = gr.Button("Stop summary", variant="stop", size="sm")
        progress = gr.Markdown(elem_id="summary-progress")
        result = gr.Markdown(elem_id="summary-result")
        open_chat = gr.Button("Open in the chat", size="sm", visible=False)
    saved_chat = gr.State(None)  # the id of the chat the shown summary was saved as
    handlers = SummaryHandlers(services)

    events = dict(outputs=[progress, result, saved_chat, open_chat], concurrency_id=SUMMARY_QUEUE,
                  concurrency_limit=SUMMARY_FOLLOWERS)
    document.change(primary_summary, [document], [one, whole], queue=False)
    one.click(as_user(handlers.summarize_document), [collection, document], **events)
    whole.click(as_user(handlers.summarize_collection), [collection], **events)
    gr.on(None, as_user(handlers.resume), None, **events)  # no trigger, no inputs: when the page loads
    stop.click(as_user(handlers.stop_summary), None, None, queue=False)
    opened = open_chat.click(as_user(handlers.open_chat), [saved_chat],
                             [progress, chat.conversation_id, chat.conversations, chat.chatbot], queue=False)
    chat.reopen(opened)  # the chat opens as picked in the list: plain, no collections, its header
