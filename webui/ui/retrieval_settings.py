"""The Documents tab's retrieval settings: chunk size, overlap, passages (k) and cut-off per collection."""

from __future__ import annotations

import gradio as gr

from webui.rag import RagError
from webui.rag.settings import MAX_CHUNK_TOKENS, MAX_K, MIN_CHUNK_TOKENS, RetrievalSettings
from webui.services import Services
from webui.ui.feedback import user_message, warn

NOTE = (
    "Search is hybrid: meaning (MiniLM vectors) and exact words (BM25 keywords, so flags, variables "
    "and file names are found as typed). Chunk size and overlap apply to files added from now on."
)


def settings_from_form(chunk: float | None, overlap: float | None, k: float | None,
                       cut_off: float | None) -> RetrievalSettings:
    """The form's values as settings; an empty box keeps the default."""
    default = RetrievalSettings()
    return RetrievalSettings(
        chunk_tokens=int(chunk) if chunk is not None else default.chunk_tokens,
        overlap_tokens=int(overlap) if overlap is not None else default.overlap_tokens,
        k=int(k) if k is not None else default.k,
        min_score=float(cut_off) if cut_off is not None else default.min_score,
    )


def build_retrieval_settings(services: Services, collection: gr.Dropdown) -> None:
    """An accordion under the collection picker; it follows the chosen collection."""
    docs = services.document_actions
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

    def show(name: str | None, request: gr.Request):
        if not name:
            return [gr.update()] * len(fields)
        try:
            found = docs.retrieval_settings(services.user(request.username).id, name)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            user_message(exc, f"Showing the retrieval settings of {name!r}")  # logged only: no toast on a pick
            return [gr.update()] * len(fields)
        return [found.chunk_tokens, found.overlap_tokens, found.k, found.min_score]

    def store(name: str | None, chunk_value, overlap_value, k_value, cut_value, request: gr.Request):
        owner = services.user(request.username).id
        try:
            if not name:
                raise RagError("Choose a collection first.")
            wanted = settings_from_form(chunk_value, overlap_value, k_value, cut_value)
            saved = docs.update_retrieval_settings(owner, name, wanted)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, f"Saving the retrieval settings of {name!r}")
            return [gr.update()] * len(fields)
        gr.Info(f"Saved the retrieval settings of '{name}'.")
        return [saved.chunk_tokens, saved.overlap_tokens, saved.k, saved.min_score]

    collection.change(show, [collection], fields, queue=False)
    save.click(store, [collection, *fields], fields)  # queued: toasts travel on the queue
