"""The Measure retrieval panel's Run with a fake Services: the scores and misses shown, and each refusal's sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.rag import Passage
from webui.rag.evaluation import measure
from webui.services.retrieval_eval import RetrievalEvaluation, read_question_file
from webui.services.types import User
from webui.ui.retrieval_eval import RetrievalEvalHandlers

from tests.unit.ui.fake_documents import FakeDocumentServices, record_toasts, team
from tests.unit.ui.test_documents_handlers import uploaded, uploads  # noqa: F401 - the upload folder fixture

UNCHANGED = {"__type__": "update"}
QUESTIONS = "question,expected_text\nWhere is the key?,boiler room\nWhen is it serviced?,in May\n"


def measuring(fake: FakeDocumentServices) -> list[tuple[str, str, str]]:
    """Give the fake a service that reads the CSV for real and finds only the key; returns its calls."""
    calls: list[tuple[str, str, str]] = []
    found = [Passage(1, "The key hangs in the boiler room.", "note.txt", None, None, 0.6, "Notes")]

    def evaluate_retrieval(user: User, collection: str, path: Path, alternative: str, *, progress=None):
        calls.append((user.id, collection, alternative))
        questions = read_question_file(path)
        results = [measure(label, lambda question: found, questions, k=5, progress=None)
                   for label in ("Current settings (hybrid, k 5, cut-off 0.21)", alternative)]
        return RetrievalEvaluation(collection, questions, *results)

    fake.document_actions.evaluate_retrieval = evaluate_retrieval  # type: ignore[attr-defined]
    return calls


def test_run_shows_each_choices_scores_and_the_questions_missed(uploads: Path) -> None:  # noqa: F811
    fake = team()
    calls = measuring(fake)
    status, scores, missed = RetrievalEvalHandlers(fake).run(
        "bob", "Notes", uploaded(uploads, "questions.csv", QUESTIONS), "Keyword only")
    assert calls == [("id-bob", "Notes", "Keyword only")]
    assert status == ("Measured **Notes** on 2 questions: Current settings (hybrid, k 5, cut-off 0.21): "
                      "1 not answered first; Keyword only: 1 not answered first.")
    assert scores == [["Current settings (hybrid, k 5, cut-off 0.21)", "0.500", "0.500", "0.500", "0.500 (k 5)"],
                      ["Keyword only", "0.500", "0.500", "0.500", "0.500 (k 5)"]]
    assert missed[0] == ["Current settings (hybrid, k 5, cut-off 0.21)", "When is it serviced?", '"in May"',
                         "not in top 10", "note.txt"]


@pytest.mark.parametrize(("collection", "csv", "alternative", "sentence"), [
    (None, QUESTIONS, "Vector only", "Choose a collection to measure first."),
    ("Notes", None, "Vector only", "Choose a question CSV first (the example shows its columns)."),
    ("Notes", QUESTIONS, None, "Choose what to compare the current settings with."),
    ("Notes", "question;expected_text\nWhy?;because\n", "Vector only",
     "The question file needs a 'question' column and an 'expected_text' or 'expected_file' column in its "
     "first line; it has: question;expected_text."),
])
def test_a_refused_run_says_why_and_keeps_the_last_tables(
    uploads: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    collection: str | None, csv: str | None, alternative: str | None, sentence: str,
) -> None:
    fake = team()
    measuring(fake)
    toasts = record_toasts(monkeypatch)
    upload = uploaded(uploads, "questions.csv", csv) if csv is not None else None
    assert RetrievalEvalHandlers(fake).run("bob", collection, upload, alternative) == (
        f"**Not measured:** {sentence}", UNCHANGED, UNCHANGED)
    assert toasts == [("warning", sentence)]


def test_the_compare_list_follows_a_reranker_picked_or_removed_since_the_page_loaded() -> None:
    fake = team()
    offered = ["Vector only", "Hybrid without the reranker", "Hybrid, k 8"]
    fake.document_actions.retrieval_choices = lambda: offered  # type: ignore[attr-defined]
    handlers = RetrievalEvalHandlers(fake)
    assert handlers.compare_choices("Hybrid, k 8") == {"__type__": "update", "choices": offered,
                                                       "value": "Hybrid, k 8"}
    offered.remove("Hybrid without the reranker")  # the reranker was turned off
    assert handlers.compare_choices("Hybrid without the reranker")["value"] == "Vector only"
