"""Document library end to end: real files, real all-MiniLM-L6-v2, real Chroma in a temp dir."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.rag_files import (
    PDF_PAGES,
    docx_bytes,
    encrypted_pdf_bytes,
    epub_bytes,
    manual_with_running_lines,
    pdf_bytes,
    pptx_bytes,
    scanned_pdf_bytes,
    write_good_files,
    xlsx_bytes,
)
from tests.support.rag_network import record_network
from webui.rag import DocumentLibrary, IngestProgress
from webui.rag.embeddings import DEFAULT_EMBEDDING_MODEL, Embedder
from webui.rag.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    CollectionPermissionError,
    DocumentNotFoundError,
    EmbeddingModelMismatchError,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    """One model load for the whole module; every library below shares it."""
    shared = Embedder()
    shared.embed(["warm up"])
    return shared


@pytest.fixture()
def library(data_dir: Path, embedder: Embedder) -> DocumentLibrary:
    return DocumentLibrary(data_dir, embedder=embedder)


@pytest.fixture()
def docs(tmp_path: Path) -> dict[str, Path]:
    return write_good_files(tmp_path / "incoming")


def files_outside(root: Path, data_dir: Path) -> set[Path]:
    return {p for p in root.rglob("*") if data_dir not in p.parents and p != data_dir}


def test_every_format_is_ingested_listed_and_reported(
    library: DocumentLibrary, docs: dict[str, Path]
) -> None:
    library.create_collection("alice", "home")
    seen: list[IngestProgress] = []
    outcomes = library.ingest("alice", "home", list(docs.values()), progress=seen.append)

    assert [(o.file_name, o.status) for o in outcomes] == [(p.name, "added") for p in docs.values()]
    assert all(o.ok and o.chunks >= 1 for o in outcomes)
    listed = {d.file_name: d for d in library.documents("alice", "home")}
    assert set(listed) == {p.name for p in docs.values()}
    assert listed["greenhouse.pdf"].pages == 2
    assert listed["greenhouse.pdf"].size_bytes == docs["pdf"].stat().st_size
    assert len(listed["greenhouse.pdf"].sha256) == 64
    [info] = library.collections("alice")
    assert (info.name, info.documents, info.shared, info.editable) == ("home", 6, False, True)
    assert info.chunks == sum(o.chunks for o in outcomes)
    assert info.embedding_model == DEFAULT_EMBEDDING_MODEL

    assert seen[-1] == IngestProgress(6, 6, 7, info.chunks, "")
    assert [p.files_done for p in seen] == sorted(p.files_done for p in seen)
    assert [p.chunks_done for p in seen] == sorted(p.chunks_done for p in seen)
    for path in docs.values():  # the uploaded copy is kept under the data dir
        copies = list((library.data_dir / "uploads").rglob(path.name))
        assert len(copies) == 1 and copies[0].read_bytes() == path.read_bytes()


def test_retrieval_finds_the_right_file_page_and_heading(
    library: DocumentLibrary, docs: dict[str, Path]
) -> None:
    library.create_collection("alice", "home")
    library.ingest("alice", "home", list(docs.values()))

    frost = library.retrieve("alice", "What temperature is the heater set to during frost?", ["home"])
    assert (frost[0].file_name, frost[0].page, frost[0].number) == ("greenhouse.pdf", 2, 1)
    assert "twelve degrees" in frost[0].text
    assert [p.number for p in frost] == list(range(1, len(frost) + 1))
    assert [p.score for p in frost] == sorted((p.score for p in frost), reverse=True)

    chain = library.retrieve("alice", "How often should I oil the bike chain?", ["home"], k=1)
    assert chain[0].file_name == "bicycle.md"
    assert chain[0].heading == "Bicycle maintenance > Chain care"
    assert chain[0].citation == "bicycle.md, Bicycle maintenance > Chain care"

    moons = library.retrieve("alice", "How many moons does Saturn have?", ["home"], k=1)
    assert moons[0].file_name == "planets.csv" and "146" in moons[0].text

    receipts = library.retrieve("alice", "Deadline for handing in hotel receipts", ["home"], k=1)
    assert (receipts[0].file_name, receipts[0].heading) == ("policy.docx", "Expense claims")

    assert library.retrieve("alice", "Who won the 1966 football World Cup final?", ["home"]) == []
    assert library.retrieve("alice", "   ", ["home"]) == []


def test_reingesting_the_same_files_changes_nothing(
    library: DocumentLibrary, docs: dict[str, Path]
) -> None:
    library.create_collection("alice", "home")
    first = library.ingest("alice", "home", list(docs.values()))
    before = library.collections("alice")[0]
    again = library.ingest("alice", "home", list(docs.values()))

    assert {o.status for o in again} == {"unchanged"}
    assert [o.chunks for o in again] == [o.chunks for o in first]
    assert library.collections("alice")[0].chunks == before.chunks
    twin = docs["txt"].with_name("copy-of-lighthouse.txt")
    twin.write_bytes(docs["txt"].read_bytes())
    [outcome] = library.ingest("alice", "home", [twin])
    assert outcome.status == "unchanged" and "lighthouse.txt" in outcome.message


def test_a_changed_file_replaces_its_old_passages(
    library: DocumentLibrary, docs: dict[str, Path]
) -> None:
    library.create_collection("alice", "home")
    library.ingest("alice", "home", [docs["txt"], docs["md"]])
    old_chunks = library.collections("alice")[0].chunks
    docs["txt"].write_text("The lighthouse was automated in 1998 and has no keeper any more.\n")

    [outcome] = library.ingest("alice", "home", [docs["txt"]])
    assert (outcome.status, outcome.ok) == ("replaced", True)
    texts = [p.text for p in library.retrieve("alice", "lighthouse keeper", ["home"], k=10)]
    assert any("automated in 1998" in t for t in texts)
    assert not any("every three hours" in t for t in texts)
    new_doc = next(d for d in library.documents("alice", "home") if d.file_name == "lighthouse.txt")
    assert new_doc.chunks == 1
    assert library.collections("alice")[0].chunks == old_chunks  # 1 chunk out, 1 chunk in


def test_deleting_a_document_removes_its_passages_and_copy(
    library: DocumentLibrary, docs: dict[str, Path]
) -> None:
    library.create_collection("alice", "home")
    library.ingest("alice", "home", [docs["pdf"], docs["txt"]])
    library.delete_document("alice", "home", "greenhouse.pdf")

    assert [d.file_name for d in library.documents("alice", "home")] == ["lighthouse.txt"]
    hits = library.retrieve("alice", "greenhouse heater frost", ["home"], k=5, min_score=0.0)
    assert all(p.file_name == "lighthouse.txt" for p in hits)
    assert not list((library.data_dir / "uploads").rglob("greenhouse.pdf"))
    with pytest.raises(DocumentNotFoundError, match="'greenhouse.pdf' is not in 'home'"):
        library.delete_document("alice", "home", "greenhouse.pdf")


def test_owners_only_see_their_own_and_shared_collections(
    library: DocumentLibrary, docs: dict[str, Path]
) -> None:
    library.create_collection("alice", "private")
    library.ingest("alice", "private", [docs["pdf"]])
    library.create_collection("alice", "team", shared=True)
    library.ingest("alice", "team", [docs["txt"]])
    library.create_collection("bob", "private")  # same name, a different collection

    assert [(c.name, c.shared) for c in library.collections("alice")] == [
        ("private", False), ("team", True)
    ]
    bob_view = library.collections("bob")
    assert [(c.name, c.shared, c.documents, c.editable) for c in bob_view] == [
        ("private", False, 0, True), ("team", True, 1, False)
    ]
    assert library.retrieve("bob", "greenhouse heater during frost", ["private"]) == []
    assert library.retrieve("bob", "Where is lamp oil stored?", ["team"])[0].collection == "team"
    with pytest.raises(CollectionPermissionError, match="shared by alice"):
        library.ingest("bob", "team", [docs["md"]])
    with pytest.raises(CollectionPermissionError):
        library.delete_collection("bob", "team")
    with pytest.raises(CollectionNotFoundError, match="no collection named 'diary'"):
        library.retrieve("bob", "anything", ["diary"])
    library.create_collection("carol", "diary")
    for attempt in (
        lambda: library.documents("bob", "diary"),
        lambda: library.ingest("bob", "diary", [docs["md"]]),
        lambda: library.rename_collection("bob", "diary", "mine"),
        lambda: library.delete_collection("bob", "diary"),
        lambda: library.delete_document("bob", "diary", "x.md"),
    ):
        with pytest.raises(CollectionNotFoundError):
            attempt()
    assert [c.name for c in library.collections("carol")] == ["diary", "team"]


def test_bad_files_fail_alone_with_a_clear_message(
    data_dir: Path, embedder: Embedder, docs: dict[str, Path], tmp_path: Path
) -> None:
    library = DocumentLibrary(data_dir, embedder=embedder, max_file_mb=1)
    library.create_collection("alice", "mixed")
    incoming = docs["txt"].parent
    bad = {
        "locked.pdf": encrypted_pdf_bytes(pdf_bytes(PDF_PAGES), user_password="pw", owner_password="o"),
        "broken.pdf": b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog",
        "empty.txt": b"",
        "program.txt": b"\x7fELF\x02\x01\x01\x00\x00\x00binary",
        "huge.txt": b"word " * 300_000,  # 1.5 MB, over the 1 MB limit
    }
    for name, data in bad.items():
        (incoming / name).write_bytes(data)
    odd = incoming / "..\\..\\escape.md"  # backslashes are legal in Linux names
    odd.write_text("# Escape\nThis file tried to climb out of the uploads folder.\n")
    before = files_outside(tmp_path, data_dir)

    batch = [incoming / "locked.pdf", docs["pdf"], incoming / "broken.pdf", incoming / "empty.txt",
             docs["md"], incoming / "program.txt", incoming / "huge.txt", odd]
    outcomes = {o.file_name: o for o in library.ingest("alice", "mixed", batch)}

    messages = {name: o.message for name, o in outcomes.items() if not o.ok}
    assert messages == {
        "locked.pdf": "locked.pdf is password-protected; remove the password and add it again.",
        "broken.pdf": "broken.pdf is not a readable PDF (it may be damaged).",
        "empty.txt": "empty.txt is empty.",
        "program.txt": "program.txt looks like a binary file, not text; "
        "check that the extension is right.",
        "huge.txt": "huge.txt is 1.4 MB, over the 1 MB limit for one file.",
    }
    assert all(outcomes[n].status == "failed" for n in messages)
    assert {n for n, o in outcomes.items() if o.status == "added"} == {
        "greenhouse.pdf", "bicycle.md", "escape.md"
    }
    assert sorted(d.file_name for d in library.documents("alice", "mixed")) == [
        "bicycle.md", "escape.md", "greenhouse.pdf"
    ]
    assert files_outside(tmp_path, data_dir) == before
    [copy] = (data_dir / "uploads").rglob("escape.md")
    assert data_dir.resolve() in copy.resolve().parents


def test_collections_can_be_renamed_and_deleted(
    library: DocumentLibrary, docs: dict[str, Path]
) -> None:
    library.create_collection("alice", "drafts")
    library.ingest("alice", "drafts", [docs["txt"]])
    with pytest.raises(CollectionExistsError):
        library.create_collection("alice", "drafts")

    renamed = library.rename_collection("alice", "drafts", "Final papers")
    assert (renamed.name, renamed.documents) == ("Final papers", 1)
    assert library.retrieve("alice", "lamp oil cellar", ["Final papers"])[0].collection == (
        "Final papers"
    )
    with pytest.raises(CollectionNotFoundError):
        library.documents("alice", "drafts")
    assert list((library.data_dir / "uploads").rglob("lighthouse.txt"))

    library.delete_collection("alice", "Final papers")
    assert library.collections("alice") == []
    assert not list((library.data_dir / "uploads").rglob("lighthouse.txt"))


def test_a_collection_refuses_a_different_embedding_model(
    library: DocumentLibrary, docs: dict[str, Path]
) -> None:
    library.create_collection("alice", "home")
    other = DocumentLibrary(library.data_dir, embedder=Embedder("someone/other-model"))
    with pytest.raises(EmbeddingModelMismatchError, match="built with the embedding model"):
        other.ingest("alice", "home", [docs["txt"]])
    with pytest.raises(EmbeddingModelMismatchError):
        other.retrieve("alice", "question", ["home"])
    assert not other.embedder.loaded  # refused before loading anything


def test_a_reopened_library_sees_what_was_stored(
    library: DocumentLibrary, docs: dict[str, Path], embedder: Embedder
) -> None:
    library.create_collection("alice", "home")
    library.ingest("alice", "home", [docs["csv"]])
    reopened = DocumentLibrary(library.data_dir, embedder=embedder)
    assert [d.file_name for d in reopened.documents("alice", "home")] == ["planets.csv"]


def test_ingest_and_retrieve_never_touch_the_network(
    data_dir: Path, docs: dict[str, Path]
) -> None:
    with record_network() as network:
        # A fresh embedder, so loading the model is inside the recorded window too.
        library = DocumentLibrary(data_dir)
        library.create_collection("alice", "home")
        outcomes = library.ingest("alice", "home", list(docs.values()))
        passages = library.retrieve("alice", "When does the bakery open?", ["home"])
        library.documents("alice", "home")
        probe = socket.socket()  # the hook itself must work: a refused remote connect is logged
        probe.settimeout(0.01)
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1, never routed
        except OSError:
            pass
        finally:
            probe.close()
    assert all(o.ok for o in outcomes) and passages[0].file_name == "bakery.html"
    assert network.attempts == ["connect ('192.0.2.1', 9)"]


def test_slides_sheets_books_and_clean_pdf_pages_are_cited_and_bad_files_fail_alone(
    library: DocumentLibrary, tmp_path: Path
) -> None:
    """Issue 12: EPUB, PPTX and XLSX beside running-header PDFs and a scan, in one batch."""
    incoming = tmp_path / "formats"
    incoming.mkdir()
    files = {
        "deck.pptx": pptx_bytes([
            ("Quarterly results", ["Revenue grew by nine percent."], ""),
            ("Office plans", ["The Lisbon office opens in May."], "Mention the hiring freeze."),
        ]),
        "fleet.xlsx": xlsx_bytes({"Boats": [["boat", "berth"], ["Albatross", "B12"], ["Petrel", "C3"]]}),
        "voyage.epub": epub_bytes([("Departure", "The ship left Bergen at dawn."),
                                   ("Arrival", "Reykjavik harbour came into view after four days.")]),
        "handbook.pdf": pdf_bytes(manual_with_running_lines(chapters=2, pages_per_chapter=4)),
        "scan.pdf": scanned_pdf_bytes(4),
        "broken.pptx": b"PK\x03\x04 not a deck",
        "broken.epub": docx_bytes([(None, ["a Word file renamed"])]),
    }
    for name, data in files.items():
        (incoming / name).write_bytes(data)
    library.create_collection("alice", "mixed")
    outcomes = {o.file_name: o for o in library.ingest("alice", "mixed", sorted(incoming.iterdir()))}

    assert {n for n, o in outcomes.items() if o.status == "added"} == {
        "deck.pptx", "fleet.xlsx", "voyage.epub", "handbook.pdf"
    }
    assert outcomes["scan.pdf"].message.startswith("scan.pdf: no text found; it has no text layer, and OCR")
    assert outcomes["broken.pptx"].message == "broken.pptx is not a readable PowerPoint file (it is not a valid zip archive)."
    assert outcomes["broken.epub"].message == "broken.epub is not a readable EPUB book."

    lisbon = library.retrieve("alice", "When does the Lisbon office open?", ["mixed"], k=1)
    assert lisbon[0].citation == "deck.pptx, Slide 2: Office plans"
    berth = library.retrieve("alice", "Which berth is the Petrel moored at?", ["mixed"], k=1)
    assert berth[0].citation == "fleet.xlsx, Sheet Boats" and "Petrel" in berth[0].text
    harbour = library.retrieve("alice", "How long did the voyage to Reykjavik take?", ["mixed"], k=1)
    assert harbour[0].citation == "voyage.epub, Arrival"
    register = library.retrieve("alice", "What does function number 35 return?", ["mixed"], k=1)
    assert register[0].citation == "handbook.pdf, p. 5"
    assert register[0].text.startswith("The function number 35")  # no running header before it
    pdf_passages = [p.text for p in library.passages("alice", "mixed", "handbook.pdf")]
    assert pdf_passages and not any("Function reference" in t or "Pump Handbook" in t for t in pdf_passages)
