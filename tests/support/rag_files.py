"""Real test documents of every supported format, written from scratch into a folder."""

from __future__ import annotations

import io
import re
from pathlib import Path


def pdf_file(objects: list[bytes]) -> bytes:
    """A PDF from its numbered objects (1: the catalog), with the cross-reference table pypdf reads."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF, one text line per entry, Helvetica; offsets computed for a true xref.

    Written by hand because no installed library authors PDF text (pypdf only edits).
    """
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for index, lines in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
            ).encode()
        )
        ops = ["BT", "/F1 11 Tf", "14 TL", "50 750 Td"]
        for line in lines:
            ops.append(f"({_pdf_escape(line)}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
    return pdf_file(objects)


def encrypted_pdf_bytes(plain: bytes, *, user_password: str, owner_password: str) -> bytes:
    """The same PDF encrypted by pypdf (RC4, which needs no optional crypto package)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
    writer.encrypt(user_password, owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(blocks: list[tuple[str | None, list[str]]]) -> bytes:
    """A Word file: for each (heading, paragraphs), a Heading 1 then its paragraphs."""
    import docx

    document = docx.Document()
    for heading, paragraphs in blocks:
        if heading:
            document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# Distinct facts per file, so a retrieval test can tell which file and page answered.
PDF_PAGES = [
    [
        "Greenhouse operations manual.",
        "The tomato seedlings are watered every morning at six o'clock.",
        "Irrigation uses collected rain water from the north tank.",
    ],
    [
        "Winter procedures.",
        "During frost the greenhouse heater is set to twelve degrees Celsius.",
        "The heater runs on propane delivered on the first Monday of each month.",
    ],
]

DOCX_BLOCKS = [
    ("Travel policy", ["Employees book flights through the internal travel portal."]),
    (
        "Expense claims",
        ["Receipts for hotel stays must be submitted within thirty days of returning."],
    ),
]

MARKDOWN = """# Bicycle maintenance

## Chain care
Clean and oil the bicycle chain every two hundred kilometres to prevent rust.

## Tyres
Road tyres should be inflated to about seven bar before every ride.
"""

HTML = """<!doctype html><html><head><title>Bakery</title><script>var tracking = 1;</script></head>
<body><nav>Home | About</nav>
<h1>Sourdough bakery</h1>
<p>The sourdough starter is fed with rye flour twice a day.</p>
<h2>Opening hours</h2>
<p>The bakery opens at seven in the morning on weekdays and closes on Sundays.</p>
</body></html>
"""

CSV = """planet,moons,notable
Mercury,0,closest to the sun
Jupiter,95,largest planet with the great red spot
Saturn,146,famous rings made of ice
"""

TEXT = (
    "The lighthouse keeper logs the weather every three hours.\n\n"
    "Lamp oil is stored in the cellar beneath the tower, away from the stairs.\n"
)


def write_good_files(folder: Path) -> dict[str, Path]:
    """One valid file of every supported format; keys are the formats."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "pdf": (folder / "greenhouse.pdf", pdf_bytes(PDF_PAGES)),
        "docx": (folder / "policy.docx", docx_bytes(DOCX_BLOCKS)),
        "md": (folder / "bicycle.md", MARKDOWN.encode()),
        "html": (folder / "bakery.html", HTML.encode()),
        "csv": (folder / "planets.csv", CSV.encode()),
        "txt": (folder / "lighthouse.txt", TEXT.encode()),
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {kind: path for kind, (path, _) in files.items()}


_PUMP_PARTS = ["valve", "filter", "gasket", "bearing", "impeller", "seal", "motor", "shaft", "flange", "sensor", "hose"]
_COLOURS = ["red", "blue", "green", "yellow", "grey", "white", "black"]


def manual_pages(count: int) -> list[list[str]]:
    """A pump manual of ``count`` short pages, each with its own fact (no line repeats across pages)."""
    return [
        [f"Station {n} check: the {_COLOURS[n % 7]} {_PUMP_PARTS[n % 11]} is replaced after {n * 3 + 5} hours."]
        for n in range(1, count + 1)
    ]


def pptx_bytes(slides: list[tuple[str, list[str], str]]) -> bytes:
    """A PowerPoint deck: for each (title, bullet lines, speaker notes), one title-and-content slide."""
    from pptx import Presentation

    deck = Presentation()
    for title, lines, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = "\n".join(lines)
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_bytes(sheets: dict[str, list[list[object]]]) -> bytes:
    """An Excel workbook with one sheet per entry, rows as given (the first row is the header)."""
    import openpyxl

    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def epub_bytes(
    chapters: list[tuple[str, str]], *, with_nav: bool = True, spine: list[int] | None = None
) -> bytes:
    """A minimal EPUB 3: one XHTML file per (title, paragraph), in spine order, plus a nav page.

    ``spine``: the chapter numbers (from 1) in reading order, repeats allowed; all once by default.
    """
    import zipfile

    items, refs = [], []
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:  # the mimetype stays stored
        book.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        for number, (title, text) in enumerate(chapters, start=1):
            href = f"text/chapter {number}.xhtml"  # a space, so the href is URL-encoded
            book.writestr(
                f"OEBPS/{href}",
                '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
                f"<head><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>",
            )
            items.append(
                f'<item id="c{number}" href="{href.replace(" ", "%20")}" '
                'media-type="application/xhtml+xml"/>'
            )
        refs = [f'<itemref idref="c{number}"/>' for number in spine or range(1, len(chapters) + 1)]
        if with_nav:
            links = "".join(f"<li><a>{title}</a></li>" for title, _ in chapters)
            book.writestr(
                "OEBPS/nav.xhtml",
                '<html xmlns="http://www.w3.org/1999/xhtml"><body><nav><ol>'
                f"{links}</ol></nav><h1>Contents</h1><p>{links}</p></body></html>",
            )
            items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>')
            refs.insert(0, '<itemref idref="nav"/>')
        book.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            f"<metadata/><manifest>{''.join(items)}</manifest><spine>{''.join(refs)}</spine></package>",
        )
    return out.getvalue()


