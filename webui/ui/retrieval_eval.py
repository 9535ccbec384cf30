"""The Documents tab's "Measure retrieval" panel: a question CSV in, hit@1, hit@5, MRR and the missed questions out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from webui.errors import UserError
from webui.services import Services
from webui.services.retrieval_eval import (
    MAX_QUESTIONS,
    MISSED_HEADERS,
    SCORE_HEADERS,
    missed_rows,
    score_rows,
    summary_line,
)
from webui.ui.feedback import handled
from webui.ui.uploads import uploaded_paths

HELP = (
    f"Upload a CSV (UTF-8, at most {MAX_QUESTIONS} questions) with a `question` column and an `expected_text` and/or "
    "`expected_file` column: a question counts as answered by a passage of its expected file that "
    "contains its expected text (spacing and case do not matter). The collection's current settings "
    "are measured beside the choice you pick. A chunk-size choice chunks the collection's files again "
    "in a hidden copy (removed afterwards; the collection is not changed), so it takes about as long "
    "as adding them did."
)

ProgressReport = Callable[[float, str], None]  # a fraction done and a caption, e.g. a gr.Progress


class RetrievalEvalHandlers:
    """What the panel's Run does, for a user name and the form's values (testable without a page)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    # A refusal keeps the tables of the last run: nothing shown is lost to a bad file.
    @handled("Measuring retrieval", lambda message: (f"**Not measured:** {message}", gr.update(), gr.update()))
    def run(
        self, username: str | None, collection: str | None, upload: str | None, alternative: str | None,
        progress: ProgressReport | None = None,
    ) -> tuple[Any, ...]:
        """The summary line, the scores table and the missed-questions table for the chosen collection."""
        user = self.services.user(username)
        if not collection:
            raise UserError("Choose a collection to measure first.")
        paths = uploaded_paths(upload)
        if not paths:
            raise UserError("Choose a question CSV first (the example shows its columns).")
        if not alternative:
            raise UserError("Choose what to compare the current settings with.")
        evaluation = self.services.document_actions.evaluate_retrieval(
            user, collection, paths[0], alternative, progress=progress)
        return summary_line(evaluation), score_rows(evaluation), missed_rows(evaluation)

    def compare_choices(self, current: str | None) -> Any:
        """The Compare list as it is now: a reranker picked or removed in the Models tab adds or
        drops "Hybrid without the reranker" (the current pick kept while it is still offered)."""
        choices = self.services.document_actions.retrieval_choices()
        return gr.update(choices=choices, value=current if current in choices else choices[0])


def build_retrieval_eval(services: Services, collection: gr.Dropdown) -> None:
    """A closed accordion measuring the chosen collection; placed under the document list."""
    documents = services.document_actions
    choices = documents.retrieval_choices()
    with gr.Accordion("Measure retrieval", open=False, elem_id="retrieval-eval") as panel:
        gr.Markdown(HELP)
        with gr.Row():
            questions = gr.File(label="Question CSV", file_types=[".csv"], type="filepath",
                                elem_id="eval-questions", scale=3)
            with gr.Column(scale=2, min_width=200):
                gr.DownloadButton("⇣ Example CSV", value=str(documents.example_questions_file()), size="sm",
                                  elem_id="eval-example")
                alternative = gr.Dropdown(label="Compare with", choices=choices, value=choices[0],
                                          elem_id="eval-alternative")
                run = gr.Button("Run", variant="primary", size="sm", elem_id="eval-run")
        status = gr.Markdown(elem_id="eval-status")
        scores = gr.Dataframe(headers=SCORE_HEADERS, value=[], interactive=False, wrap=True,
                              label="Scores (over the first 10 passages)", elem_id="eval-scores")
        missed = gr.Dataframe(headers=MISSED_HEADERS, value=[], interactive=False, wrap=True,
                              label="Questions not answered by the first passage", elem_id="eval-missed")
    handlers = RetrievalEvalHandlers(services)

    # Gradio hands a progress bar only to a parameter that defaults to one, which as_user cannot pass on.
    def measure(chosen: str | None, upload: str | None, other: str | None, request: gr.Request,
                progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        return handlers.run(request.username, chosen, upload, other,
                            lambda fraction, caption: progress(fraction, desc=caption))

    run.click(measure, [collection, questions, alternative], [status, scores, missed], show_progress_on=[status])
    panel.expand(handlers.compare_choices, [alternative], [alternative], queue=False)
