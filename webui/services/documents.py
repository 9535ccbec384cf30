"""The Documents tab's actions over the document library, opened on first use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from webui.auth import User
from webui.config import Settings
from webui.rag import (
    CollectionInfo,
    DocumentInfo,
    DocumentLibrary,
    FileOutcome,
    IngestProgress,
    Passage,
)
from webui.rag.embeddings import Embedder
from webui.rag.rerank import CrossEncoderReranker, Reranker
from webui.rag.settings import RetrievalSettings
from webui.services.access import NotAuthorized

log = logging.getLogger(__name__)

def format_size(size_bytes: int) -> str:
    """'812 B', '14.2 KB', '3.1 MB': sizes as people read them."""
    size = float(size_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # unreachable; keeps type checkers content


def document_rows(documents: Sequence[DocumentInfo]) -> list[list[str | int]]:
    """Rows of (file, pages, passages, size, added) for the Documents tab's table."""
    return [
        [d.file_name, d.pages, d.chunks, format_size(d.size_bytes), d.added_at.replace("T", " ")[:16]]
        for d in documents
    ]


_OUTCOME_MARKS = {"added": "added", "replaced": "replaced", "unchanged": "unchanged", "failed": "**failed**"}


def outcome_report(outcomes: Sequence[FileOutcome]) -> str:
    """One Markdown line per file saying what happened to it, with a count first."""
    if not outcomes:
        return "No files were chosen."
    failed = sum(not o.ok for o in outcomes)
    head = f"**{len(outcomes) - failed} of {len(outcomes)} files added or already there.**"
    if failed:
        head += f" {failed} could not be added."
    lines = [f"- {_OUTCOME_MARKS[o.status]}: {o.message}" for o in outcomes]
    return "\n".join([head, "", *lines])


def progress_line(progress: IngestProgress) -> tuple[float, str]:
    """A fraction done and a caption (files, pages, passages) for the ingest progress bar."""
    total = max(progress.files_total, 1)
    caption = (
        f"File {min(progress.files_done + 1, total)} of {total}"
        + (f" ({progress.current_file})" if progress.current_file else "")
        + f" · {progress.pages_done} pages · {progress.chunks_done} passages"
    )
    return progress.files_done / total, caption


def _reranker(settings: Settings) -> Reranker | None:
    """The cross-encoder named by --reranker-model; none by default (none is packaged offline)."""
    return CrossEncoderReranker(settings.reranker_model) if settings.reranker_model else None


class DocumentService:
    """The document library, opened on first use: Chroma and the embedding model are slow to load."""

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        """``embedder`` lets several libraries (tests, tools) share one loaded model."""
        self._settings = settings
        self._embedder = embedder
        self._library: DocumentLibrary | None = None
        self._guard = threading.Lock()

    @property
    def max_upload_mb(self) -> int:
        return self._settings.max_upload_mb

    @property
    def opened(self) -> bool:
        return self._library is not None

    @property
    def library(self) -> DocumentLibrary:
        with self._guard:
            if self._library is None:
                self._library = DocumentLibrary(
                    self._settings.data_dir,
                    embedding_model=self._settings.embedding_model,
                    max_file_mb=self._settings.max_upload_mb,
                    embedder=self._embedder,
                    reranker=_reranker(self._settings),
                )
            return self._library

    def _never_used(self) -> bool:
        """No collection was ever made here, so listing can skip opening Chroma (page loads stay cheap)."""
        return self._library is None and not self._settings.chroma_dir.exists()

    def collections(self, owner: str) -> list[CollectionInfo]:
        return [] if self._never_used() else self.library.collections(owner)

    def collection_names(self, owner: str) -> list[str]:
        """Names the user can pick in the chat: their own, then the shared ones."""
        return list(dict.fromkeys(c.name for c in self.collections(owner)))

    def create(self, user: User, name: str, *, shared: bool = False) -> CollectionInfo:
        """A new empty collection; only an admin may share one with the whole team."""
        if shared and not user.is_admin:
            raise NotAuthorized("Only an admin can share a collection with the team.")
        return self.library.create_collection(user.name, name, shared=shared)

    def rename(self, owner: str, old: str, new: str) -> CollectionInfo:
        return self.library.rename_collection(owner, old, new)

    def delete(self, owner: str, name: str) -> None:
        self.library.delete_collection(owner, name)

    def documents(self, owner: str, collection: str) -> list[DocumentInfo]:
        return self.library.documents(owner, collection)

    def passages(self, owner: str, collection: str, file_name: str | None = None) -> list[Passage]:
        """One document's passages, or the whole collection's, in reading order with their pages."""
        return self.library.passages(owner, collection, file_name)

    def delete_document(self, owner: str, collection: str, file_name: str) -> None:
        self.library.delete_document(owner, collection, file_name)

    def retrieval_settings(self, owner: str, collection: str) -> RetrievalSettings:
        """Chunk size, overlap, k and cut-off kept with the collection."""
        return self.library.retrieval_settings(owner, collection)

    def update_retrieval_settings(
        self, owner: str, collection: str, settings: RetrievalSettings
    ) -> RetrievalSettings:
        return self.library.update_retrieval_settings(owner, collection, settings)

    def ingest(
        self,
        owner: str,
        collection: str,
        files: Sequence[Path],
        *,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> list[FileOutcome]:
        """Add files to a collection; every file gets an outcome, one bad file stops nothing."""
        return self.library.ingest(owner, collection, [Path(f) for f in files], progress=progress)
