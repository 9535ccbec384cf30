"""The Documents tab's retrieval settings: chunk size, overlap, passages (k) and cut-off per collection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from webui.errors import UserError
from webui.services import Services
from webui.services.types import MAX_CHUNK_TOKENS, MAX_K, MIN_CHUNK_TOKENS, RetrievalSettings
from webui.ui.feedback import as_user, handled

NOTE = (
    "Search is hybrid: meaning (MiniLM vectors) and exact words (BM25 keywords, so flags, variables "
    "and file names are found as typed). Chunk size and overlap apply to files added from now on."
)


@dataclass(frozen=True)
class RetrievalForm:
    """The accordion's four boxes as the page sends them: numbers, or None for an emptied box."""

    chunk: float | None = None
    overlap: float | None = None
    k: float | None = None
    cut_off: float | None = None

    def settings(self) -> RetrievalSettings:
        """The form's values as settings; an empty box keeps the default."""
        default = RetrievalSettings()
        return RetrievalSettings(
            chunk_tokens=int(self.chunk) if self.chunk is not None else default.chunk_tokens,
            overlap_tokens=int(self.overlap) if self.overlap is not None else default.overlap_tokens,
            k=int(self.k) if self.k is not None else default.k,
            min_score=float(self.cut_off) if self.cut_off is not None else default.min_score,
        )


def form_values(settings: RetrievalSettings) -> list[Any]:
    """The four boxes' values for settings, in the order the accordion shows them."""
    return [settings.chunk_tokens, settings.overlap_tokens, settings.k, settings.min_score]


UNCHANGED = 4  # boxes left as they are when nothing is shown or saved


class RetrievalSettingsHandlers:
    """What the accordion's events do, for a user name and the chosen collection."""

    def __init__(self, services: Services) -> None:
        self.services = services

    # A pick is not a request to see errors: the event runs unqueued, so the sentence is only logged.
    @handled("Showing the retrieval settings", lambda message: [gr.update()] * UNCHANGED)
    def show(self, username: str | None, collection: str | None) -> list[Any]:
        """The chosen collection's settings in the boxes; none chosen leaves them as they are."""
        if not collection:
            return [gr.update()] * UNCHANGED
        owner = self.services.user(username).id
        return form_values(self.services.document_actions.retrieval_settings(owner, collection))

    @handled("Saving the retrieval settings", lambda message: [gr.update()] * UNCHANGED)
    def store(self, username: str | None, collection: str | None, form: RetrievalForm) -> list[Any]:
        """Save the form for the collection; the boxes then show what was kept."""
        owner = self.services.user(username).id
        if not collection:
            raise UserError("Choose a collection first.")
        saved = self.services.document_actions.update_retrieval_settings(owner, collection, form.settings())
        gr.Info(f"Saved the retrieval settings of '{collection}'.")
        return form_values(saved)


def build_retrieval_settings(services: Services, collection: gr.Dropdown) -> None:
    """An accordion under the collection picker; it follows the chosen collection."""
    default = RetrievalSettings()
    with gr.Accordion("Retrieval settings", open=False, elem_id="retrieval-settings"):
        gr.Markdown(NOTE)
        chunk = gr.Number(default.chunk_tokens, label="Chunk size (tokens)", precision=0,
                          minimum=MIN_CHUNK_TOKENS, maximum=MAX_CHUNK_TOKENS, elem_id="rs-chunk")
        overlap = gr.Number(default.overlap_tokens, label="Overlap (tokens)", precision=0,
                            minimum=0, maximum=MAX_CHUNK_TOKENS // 2, elem_id="rs-overlap")
        k = gr.Number(default.k, label="Passages per question (k)", precision=0, minimum=1,
                      maximum=MAX_K, elem_id="rs-k")
        cut_off = gr.Number(default.min_score, label="Relevance cut-off (0-1, higher = stricter)",
                            minimum=0, maximum=1, step=0.01, elem_id="rs-cut-off")
        save = gr.Button("Save retrieval settings", size="sm", elem_id="rs-save")
    fields = [chunk, overlap, k, cut_off]
    handlers = RetrievalSettingsHandlers(services)

    # Gradio passes each box as an argument of its own; the handler takes them as one form.
    def store(chosen: str | None, chunk_value: float | None, overlap_value: float | None,
              k_value: float | None, cut_off_value: float | None, request: gr.Request) -> list[Any]:
        form = RetrievalForm(chunk_value, overlap_value, k_value, cut_off_value)
        return handlers.store(request.username, chosen, form)

    collection.change(as_user(handlers.show), [collection], fields, queue=False)
    save.click(store, [collection, *fields], fields)  # queued: toasts travel on the queue
