"""Loaders: turn one user file into sections of text that keep their page number or heading."""

from __future__ import annotations

import csv
import io
import logging
import os
import posixpath
import re
import stat
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote

from webui.rag.errors import RagError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)


class DocumentParseError(RagError):
    """A file could not be read as a document; the message is one sentence a user can act on."""


@dataclass(frozen=True)
class Section:
    """A run of text from one page (PDF) or under one heading (DOCX, Markdown, HTML)."""

    text: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class LoadedDocument:
    """What a loader found: the sections in reading order, how many pages the file has, and what
    the user should hear of how it was read (pages read by OCR, pages where none was found)."""

    sections: list[Section]
    pages: int  # PDF pages, image frames; 1 for formats without pages
    notes: tuple[str, ...] = ()


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


def read_document_file(path: Path, file_name: str, *, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most max_bytes; folders, devices and pipes are refused.

    The file is opened without blocking and checked through its descriptor, so a FIFO never hangs
    the reader and nothing can swap the file between the check and the read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    not_regular = DocumentParseError(
        f"{file_name} is not a regular file (a folder, device or pipe), so it was not read."
    )
    try:
        fd = os.open(path, flags)
    except IsADirectoryError as exc:
        raise not_regular from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise not_regular
    with os.fdopen(fd, "rb") as handle:
        too_big = DocumentParseError(
            f"{file_name} is {info.st_size / 1024 / 1024:.1f} MB, over the "
            f"{max_bytes // (1024 * 1024)} MB limit for one file."
        )
        if info.st_size > max_bytes:
            raise too_big
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew after the check
        raise too_big
    if not data:
        raise DocumentParseError(f"{file_name} is empty.")
    return data


# Office files and EPUBs are zip archives whose members can inflate a thousandfold. What they may
# unpack to is tied to the upload limit, with an absolute cap because parsers hold the XML in
# memory several times over (a 2 GiB member took a probe server from 0.4 to 4.6 GB).
UNPACKED_RATIO = 4
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_ARCHIVE_MEMBERS = 20_000


def unpacked_limit(max_file_bytes: int) -> int:
    """The most an archive-based document may unpack to for a given upload limit."""
    return min(UNPACKED_RATIO * max_file_bytes, MAX_UNPACKED_BYTES)


def check_archive(data: bytes, file_name: str, *, max_unpacked_bytes: int) -> None:
    """Refuse a zip-based document whose members would unpack past the limit.

    Only the central directory is read. Python's zipfile never returns more than a member's
    declared size, so the declared sizes bound one read of every member; what repeated reads and
    the text made from them add is counted while loading (UnpackBudget).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
        raise DocumentParseError(
            f"{file_name} is not a readable {_KIND_NAMES.get(Path(file_name).suffix.lower(), 'file')} "
            "(it is not a valid zip archive)."
        ) from exc
    if len(members) > MAX_ARCHIVE_MEMBERS:
        raise DocumentParseError(
            f"{file_name} holds {len(members):,} parts, more than the {MAX_ARCHIVE_MEMBERS:,} "
            "this app reads; it was not opened."
        )
    unpacked = sum(member.file_size for member in members)
    if unpacked > max_unpacked_bytes:
        raise DocumentParseError(
            f"{file_name} would unpack to {unpacked / 1024 / 1024:,.0f} MB, over the "
            f"{max_unpacked_bytes // (1024 * 1024)} MB this app unpacks from one file; "
            "it was not opened (it may be a zip bomb)."
        )


class UnpackBudget:
    """What one document may still expand to while it is read: bytes inflated from its archive and
    characters of text made from them, each counted up to the unpack limit.

    Why: the archive's directory bounds each member once, not how often a member is read (an EPUB
    spine listing one chapter 2,000 times) nor how often one string is used (XLSX cells that all
    point to one shared string), so a 7 KB file could build gigabytes of text. Loaders charge as
    they go, so the refusal comes before the memory is spent.
    """

    def __init__(self, file_name: str, kind: str, limit: int) -> None:
        self.file_name = file_name
        self.kind = kind
        self.limit = limit
        self.inflated = 0
        self.produced = 0

    def _refuse(self) -> DocumentParseError:
        megabytes = f"{self.limit / 1024 / 1024:,.1f}".removesuffix(".0")
        return DocumentParseError(
            f"{self.file_name}: this {self.kind} expands to more than {megabytes} MB of text; "
            "it was not added."
        )

    def charge_inflated(self, size: int) -> None:
        """Count bytes a parser inflated from the archive."""
        self.inflated += size
        if self.inflated > self.limit:
            raise self._refuse()

    def charge_text(self, size: int) -> None:
        """Count characters of text about to be made (cells visited count one each)."""
        self.produced += size
        if self.produced > self.limit:
            raise self._refuse()

    def text(self, text: str) -> str:
        """``text``, once charged."""
        self.charge_text(len(text))
        return text

    def open_archive(self, data: bytes) -> zipfile.ZipFile:
        """The zip in ``data``, charging every byte read from its members, each time it is read."""
        return _MeteredZipFile(io.BytesIO(data), self)

    def charge_whole_archive(self, data: bytes) -> None:
        """For parsers that inflate every member once when they open the file (python-docx,
        python-pptx): what they inflate is what the directory declares."""
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            self.charge_inflated(sum(member.file_size for member in archive.infolist()))


class _MeteredZipFile(zipfile.ZipFile):
    """A zip whose members charge a budget for the bytes read from them (zipfile's read() opens too)."""

    def __init__(self, file: io.BytesIO, budget: UnpackBudget) -> None:
        super().__init__(file)
        self._budget = budget

    def open(self, name: Any, mode: str = "r", pwd: bytes | None = None, *, force_zip64: bool = False) -> Any:
        member = super().open(name, mode, pwd, force_zip64=force_zip64)
        if mode != "r":
            return member
        return io.BufferedReader(_MeteredMember(member, self._budget))


class _MeteredMember(io.RawIOBase):
    """One member being inflated; each chunk is charged before the parser sees it."""

    def __init__(self, member: IO[bytes], budget: UnpackBudget) -> None:
        self._member = member
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._member.read(len(buffer))
        self._budget.charge_inflated(len(chunk))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._member.close()
        super().close()


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


# Typographic ligatures a PDF font draws as one glyph ("ﬁ" in "ﬁnal"): a search for "final" must find them.
_LIGATURES = {chr(code): unicodedata.normalize("NFKC", chr(code)) for code in range(0xFB00, 0xFB07)}
# UTF-8 read as single bytes (cp1252 or latin-1): "lêers" shown as "lÃªers", "café" as "cafÃ©". A
# producer that wrote UTF-8 into a one-byte font leaves these; a lead byte and 1-3 continuation bytes.
_MOJIBAKE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192"
                       "\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a"
                       "\u20ac\u2122]{1,3}")


