"""Loaders: turn one user file into sections of text that keep their page number or heading."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class DocumentParseError(Exception):
    """A file could not be read as a document; the message is one sentence a user can act on."""


@dataclass(frozen=True)
class Section:
    """A run of text from one page (PDF) or under one heading (DOCX, Markdown, HTML)."""

    text: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class LoadedDocument:
    """What a loader found: the sections in reading order and how many pages the file has."""

    sections: list[Section]
    pages: int  # PDF pages; 1 for formats without pages


# Characters kept in stored file names; anything else becomes "_". Own code because the rule is
# tiny and the point is to know exactly what can reach the file system.
_UNSAFE_NAME = re.compile(r"[^\w.\- ()\[\]+,@]")
_MAX_NAME_CHARS = 150


def sanitize_file_name(name: str) -> str:
    """A name safe to use as one path component: no directories, no control characters, no dots only."""
    # Both separators count: a browser on Windows may send "C:\\Users\\me\\a.pdf".
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = _UNSAFE_NAME.sub("_", base).strip(" .")
    if len(base) > _MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        if dot and len(suffix) <= 10:
            base = stem[: _MAX_NAME_CHARS - len(suffix) - 1] + "." + suffix
        else:
            base = base[:_MAX_NAME_CHARS]
    return base or "unnamed"


def decode_text(data: bytes, file_name: str) -> str:
    """Decode a text file's bytes; refuse files that are really binary."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise DocumentParseError(f"{file_name} could not be read as UTF-16 text.") from exc
    if b"\x00" in data:
        raise DocumentParseError(
            f"{file_name} looks like a binary file, not text; check that the extension is right."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            # Older Windows tools write cp1252; it decodes nearly any byte, so check the result too.
            text = data.decode("cp1252")
        except UnicodeDecodeError as exc:
            raise DocumentParseError(
                f"{file_name} is not readable text (neither UTF-8 nor Windows-1252)."
            ) from exc
    control = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f")
    if text and control / len(text) > 0.02:
        raise DocumentParseError(
            f"{file_name} looks like a binary file, not text; check that the extension is right."
        )
    return text


def _normalize_space(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def load_text(data: bytes, file_name: str) -> LoadedDocument:
    text = _normalize_space(decode_text(data, file_name))
    return LoadedDocument([Section(text)] if text else [], pages=1)


def load_markdown(data: bytes, file_name: str) -> LoadedDocument:
    """Markdown split on headings; the nearest heading path is kept as the section's heading."""
    from langchain_text_splitters import MarkdownHeaderTextSplitter

    text = decode_text(data, file_name)
    levels = [("#" * n, f"h{n}") for n in range(1, 7)]
    splitter = MarkdownHeaderTextSplitter(levels, strip_headers=False)
    sections = []
    for doc in splitter.split_text(text):
        heading_path = [doc.metadata[f"h{n}"] for n in range(1, 7) if f"h{n}" in doc.metadata]
        body = _normalize_space(doc.page_content)
        if body:
            sections.append(Section(body, heading=" > ".join(heading_path) or None))
    return LoadedDocument(sections, pages=1)


def load_pdf(data: bytes, file_name: str) -> LoadedDocument:
    """PDF text page by page; page numbers are 1-based as a reader would cite them."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only to set permissions and open with an empty password.
            if not reader.decrypt(""):
                raise DocumentParseError(
                    f"{file_name} is password-protected; remove the password and add it again."
                )
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            text = _normalize_space(page.extract_text() or "")
            if text:
                sections.append(Section(text, page=number))
        pages = len(reader.pages)
    except DocumentParseError:
        raise
    except (DependencyError, FileNotDecryptedError) as exc:
        raise DocumentParseError(
            f"{file_name} is encrypted in a way that cannot be opened here; "
            "save an unencrypted copy and add that."
        ) from exc
    except (PdfReadError, PdfStreamError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # pypdf reports damaged files through several exception types.
        raise DocumentParseError(f"{file_name} is not a readable PDF (it may be damaged).") from exc
    return LoadedDocument(sections, pages=pages)


class _HeadedSections:
    """Lines gathered under their nearest heading, one Section per heading (Word and HTML alike)."""

    def __init__(self) -> None:
        self.heading: str | None = None
        self._sections: list[Section] = []
        self._lines: list[str] = []

    def start(self, heading: str | None) -> None:
        """Close the section so far and open one under ``heading`` (whose text is part of it)."""
        self._flush()
        self.heading = heading
        self.add(heading or "")

    def add(self, text: str) -> None:
        if text:
            self._lines.append(text)

    def close(self) -> list[Section]:
        self._flush()
        return self._sections

    def _flush(self) -> None:
        body = _normalize_space("\n".join(self._lines))
        if body:
            self._sections.append(Section(body, heading=self.heading))
        self._lines.clear()


def load_docx(data: bytes, file_name: str) -> LoadedDocument:
    """Word paragraphs grouped under their nearest heading; tables are read row by row."""
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # PackageNotFoundError, BadZipFile, lxml errors: no common base
        raise DocumentParseError(f"{file_name} is not a readable Word document.") from exc
    collected = _HeadedSections()
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = paragraph.text.strip()
        if style.lower().startswith(("heading", "title")) and text:
            collected.start(text)
        else:
            collected.add(text)
    sections = collected.close()
    for table in document.tables:
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        body = _normalize_space("\n".join(rows))
        if body:
            sections.append(Section(body, heading="Table"))
    return LoadedDocument(sections, pages=1)


_HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_HTML_BLOCKS = ("p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "caption")


def load_html(data: bytes, file_name: str) -> LoadedDocument:
    """Visible HTML text grouped under its nearest heading; scripts, styles and navigation dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data, file_name), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "head"]):
        tag.decompose()
    collected = _HeadedSections()
    for element in soup.find_all((*_HTML_HEADINGS, *_HTML_BLOCKS)):
        if element.name in _HTML_HEADINGS:
            collected.start(element.get_text(" ", strip=True) or collected.heading)
        elif element.find_parent(_HTML_BLOCKS) is None:  # nested blocks are read with their parent
            collected.add(element.get_text(" ", strip=True))
    sections = collected.close()
    if not sections:  # pages made of bare text or <div>s only
        body = _normalize_space(soup.get_text("\n", strip=True))
        if body:
            sections.append(Section(body))
    return LoadedDocument(sections, pages=1)


