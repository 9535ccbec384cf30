"""Scanned pages and images read by the real OCR models, added through the real library (real
all-MiniLM-L6-v2, real Chroma), found again by a question with their page, and all of it offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.rag_network import record_network
from tests.support.scans import image_bytes, page_image, png_header_only, scanned_pdf
from webui.rag import DocumentLibrary, IngestCancelled, IngestControl, IngestProgress
from webui.rag.embeddings import Embedder
from webui.rag.ocr import OcrEngine

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    shared = Embedder()
    shared.embed(["warm up"])
    return shared


@pytest.fixture(scope="module")
def ocr() -> OcrEngine:
    """Not loaded here: the first test shows that loading it fetches nothing either."""
    return OcrEngine()


@pytest.fixture()
def library(data_dir: Path, embedder: Embedder, ocr: OcrEngine) -> DocumentLibrary:
    library = DocumentLibrary(data_dir, embedder=embedder, ocr=ocr)
    library.create_collection("alice", "scans")
    return library


def test_scans_and_images_are_read_offline_and_cited_by_page(
    library: DocumentLibrary, ocr: OcrEngine, tmp_path: Path
) -> None:
    files = {
        "minutes.pdf": scanned_pdf([
            ["Minutes of the harbour committee.", "The new pier opens in September."],
            [],
            ["Ferries to Skye leave from Mallaig every hour.", "Tickets are sold on board."],
        ]),
        "notice.png": image_bytes([page_image(["The lighthouse keeper lights the lamp at dusk."])], "PNG"),
        "fax.tiff": image_bytes([
            page_image(["Order 1187: twelve crates of lemons."]),
            page_image(["Deliver the lemons to the Aberdeen warehouse."]),
        ], "TIFF"),
        "blank.png": image_bytes([page_image([])], "PNG"),
        "huge.png": png_header_only(20_000, 20_000),
    }
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for name, data in files.items():
        (incoming / name).write_bytes(data)

    with record_network() as network:
        outcomes = {o.file_name: o for o in library.ingest("alice", "scans", sorted(incoming.iterdir()))}
        ferries = library.retrieve("alice", "How often do ferries to Skye leave?", ["scans"], k=1)
        lamp = library.retrieve("alice", "When is the lighthouse lamp lit?", ["scans"], k=1)
        lemons = library.retrieve("alice", "Where should the lemons be delivered?", ["scans"], k=1)

    assert network.attempts == []  # the models ship in the wheel: nothing is fetched
    assert ocr.loaded
    assert outcomes["minutes.pdf"].status == "added"
    assert outcomes["minutes.pdf"].message.startswith("Added minutes.pdf (3 pages, ")
    assert outcomes["minutes.pdf"].message.endswith(
        "passages). Text read from images (OCR) on pages 1-3. Page 2: no text found."
    )
    assert outcomes["notice.png"].ok and outcomes["fax.tiff"].message.startswith("Added fax.tiff (2 pages, ")
    assert outcomes["blank.png"].message == "blank.png: no text found in the image (read with OCR)."
    assert outcomes["huge.png"].message == (
        "huge.png is over the 50 megapixel limit for one image; it was not opened (it may be a decompression bomb)."
    )
    assert {o.file_name for o in outcomes.values() if not o.ok} == {"blank.png", "huge.png"}

    assert ferries[0].citation == "minutes.pdf, p. 3"
    assert "Ferries to Skye leave from Mallaig every hour." in ferries[0].text
    assert lamp[0].citation == "notice.png, p. 1" and "lighthouse keeper" in lamp[0].text
    assert lemons[0].citation == "fax.tiff, p. 2" and "Aberdeen warehouse" in lemons[0].text
    listed = {d.file_name: d.pages for d in library.documents("alice", "scans")}
    assert listed == {"minutes.pdf": 3, "notice.png": 1, "fax.tiff": 2}


class StopAfterFirstPage(IngestControl):
    """The Stop button, pressed as soon as progress shows the first scanned page read."""

    def __init__(self) -> None:
        self.reports: list[IngestProgress] = []

    def progress(self, report: IngestProgress) -> None:
        self.reports.append(report)

    def check(self) -> None:
        if any(r.pages_done >= 1 for r in self.reports):
            raise IngestCancelled("The add was cancelled.")


def test_progress_counts_scanned_pages_and_stop_acts_between_them(
    library: DocumentLibrary, tmp_path: Path
) -> None:
    scan = tmp_path / "report.pdf"
    scan.write_bytes(scanned_pdf([[f"Section {n} of the annual report."] for n in range(1, 5)]))
    control = StopAfterFirstPage()

    [outcome] = library.ingest("alice", "scans", [scan], progress=control.progress, control=control)

    assert outcome.status == "cancelled"
    assert outcome.message == "report.pdf was not added: the add was cancelled."
    # Page 1 was read and reported; Stop came before page 2 was read.
    assert [r.pages_done for r in control.reports if r.current_file] == [0, 1]
    assert library.documents("alice", "scans") == []
    assert library.retrieve("alice", "annual report", ["scans"], k=1, min_score=0.0) == []