def _undo_mojibake(match: re.Match[str]) -> str:
    """One run of UTF-8 read as cp1252 (or latin-1) back to its character; kept as is when it is not one."""
    for single_byte in ("cp1252", "latin-1"):
        try:
            return match.group().encode(single_byte).decode("utf-8")
        except UnicodeError:
            continue
    return match.group()


def repair_pdf_text(text: str) -> str:
    """A PDF page's text with ligature glyphs spelled out and UTF-8 read as single bytes decoded again."""
    return _MOJIBAKE.sub(_undo_mojibake, text.translate(str.maketrans(_LIGATURES)))


def _normalize_space(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# A numbered heading at the start of a line in plain text: "4. Combined Works.", "1.1. Definitions",
# "3. Grant of Patent License. Subject to ..." (the title ends at its full stop or the line's end).
_NUMBERED_HEADING = re.compile(
    r"^(?P<number>\d{1,2}(?:\.\d{1,2})*\.?) (?P<title>[A-Z][^.\n]{0,60}?)(?:\.(?= |$)|$)",
    re.MULTILINE,
)
# Words a title may keep in lower case ("Grant of Patent License").
_TITLE_SMALL_WORDS = frozenset(
    "a an and as at by for from in into of on or the this to under with without".split()
)


def _is_title(title: str) -> bool:
    """Title Case and short: "Grant of Patent License", not "If You initiate litigation"."""
    words = title.split()
    return 0 < len(words) <= 8 and all(
        w[0].isupper() or w[0].isdigit() or w[0] in "\"'(" or w in _TITLE_SMALL_WORDS for w in words
    )


def text_sections(text: str) -> list[Section]:
    """Plain text split at its numbered headings, each part headed by the nearest one above it.

    Why: licences and other plain-text documents are numbered ("2. Grant of Copyright License.");
    a chunk from the middle of a section then still says which section it belongs to (see
    chunking.context_line), and the keyword index weighs that heading. Text with no such line stays
    one section without a heading.
    """
    starts = [m for m in _NUMBERED_HEADING.finditer(text) if _is_title(m.group("title"))]
    if not starts:
        return [Section(text)] if text else []
    sections = []
    if text[: starts[0].start()].strip():
        sections.append(Section(text[: starts[0].start()].strip()))
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        body = text[match.start() : following.start() if following else len(text)].strip()
        heading = f"{match.group('number')} {match.group('title').strip()}"
        sections.append(Section(body, heading=heading))
    return sections


def load_text(data: bytes, file_name: str) -> LoadedDocument:
    """Plain text, split at numbered headings when it has them (see text_sections)."""
    return LoadedDocument(text_sections(_normalize_space(decode_text(data, file_name))), pages=1)


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


# Reads one page's text from its images (OCR), the images in the order the page holds them; the
# document library passes one (see webui/rag/ocr.py), and without one images are not read.
PageReader = Callable[[Sequence["PILImage"]], str]

# Images are refused by their declared size, before any pixel is decoded: a small file can declare
# 20,000 x 20,000 pixels (1.2 GB once decoded to RGB). A page scanned at 600 dpi is 35 megapixels.
MAX_IMAGE_PIXELS = 50_000_000
# Smaller than this either way, an image holds no legible letter (rules, bullets, scanner specks).
_MIN_TEXT_IMAGE_SIDE = 8
# A PDF page is read with OCR when it draws an image and its text layer has fewer letters than
# this (nothing, or only a page number or a scanner's stamp).
_SCANNED_LETTERS_PER_PAGE = 20


def check_image_pixels(width: int, height: int, what: str) -> None:
    """Refuse an image whose declared size is over MAX_IMAGE_PIXELS; ``what`` names it for the user."""
    if width * height > MAX_IMAGE_PIXELS:
        raise DocumentParseError(
            f"{what} is {width:,} x {height:,} pixels, over the {MAX_IMAGE_PIXELS // 1_000_000} "
            "megapixel limit for one image; it was not opened (it may be a decompression bomb)."
        )


def _too_large_image(what: str) -> DocumentParseError:
    """For Pillow's own guard (an image whose real size is larger than it declared)."""
    return DocumentParseError(
        f"{what} is over the {MAX_IMAGE_PIXELS // 1_000_000} megapixel limit for one image; "
        "it was not opened (it may be a decompression bomb)."
    )


def _guard_pillow() -> None:
    """Pillow's own refusal at open, for images whose content is larger than their header says.

    Set at use rather than import (no side effects at import); Pillow warns past the limit and
    refuses past twice it, and the check by declared size above comes first.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS


def page_list(numbers: Sequence[int]) -> str:
    """Page numbers as a reader writes them: [1, 2, 3, 5] -> "1-3, 5"."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def ocr_notes(read: Sequence[int], empty: Sequence[int], unreadable: Sequence[int] = ()) -> tuple[str, ...]:
    """What a user should know of a file read with OCR: which pages, and which gave no text."""

    def pages(numbers: Sequence[int]) -> str:
        return f"{'Page' if len(numbers) == 1 else 'Pages'} {page_list(numbers)}"

    notes = []
    if read:
        notes.append(f"Text read from images (OCR) on {pages(read).lower()}.")
    if empty:
        notes.append(f"{pages(empty)}: no text found.")
    if unreadable:
        notes.append(f"{pages(unreadable)}: the image could not be decoded, so no text was read.")
    return tuple(notes)


def needs_ocr(page_text: str, has_images: bool) -> bool:
    """A PDF page is read with OCR when it draws an image and its text layer has almost no letters."""
    return has_images and sum(ch.isalpha() for ch in page_text) < _SCANNED_LETTERS_PER_PAGE


@contextmanager
def _reading_pdf(file_name: str) -> Iterator[None]:
    """pypdf's many exception types, as one sentence each."""
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError, PdfStreamError

    try:
        yield
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


def load_pdf(data: bytes, file_name: str, read_page: PageReader | None = None) -> LoadedDocument:
    """PDF text page by page; page numbers are 1-based as a reader would cite them.

    A page that is a picture with (almost) no text layer is read with ``read_page`` (OCR) and
    keeps its page number; without a reader, a PDF of such pages is refused as before.
    """
    from pypdf import PdfReader

    with _reading_pdf(file_name):
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are "encrypted" only to set permissions and open with an empty password.
            if not reader.decrypt(""):
                raise DocumentParseError(
                    f"{file_name} is password-protected; remove the password and add it again."
                )
        texts = [_normalize_space(repair_pdf_text(page.extract_text() or "")) for page in reader.pages]
        pictured = [_has_images(page) for page in reader.pages]
    pages = len(texts)
    read: list[int] = []
    empty: list[int] = []
    unreadable: list[int] = []
    if read_page is not None:
        for number, page in enumerate(reader.pages, start=1):
            if not needs_ocr(texts[number - 1], pictured[number - 1]):
                continue
            images = _pdf_page_images(page, file_name, number)
            if images is None:
                unreadable.append(number)
                continue
            ocr_text = _normalize_space(read_page(images)) if images else ""
            read.append(number)
            if any(ch.isalpha() for ch in ocr_text):
                texts[number - 1] = ocr_text
            elif any(ch.isalpha() for ch in texts[number - 1]):
                pass  # a few words in the text layer and nothing in the picture: keep the words
            else:
                texts[number - 1] = ""
                empty.append(number)
    kept = drop_running_lines([text.split("\n") for text in texts])
    sections = [
        Section(text, page=number)
        for number, lines in enumerate(kept, start=1)
        if (text := "\n".join(lines).strip())
    ]
    letters = sum(ch.isalpha() for section in sections for ch in section.text)
    if read_page is None:
        with_images = sum(pictured)
        # No text at all, or pages of pictures whose only text is a page number or a scanner's stamp.
        if not sections or (with_images * 2 >= pages and letters < _SCANNED_LETTERS_PER_PAGE * pages):
            raise DocumentParseError(
                f"{file_name}: this PDF has no text (scanned?). Reading text from images (OCR) is not "
                "available here; add a copy that has a text layer."
            )
    elif read and not letters:
        raise DocumentParseError(
            f"{file_name}: no text found; it has no text layer, and OCR found no text in its page images."
        )
    return LoadedDocument(sections, pages=pages, notes=ocr_notes(read, empty, unreadable))


def _declared_image_sizes(holder: Any, seen: set[int] | None = None) -> Iterator[tuple[int, int]]:
    """Width and height of every image XObject a page (or a form inside it) holds, from their
    dictionaries alone: nothing is decoded."""
    seen = set() if seen is None else seen
    resources = holder.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    xobjects = resources.get("/XObject") if resources is not None else None
    if xobjects is None:
        return
    for ref in xobjects.get_object().values():
        xobject = ref.get_object()
        if id(xobject) in seen:
            continue  # forms may hold each other
        seen.add(id(xobject))
        if xobject.get("/Subtype") == "/Image":
            yield int(xobject.get("/Width", 0)), int(xobject.get("/Height", 0))
        elif xobject.get("/Subtype") == "/Form":
            yield from _declared_image_sizes(xobject, seen)


def _pdf_page_images(page: Any, file_name: str, number: int) -> list[PILImage] | None:
    """The page's images worth reading, upright as the page shows them; None if one cannot be decoded.

    Every image's declared size is checked before any is decoded. The images inside the page's
    content stream (inline ones) are small by their nature and bounded by pypdf's stream limits.
    """
    from PIL import Image

    what = f"{file_name}: the image on page {number}"
    with _reading_pdf(file_name):
        for width, height in _declared_image_sizes(page):
            check_image_pixels(width, height, what)
    _guard_pillow()
    try:
        images = [found.image for found in page.images]
        rotation = page.rotation % 360  # a page shown turned shows its scan turned
    except Image.DecompressionBombError as exc:
        raise _too_large_image(what) from exc
    except MemoryError:
        raise
    except Exception:  # an image format pypdf cannot decode (JBIG2 without jbig2dec, say)
        log.warning("could not decode the images on page %d of %s", number, file_name, exc_info=True)
        return None
    return [
        image.rotate(-rotation, expand=True) if rotation else image
        for image in images
        if image is not None and min(image.size) >= _MIN_TEXT_IMAGE_SIDE
    ]


def _has_images(page: Any) -> bool:
    """Whether a PDF page draws an image, read from its resources without decoding any image."""
    try:
        resources = page.get("/Resources")
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        if xobjects is None:
            return False
        return any(
            ref.get_object().get("/Subtype") == "/Image" for ref in xobjects.get_object().values()
        )
    except Exception:  # a damaged resource dictionary only means "no image seen"
        return False


# Running headers and footers: a line in the top or bottom lines of a page that recurs, digits
# aside, at the edge of nearby pages ("Chapter 4: Function reference 20", a title, "Page 7 of 90").
# Nearby rather than all pages, so headers that change by chapter or alternate between even and
# odd pages are found too. Own code: pypdf extracts text only, and the layout-aware libraries
# that do this (unstructured and the like) would pull in models and much more.
_EDGE_LINES = 2
_NEARBY_PAGES = 4
_MIN_REPEATS = 2


def _edge_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.lower().split()))


