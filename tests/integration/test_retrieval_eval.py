"""Measuring retrieval through the document service on a real collection (real Chroma, all-MiniLM-L6-v2)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.retrieval_questions import write_documents, write_questions
from webui.auth import User
from webui.config import Settings
from webui.rag.embeddings import Embedder
from webui.rag.errors import CollectionNotFoundError
from webui.rag.evaluation import QuestionFileError, first_hit, parse_questions
from webui.rag.library import MEASURING_OWNER_PREFIX
from webui.services import NotAuthorized
from webui.services.documents import DocumentService
from webui.services.retrieval_eval import missed_rows, score_rows

pytestmark = pytest.mark.slow
ADMIN = User(name="root", is_admin=True, id="r00t")
ALICE, BOB = User(name="alice", is_admin=False, id="alice"), User(name="bob", is_admin=False, id="bob")


@pytest.fixture(scope="module")
def embedder(minilm_path: Path) -> Embedder:
    return Embedder(str(minilm_path))


@pytest.fixture()
def documents(tmp_path: Path, embedder: Embedder) -> DocumentService:
    documents = DocumentService(Settings(data_dir=tmp_path / "data"), embedder=embedder)
    documents.create(ALICE, "home")
    assert all(o.ok for o in documents.ingest(ALICE.id, "home", write_documents(tmp_path / "files")))
    return documents


def test_the_owner_sees_each_questions_rank_as_the_chat_would_retrieve_it(
    documents: DocumentService, tmp_path: Path
) -> None:
    csv = write_questions(tmp_path / "upload")
    steps: list[tuple[float, str]] = []
    evaluation = documents.evaluate_retrieval(ALICE, "home", csv, "Keyword only",
                                              progress=lambda fraction, caption: steps.append((fraction, caption)))

    current, keyword = evaluation.results
    assert current.label == "Current settings (hybrid, k 5, cut-off 0.21)"
    assert [o.question.question for o in current.outcomes] == [q.question for q in parse_questions(csv.read_bytes())]
    # Each rank is where the answer stands among the passages the library itself returns.
    for result, mode in ((current, "hybrid"), (keyword, "keyword")):
        for outcome in result.outcomes:
            found = documents.library.retrieve(ALICE.id, outcome.question.question, ["home"], k=10, mode=mode)
            assert outcome.rank == first_hit(found, outcome.question)
            assert outcome.best == (found[0] if found else None)
    assert current.outcomes[0].rank == 1 and current.outcomes[0].best.citation == "greenhouse.pdf, p. 2"
    assert current.outcomes[-1].rank is None  # the bakery is not in the collection

    rows = score_rows(evaluation)
    assert [row[0] for row in rows] == [current.label, "Keyword only"]
    assert rows[0][1:4] == [f"{current.scores.hit_at_1:.3f}", f"{current.scores.hit_at_k:.3f}",
                            f"{current.scores.mrr:.3f}"]
    assert float(rows[0][3]) <= 0.8  # the bakery question scores 0
    assert ["When does the bakery open on weekdays?", '"seven in the morning" in bakery.html',
            "not in top 10"] in [row[1:4] for row in missed_rows(evaluation)]
    assert steps[0] == (0.0, f"{current.label}: question 1 of 5")
    assert steps[-1] == (1.0, "Keyword only: question 5 of 5")


def test_only_an_admin_or_the_owner_may_measure_a_collection(documents: DocumentService, tmp_path: Path) -> None:
    csv = write_questions(tmp_path / "upload")
    documents.create(ADMIN, "handbook", shared=True)
    documents.ingest(ADMIN.id, "handbook", write_documents(tmp_path / "handbook"))

    with pytest.raises(NotAuthorized, match="Only an admin or the collection's owner can measure its retrieval."):
        documents.evaluate_retrieval(BOB, "handbook", csv, "Vector only")
    with pytest.raises(CollectionNotFoundError, match="There is no collection named 'home'."):
        documents.evaluate_retrieval(BOB, "home", csv, "Vector only")  # alice's own: bob does not see it
    assert documents.evaluate_retrieval(ADMIN, "handbook", csv, "Vector only").current.outcomes[0].rank == 1


def test_a_bad_question_file_is_refused_and_the_collection_is_left_as_it_was(
    documents: DocumentService, tmp_path: Path
) -> None:
    before = documents.documents(ALICE.id, "home")
    bad = write_questions(tmp_path / "upload", "question,answer\nWhy?,because\n", name="bad.csv")
    with pytest.raises(QuestionFileError, match="needs a 'question' column and an 'expected_text' or 'expected_file'"):
        documents.evaluate_retrieval(ALICE, "home", bad, "Vector only")
    assert documents.documents(ALICE.id, "home") == before


def test_a_chunk_size_is_measured_on_a_hidden_copy_that_is_removed_and_the_collection_is_unchanged(
    documents: DocumentService, tmp_path: Path
) -> None:
    csv = write_questions(tmp_path / "upload")
    before = (documents.documents(ALICE.id, "home"), documents.retrieval_settings(ALICE.id, "home"),
              [c.chunks for c in documents.collections(ALICE.id)])
    label = "Chunks of 100 tokens (the files chunked again: slower)"
    captions: list[str] = []
    evaluation = documents.evaluate_retrieval(ALICE, "home", csv, label,
                                              progress=lambda fraction, caption: captions.append(caption))

    # The same files added by hand to a collection of 100-token chunks rank each answer the same.
    settings = documents.retrieval_settings(ALICE.id, "home")
    documents.create(ALICE, "small chunks")
    documents.update_retrieval_settings(ALICE.id, "small chunks", replace(
        settings, chunk_tokens=100, overlap_tokens=settings.overlap_tokens * 100 // settings.chunk_tokens))
    assert all(o.ok for o in documents.ingest(ALICE.id, "small chunks", write_documents(tmp_path / "again")))
    for outcome in evaluation.alternative.outcomes:
        found = documents.library.retrieve(ALICE.id, outcome.question.question, ["small chunks"], k=10)
        assert outcome.rank == first_hit(found, outcome.question)
    assert evaluation.alternative.label == label and "chunking file 1 of 3 again" in " ".join(captions)

    documents.delete(ALICE.id, "small chunks")
    assert (documents.documents(ALICE.id, "home"), documents.retrieval_settings(ALICE.id, "home"),
            [c.chunks for c in documents.collections(ALICE.id)]) == before
    assert not [c for c in documents.library.store.list() if c.owner.startswith(MEASURING_OWNER_PREFIX)]
    assert not any(p.name.startswith(MEASURING_OWNER_PREFIX) for p in (tmp_path / "data" / "uploads").iterdir())