def replace_members(archive: bytes, members: dict[str, str | bytes]) -> bytes:
    """A copy of the zip ``archive`` with ``members`` replaced or added (deflated)."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for info in source.infolist():
            if info.filename not in members:
                copy.writestr(info, source.read(info))
        for name, data in members.items():
            copy.writestr(name, data)
    return out.getvalue()


def read_member(archive: bytes, name: str) -> str:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(archive)) as source:
        return source.read(name).decode()


def xlsx_sharing_one_string(text: str, rows: int, columns: int) -> bytes:
    """An Excel workbook of rows x columns cells that all point to one shared string: the file
    holds ``text`` once, a reader that copies it for every cell makes rows * columns of it."""
    from openpyxl.utils import get_column_letter

    base = xlsx_bytes({"S": [["placeholder"]]})
    letters = [get_column_letter(i) for i in range(1, columns + 1)]
    sheet = "".join(
        f'<row r="{r}">' + "".join(f'<c r="{col}{r}" t="s"><v>0</v></c>' for col in letters) + "</row>"
        for r in range(1, rows + 1)
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    types = read_member(base, "[Content_Types].xml").replace(
        "</Types>",
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
    )
    return replace_members(base, {
        "[Content_Types].xml": types,
        "xl/sharedStrings.xml": f'<sst xmlns="{main}" count="{rows * columns}" uniqueCount="1">'
                                f"<si><t>{text}</t></si></sst>",
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{main}"><sheetData>{sheet}</sheetData></worksheet>',
    })


def xlsx_listing_one_sheet(rows: list[list[object]], times: int, *, padding: int = 0) -> bytes:
    """An Excel workbook whose sheet list names one sheet file ``times`` times (under different
    names); ``padding`` bytes of XML comment make that file larger without adding any text."""
    base = xlsx_bytes({"S": rows})
    workbook = read_member(base, "xl/workbook.xml")
    sheet = read_member(base, "xl/worksheets/sheet1.xml")
    entry = re.search(r"<sheet [^>]*/>", workbook)
    assert entry is not None
    names = "".join(entry.group(0).replace('name="S"', f'name="S{n}"') for n in range(1, times + 1))
    return replace_members(base, {
        "xl/workbook.xml": workbook.replace(entry.group(0), names),
        "xl/worksheets/sheet1.xml": sheet.replace("</worksheet>", f"<!--{'x' * padding}--></worksheet>"),
    })


def docx_with_merged_cell(text: str, *, columns_spanned: int = 1, rows_merged: int = 1) -> bytes:
    """A Word file with one table cell holding ``text``, spanning that many columns and merged
    down that many rows: Word shows the text once, python-docx's row.cells repeats the cell for
    every column and row of the merge."""
    import docx

    document = docx.Document()
    document.add_paragraph("A table with one merged cell follows.")
    table = document.add_table(rows=rows_merged, cols=1)
    for number, row in enumerate(table.rows):
        tc = row.cells[0]._tc
        tc.grid_span = columns_spanned
        if number == 0:
            row.cells[0].text = text
            if rows_merged > 1:
                tc.vMerge = "restart"
        else:
            tc.vMerge = "continue"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_listing_one_slide(slide: tuple[str, list[str], str], times: int) -> bytes:
    """A PowerPoint deck whose slide list names its one slide ``times`` times."""
    base = pptx_bytes([slide])
    presentation = read_member(base, "ppt/presentation.xml")
    entry = re.search(r"<p:sldId [^>]*/>", presentation)
    assert entry is not None
    return replace_members(base, {
        "ppt/presentation.xml": presentation.replace(entry.group(0), entry.group(0) * times),
    })


def pptx_sharing_one_notes_page(notes: str, slides: int) -> bytes:
    """A PowerPoint deck of ``slides`` slides whose speaker notes are all one notes page holding
    ``notes``: the file holds the notes once, a reader makes them once per slide."""
    base = pptx_bytes([(f"Slide {n}", [f"point {n}"], notes if n == 1 else "later") for n in range(1, slides + 1)])
    return replace_members(base, {
        f"ppt/slides/_rels/slide{n}.xml.rels": read_member(base, f"ppt/slides/_rels/slide{n}.xml.rels")
        .replace(f"notesSlide{n}.xml", "notesSlide1.xml")
        for n in range(2, slides + 1)
    })


def zip_bomb(base: bytes, member: str, unpacked: int) -> bytes:
    """``base`` (a zip: DOCX, XLSX...) plus a member of ``unpacked`` zero bytes, deflated to ~1/1000.

    Written by hand so making it costs milliseconds: the deflate stream of one MiB of zeros after
    a full flush is the same bytes every time, so it is repeated rather than computed. The CRC is
    left at 0; a reader that inflated the member would fail only at its very end.
    """
    import struct
    import zipfile
    import zlib

    mib = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(mib)) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream = block * (unpacked // mib) + compressor.compress(bytes(unpacked % mib)) + compressor.flush()

    out = io.BytesIO()
    entries = []
    with zipfile.ZipFile(io.BytesIO(base)) as source:
        members = [(i.filename, source.read(i), zipfile.ZIP_DEFLATED) for i in source.infolist()]
    for name, data, _ in members:
        packed = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = packed.compress(data) + packed.flush()
        entries.append((name.encode(), body, zlib.crc32(data), len(data)))
    entries.append((member.encode(), stream, 0, unpacked))
    central = io.BytesIO()
    for name, body, crc, size in entries:
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(body), size, len(name), 0))
        out.write(name + body)
        central.write(
            struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(body), size,
                        len(name), 0, 0, 0, 0, 0, offset)
            + name
        )
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                          len(central.getvalue()), start, 0))
    return out.getvalue()


def scanned_pdf_bytes(pages: int, *, page_numbers: bool = True) -> bytes:
    """A PDF whose pages are pictures (a grey image each), with at most a page number as text."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    page_ids = [5 + 2 * i for i in range(pages)]
    objects.append(f"<< /Type /Pages /Kids [{' '.join(f'{p} 0 R' for p in page_ids)}] /Count {pages} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    pixels = bytes([128]) * 16
    objects.append(
        b"<< /Type /XObject /Subtype /Image /Width 4 /Height 4 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Length 16 >>\nstream\n" + pixels + b"\nendstream"
    )
    for number in range(1, pages + 1):
        objects.append(
            (
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> "
                f"/XObject << /Im1 4 0 R >> >> /Contents {page_ids[number - 1] + 1} 0 R >>"
            ).encode()
        )
        ops = "q 612 0 0 792 0 0 cm /Im1 Do Q"
        if page_numbers:
            ops += f"\nBT /F1 9 Tf 300 20 Td ({number}) Tj ET"
        stream = ops.encode()
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream")
    return pdf_file(objects)


_REGISTERS = ["lowest", "highest", "mean", "last"]


def manual_with_running_lines(chapters: int, pages_per_chapter: int) -> list[list[str]]:
    """Book pages framed by a running header (changing by chapter) and a numbered footer."""
    pages = []
    for chapter in range(1, chapters + 1):
        for step in range(pages_per_chapter):
            number = len(pages) + 1
            pages.append([
                f"Chapter {chapter}: Function reference {number}",
                f"The function number {number * 7} returns the {_REGISTERS[number % 4]} value of register {number}.",
                f"Call it at most {number + 2} times per second.",
                f"Pump Handbook, second edition - page {number}",
            ])
    return pages