def _edges(lines: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indexes of the top and bottom lines of a page; one each on pages of four lines or fewer."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    depth = min(_EDGE_LINES, max(1, (len(filled) - 1) // 2))
    return filled[:depth], filled[-depth:] if filled else []


def drop_running_lines(pages: Sequence[Sequence[str]]) -> list[list[str]]:
    """The pages' lines without the running headers and footers they share with nearby pages.

    A top line is compared with the top lines of nearby pages, a bottom line with bottom lines.
    """
    if len(pages) < _MIN_REPEATS + 1:
        return [list(lines) for lines in pages]
    edges = [_edges(lines) for lines in pages]
    keys = [
        tuple({_edge_key(lines[i]) for i in zone} for zone in page_edges)
        for lines, page_edges in zip(pages, edges, strict=True)
    ]
    kept: list[list[str]] = []
    for number, lines in enumerate(pages):
        nearby = [
            keys[other]
            for other in range(max(0, number - _NEARBY_PAGES), min(len(pages), number + _NEARBY_PAGES + 1))
            if other != number
        ]
        running = {
            i
            for side, zone in enumerate(edges[number])
            for i in zone
            if sum(_edge_key(lines[i]) in other[side] for other in nearby) >= _MIN_REPEATS
        }
        kept.append([line for i, line in enumerate(lines) if i not in running])
    return kept


class _HeadedSections:
    """Lines gathered under their nearest heading, one Section per heading (Word and HTML alike)."""

    def __init__(self) -> None:
        self.heading: str | None = None
        self._sections: list[Section] = []
        self._lines: list[str] = []

    def start(self, heading: str | None, first_line: str | None = None) -> None:
        """Close the section so far and open one under ``heading``, whose text (or first_line, when
        given) is the new section's first line."""
        self._flush()
        self.heading = heading
        self.add(heading or "" if first_line is None else first_line)

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


def load_docx(data: bytes, file_name: str, budget: UnpackBudget) -> LoadedDocument:
    """Word paragraphs grouped under their nearest heading; tables are read row by row."""
    import docx
    from docx.table import _Cell

    budget.charge_whole_archive(data)
    try:
        document = docx.Document(io.BytesIO(data))
    except MemoryError:
        raise
    except Exception as exc:  # PackageNotFoundError, BadZipFile, lxml errors: no common base
        raise DocumentParseError(f"{file_name} is not a readable Word document.") from exc
    collected = _HeadedSections()
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = budget.text(paragraph.text).strip()
        if style.lower().startswith(("heading", "title")) and text:
            collected.start(text)
        else:
            collected.add(text)
    sections = collected.close()
    for table in document.tables:
        # Each <w:tc> once: row.cells repeats a cell for every column it spans (gridSpan, which the
        # file may set to millions) and for every row a vertical merge continues it into.
        rows = [
            " | ".join(budget.text(_Cell(tc, table).text).strip() for tc in row._tr.tc_lst)
            for row in table.rows
        ]
        body = _normalize_space("\n".join(rows))
        if body:
            sections.append(Section(body, heading="Table"))
    return LoadedDocument(sections, pages=1)


_HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_HTML_BLOCKS = ("p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption", "caption")
# Containers whose text is never the page's content: menus, sidebars, page headers and footers,
# search forms. Sphinx, MkDocs and most site generators mark them with these tags or roles.
_HTML_CHROME_TAGS = ("script", "style", "noscript", "template", "nav", "aside", "footer", "form",
                     "head", "button", "svg")
_HTML_CHROME_ROLES = ("navigation", "search", "banner", "contentinfo", "complementary")
# Where the content is, most specific first: ARIA's main role, then HTML5's elements.
_HTML_MAIN = ({"role": "main"}, {"name": "main"}, {"name": "article"})
# Element names that start a new line when a page is rendered; text of anything else runs on.
_HTML_LINE_BREAKS = frozenset(
    {*_HTML_HEADINGS, *_HTML_BLOCKS, "br", "div", "section", "article", "main", "header", "ul",
     "ol", "dl", "table", "tr", "figure", "hr"}
)


def _html_main(soup: Any) -> Any:
    """The element holding the page's own content, or the whole body when none is marked."""
    for selector in _HTML_MAIN:
        found = soup.find(selector.get("name"), attrs={k: v for k, v in selector.items() if k != "name"})
        if found is not None:
            return found
    return soup.body or soup


def _html_text(element: Any) -> str:
    """The text a reader sees: inline tags run on without added spaces (``tomllib.load(f)`` stays
    whole, not ``tomllib . load ( f )``), blocks break lines, and ``<pre>`` keeps its own lines."""
    if element.name == "pre":
        return "\n".join(line.rstrip() for line in element.get_text("").strip("\n").splitlines())
    pieces: list[str] = []
    for node in element.descendants:
        if isinstance(node, str):
            if not any(parent.name == "pre" for parent in node.parents if parent is not element):
                pieces.append(re.sub(r"\s+", " ", str(node)))  # source line breaks are spaces
            continue
        if node.name == "pre":
            pieces.append("\n" + _html_text(node) + "\n")
        elif node.name in _HTML_LINE_BREAKS:
            pieces.append("\n")
    lines = (" ".join(line.split()) for line in "".join(pieces).splitlines())
    return "\n".join(line for line in lines if line)


# A line of a command's --help listing that starts an option: "  --clear   Delete the contents",
# "  -h, --help", "  --prompt PROMPT". Continuation lines are indented deeper than 4 spaces.
_HELP_OPTION = re.compile(r"^ {0,4}(-{1,2}\w[\w-]*(?:[ =][A-Z_]+)?(?:, -{1,2}\w[\w-]*(?:[ =][A-Z_]+)?)*)(?: {2,}|$)")


def option_groups(text: str) -> list[tuple[str | None, str]]:
    """A pre-formatted --help listing as (option names, lines) groups, one per option; other lines
    in groups named None. Text with fewer than 3 option lines is one unnamed group.

    Why: "usage: venv [-h] ... --clear ... --upgrade-deps" and every option's description came as
    one chunk, so a question about --clear matched it no better than a dozen other options.
    """
    lines = text.split("\n")
    if sum(1 for line in lines if _HELP_OPTION.match(line)) < 3:
        return [(None, text)]
    groups: list[tuple[str | None, list[str]]] = []
    for line in lines:
        option = _HELP_OPTION.match(line)
        if option:
            groups.append((option.group(1), [line]))
        elif groups and groups[-1][0] is not None and line.startswith("     "):
            groups[-1][1].append(line)  # the option's description, indented under it
        elif groups and groups[-1][0] is None:
            groups[-1][1].append(line)
        else:
            groups.append((None, [line]))
    return [(name, "\n".join(body)) for name, body in groups]


# A listed value is its own section only with a few words of description; "md5;" alone is no
# passage worth a chunk.
_MIN_VALUE_WORDS = 3


def _leading_literal(item: Any) -> str | None:
    """The code literal an item opens with ("-X dev" of "<li><p><code>-X dev</code>: ..."), when
    words of its own follow it; None otherwise."""
    from bs4 import Tag

    node = item
    while True:
        first = next((c for c in node.children if not (isinstance(c, str) and not c.strip())), None)
        if not isinstance(first, Tag) or first.name not in ("p", "code"):
            return None
        if first.name == "code":
            literal = _html_text(first).replace("\n", " ")
            rest = _html_text(item).replace("\n", " ")[len(literal):]
            return literal if literal and len(re.findall(r"\w+", rest)) >= _MIN_VALUE_WORDS else None
        node = first


def value_items(listing: Any, entry: str) -> list[tuple[str, Any]] | None:
    """A list's items as (literal, item) pairs when there are at least two and every item opens
    with a described value of ``entry``: a code literal that is one word ("malloc", "check") or
    starts with the entry's own name ("-X dev" under "-X"); None otherwise.

    Why: the values of one option ("-X dev", "-X utf8", "-X importtime") all sat under the option's
    heading, so each chunk of the list started alike and a question about one value matched the
    chunk holding three others no worse than the one that answers it. A list of cases in prose
    ("<code>python -m module</code> command line: ...") is no list of values and stays whole.
    """
    items = listing.find_all("li", recursive=False)
    if len(items) < 2:
        return None
    literals = [_leading_literal(item) for item in items]
    if not all(literal and (" " not in literal or literal.startswith(entry + " ")) for literal in literals):
        return None
    return list(zip(literals, items))


def load_html(data: bytes, file_name: str) -> LoadedDocument:
    """The page's main content grouped under heading paths ("Title > Section"), like Markdown.

    Menus, sidebars, breadcrumbs, headers and footers are dropped: repeated on every page of a
    documentation site, they filled chunks with "index | modules | next | previous" and ranked
    above the passage that answers. Each term of a definition list (an option, an environment
    variable, a function) opens its own section, so a chunk holds one definition, not the tail of
    one and the head of the next.
    """
    from bs4 import BeautifulSoup, Tag

    soup = BeautifulSoup(decode_text(data, file_name), "html.parser")
    for tag in soup(_HTML_CHROME_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": list(_HTML_CHROME_ROLES)}):
        tag.decompose()
    for tag in soup.find_all("a", class_="headerlink"):  # Sphinx's "¶" after each heading
        tag.decompose()
    main = _html_main(soup)
    collected = _HeadedSections()
    path: list[tuple[int, str]] = []  # (level, text) of the open headings

    def heading_path(*extra: str) -> str | None:
        return " > ".join([text for _, text in path] + list(extra)) or None

    def walk(node: Tag, in_entry: bool = False) -> None:
        """in_entry: node is, or lies in, a definition (a <dd>), whose listed values split."""
        for child in node.children:
            if not isinstance(child, Tag):
                collected.add(" ".join(str(child).split()))
                continue
            if child.name in _HTML_HEADINGS:
                level, text = int(child.name[1]), _html_text(child).replace("\n", " ")
                if text:
                    while path and path[-1][0] >= level:
                        path.pop()
                    path.append((level, text))
                    collected.start(heading_path(), text)
            elif child.name == "dl":
                walk_definitions(child)
            elif (child.name in ("ul", "ol") and in_entry and collected.heading
                  and (values := value_items(child, collected.heading.rpartition(" > ")[2]))):
                outer = collected.heading
                for literal, item in values:  # each value under the entry's heading, then its own
                    collected.start(f"{outer} > {literal[:160]}", _html_text(item))
                collected.start(outer, "")
            elif child.name in _HTML_BLOCKS or not child.find((*_HTML_BLOCKS, *_HTML_HEADINGS, "dl")):
                groups = option_groups(_html_text(child))
                if len(groups) == 1:
                    collected.add(groups[0][1])
                    continue
                outer = collected.heading
                for name, lines in groups:  # each option under its own heading, as in a <dl>
                    collected.start(heading_path(name) if name else outer, lines)
                collected.start(outer, "")
            else:
                walk(child, in_entry)

    def walk_definitions(listing: Tag) -> None:
        outer = collected.heading
        terms: list[str] = []  # consecutive terms ("-h", "--help") share the definition after them
        for item in listing.find_all(("dt", "dd"), recursive=False):
            if item.name == "dt":
                term = _html_text(item).replace("\n", " ")
                terms.append(term)
                named = ", ".join(t for t in terms if t)[:160]
                if len(terms) == 1:
                    collected.start(heading_path(named) if named else outer, term)
                else:
                    collected.heading = heading_path(named) if named else outer
                    collected.add(term)
            else:
                terms.clear()
                walk(item, in_entry=True)
        collected.start(outer, "")  # text after the list belongs to the heading above it again

    walk(main)
    sections = collected.close()
    if not sections:  # pages made of bare text only
        body = _normalize_space(main.get_text("\n", strip=True))
        if body:
            sections.append(Section(body))
    return LoadedDocument(sections, pages=1)


def _table_text(rows: Iterable[tuple[int, Sequence[str]]], budget: UnpackBudget) -> str:
    """Numbered rows under the first one as header: "Row n: column: value; ..." per line.

    Rows are consumed one at a time and every cell is charged as it is visited and written, the
    header's names included: they repeat on every row, so one long header over many rows, or one
    long shared string in every cell, is stopped at the budget instead of filling memory.
    """
    header: list[str] | None = None
    lines: list[str] = []
    for number, row in rows:
        budget.charge_text(len(row))  # empty cells cost time too: a row may be 16,384 cells wide
        if header is None:
            if any(cell and not cell.isspace() for cell in row):
                header = [budget.text(cell).strip() for cell in row]
            continue
        named = []
        for i, cell in enumerate(row):
            if not cell or cell.isspace():
                continue
            name = header[i] if i < len(header) and header[i] else f"column {i + 1}"
            budget.charge_text(len(name) + len(cell) + 4)  # charged before the copy is made
            named.append(f"{name}: {cell.strip()}")
        if named:
            lines.append(budget.text(f"Row {number}: ") + "; ".join(named))
    if header is None:
        return ""
    if not lines:
        return "; ".join(cell for cell in header if cell)
    return "\n".join(lines)


def load_csv(data: bytes, file_name: str, budget: UnpackBudget) -> LoadedDocument:
    """Each row as one line "Row n: column: value; ...", so a chunk carries its column names."""
    text = decode_text(data, file_name)
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = (row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row))
        body = _table_text(enumerate(rows, start=1), budget)  # numbered without the blank lines
    except csv.Error as exc:
        raise DocumentParseError(f"{file_name} is not a readable CSV file.") from exc
    return LoadedDocument([Section(body)] if body else [], pages=1)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Excel's last row; a sheet that numbers a row past it is damaged or made to make the reader count
# empty rows for ever (openpyxl yields every missing row up to the next one).
_EXCEL_MAX_ROWS = 1_048_576


def load_xlsx(data: bytes, file_name: str, budget: UnpackBudget) -> LoadedDocument:
    """Each sheet as one section named after it, its rows written as in a CSV file."""
    from openpyxl.reader.excel import ExcelReader

    unreadable = DocumentParseError(f"{file_name} is not a readable Excel workbook.")
    try:
        # read_only streams the sheets instead of building every cell; data_only reads the values
        # Excel last computed rather than the formulas. load_workbook, taken apart so that the
        # reader works on a zip that charges the budget for every part it inflates, sheets
        # included (a workbook may name one sheet file many times).
        reader = ExcelReader(io.BytesIO(data), read_only=True, data_only=True)
        reader.archive.close()
        reader.archive = budget.open_archive(data)
        reader.read()
        workbook = reader.wb
    except (DocumentParseError, MemoryError):
        raise
    except Exception as exc:  # InvalidFileException, KeyError, lxml errors: no common base
        raise unreadable from exc

    def numbered_rows(sheet: Any) -> Iterator[tuple[int, list[str]]]:
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > _EXCEL_MAX_ROWS:
                raise unreadable
            yield number, [_cell_text(value) for value in values]

    sections = []
    try:
        for sheet in workbook.worksheets:
            # The declared size (say A1:XFD1048576) would pad every row to its full width; each
            # row as wide as its own last cell gives the same text.
            sheet.reset_dimensions()
            body = _table_text(numbered_rows(sheet), budget)
            if body:
                sections.append(Section(body, heading=f"Sheet {sheet.title}"))
    except (DocumentParseError, MemoryError):
        raise
    except Exception as exc:
        raise unreadable from exc
    finally:
        workbook.close()
    return LoadedDocument(sections, pages=1)


def _slide_shapes(shapes: Iterable[Any]) -> Iterable[Any]:
    """Every shape on a slide, the members of grouped shapes included."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _slide_shapes(shape.shapes)
        else:
            yield shape


def load_pptx(data: bytes, file_name: str, budget: UnpackBudget) -> LoadedDocument:
    """One section per slide, under "Slide n: title", with its tables and speaker notes.

    A slide the presentation lists twice is read once: the list may name one slide thousands of
    times, and nobody wants the same slide twice in the index.
    """
    from pptx import Presentation

    budget.charge_whole_archive(data)
    try:
        presentation = Presentation(io.BytesIO(data))
        slides = list(presentation.slides)
    except MemoryError:
        raise
    except Exception as exc:  # PackageNotFoundError, KeyError, lxml errors: no common base
        raise DocumentParseError(f"{file_name} is not a readable PowerPoint file.") from exc
    sections = []
    seen = set()
    for number, slide in enumerate(slides, start=1):
        if slide.part in seen:
            continue
        seen.add(slide.part)
        title_shape = slide.shapes.title
        title = " ".join(budget.text(title_shape.text_frame.text).split()) if title_shape is not None else ""
        lines: list[str] = []
        for shape in _slide_shapes(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue  # python-pptx makes a new proxy per access, so compare ids
            if shape.has_text_frame:
                lines.append(budget.text(shape.text_frame.text))
            elif getattr(shape, "has_table", False):
                lines.extend(
                    " | ".join(budget.text(cell.text).strip() for cell in row.cells) for row in shape.table.rows
                )
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = budget.text(slide.notes_slide.notes_text_frame.text).strip()
            if notes:
                lines.append(f"Notes: {notes}")
        body = _normalize_space("\n".join([title, *lines]))
        if body:
            sections.append(Section(body, heading=f"Slide {number}: {title}" if title else f"Slide {number}"))
    return LoadedDocument(sections, pages=len(seen))


_CONTAINER_NS = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF_NS = "{http://www.idpf.org/2007/opf}"
_EPUB_PAGES = ("application/xhtml+xml", "text/html")


def load_epub(data: bytes, file_name: str, budget: UnpackBudget) -> LoadedDocument:
    """Chapters in reading order (the package's spine), each read like an HTML page, each once.

    Own code over zipfile and the HTML loader, not EbookLib: EbookLib is AGPL-licensed, and an
    EPUB's reading order is two small XML files away. A chapter the spine lists again (it may
    list one chapter thousands of times) is read and indexed only where it first appears.
    """
    from xml.etree import ElementTree

    unreadable = DocumentParseError(f"{file_name} is not a readable EPUB book.")
    try:
        with budget.open_archive(data) as archive:
            # Python's expat refuses entity expansion attacks and ElementTree resolves no
            # external entities, so these small XML files are safe to parse.
            container = ElementTree.fromstring(archive.read("META-INF/container.xml"))
            rootfile = container.find(f".//{_CONTAINER_NS}rootfile")
            if rootfile is None or not rootfile.get("full-path"):
                raise unreadable
            package_path = str(rootfile.get("full-path"))
            package = ElementTree.fromstring(archive.read(package_path))
            manifest = {
                item.get("id"): item
                for item in package.iterfind(f"{_OPF_NS}manifest/{_OPF_NS}item")
            }
            base = posixpath.dirname(package_path)
            members: dict[str, None] = {}  # in spine order, each once
            for ref in package.iterfind(f"{_OPF_NS}spine/{_OPF_NS}itemref"):
                item = manifest.get(ref.get("idref"))
                if item is None or item.get("media-type") not in _EPUB_PAGES:
                    continue
                if "nav" in (item.get("properties") or "").split():
                    continue  # the table of contents repeats every heading
                member = posixpath.normpath(posixpath.join(base, unquote(item.get("href") or "")))
                members.setdefault(member)
            chapters = [archive.read(member) for member in members]
    except DocumentParseError:
        raise
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, ValueError, OSError) as exc:
        raise unreadable from exc
    sections = []
    for chapter in chapters:
        try:
            found = load_html(chapter, file_name).sections
        except DocumentParseError:
            continue  # one unreadable chapter (an image-only page, odd encoding) loses only itself
        for section in found:
            budget.charge_text(len(section.text))
        sections.extend(found)
    return LoadedDocument(sections, pages=1)


# What an image file may be, whatever its extension says; Pillow tries no other format.
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")


def load_image(data: bytes, file_name: str, read_page: PageReader | None = None) -> LoadedDocument:
    """An image's text by OCR, cited as page 1; a multi-page TIFF gives a page per frame.

    Each frame's size is read from its header and checked before its pixels are decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if read_page is None:
        raise DocumentParseError(
            f"{file_name} is an image, and reading text from images (OCR) is not available here."
        )
    _guard_pillow()
    unreadable = DocumentParseError(f"{file_name} is not a readable PNG, JPEG, WebP or TIFF image.")
    sections: list[Section] = []
    empty: list[int] = []
    try:
        image = Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _too_large_image(file_name) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise unreadable from exc
    with image:
        # Animated PNG and WebP frames are moments of one picture, not pages: only TIFF has pages.
        frames = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
        for number in range(1, frames + 1):
            what = file_name if frames == 1 else f"{file_name}: page {number}"
            try:
                image.seek(number - 1)
                check_image_pixels(*image.size, what)
                upright = ImageOps.exif_transpose(image)  # phone photos are stored sideways
                upright.load()
            except DocumentParseError:
                raise
            except Image.DecompressionBombError as exc:
                raise _too_large_image(what) from exc
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise unreadable from exc
            text = (
                _normalize_space(read_page([upright])) if min(upright.size) >= _MIN_TEXT_IMAGE_SIDE else ""
            )
            if any(ch.isalpha() or ch.isdigit() for ch in text):
                sections.append(Section(text, page=number))
            else:
                empty.append(number)
    if not sections:
        where = "the image" if frames == 1 else f"any of its {frames} pages"
        raise DocumentParseError(f"{file_name}: no text found in {where} (read with OCR).")
    return LoadedDocument(sections, pages=frames, notes=ocr_notes([], empty))


# Formats whose text is never much longer than the file itself.
LOADERS: dict[str, Callable[[bytes, str], LoadedDocument]] = {
    ".txt": load_text,
    ".text": load_text,
    ".log": load_text,
    ".md": load_markdown,
    ".markdown": load_markdown,
    ".html": load_html,
    ".htm": load_html,
}
# Formats whose text can outgrow the file many times over (zip members read or referenced again,
# a table's header repeated on every row): their loaders charge an UnpackBudget as they read.
EXPANDING_LOADERS: dict[str, Callable[[bytes, str, UnpackBudget], LoadedDocument]] = {
    ".docx": load_docx,
    ".csv": load_csv,
    ".xlsx": load_xlsx,
    ".pptx": load_pptx,
    ".epub": load_epub,
}

# Formats whose pages may be pictures, read with the OCR page reader load_document is given.
OCR_LOADERS: dict[str, Callable[[bytes, str, PageReader | None], LoadedDocument]] = {
    ".pdf": load_pdf,
    ".png": load_image,
    ".jpg": load_image,
    ".jpeg": load_image,
    ".webp": load_image,
    ".tif": load_image,
    ".tiff": load_image,
}

# Zip-based formats, checked for what they would unpack to before any parser opens them.
ARCHIVE_FORMATS = frozenset({".docx", ".xlsx", ".pptx", ".epub"})
_KIND_NAMES = {
    ".docx": "Word document", ".xlsx": "Excel workbook", ".pptx": "PowerPoint file", ".epub": "EPUB book",
    ".csv": "CSV file",
}

SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted({*LOADERS, *EXPANDING_LOADERS, *OCR_LOADERS}))


