"""Measuring a collection's retrieval on the user's own labelled questions: current settings against one alternative.

The Documents tab's "Measure retrieval" panel calls this through DocumentService; the scoring
itself is webui.rag.evaluation, shared with scripts/eval_retrieval.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from webui.auth import User
from webui.errors import UserError
from webui.rag import DocumentLibrary, Passage
from webui.rag.errors import CollectionNotFoundError
from webui.rag.evaluation import (
    HIT_AT,
    MAX_QUESTIONS,
    RANKS_LOOKED_AT,
    ChoiceResult,
    LabelledQuestion,
    QuestionFileError,
    check_question_file_size,
    measure,
    parse_questions,
)
from webui.rag.ingest import IngestProgress
from webui.rag.retrieval import RetrievalMode
from webui.rag.settings import RetrievalSettings
from webui.services.access import NotAuthorized

log = logging.getLogger(__name__)

EvaluationProgress = Callable[[float, str], None]  # a fraction done and a caption, e.g. a gr.Progress
OTHER_K = (3, 8, 10)  # the k offered beside the collection's own
# Chunk sizes offered (tokens); the default is 200, about the most all-MiniLM-L6-v2 reads whole.
OTHER_CHUNK_TOKENS = (100, 150)
__all__ = [  # MAX_QUESTIONS is re-exported for the page, which may not import webui.rag
    "MAX_QUESTIONS", "MISSED_HEADERS", "SCORE_HEADERS", "EvaluationProgress", "RetrievalChoice", "RetrievalEvaluation",
    "UnknownRetrievalChoice", "choice_named", "comparison_choices", "current_choice", "evaluate_collection",
    "missed_rows", "read_question_file", "score_rows", "summary_line",
]


class UnknownRetrievalChoice(UserError, ValueError):
    """A comparison the panel does not offer (a stale page, or a crafted request)."""


@dataclass(frozen=True)
class RetrievalChoice:
    """One way of retrieving to measure: search mode, passages given to the model, reranker or not."""

    label: str
    mode: RetrievalMode = "hybrid"
    k: int | None = None  # None: the collection's own
    rerank: bool = False
    chunk_tokens: int | None = None  # None: the collection as it is; else its files chunked again


def comparison_choices(*, reranker: bool) -> list[RetrievalChoice]:
    """What the current settings can be compared with."""
    choices = [RetrievalChoice("Vector only", "vector"), RetrievalChoice("Keyword only", "keyword")]
    if reranker:
        choices += [RetrievalChoice("Hybrid without the reranker", rerank=False)]
    choices += [RetrievalChoice(f"Hybrid, k {k}", k=k, rerank=reranker) for k in OTHER_K]
    choices += [RetrievalChoice(f"Chunks of {size} tokens (the files chunked again: slower)", rerank=reranker,
                                chunk_tokens=size) for size in OTHER_CHUNK_TOKENS]
    return choices


def choice_named(label: str, *, reranker: bool) -> RetrievalChoice:
    for choice in comparison_choices(reranker=reranker):
        if choice.label == label:
            return choice
    raise UnknownRetrievalChoice(f"'{label}' is not a retrieval choice to compare with; pick one from the list.")


def current_choice(settings: RetrievalSettings, *, reranker: bool) -> RetrievalChoice:
    """What the chat does with this collection now: hybrid, its own k and cut-off, the reranker if any."""
    reranking = ", reranker" if reranker else ""
    label = f"Current settings (hybrid, k {settings.k}, cut-off {settings.min_score:.2f}{reranking})"
    return RetrievalChoice(label, k=settings.k, rerank=reranker)


@dataclass(frozen=True)
class RetrievalEvaluation:
    """The collection's current settings and the alternative, measured on the same questions."""

    collection: str
    questions: list[LabelledQuestion]
    current: ChoiceResult
    alternative: ChoiceResult

    @property
    def results(self) -> list[ChoiceResult]:
        return [self.current, self.alternative]


def read_question_file(path: Path) -> list[LabelledQuestion]:
    """The questions of an uploaded CSV; QuestionFileError says what is wrong with it."""
    try:
        check_question_file_size(path.stat().st_size)
        return parse_questions(path.read_bytes())
    except OSError as exc:
        log.warning("could not read the question file %s: %s", path, exc)
        raise QuestionFileError("The question file could not be read; upload it again.") from exc


