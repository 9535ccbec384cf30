"""PDF text as a reader sees it: ligature glyphs spelled out ("ﬁnal" is found as "final"), and UTF-8 that a
producer wrote into a one-byte font ("lÃªers") read back as the word it was ("lêers")."""

from __future__ import annotations

from tests.support.rag_files import pdf_file
from webui.rag.loaders import load_pdf, repair_pdf_text


def pdf_with_text(line: bytes) -> bytes:
    """A one-page PDF showing ``line`` (raw bytes) in Helvetica, WinAnsi, codes 0x80/0x81 drawn as the fi/fl
    ligatures (pypdf extracts those as U+FB01/U+FB02, as it does for a TrueType font's ligature glyphs)."""
    content = b"BT /F1 12 Tf 72 720 Td (" + line + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >>"
        b" /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Type /Encoding"
        b" /BaseEncoding /WinAnsiEncoding /Differences [128 /fi 129 /fl] >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
    ]
    return pdf_file(objects)


def test_accented_words_and_ligatures_read_as_written() -> None:
    [section] = load_pdf(pdf_with_text(b"Die l\xeaers is \x80naal en \x81ink, caf\xe9."), "af.pdf").sections
    assert section.text == "Die lêers is finaal en flink, café."


def test_utf8_written_into_a_one_byte_font_is_read_back() -> None:
    [section] = load_pdf(pdf_with_text("Die lêers is oop; café, naïve, 20 €.".encode()), "utf8.pdf").sections
    assert section.text == "Die lêers is oop; café, naïve, 20 €."


def test_text_that_only_looks_odd_is_kept() -> None:
    assert repair_pdf_text("São Paulo, Ãngstrom, ÂB test") == "São Paulo, Ãngstrom, ÂB test"
