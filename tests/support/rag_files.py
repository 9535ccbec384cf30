"""Real test documents of every supported format, written from scratch into a folder."""

from __future__ import annotations

import io
from pathlib import Path


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
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


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
