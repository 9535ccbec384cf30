"""OCR's pure parts: which PDF pages are read, how found text is laid out and reported, and the
refusal of oversized images before any pixel is decoded. The OCR model itself is replaced by a
stand-in here; tests/integration/test_ocr.py runs the real one."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from PIL import Image

from tests.support.rag_files import PDF_PAGES, pdf_bytes, scanned_pdf_bytes
from tests.support.scans import (
    image_bytes,
    page_image,
    pdf_with_declared_image,
    png_header_only,
    scanned_pdf,
)
from webui.rag.loaders import (
    SUPPORTED_EXTENSIONS,
    DocumentParseError,
    load_document,
    needs_ocr,
    ocr_notes,
    page_list,
)
from webui.rag.ocr import TextBox, text_from_boxes


class StandInReader:
    """Returns the given texts page by page, and records the images it was shown."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.seen: list[list[tuple[int, int]]] = []

    def __call__(self, images: Sequence[Image.Image]) -> str:
        self.seen.append([image.size for image in images])
        return self.texts.pop(0)


def refuses_to_read(images: Sequence[Image.Image]) -> str:
    raise AssertionError("no image should have been decoded and read")


def test_boxes_on_one_line_are_read_left_to_right_and_gaps_start_paragraphs() -> None:
    boxes = [
        TextBox("Total:", 100, 100, 130),
        TextBox("Heading", 100, 20, 50),
        TextBox("42 EUR", 600, 102, 131),
        TextBox("Footnote", 100, 400, 430),
        TextBox("  ", 100, 500, 530),
    ]
    assert text_from_boxes(boxes) == "Heading\n\nTotal: 42 EUR\n\nFootnote"
    close = [TextBox("first line", 10, 0, 30), TextBox("second line", 10, 36, 66)]
    assert text_from_boxes(close) == "first line\nsecond line"
    assert text_from_boxes([]) == ""


def test_box_from_rapidocr_corners() -> None:
    box = TextBox.from_points([[98.0, 149.0], [700.0, 150.0], [700.0, 181.0], [98.0, 180.0]], "Ferries")
    assert (box.left, box.top, box.bottom) == (98.0, 149.0, 181.0)


def test_page_numbers_are_listed_as_ranges_in_the_notes() -> None:
    assert page_list([5, 1, 2, 3]) == "1-3, 5"
    assert ocr_notes([1, 2, 3], [3]) == ("Text read from images (OCR) on pages 1-3.", "Page 3: no text found.")
    assert ocr_notes([], [2, 4], [7]) == (
        "Pages 2, 4: no text found.",
        "Page 7: the image could not be decoded, so no text was read.",
    )
    assert ocr_notes([], []) == ()


def test_only_pictured_pages_with_almost_no_letters_are_read() -> None:
    assert needs_ocr("", True)
    assert needs_ocr("12", True)  # a page number on a scan
    assert not needs_ocr("A page of real words, long enough to be a text layer.", True)
    assert not needs_ocr("", False)  # a blank page draws nothing to read


def test_scanned_pdf_pages_are_read_and_keep_their_page_numbers() -> None:
    data = scanned_pdf([["The ferry leaves at noon."], [], ["Bring a coat."]])
    reader = StandInReader(["The ferry leaves at noon.", "", "Bring a coat."])
    document = load_document(data, "scan.pdf", read_page=reader)
    assert [(s.page, s.text) for s in document.sections] == [
        (1, "The ferry leaves at noon."), (3, "Bring a coat.")
    ]
    assert document.pages == 3
    assert document.notes == ("Text read from images (OCR) on pages 1-3.", "Page 2: no text found.")
    assert reader.seen == [[(1240, 1754)]] * 3  # one full-page image per page, as scanned


def test_pdf_pages_with_a_text_layer_are_not_read_with_ocr() -> None:
    document = load_document(pdf_bytes(PDF_PAGES), "typed.pdf", read_page=refuses_to_read)
    assert [s.page for s in document.sections] == [1, 2] and document.notes == ()


def test_scan_where_ocr_finds_nothing_says_no_text_was_found() -> None:
    # Pictures of 4 x 4 pixels hold no letter: not even shown to the reader; the page numbers go too.
    with pytest.raises(DocumentParseError, match=r"^scan.pdf: no text found; it has no text layer, and OCR"):
        load_document(scanned_pdf_bytes(3), "scan.pdf", read_page=refuses_to_read)


def test_without_ocr_a_scan_and_an_image_are_refused_clearly() -> None:
    with pytest.raises(DocumentParseError, match=r"this PDF has no text \(scanned\?\).*OCR"):
        load_document(scanned_pdf([["Some words"]]), "scan.pdf")
    with pytest.raises(DocumentParseError, match="photo.png is an image, and reading text from images"):
        load_document(image_bytes([page_image(["Hello"])], "PNG"), "photo.png")


def test_image_formats_are_accepted_and_a_tiff_gives_a_page_per_frame() -> None:
    assert {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"} <= set(SUPPORTED_EXTENSIONS)
    frames = [page_image(["one"]), page_image([]), page_image(["three"])]
    document = load_document(image_bytes(frames, "TIFF"), "fax.tiff", read_page=StandInReader(["one", "", "three"]))
    assert [(s.page, s.text) for s in document.sections] == [(1, "one"), (3, "three")]
    assert document.pages == 3 and document.notes == ("Page 2: no text found.",)
    for image_format, name in (("JPEG", "a.jpg"), ("WEBP", "a.webp"), ("PNG", "a.png")):
        one = load_document(image_bytes([page_image(["x"])], image_format), name, read_page=StandInReader(["Exit"]))
        assert [(s.page, s.text) for s in one.sections] == [(1, "Exit")]


def test_blank_image_and_non_image_are_refused_clearly() -> None:
    with pytest.raises(DocumentParseError, match=r"^blank.png: no text found in the image \(read with OCR\)\.$"):
        load_document(image_bytes([page_image([])], "PNG"), "blank.png", read_page=StandInReader([""]))
    with pytest.raises(DocumentParseError, match=r"^notes.png is not a readable PNG, JPEG, WebP or TIFF image\.$"):
        load_document(b"plain text, renamed", "notes.png", read_page=refuses_to_read)


def test_huge_png_is_refused_by_its_header_before_decoding() -> None:
    data = png_header_only(20_000, 20_000)
    assert len(data) < 100
    with pytest.raises(DocumentParseError) as refused:
        load_document(data, "huge.png", read_page=refuses_to_read)
    # Refused by Pillow's own guard as it reads the header (set to the same limit: it refuses
    # past twice the limit), so in the same words, without the size.
    assert str(refused.value) == (
        "huge.png is over the 50 megapixel limit for one image; "
        "it was not opened (it may be a decompression bomb)."
    )
    # Just over the limit, where Pillow itself would only warn: refused by the declared size.
    with pytest.raises(DocumentParseError, match=r"^wide.png is 10,000 x 5,001 pixels, over the 50"), \
            pytest.warns(Image.DecompressionBombWarning):
        load_document(png_header_only(10_000, 5_001), "wide.png", read_page=refuses_to_read)


def test_pdf_page_with_a_huge_declared_image_is_refused_before_decoding() -> None:
    with pytest.raises(DocumentParseError, match=(
        r"^scan.pdf: the image on page 1 is 30,000 x 30,000 pixels, over the 50 megapixel limit"
    )):
        load_document(pdf_with_declared_image(30_000, 30_000), "scan.pdf", read_page=refuses_to_read)