def evaluate_collection(
    library: DocumentLibrary,
    user: User,
    collection: str,
    questions_file: Path,
    alternative: str,
    *,
    progress: EvaluationProgress | None = None,
) -> RetrievalEvaluation:
    """Measure ``collection`` on the CSV's questions with its current settings and with ``alternative``.

    Only an admin or the collection's owner (or the admin who shared it) may measure it.
    """
    info = next((c for c in library.collections(user.id) if c.name == collection), None)
    if info is None:
        raise CollectionNotFoundError(f"There is no collection named '{collection}'.")
    if not (info.editable or user.is_admin):
        raise NotAuthorized("Only an admin or the collection's owner can measure its retrieval.")
    reranker = library.reranker is not None
    other = choice_named(alternative, reranker=reranker)
    questions = read_question_file(questions_file)
    current = current_choice(info.settings, reranker=reranker)
    results = []
    for step, choice in enumerate((current, other)):
        with _searched_as(library, user, collection, choice, progress) as (owner, name):
            k = choice.k or info.settings.k

            def retrieve(question: str, choice: RetrievalChoice = choice, k: int = k,
                         owner: str = owner, name: str = name) -> list[Passage]:
                return library.retrieve(owner, question, [name], k=max(k, RANKS_LOOKED_AT),
                                        mode=choice.mode, rerank=choice.rerank)

            def report(done: int, total: int, step: int = step, label: str = choice.label) -> None:
                if progress:
                    progress((step * total + done) / (2 * total),
                             f"{label}: question {min(done + 1, total)} of {total}")

            results.append(measure(choice.label, retrieve, questions, k=k, progress=report))
    log.info("measured retrieval of '%s' on %d questions: %s", collection, len(questions),
             "; ".join(f"{r.label} hit@1 {r.scores.hit_at_1:.3f} MRR {r.scores.mrr:.3f}" for r in results))
    return RetrievalEvaluation(collection, questions, *results)


@contextmanager
def _searched_as(library: DocumentLibrary, user: User, collection: str, choice: RetrievalChoice,
                 progress: EvaluationProgress | None) -> Iterator[tuple[str, str]]:
    """The owner and collection name a choice searches: the collection itself, or a hidden copy of
    it chunked again (removed afterwards) for a chunk-size choice."""
    if choice.chunk_tokens is None:
        yield user.id, collection
        return

    def report(step: IngestProgress) -> None:
        if progress:
            progress(0.5, f"{choice.label}: chunking file {min(step.files_done + 1, step.files_total)} "
                          f"of {step.files_total} again")

    with library.rechunked_copy(user.id, collection, choice.chunk_tokens, progress=report) as searched:
        yield searched


SCORE_HEADERS = ["Choice", "hit@1", f"hit@{HIT_AT}", "MRR", "Given to the model (k)"]
MISSED_HEADERS = ["Choice", "Question", "Expected", "Rank", "First passage"]


def score_rows(evaluation: RetrievalEvaluation) -> list[list[str]]:
    """One row per choice: hit@1, hit@5, MRR (over the first 10 passages), answers given to the model."""
    rows = []
    for result in evaluation.results:
        scores = result.scores
        rows.append([result.label, f"{scores.hit_at_1:.3f}", f"{scores.hit_at_k:.3f}", f"{scores.mrr:.3f}",
                     f"{result.reaches_model:.3f} (k {result.k})"])
    return rows


def missed_rows(evaluation: RetrievalEvaluation) -> list[list[str]]:
    """The questions whose answer is not the first passage, per choice, with where it was found."""
    return [
        [result.label, outcome.question.question, outcome.question.expected,
         str(outcome.rank) if outcome.rank else f"not in top {RANKS_LOOKED_AT}",
         outcome.best.citation if outcome.best else "no passage passed the cut-off"]
        for result in evaluation.results
        for outcome in result.missed
    ]


def summary_line(evaluation: RetrievalEvaluation) -> str:
    missed = {r.label: len(r.missed) for r in evaluation.results}
    return (f"Measured **{evaluation.collection}** on {len(evaluation.questions)} questions: "
            + "; ".join(f"{label}: {count} not answered first" for label, count in missed.items()) + ".")
