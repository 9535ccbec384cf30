"""The document library: per-user collections in Chroma, their documents, ingestion and retrieval."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from webui.rag.chroma_server import ChromaServer
from webui.rag.embeddings import Embedder
from webui.rag.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    CollectionPermissionError,
    DocumentBusyError,
    DocumentNotFoundError,
    EmbeddingModelMismatchError,
    InvalidCollectionNameError,
    RagError,
)
from webui.rag.ingest import (
    EMBED_BATCH,
    FileOutcome,
    IngestControl,
    Ingester,
    IngestProgress,
    is_complete,
    now_iso,
)
from webui.rag.ocr import OcrEngine
from webui.rag.originals import OriginalFiles
from webui.rag.passages import Passage
from webui.rag.rerank import Reranker
from webui.rag.retrieval import RetrievalMode, search
from webui.rag.settings import RetrievalSettings
from webui.rag.store import SHARED_OWNER, ChromaStore, StoredCollection

MAX_COLLECTION_NAME_CHARS = 80

DocumentState = Literal["complete", "adding", "incomplete"]


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as one user sees it."""

    name: str
    shared: bool
    documents: int
    chunks: int
    embedding_model: str
    created_by: str  # the creator's user name
    created_at: str
    editable: bool  # the viewer may add, delete, rename (own collections and shared ones they made)
    settings: RetrievalSettings = RetrievalSettings()


@dataclass(frozen=True)
class DocumentInfo:
    file_name: str
    pages: int
    chunks: int
    size_bytes: int
    added_at: str
    sha256: str
    # "adding" while an ingest writes it; "incomplete" when one was killed part way (added again,
    # it is repaired). Only complete documents count in a collection's total.
    state: DocumentState = "complete"


def validate_collection_name(name: str) -> str:
    """The trimmed name, or InvalidCollectionNameError saying what is wrong with it."""
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidCollectionNameError("A collection needs a name.")
    if len(cleaned) > MAX_COLLECTION_NAME_CHARS:
        raise InvalidCollectionNameError(
            f"Collection names can be at most {MAX_COLLECTION_NAME_CHARS} characters long."
        )
    if any(ord(ch) < 32 for ch in cleaned):
        raise InvalidCollectionNameError("Collection names cannot contain control characters.")
    return cleaned


# The owner of a collection made only to be measured (see rechunked_copy): never a user's id.
MEASURING_OWNER_PREFIX = "measuring-"


