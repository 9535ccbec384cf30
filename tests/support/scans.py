"""Scanned pages for the OCR tests: text drawn into images with a real font, saved as PDF, PNG or TIFF."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from tests.support.rag_files import pdf_file

_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# An A4 page at 150 dpi: the size of a typical office scan.
PAGE_SIZE = (1240, 1754)


def page_image(lines: Sequence[str], *, size: tuple[int, int] = PAGE_SIZE, font_size: int = 30) -> Image.Image:
    """A white greyscale page with the lines printed in black from its top left; blank if no lines."""
    font = (
        ImageFont.truetype(str(_FONT), font_size) if _FONT.is_file() else ImageFont.load_default(font_size)
    )
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((100, 150 + number * font_size * 2), line, fill=0, font=font)
    return image


def scanned_pdf(pages: Sequence[Sequence[str]]) -> bytes:
    """A PDF whose pages are only pictures of these lines (no text layer), as a scanner makes."""
    images = [page_image(lines) for lines in pages]
    out = io.BytesIO()
    images[0].save(out, "PDF", save_all=True, append_images=images[1:], resolution=150)
    return out.getvalue()


def image_bytes(images: Sequence[Image.Image], image_format: str) -> bytes:
    """The images saved in one file (PNG, JPEG, WEBP, or TIFF with a page per image)."""
    out = io.BytesIO()
    first, rest = images[0].copy(), [image.copy() for image in images[1:]]
    if image_format == "TIFF":
        first.save(out, "TIFF", save_all=True, append_images=rest, compression="tiff_deflate")
    else:
        first.save(out, image_format)
    return out.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height greyscale pixels but holds a few bytes of garbage as data.

    Nothing large is ever allocated here; and a reader that tried to decode it would fail on the
    data, not on the size, so a refusal by size shows that the size was checked first.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", b"not pixels")
        + _png_chunk(b"IEND", b"")
    )


def pdf_with_declared_image(width: int, height: int) -> bytes:
    """A one-page PDF with no text that draws an image declaring width x height pixels (its data is tiny)."""
    pixels = b"\x80" * 16
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        f"<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace /DeviceGray "
        f"/BitsPerComponent 8 /Length {len(pixels)} >>\nstream\n".encode() + pixels + b"\nendstream",
    ]
    ops = b"q 612 0 0 792 0 0 cm /Im1 Do Q"
    objects.append(b"<< /Length " + str(len(ops)).encode() + b" >>\nstream\n" + ops + b"\nendstream")
    return pdf_file(objects)
