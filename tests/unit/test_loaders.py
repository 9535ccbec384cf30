"""Loaders: each format yields its text with pages or headings; bad input gets one clear sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.rag_files import (
    PDF_PAGES,
    docx_bytes,
    encrypted_pdf_bytes,
    pdf_bytes,
    write_good_files,
)
from webui.rag.loaders import (
    SUPPORTED_EXTENSIONS,
    DocumentParseError,
    decode_text,
    load_document,
    sanitize_file_name,
)


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_good_files(tmp_path_factory.mktemp("docs"))


def _load(path: Path):
    return load_document(path.read_bytes(), path.name)


def test_pdf_text_keeps_page_numbers(good_files: dict[str, Path]) -> None:
    document = _load(good_files["pdf"])
    assert document.pages == 2
    assert [s.page for s in document.sections] == [1, 2]
    assert "tomato seedlings" in document.sections[0].text
    assert "twelve degrees Celsius" in document.sections[1].text


def test_pdf_encrypted_with_empty_password_opens() -> None:
    data = encrypted_pdf_bytes(pdf_bytes(PDF_PAGES), user_password="", owner_password="owner")
    document = load_document(data, "permissions-only.pdf")
    assert "propane" in document.sections[1].text


def test_pdf_with_a_password_is_refused_clearly() -> None:
    data = encrypted_pdf_bytes(pdf_bytes(PDF_PAGES), user_password="secret", owner_password="o")
    with pytest.raises(DocumentParseError, match="locked.pdf is password-protected"):
        load_document(data, "locked.pdf")


def test_damaged_pdf_is_refused_clearly() -> None:
    with pytest.raises(DocumentParseError, match="broken.pdf is not a readable PDF"):
        load_document(pdf_bytes(PDF_PAGES)[:150], "broken.pdf")


def test_pdf_without_text_says_ocr_is_not_supported() -> None:
    with pytest.raises(DocumentParseError, match="no text.*OCR"):
        load_document(pdf_bytes([[], []]), "scan.pdf")


def test_docx_sections_follow_headings(good_files: dict[str, Path]) -> None:
    document = _load(good_files["docx"])
    by_heading = {s.heading: s.text for s in document.sections}
    assert "thirty days" in by_heading["Expense claims"]
    assert "travel portal" in by_heading["Travel policy"]


def test_docx_that_is_not_a_zip_is_refused() -> None:
    with pytest.raises(DocumentParseError, match="fake.docx is not a readable Word document"):
        load_document(b"just some text, not a zip", "fake.docx")


def test_docx_text_before_any_heading_is_kept() -> None:
    document = load_document(docx_bytes([(None, ["A preamble line."])]), "plain.docx")
    assert document.sections[0].heading is None
    assert document.sections[0].text == "A preamble line."


def test_markdown_headings_become_a_path(good_files: dict[str, Path]) -> None:
    document = _load(good_files["md"])
    headings = [s.heading for s in document.sections]
    assert headings == ["Bicycle maintenance > Chain care", "Bicycle maintenance > Tyres"]
    assert "seven bar" in document.sections[1].text


def test_html_drops_scripts_and_navigation(good_files: dict[str, Path]) -> None:
    document = _load(good_files["html"])
    text = "\n".join(s.text for s in document.sections)
    assert "tracking" not in text and "Home | About" not in text
    hours = next(s for s in document.sections if s.heading == "Opening hours")
    assert "closes on Sundays" in hours.text


def test_csv_rows_carry_their_column_names(good_files: dict[str, Path]) -> None:
    text = _load(good_files["csv"]).sections[0].text
    assert "Row 3: planet: Jupiter; moons: 95; notable: largest planet" in text


def test_semicolon_csv_is_sniffed() -> None:
    text = load_document(b"name;city\nAda;London\n", "people.csv").sections[0].text
    assert text == "Row 2: name: Ada; city: London"


def test_text_with_nul_bytes_is_refused_as_binary() -> None:
    with pytest.raises(DocumentParseError, match="notes.txt looks like a binary file"):
        load_document(b"PK\x03\x04\x00\x00binary", "notes.txt")


def test_text_full_of_control_bytes_is_refused_as_binary() -> None:
    with pytest.raises(DocumentParseError, match="looks like a binary file"):
        decode_text(bytes(range(1, 32)) * 20, "noise.txt")


def test_text_in_windows_1252_and_with_bom_decodes() -> None:
    assert decode_text("café".encode("cp1252"), "a.txt") == "café"
    assert decode_text("\ufeffhello".encode(), "b.txt") == "hello"
    assert decode_text("über".encode("utf-16"), "c.txt") == "über"


def test_empty_file_is_refused() -> None:
    with pytest.raises(DocumentParseError, match="empty.txt is empty"):
        load_document(b"", "empty.txt")


def test_whitespace_only_file_has_no_text() -> None:
    with pytest.raises(DocumentParseError, match="blank.md contains no text"):
        load_document(b" \n\n\t\n", "blank.md")


def test_unknown_extension_lists_what_is_supported() -> None:
    with pytest.raises(DocumentParseError, match=r"type '\.exe' are not supported.*\.pdf"):
        load_document(b"MZ", "setup.exe")
    assert {".pdf", ".docx", ".txt", ".md", ".html", ".csv"} <= set(SUPPORTED_EXTENSIONS)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\evil.txt", "evil.txt"),
        ("C:\\Users\\me\\report.pdf", "report.pdf"),
        ("..", "unnamed"),
        ("a\x00b\nc.txt", "abc.txt"),
        ("notes <draft>|?.md", "notes _draft___.md"),
        ("résumé.docx", "résumé.docx"),
        ("", "unnamed"),
    ],
)
def test_file_names_are_sanitized(raw: str, expected: str) -> None:
    assert sanitize_file_name(raw) == expected


def test_long_file_names_keep_their_extension() -> None:
    name = sanitize_file_name("x" * 400 + ".pdf")
    assert name.endswith(".pdf") and len(name) <= 150