def load_csv(data: bytes, file_name: str) -> LoadedDocument:
    """Each row as one line "Row n: column: value; ...", so a chunk carries its column names."""
    text = decode_text(data, file_name)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text), dialect))
    except csv.Error as exc:
        raise DocumentParseError(f"{file_name} is not a readable CSV file.") from exc
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return LoadedDocument([], pages=1)
    header, body = rows[0], rows[1:]
    lines = []
    for number, row in enumerate(body, start=2):
        cells = [
            f"{header[i].strip() if i < len(header) and header[i].strip() else f'column {i + 1}'}: "
            f"{cell.strip()}"
            for i, cell in enumerate(row)
            if cell.strip()
        ]
        lines.append(f"Row {number}: " + "; ".join(cells))
    if not body:
        lines.append("; ".join(cell.strip() for cell in header))
    return LoadedDocument([Section("\n".join(lines))], pages=1)


LOADERS: dict[str, Callable[[bytes, str], LoadedDocument]] = {
    ".pdf": load_pdf,
    ".docx": load_docx,
    ".txt": load_text,
    ".text": load_text,
    ".log": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
    ".csv": load_csv,
}

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(LOADERS))


def load_document(data: bytes, file_name: str) -> LoadedDocument:
    """Pick the loader by extension and run it; every failure is a DocumentParseError."""
    suffix = Path(file_name).suffix.lower()
    loader = LOADERS.get(suffix)
    if loader is None:
        kinds = ", ".join(SUPPORTED_EXTENSIONS)
        raise DocumentParseError(
            f"{file_name}: files of type '{suffix or 'none'}' are not supported (supported: {kinds})."
        )
    if not data:
        raise DocumentParseError(f"{file_name} is empty.")
    document = loader(data, file_name)
    if not any(section.text.strip() for section in document.sections):
        hint = " (a scanned PDF needs OCR, which is not supported)" if suffix == ".pdf" else ""
        raise DocumentParseError(f"{file_name} contains no text to index{hint}.")
    return document
