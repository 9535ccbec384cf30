"""Summaries end to end: real SmolLM2 through the engine, real all-MiniLM-L6-v2 and Chroma, a 100-page PDF."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.rag_files import PDF_PAGES, manual_pages, pdf_bytes
from webui.auth import User
from webui.config import Settings
from webui.engine import Engine, LoadSettings, SamplingParams
from webui.history import HistoryStore
from webui.prompts.presets import PresetStore
from webui.rag.embeddings import Embedder
from webui.services import DocumentService, PresetService
from webui.services.summaries import Summary, SummaryRunning, SummaryService, SummaryUpdate, summary_sources
from webui.ui.summaries import summary_markdown

pytestmark = pytest.mark.slow

ALICE = User(name="alice", is_admin=False)
PAGES = 100
# A small window and short replies: the 100 pages then take several map steps and a reduce step,
# and on two CPU cores the whole summary stays well under a minute.
N_CTX = 768
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def engine(smollm_path: Path) -> Engine:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=N_CTX, n_threads=2))
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture()
def world(tmp_path: Path, engine: Engine, embedder: Embedder) -> tuple[SummaryService, DocumentService, HistoryStore]:
    settings = Settings(data_dir=tmp_path / "data")
    documents = DocumentService(settings, embedder=embedder)
    history = HistoryStore(settings.history_db)
    presets = PresetService(PresetStore(settings.presets_dir), engine)
    return SummaryService(engine, documents, presets, history), documents, history


def add_manual(documents: DocumentService, folder: Path, owner: User = ALICE, collection: str = "pumps") -> Path:
    manual = folder / "pump-manual.pdf"
    manual.write_bytes(pdf_bytes(manual_pages(PAGES)))
    documents.create(owner, collection)
    [outcome] = documents.ingest(owner.name, collection, [manual])
    assert outcome.ok and outcome.pages == PAGES, outcome.message
    return manual


def pages_cited(text: str) -> set[int]:
    """Every page a citation such as "pp. 3–5, 9" or "p. 7" names."""
    pages: set[int] = set()
    for spans in re.findall(r"pp?\. ([\d–, ]+)", text):
        for span in spans.split(","):
            first, _, last = span.strip().partition("–")
            if first:
                pages.update(range(int(first), int(last or first) + 1))
    return pages


def test_a_hundred_page_pdf_is_summarized_in_parts_that_cite_every_page(world, tmp_path: Path) -> None:
    service, documents, history = world
    add_manual(documents, tmp_path)

    updates: list[SummaryUpdate] = list(
        service.summarize(ALICE, "pumps", "pump-manual.pdf", max_tokens=MAX_TOKENS))

    final = updates[-1]
    assert final.done and final.error is None, final.error
    summary: Summary = final.summary
    assert not summary.stopped and summary.text.strip()
    assert summary.passages == PAGES
    assert summary.map_steps >= 4, "100 pages do not fit one call of a 768-token window"
    assert summary.calls > summary.map_steps, "the partial summaries were combined by the model"
    assert len(summary.parts) == summary.map_steps
    # Each part names the pages it covers; together they cover the whole document, in order.
    citations = [s["citation"] for s in summary_sources(summary)]
    assert all(c.startswith("pump-manual.pdf, p") for c in citations)
    assert pages_cited(" ".join(citations)) == set(range(1, PAGES + 1))
    assert citations[0].startswith("pump-manual.pdf, pp. 1–")
    # Progress named each part with its pages, and only ever moved forward.
    captions = [u.caption for u in updates if not u.done]
    assert any(c.startswith(f"Reading part 1 of {summary.map_steps} (pp. 1–") for c in captions)
    assert any(c.startswith("Combining the summaries of pp. 1–") for c in captions)
    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # What the page shows: the summary, then its sources with page ranges.
    shown = summary_markdown(summary)
    assert "Summary of pump-manual.pdf" in shown and "Sources: pump-manual.pdf" in shown
    assert "pump-manual.pdf, pp. 1–" in shown

    # Saved into the chat as a conversation whose reply carries the same sources.
    conversation = service.save_to_chat(ALICE, summary)
    [request, reply] = history.messages("alice", conversation)
    assert request.content == "Summarize pump-manual.pdf." and reply.content == summary.text
    assert [s["citation"] for s in reply.meta["sources"]] == citations
    assert history.get("alice", conversation).title == "Summary of pump-manual.pdf"


def test_stop_ends_the_running_step_and_skips_the_remaining_parts(world, tmp_path: Path, engine: Engine) -> None:
    service, documents, history = world
    add_manual(documents, tmp_path)

    job = service.start(ALICE, "pumps", "pump-manual.pdf", max_tokens=MAX_TOKENS)
    stopped = False
    updates: list[SummaryUpdate] = []
    for update in job.updates(wait_s=0.1):
        updates.append(update)
        if not stopped and update.caption.startswith("Reading part 2 of") and update.text:
            assert not service.stop(User(name="bob", is_admin=False)), "Bob has no summary to stop"
            assert service.stop(ALICE), "a summary was running for Alice"
            stopped = True

    assert stopped, "the second part started streaming"
    summary = updates[-1].summary
    assert updates[-1].done and summary is not None and summary.stopped
    assert summary.text == "" and len(summary.parts) == 1, "only the part finished before Stop is kept"
    assert summary.calls == 2 and summary.map_steps > 2, "no step ran after the stopped one"
    assert pages_cited(summary_sources(summary)[0]["citation"]) >= {1}
    assert "parts summarized before Stop" in summary_markdown(summary)
    assert updates[-1].conversation is None and history.list("alice") == [], "a summary with no text is not saved"
    assert not service.stop(ALICE), "nothing is left running for Alice"
    # The engine is free again right away: a plain reply goes through.
    chunks = list(engine.stream_chat([{"role": "user", "content": "Hi"}], SamplingParams(max_tokens=4, seed=1)))
    assert chunks[-1].stats is not None and not chunks[-1].stats.stopped_by_user


def test_a_summary_left_by_its_page_finishes_is_saved_as_a_chat_and_is_found_by_its_user_only(
    world, tmp_path: Path
) -> None:
    service, documents, history = world
    documents.create(ALICE, "home")
    greenhouse = tmp_path / "greenhouse.pdf"
    greenhouse.write_bytes(pdf_bytes(PDF_PAGES))
    documents.ingest("alice", "home", [greenhouse])
    bob = User(name="bob", is_admin=False)

    job = service.start(ALICE, "home", max_tokens=MAX_TOKENS)
    first = next(job.updates(wait_s=0.1))  # the page follows it a moment, then is closed
    assert not first.done
    with pytest.raises(SummaryRunning, match="A summary of the collection 'home' is still running"):
        service.start(ALICE, "home", max_tokens=MAX_TOKENS)

    found = service.job(ALICE)  # a new page of Alice's, while it runs or after it finished
    assert found is job
    final = list(found.updates(wait_s=0.1))[-1]
    assert final.done and final.error is None and final.summary is not None and final.summary.text.strip()
    [saved] = history.list("alice")
    assert saved.id == final.conversation and saved.title == "Summary of the collection 'home'"
    assert history.messages("alice", saved.id)[-1].content == final.summary.text
    assert service.job(bob) is None and history.list("bob") == [], "Bob sees none of Alice's summaries"
    assert not service.stop(bob)


def test_a_short_document_takes_one_pass_and_cites_its_pages(world, tmp_path: Path) -> None:
    service, documents, _ = world
    documents.create(ALICE, "home")
    greenhouse = tmp_path / "greenhouse.pdf"
    greenhouse.write_bytes(pdf_bytes(PDF_PAGES))
    documents.ingest("alice", "home", [greenhouse])

    final = list(service.summarize(ALICE, "home", max_tokens=MAX_TOKENS))[-1]

    summary = final.summary
    assert final.error is None and summary is not None and not summary.stopped
    assert (summary.map_steps, summary.calls) == (1, 1)
    assert [s["citation"] for s in summary_sources(summary)] == ["greenhouse.pdf, p. 1", "greenhouse.pdf, p. 2"]


def test_a_user_summarizes_only_what_they_can_read(world, tmp_path: Path) -> None:
    service, documents, _ = world
    add_manual(documents, tmp_path)
    admin, bob = User(name="ann", is_admin=True), User(name="bob", is_admin=False)

    [refused] = list(service.summarize(bob, "pumps", max_tokens=MAX_TOKENS))
    assert refused.done and refused.error == "There is no collection named 'pumps'."

    documents.create(admin, "handbook", shared=True)
    [empty] = list(service.summarize(bob, "handbook"))
    assert empty.error == "There is nothing to summarize in 'handbook' yet: add files first."
    [missing] = list(service.summarize(bob, "handbook", "nope.pdf"))
    assert missing.error == "'nope.pdf' is not in 'handbook'."