def load_document(
    data: bytes,
    file_name: str,
    *,
    max_unpacked_bytes: int = MAX_UNPACKED_BYTES,
    read_page: PageReader | None = None,
) -> LoadedDocument:
    """Pick the loader by extension and run it; every failure is a DocumentParseError.

    Archive formats (DOCX, XLSX, PPTX, EPUB) are refused if their directory declares more than
    max_unpacked_bytes; they and CSV are also refused while being read, as soon as what they
    inflate or the text they make passes it. ``read_page`` reads scanned PDF pages and images
    (OCR); without it, images are refused and so are PDFs without a text layer.
    """
    suffix = Path(file_name).suffix.lower()
    if suffix not in LOADERS and suffix not in EXPANDING_LOADERS and suffix not in OCR_LOADERS:
        kinds = ", ".join(SUPPORTED_EXTENSIONS)
        raise DocumentParseError(
            f"{file_name}: files of type '{suffix or 'none'}' are not supported (supported: {kinds})."
        )
    if not data:
        raise DocumentParseError(f"{file_name} is empty.")
    if suffix in ARCHIVE_FORMATS:
        check_archive(data, file_name, max_unpacked_bytes=max_unpacked_bytes)
    try:
        if suffix in EXPANDING_LOADERS:
            budget = UnpackBudget(file_name, _KIND_NAMES[suffix], max_unpacked_bytes)
            document = EXPANDING_LOADERS[suffix](data, file_name, budget)
        elif suffix in OCR_LOADERS:
            document = OCR_LOADERS[suffix](data, file_name, read_page)
        else:
            document = LOADERS[suffix](data, file_name)
    except MemoryError as exc:
        # Not "unreadable": the file may be fine, the server had too little memory for it.
        raise DocumentParseError(
            f"{file_name} needs more memory to read than this server has free; it was not added."
        ) from exc
    if not any(section.text.strip() for section in document.sections):
        raise DocumentParseError(f"{file_name} contains no text to index.")
    return document
