"""OCR: text read from page images by RapidOCR, whose ONNX models ship in its wheel (nothing is downloaded)."""

from __future__ import annotations

import logging
import statistics
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from webui.rag.errors import RagError
from webui.rag.torch_threads import in_own_thread

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)


class OcrUnavailableError(RagError):
    """The OCR models could not be loaded; the message says how to mend the install."""


@dataclass(frozen=True)
class TextBox:
    """One run of text RapidOCR found, with its box's left edge and vertical extent in pixels."""

    text: str
    left: float
    top: float
    bottom: float

    @classmethod
    def from_points(cls, points: Sequence[Sequence[float]], text: str) -> TextBox:
        """From the four corners RapidOCR gives (any order, possibly a little rotated)."""
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        return cls(text, min(xs), min(ys), max(ys))

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def height(self) -> float:
        return max(self.bottom - self.top, 1.0)


def text_from_boxes(boxes: Sequence[TextBox]) -> str:
    """The boxes as lines of text in reading order; a wide gap between lines starts a paragraph.

    Why: the detector finds runs of words, and one printed line may come back as several boxes
    (columns of a table, a gap after a label). Boxes whose middles lie within half a line's height
    of each other are one line, read left to right.
    """
    boxes = [b for b in boxes if b.text.strip()]
    if not boxes:
        return ""
    line_height = statistics.median(b.height for b in boxes)
    lines: list[list[TextBox]] = []
    for box in sorted(boxes, key=lambda b: b.middle):
        if lines and abs(box.middle - statistics.fmean(b.middle for b in lines[-1])) < line_height / 2:
            lines[-1].append(box)
        else:
            lines.append([box])
    parts: list[str] = []
    previous_bottom: float | None = None
    for line in lines:
        top = min(b.top for b in line)
        if previous_bottom is not None:
            parts.append("\n\n" if top - previous_bottom > line_height * 1.2 else "\n")
        parts.append(" ".join(b.text.strip() for b in sorted(line, key=lambda b: b.left)))
        previous_bottom = max(b.bottom for b in line)
    return "".join(parts)


def on_white(image: Image) -> Image:
    """An RGB copy of the image, transparent parts laid on white (dark text on a clear PNG stays legible)."""
    from PIL import Image as PILImage

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB")


class OcrEngine:
    """Reads the text of one image at a time; the models load the first time one is read.

    Each model runs on one core (onnxruntime's intra- and inter-op threads set to 1) and one page
    is read at a time in the whole process, so a scanned upload leaves the other core to chat.
    The work runs in a thread that ends with it, as the embedder's does (webui/rag/torch_threads.py).
    """

    def __init__(self) -> None:
        self._engine: Any = None
        self._load_lock = threading.Lock()
        self._read_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def _load(self) -> Any:
        with self._load_lock:
            if self._engine is None:
                try:
                    from rapidocr_onnxruntime import RapidOCR

                    self._engine = in_own_thread(
                        lambda: RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1), name="ocr-load"
                    )
                except Exception as exc:  # ImportError, a missing model file, onnxruntime's own errors
                    log.exception("the OCR models could not be loaded")
                    raise OcrUnavailableError(
                        "Reading text from images (OCR) is not available: its models could not be "
                        "loaded; reinstall them with: pip install --force-reinstall rapidocr-onnxruntime"
                    ) from exc
            return self._engine

    def read_text(self, image: Image) -> str:
        """The text in the image, line by line; "" when none is found."""
        engine = self._load()
        pixels = on_white(image)
        with self._read_lock:
            found, _timings = in_own_thread(lambda: engine(pixels), name="ocr")
        if not found:
            return ""
        return text_from_boxes([TextBox.from_points(points, text) for points, text, _score in found])

    def read_page(self, images: Sequence[Image]) -> str:
        """The text of one page from its images in order, a blank line between images' texts."""
        return "\n\n".join(text for text in (self.read_text(image) for image in images) if text)
