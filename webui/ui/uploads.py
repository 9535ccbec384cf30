"""Files handed to event handlers: only Gradio's own upload copies are accepted, and only they are deleted.

A client can send any ``{"path": ...}`` as a file payload; Gradio checks such paths only for apps it
launched itself, not for one mounted under our uvicorn. So every handler that takes files passes them
through :func:`uploaded_paths` first, whatever Gradio did.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from gradio.utils import get_upload_folder

log = logging.getLogger(__name__)


class UploadRejected(ValueError):
    """A file payload that is not one of this server's uploads; the message is shown to the user."""


def upload_root() -> Path:
    """Gradio's upload folder, where the copies of files sent from the page land."""
    return Path(get_upload_folder()).resolve()


def uploaded_paths(raw: Sequence[str | Path] | str | Path | None) -> list[Path]:
    """The given paths, resolved, if every one is a regular file inside the upload folder.

    Anything else (another user's file, the app's data, a device, a symlink out of the folder)
    refuses the whole request, so a crafted payload reads and deletes nothing.
    """
    if raw is None:
        return []
    items = [raw] if isinstance(raw, (str, Path)) else list(raw)
    root = upload_root()
    accepted: list[Path] = []
    for item in items:
        path = Path(item).resolve()
        if path == root or not path.is_relative_to(root) or not path.is_file():
            log.warning("refused a file payload outside the upload folder: %s", item)
            raise UploadRejected("That file did not come from an upload to this page; send it again with the upload box.")
        accepted.append(path)
    return accepted


def discard_uploads(paths: Sequence[str | Path]) -> None:
    """Delete Gradio's temporary copies of uploaded files (the library keeps its own copy).

    Only files inside Gradio's upload folder are touched, and each one's folder when it is empty.
    """
    root = upload_root()
    for raw in paths:
        path = Path(raw).resolve()
        if not path.is_relative_to(root) or path == root:
            continue
        try:
            path.unlink(missing_ok=True)
            if path.parent != root and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except OSError as exc:  # another upload may share the folder; the file itself is what matters
            log.warning("could not remove the temporary upload %s: %s", path, exc)
