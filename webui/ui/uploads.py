"""Files handed to event handlers: only Gradio's own upload copies are accepted, and only they are deleted.

A client can send any ``{"path": ...}`` as a file payload; Gradio checks such paths only for apps it
launched itself (app.py makes the mounted app count as one). Every handler that takes files also passes
them through :func:`uploaded_paths` first, whatever Gradio did. In team mode the upload folder is shared
by everyone, so each copy is also tied to the user who uploaded it (:class:`UploadOwners`): one user's
payload naming another's pending upload neither reads nor deletes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from gradio.context import LocalContext
from gradio.utils import get_upload_folder

from webui.errors import UserError

log = logging.getLogger(__name__)


class UploadRejected(UserError, ValueError):
    """A file payload that is not one of this server's uploads; the message is shown to the user."""


def upload_root() -> Path:
    """Gradio's upload folder, where the copies of files sent from the page land."""
    return Path(get_upload_folder()).resolve()


class UploadOwners:
    """Which signed-in user uploaded which of Gradio's upload copies (team mode).

    Filled by the security middleware from the answers of ``POST /gradio_api/upload``; kept on the
    Gradio app's ``state`` (see :data:`STATE_KEY`) so handlers find it through their request.
    """

    PRUNE_EVERY = 200

    def __init__(self) -> None:
        self._owners: dict[Path, set[str]] = {}
        self._lock = threading.Lock()
        self._recorded = 0

    def record(self, user: str, paths: Iterable[str]) -> None:
        with self._lock:
            for raw in paths:
                self._owners.setdefault(Path(raw).resolve(), set()).add(user)
            self._recorded += 1
            if self._recorded % self.PRUNE_EVERY == 0:  # forget copies that are gone
                self._owners = {path: users for path, users in self._owners.items() if path.exists()}

    def owns(self, user: str, path: Path) -> bool:
        with self._lock:
            return user in self._owners.get(path, ())

    def held_by_others(self, user: str, path: Path) -> bool:
        """True when *path* is an upload of other users only: *user* may not fetch it."""
        with self._lock:
            users = self._owners.get(path)
            return bool(users) and user not in users

    def release(self, user: str, path: Path) -> bool:
        """Drop *user*'s hold on *path*; True when nobody else holds it (Gradio stores two uploads of
        the same bytes as one file, so one user's add must not delete another's pending copy)."""
        with self._lock:
            users = self._owners.get(path, set())
            users.discard(user)
            if users:
                return False
            self._owners.pop(path, None)
            return True


STATE_KEY = "upload_owners"


def _caller_and_owners() -> tuple[str, UploadOwners] | None:
    """The user of the running event and the owners table, when the app keeps one (team mode)."""
    request = LocalContext.request.get(None)
    starlette_request = getattr(request, "request", None)
    app = getattr(starlette_request, "app", None)
    owners = getattr(getattr(app, "state", None), STATE_KEY, None)
    if owners is None:
        return None
    return str(getattr(request, "username", None) or ""), owners


def uploaded_paths(raw: Sequence[str | Path] | str | Path | None) -> list[Path]:
    """The given paths, resolved, if every one is a regular file inside the upload folder that the
    calling user uploaded (in team mode).

    Anything else (another user's file or upload, the app's data, a device, a symlink out of the
    folder) refuses the whole request, so a crafted payload reads and deletes nothing.
    """
    if raw is None:
        return []
    items = [raw] if isinstance(raw, (str, Path)) else list(raw)
    root = upload_root()
    ownership = _caller_and_owners()
    accepted: list[Path] = []
    for item in items:
        path = Path(item).resolve()
        foreign = ownership is not None and not ownership[1].owns(ownership[0], path)
        if path == root or not path.is_relative_to(root) or not path.is_file() or foreign:
            log.warning("refused a file payload that is not the caller's upload: %s", item)
            raise UploadRejected("That file did not come from an upload to this page; send it again with the upload box.")
        accepted.append(path)
    return accepted


def discard_uploads(paths: Sequence[str | Path]) -> None:
    """Delete Gradio's temporary copies of uploaded files (the library keeps its own copy).

    Only files inside Gradio's upload folder are touched, and each one's folder when it is empty; in
    team mode only when no other user's upload shares the file.
    """
    root = upload_root()
    ownership = _caller_and_owners()
    for raw in paths:
        path = Path(raw).resolve()
        if not path.is_relative_to(root) or path == root:
            continue
        if ownership is not None and not ownership[1].release(ownership[0], path):
            continue
        try:
            path.unlink(missing_ok=True)
            if path.parent != root and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except OSError as exc:  # another upload may share the folder; the file itself is what matters
            log.warning("could not remove the temporary upload %s: %s", path, exc)