class DocumentLibrary:
    """Per-user document collections in Chroma; every method checks that the owner may see them.

    ``owner`` is always a user's id (webui.auth.User.id), never their name, so a later user of a
    removed user's name does not see their collections.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        embedding_model: str | None = None,
        max_file_mb: int = 100,
        embedder: Embedder | None = None,
        embed_batch: int = EMBED_BATCH,
        reranker: Reranker | None = None,
        chroma_server: ChromaServer | None = None,
        ocr: OcrEngine | None = None,
    ) -> None:
        """``chroma_server``: a shared Chroma server instead of the local database under ``data_dir``;
        ``ocr``: the engine that reads scanned pages (default: RapidOCR, loaded on first use)."""
        self.data_dir = Path(data_dir)
        self.uploads_dir = self.data_dir / "uploads"
        self.embedder = embedder or Embedder(embedding_model)
        self.store = ChromaStore(self.data_dir / "chroma", server=chroma_server)
        self.reranker = reranker  # None: no cross-encoder available offline (webui/rag/rerank.py)
        self._originals = OriginalFiles(self.uploads_dir)
        self._write_lock = threading.RLock()
        self.ingester = Ingester(
            self.store, self.embedder, self._originals, write_lock=self._write_lock,
            max_file_bytes=max_file_mb * 1024 * 1024, embed_batch=embed_batch, ocr=ocr,
        )

    # --- collections -------------------------------------------------------------------------

    def _visible(self, owner: str) -> list[StoredCollection]:
        return [c for c in self.store.list() if c.owner == owner or c.shared]

    def _resolve(self, owner: str, name: str) -> StoredCollection:
        """The owner's own collection of that name, else the shared one."""
        visible = {(c.owner, c.name): c for c in self._visible(owner)}
        found = visible.get((owner, name)) or visible.get((SHARED_OWNER, name))
        if found is None:
            raise CollectionNotFoundError(f"There is no collection named '{name}'.")
        return found

    @staticmethod
    def _may_edit(owner: str, stored: StoredCollection) -> bool:
        return stored.owner == owner or (stored.shared and stored.created_by == owner)

    def _editable(self, owner: str, name: str) -> StoredCollection:
        stored = self._resolve(owner, name)
        if not self._may_edit(owner, stored):
            raise CollectionPermissionError(
                f"'{name}' is shared by {stored.creator_name or 'another user'}; only they can change it."
            )
        return stored

    def _document_heads(self, stored: StoredCollection) -> list[dict[str, Any]]:
        """Chunk 0 of every document carries the document's facts; one record per document."""
        return self.store.metadatas(stored, {"chunk_index": 0})

    def _complete_heads(self, stored: StoredCollection) -> list[dict[str, Any]]:
        """The heads of documents whose last batch was written (older ones carry no flag)."""
        return [m for m in self._document_heads(stored) if is_complete(m)]

    def _info(self, owner: str, stored: StoredCollection) -> CollectionInfo:
        return CollectionInfo(
            name=stored.name,
            shared=stored.shared,
            documents=len(self._complete_heads(stored)),
            chunks=self.store.count(stored),
            embedding_model=stored.embedding_model,
            created_by=stored.creator_name,
            created_at=stored.created_at,
            editable=self._may_edit(owner, stored),
            settings=stored.settings,
        )

    def collections(self, owner: str) -> list[CollectionInfo]:
        """The owner's own collections, then the shared ones, each sorted by name."""
        visible = sorted(self._visible(owner), key=lambda c: (c.shared, c.name.lower()))
        return [self._info(owner, c) for c in visible]

    def create_collection(
        self, owner: str, name: str, *, shared: bool = False, creator_name: str = ""
    ) -> CollectionInfo:
        """``creator_name``: the owner's user name, shown as who shared it (default: ``owner``)."""
        name = validate_collection_name(name)
        with self._write_lock:
            if any(c.name == name for c in self._visible(owner)):
                raise CollectionExistsError(f"A collection named '{name}' already exists.")
            stored = self.store.create(
                SHARED_OWNER if shared else owner,
                name,
                created_by=owner,
                created_at=now_iso(),
                embedding_model=self.embedder.model_name,
                created_by_name=creator_name if creator_name != owner else "",
            )
            return self._info(owner, stored)

    def rename_collection(self, owner: str, old: str, new: str) -> CollectionInfo:
        new = validate_collection_name(new)
        with self._write_lock:
            stored = self._editable(owner, old)
            if new == stored.name:
                return self._info(owner, stored)
            if any(c.name == new for c in self._visible(owner)):
                raise CollectionExistsError(f"A collection named '{new}' already exists.")
            renamed = self.store.rename(stored, new)
            self._originals.move(stored, renamed)
            return self._info(owner, renamed)

    def delete_collection(self, owner: str, name: str) -> None:
        with self._write_lock:
            stored = self._editable(owner, name)
            self.store.delete(stored)
            self._originals.remove(stored)

    # --- documents ---------------------------------------------------------------------------

    def documents(self, owner: str, collection: str) -> list[DocumentInfo]:
        """One entry per file name: its complete version, else the one being added or left incomplete."""
        stored = self._resolve(owner, collection)
        by_name: dict[str, DocumentInfo] = {}
        for m in self._document_heads(stored):
            name = str(m["file_name"])
            if is_complete(m):
                state: DocumentState = "complete"
            else:
                state = "adding" if self.ingester.is_adding(stored, name) else "incomplete"
            info = DocumentInfo(
                file_name=name,
                pages=int(m.get("pages", 1)),
                chunks=int(m.get("doc_chunks", 0)),
                size_bytes=int(m.get("size_bytes", 0)),
                added_at=str(m.get("added_at", "")),
                sha256=str(m.get("sha256", "")),
                state=state,
            )
            known = by_name.get(name)
            # While a new version is written the old one still answers: show the complete one.
            if known is None or (known.state != "complete" and state == "complete") or (
                known.state == state and info.added_at > known.added_at
            ):
                by_name[name] = info
        return sorted(by_name.values(), key=lambda d: d.file_name.lower())

    def delete_document(self, owner: str, collection: str, file_name: str) -> None:
        with self._write_lock:
            stored = self._editable(owner, collection)
            if self.ingester.is_adding(stored, file_name):
                raise DocumentBusyError(
                    f"'{file_name}' is being added right now; cancel that first or wait for it."
                )
            if not self.store.metadatas(stored, {"file_name": file_name}):
                raise DocumentNotFoundError(f"'{file_name}' is not in '{collection}'.")
            self.store.delete_where(stored, {"file_name": file_name})
            self._originals.remove(stored, file_name)

    def passages(self, owner: str, collection: str, file_name: str | None = None) -> list[Passage]:
        """A document's passages (or a whole collection's, file by file) in reading order, for summaries.

        Numbered from 1 in that order; the score is 1.0, as nothing was searched.
        """
        stored = self._resolve(owner, collection)
        found = self.store.chunks_where(stored, {"file_name": file_name} if file_name else None)
        if file_name and not found:
            raise DocumentNotFoundError(f"'{file_name}' is not in '{collection}'.")
        found.sort(key=lambda hit: (str(hit[1].get("file_name", "")).lower(), int(hit[1].get("chunk_index", 0))))
        return [
            Passage(
                number=number,
                text=text,
                file_name=str(meta.get("file_name", "")),
                page=int(meta["page"]) if "page" in meta else None,
                heading=str(meta["heading"]) if "heading" in meta else None,
                score=1.0,
                collection=stored.name,
            )
            for number, (text, meta) in enumerate(found, start=1)
        ]

    def ingest(
        self,
        owner: str,
        collection: str,
        files: Sequence[Path],
        *,
        progress: Callable[[IngestProgress], None] | None = None,
        control: IngestControl | None = None,
    ) -> list[FileOutcome]:
        """Add files to a collection the owner may edit; each file gets its own outcome, one bad file stops nothing.

        Cancelling (through ``control``) keeps the files already added, rolls back the one in
        progress and skips the rest; each gets a "cancelled" outcome.
        """
        stored = self._editable(owner, collection)
        if stored.embedding_model != self.embedder.model_name:
            raise EmbeddingModelMismatchError(
                f"'{collection}' was built with the embedding model {stored.embedding_model}, but "
                f"{self.embedder.model_name} is in use; switch back or make a new collection."
            )
        return self.ingester.add_files(stored, files, progress=progress, control=control)

    # --- retrieval ---------------------------------------------------------------------------

    def retrieve(
        self,
        owner: str,
        question: str,
        collections: Sequence[str],
        *,
        k: int | None = None,
        min_score: float | None = None,
        mode: RetrievalMode = "hybrid",
        rerank: bool = True,
    ) -> list[Passage]:
        """The k best passages for the question across the chosen collections, best first.

        Hybrid by default (vectors and BM25, fused by rank; see webui/rag/retrieval.py). ``k`` and
        ``min_score`` left as None take each collection's own settings; a passage whose cosine
        similarity is under the cut-off is dropped, so an unanswerable question gets none.
        ``rerank`` uses the cross-encoder when the library has one.
        """
        if not question.strip() or not collections or (k is not None and k <= 0):
            return []
        chosen = [self._resolve(owner, name) for name in dict.fromkeys(collections)]
        for stored in chosen:
            if stored.embedding_model != self.embedder.model_name:
                raise EmbeddingModelMismatchError(
                    f"'{stored.name}' was built with the embedding model {stored.embedding_model}, "
                    f"but {self.embedder.model_name} is in use; it cannot be searched."
                )
        wanted = k if k is not None else max(s.settings.k for s in chosen)
        cut_offs = {
            s.chroma_name: s.settings.min_score if min_score is None else min_score for s in chosen
        }
        found = search(
            self.store, chosen, question, self.embedder.embed_query(question), k=wanted,
            min_scores=cut_offs, mode=mode, reranker=self.reranker if rerank else None,
        )
        return [
            Passage(
                number=number,
                text=c.text,
                file_name=str(c.metadata.get("file_name", "")),
                page=int(c.metadata["page"]) if "page" in c.metadata else None,
                heading=str(c.metadata["heading"]) if "heading" in c.metadata else None,
                score=c.cosine,
                collection=c.collection.name,
            )
            for number, c in enumerate(found, start=1)
        ]

    # --- retrieval settings ------------------------------------------------------------------

    def retrieval_settings(self, owner: str, collection: str) -> RetrievalSettings:
        return self._resolve(owner, collection).settings

    @contextmanager
    def rechunked_copy(
        self, owner: str, collection: str, chunk_tokens: int, *,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> Iterator[tuple[str, str]]:
        """A hidden copy of ``collection`` whose kept original files are chunked again at
        ``chunk_tokens`` (the overlap keeping its share), removed on leaving; yields the owner and
        name to search it by. Why: chunk size can only be compared by adding the files again, and
        the collection itself must stay as it is while it is measured."""
        stored = self._resolve(owner, collection)
        names = [d.file_name for d in self.documents(owner, collection) if d.state == "complete"]
        files = [self._originals.path(stored, name) for name in names]
        lost = [name for name, path in zip(names, files, strict=True) if not path.is_file()]
        if lost:
            raise DocumentNotFoundError(
                f"{len(lost)} of the files in '{collection}' have no kept original (added before originals "
                "were kept), so its chunk size cannot be compared; add them again first."
            )
        copy_owner, copy_name = f"{MEASURING_OWNER_PREFIX}{uuid.uuid4().hex}", "measuring"
        self.create_collection(copy_owner, copy_name)
        try:
            own = stored.settings
            overlap = own.overlap_tokens * chunk_tokens // own.chunk_tokens
            self.update_retrieval_settings(copy_owner, copy_name, replace(
                own, chunk_tokens=chunk_tokens, overlap_tokens=min(overlap, chunk_tokens // 2)))
            failed = [o for o in self.ingest(copy_owner, copy_name, files, progress=progress) if not o.ok]
            if failed:
                raise RagError(f"Chunking the files again failed: {failed[0].message}")
            yield copy_owner, copy_name
        finally:
            self.delete_collection(copy_owner, copy_name)

    def update_retrieval_settings(
        self, owner: str, collection: str, settings: RetrievalSettings
    ) -> RetrievalSettings:
        """Keep new settings with the collection; chunk size and overlap apply to files added later."""
        settings.validated()
        with self._write_lock:
            stored = self._editable(owner, collection)
            return self.store.update_settings(stored, settings).settings
