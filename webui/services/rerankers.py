"""The reranker for document answers: which cross-encoder retrieval uses, downloading and removing them.

The Models tab's *Reranker for documents* panel and the document search both come through here: the
page asks what is installed and in use and changes it (admins only), and :class:`DocumentService`
asks :meth:`RerankerService.current` before each search. ``--reranker-model`` (a folder named at
start-up) wins over the page's pick and cannot be changed from it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from webui.auth import User
from webui.config import Settings
from webui.models.download import DownloadError, ProgressCallback
from webui.models.rerankers import (
    SUGGESTED_RERANKERS,
    cross_encoder_problem,
    delete_reranker,
    download_reranker,
    installed_rerankers,
    read_choice,
    rerankers_dir,
    write_choice,
)
from webui.rag.rerank import CrossEncoderReranker, Reranker, RerankerError
from webui.services.access import NotAuthorized

__all__ = ["DownloadError", "RerankerError", "RerankerService", "RerankerState", "SUGGESTED_RERANKERS"]


@dataclass(frozen=True)
class RerankerState:
    """What the panel shows: the reranker in use (a folder name, or the flag's path), and what is on disk."""

    in_use: str | None
    set_by_flag: bool
    installed: tuple[str, ...]


class RerankerService:
    """Owns the reranker choice and the loaded cross-encoder (one, shared by every search)."""

    def __init__(self, settings: Settings, *, hub_endpoint: str | None = None) -> None:
        self._settings = settings
        self._hub_endpoint = hub_endpoint  # None: HF_ENDPOINT or the public hub, read per call
        self._lock = threading.Lock()
        # Checked here and when picked, never per search: a pick whose folder is gone or damaged is off.
        choice = read_choice(settings.data_dir)
        valid = choice and cross_encoder_problem(rerankers_dir(settings.models_dir) / choice) is None
        self._choice = choice if valid else None
        self._loaded: CrossEncoderReranker | None = None
        self._downloading = threading.Lock()
        self._cancel: threading.Event | None = None  # the running download's, while one runs

    def _path(self) -> str | None:
        if self._settings.reranker_model:
            return self._settings.reranker_model
        if self._choice:
            return str(rerankers_dir(self._settings.models_dir) / self._choice)
        return None

    def current(self) -> Reranker | None:
        """The cross-encoder searches use now; None when reranking is off (the default)."""
        with self._lock:
            path = self._path()
            if path is None:
                return None
            if self._loaded is None or self._loaded.name != path:
                self._loaded = CrossEncoderReranker(path)
            return self._loaded

    def in_use_name(self) -> str | None:
        """The reranker in use by name only (a folder's last part, never a path): for /status."""
        path = self._path()
        return Path(path).name if path else None

    def state(self, user: User) -> RerankerState:
        _require_admin(user)
        with self._lock:
            flag = self._settings.reranker_model
            installed = tuple(installed_rerankers(self._settings.models_dir))
            in_use = flag or (self._choice if self._choice in installed else None)
            return RerankerState(in_use=in_use, set_by_flag=bool(flag), installed=installed)

    def use(self, user: User, name: str | None) -> RerankerState:
        """Turn reranking off (None) or use an installed reranker, after loading it once to check it works;
        a reranker that fails to load leaves the previous choice in place."""
        _require_admin(user)
        if self._settings.reranker_model:
            raise DownloadError("The reranker is set by --reranker-model when the app starts; "
                                "restart without it to pick one here.")
        if name is not None:
            if name not in installed_rerankers(self._settings.models_dir):
                raise DownloadError(f"There is no reranker named '{name}' in the models folder.")
            candidate = CrossEncoderReranker(str(rerankers_dir(self._settings.models_dir) / name))
            candidate.scores("check", ["the reranker loads"])  # raises RerankerError with a sentence
        with self._lock:
            write_choice(self._settings.data_dir, name)
            self._choice = name
            if name is not None:
                self._loaded = candidate
        return self.state(user)

    def download(self, user: User, repo_id: str, *, progress: ProgressCallback | None = None) -> RerankerState:
        """Download a cross-encoder from the hub and use it (unless --reranker-model is set); blocks
        until done, so the page runs it beside its handler. :meth:`cancel_download` stops it."""
        _require_admin(user)
        if not self._downloading.acquire(blocking=False):
            raise DownloadError("A reranker is already being downloaded; wait for it to finish.")
        try:
            self._cancel = threading.Event()
            name = download_reranker(repo_id, self._settings.models_dir, progress=progress, cancel=self._cancel,
                                     endpoint=self._hub_endpoint)
        finally:
            self._cancel = None
            self._downloading.release()
        if self._settings.reranker_model:
            return self.state(user)
        return self.use(user, name)

    def cancel_download(self, user: User) -> bool:
        """Stop the running download (nothing of it is kept); False when none runs."""
        _require_admin(user)
        cancel = self._cancel
        if cancel is None:
            return False
        cancel.set()
        return True

    def delete(self, user: User, name: str) -> RerankerState:
        """Remove an installed reranker; reranking turns off if it was the one in use."""
        _require_admin(user)
        with self._lock:
            if name == self._choice:
                write_choice(self._settings.data_dir, None)
                self._choice = None
                self._loaded = None
            delete_reranker(self._settings.models_dir, name)
        return self.state(user)


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise NotAuthorized("Only an admin can change the reranker.")
