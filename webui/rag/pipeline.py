"""Pipeline: the document library the app talks to: collections, ingestion, retrieval, cited context."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from webui.rag.chunking import Chunk, chunk_budget, chunk_sections
from webui.rag.chroma_server import ChromaServer
from webui.rag.embeddings import Embedder
from webui.rag.errors import RagError
from webui.rag.loaders import (
    DocumentParseError,
    load_document,
    read_document_file,
    sanitize_file_name,
    unpacked_limit,
)
from webui.rag.rerank import Reranker
from webui.rag.retrieval import RetrievalMode, search
from webui.rag.settings import DEFAULT_MIN_SCORE as _DEFAULT_MIN_SCORE
from webui.rag.settings import InvalidRetrievalSettingsError, RetrievalSettings
from webui.rag.store import SHARED_OWNER, ChromaStore, StoredCollection

log = logging.getLogger(__name__)

NO_RELEVANT_PASSAGES_MESSAGE = (
    "I found nothing in the selected documents that answers this. "
    "Try rephrasing the question, or choose other collections."
)

RAG_INSTRUCTIONS = (
    "Answer the question using only the numbered sources below. After each statement, cite the "
    "source it comes from as [1], [2], ... If the sources do not contain the answer, say so."
)

# The cut-off and the other retrieval settings live in webui/rag/settings.py (kept per collection).
DEFAULT_MIN_SCORE = _DEFAULT_MIN_SCORE

MAX_COLLECTION_NAME_CHARS = 80
# Chunks embedded and written at a time: one progress report, and one turn when several ingests
# share the machine. The encoder's own batch (32), so turns cost no speed; about a second of
# MiniLM on two idle cores, so another user's small upload waits little.
_EMBED_BATCH = 32

IngestStatus = Literal["added", "unchanged", "replaced", "failed", "cancelled"]
DocumentState = Literal["complete", "adding", "incomplete"]


class CollectionNotFoundError(RagError):
    pass


class CollectionExistsError(RagError):
    pass


class CollectionPermissionError(RagError):
    pass


class InvalidCollectionNameError(RagError):
    pass


class EmbeddingModelMismatchError(RagError):
    pass


class DocumentNotFoundError(RagError):
    pass


class InvalidSettingsError(RagError):
    pass


class DocumentBusyError(RagError):
    pass


class IngestCancelled(RagError):
    """The user cancelled an ingest: files done before stay, the file in progress is rolled back."""


class IngestControl:
    """What an ingest calls between batches: wait for its turn, stop when cancelled.

    This default runs freely; the document service supplies one that takes turns between users.
    """

    def turn(self) -> AbstractContextManager[None]:
        """Held while one batch is embedded (its write overlaps the next turn); raises
        IngestCancelled when cancelled."""
        return nullcontext()

    def check(self) -> None:
        """Raise IngestCancelled if the ingest was cancelled; cheap, called often."""


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
class IngestProgress:
    files_done: int
    files_total: int
    pages_done: int
    chunks_done: int
    current_file: str


@dataclass(frozen=True)
class FileOutcome:
    file_name: str
    ok: bool
    message: str
    chunks: int
    pages: int
    status: IngestStatus


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


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, numbered in rank order so the answer can cite it as [number]."""

    number: int
    text: str
    file_name: str
    page: int | None
    heading: str | None
    score: float
    collection: str

    @property
    def citation(self) -> str:
        """Where the passage comes from, as a reader would look it up: "a.pdf, p. 3"."""
        if self.page is not None:
            return f"{self.file_name}, p. {self.page}"
        if self.heading:
            return f"{self.file_name}, {self.heading}"
        return self.file_name


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


def _dir_name(label: str) -> str:
    """A readable, collision-free directory name for an owner or collection name."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", label).strip("_")[:40] or "shared"
    return f"{slug}-{hashlib.sha256(label.encode()).hexdigest()[:8]}"


def build_context(passages: Sequence[Passage], *, max_chars: int | None = None) -> str:
    """Numbered sources for the prompt: "[1] (a.pdf, p. 3) text", one blank line apart."""
    parts: list[str] = []
    used = 0
    for passage in passages:
        block = f"[{passage.number}] ({passage.citation}) {passage.text}"
        if max_chars is not None:
            room = max_chars - used - (2 if parts else 0)
            if room <= 0:
                break
            if len(block) > room:
                parts.append(block[: max(0, room - 1)].rstrip() + "…")
                break
        parts.append(block)
        used += len(block) + (2 if len(parts) > 1 else 0)
    return "\n\n".join(parts)


def build_prompt(question: str, passages: Sequence[Passage]) -> str:
    """The user turn for a question answered from documents: instructions, sources, question."""
    return f"{RAG_INSTRUCTIONS}\n\nSources:\n{build_context(passages)}\n\nQuestion: {question}"


def format_sources(passages: Sequence[Passage]) -> str:
    """One line per source, to show under an answer: "[1] a.pdf, p. 3"."""
    return "\n".join(f"[{p.number}] {p.citation}" for p in passages)


_MIN_SHORTENED_WORDS = 20  # a shorter fragment rarely answers anything and costs a citation


def fit_passages(
    passages: Sequence[Passage], *, budget_tokens: int, count_tokens: Callable[[str], int]
) -> list[Passage]:
    """The best-ranked passages whose build_context fits budget_tokens; the last may be shortened."""
    kept: list[Passage] = []
    for passage in passages:
        if count_tokens(build_context([*kept, passage])) <= budget_tokens:
            kept.append(passage)
            continue
        words = passage.text.split()
        low, high, best = _MIN_SHORTENED_WORDS, len(words) - 1, 0
        while low <= high:  # the most words that still fit, by bisection
            middle = (low + high) // 2
            trial = replace(passage, text=" ".join(words[:middle]) + " …")
            if count_tokens(build_context([*kept, trial])) <= budget_tokens:
                best, low = middle, middle + 1
            else:
                high = middle - 1
        if best:
            kept.append(replace(passage, text=" ".join(words[:best]) + " …"))
        break
    return kept


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
        embed_batch: int = _EMBED_BATCH,
        reranker: Reranker | None = None,
        chroma_server: ChromaServer | None = None,
    ) -> None:
        """``chroma_server``: a shared Chroma server instead of the local database under ``data_dir``."""
        self.data_dir = Path(data_dir)
        self.uploads_dir = self.data_dir / "uploads"
        self.max_file_bytes = max_file_mb * 1024 * 1024
        self.embedder = embedder or Embedder(embedding_model)
        self.store = ChromaStore(self.data_dir / "chroma", server=chroma_server)
        self.reranker = reranker  # None: no cross-encoder available offline (webui/rag/rerank.py)
        self.embed_batch = max(1, embed_batch)
        self._write_lock = threading.RLock()
        # (collection, file name) pairs an ingest is writing now: their heads say "incomplete"
        # until the last batch, and must not be taken for the leftovers of a killed ingest.
        self._adding: set[tuple[str, str]] = set()

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
        return [m for m in self._document_heads(stored) if _is_complete(m)]

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
                created_at=_now(),
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
            old_dir = self._upload_dir(stored)
            renamed = self.store.rename(stored, new)
            if old_dir.exists():
                os.replace(old_dir, self._upload_dir(renamed))
            return self._info(owner, renamed)

    def delete_collection(self, owner: str, name: str) -> None:
        with self._write_lock:
            stored = self._editable(owner, name)
            self.store.delete(stored)
            shutil.rmtree(self._upload_dir(stored), ignore_errors=True)

    # --- documents ---------------------------------------------------------------------------

    def documents(self, owner: str, collection: str) -> list[DocumentInfo]:
        """One entry per file name: its complete version, else the one being added or left incomplete."""
        stored = self._resolve(owner, collection)
        by_name: dict[str, DocumentInfo] = {}
        for m in self._document_heads(stored):
            name = str(m["file_name"])
            if _is_complete(m):
                state: DocumentState = "complete"
            else:
                state = "adding" if (stored.chroma_name, name) in self._adding else "incomplete"
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
            if (stored.chroma_name, file_name) in self._adding:
                raise DocumentBusyError(
                    f"'{file_name}' is being added right now; cancel that first or wait for it."
                )
            if not self.store.metadatas(stored, {"file_name": file_name}):
                raise DocumentNotFoundError(f"'{file_name}' is not in '{collection}'.")
            self.store.delete_where(stored, {"file_name": file_name})
            upload = self._upload_path(stored, file_name)
            upload.unlink(missing_ok=True)

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

    def _upload_dir(self, stored: StoredCollection) -> Path:
        return self.uploads_dir / _dir_name(stored.owner) / _dir_name(stored.name)

    def _upload_path(self, stored: StoredCollection, file_name: str) -> Path:
        target = self._upload_dir(stored) / sanitize_file_name(file_name)
        # Belt and braces: sanitize_file_name already removed separators and "..".
        if not target.resolve().is_relative_to(self.uploads_dir.resolve()):
            raise DocumentParseError(f"{file_name} has a name that cannot be stored safely.")
        return target

    def _keep_copy(self, stored: StoredCollection, file_name: str, data: bytes) -> None:
        """Write the uploaded bytes atomically, so a crash never leaves half a file."""
        target = self._upload_path(stored, file_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def ingest(
        self,
        owner: str,
        collection: str,
        files: Sequence[Path],
        *,
        progress: Callable[[IngestProgress], None] | None = None,
        control: IngestControl | None = None,
    ) -> list[FileOutcome]:
        """Add files to a collection; each file gets its own outcome and one bad file stops nothing.

        Cancelling (through ``control``) keeps the files already added, rolls back the one in
        progress and skips the rest; each gets a "cancelled" outcome.
        """
        stored = self._editable(owner, collection)
        if stored.embedding_model != self.embedder.model_name:
            raise EmbeddingModelMismatchError(
                f"'{collection}' was built with the embedding model {stored.embedding_model}, but "
                f"{self.embedder.model_name} is in use; switch back or make a new collection."
            )
        control = control or IngestControl()
        counts = {"pages": 0, "chunks": 0}
        outcomes: list[FileOutcome] = []
        repaired = self._repair(stored)

        def report(current: str) -> None:
            if progress is not None:
                progress(
                    IngestProgress(
                        len(outcomes), len(files), counts["pages"], counts["chunks"], current
                    )
                )

        for path in files:
            name = sanitize_file_name(Path(path).name)
            report(name)
            try:
                control.check()
                outcome = self._ingest_one(stored, Path(path), name, counts, report, control)
            except IngestCancelled:
                outcomes.extend(
                    FileOutcome(sanitize_file_name(Path(p).name), False,
                                f"{sanitize_file_name(Path(p).name)} was not added: the add was cancelled.",
                                0, 0, "cancelled")
                    for p in files[len(outcomes):]
                )
                break
            except DocumentParseError as exc:
                outcome = FileOutcome(name, False, str(exc), 0, 0, "failed")
            except OSError as exc:
                log.warning("could not read %s: %s", path, exc)
                outcome = FileOutcome(name, False, f"{name} could not be read.", 0, 0, "failed")
            except Exception:  # one bad file must not stop the batch; the log keeps the detail
                log.exception("ingesting %s failed", path)
                outcome = FileOutcome(
                    name, False, f"{name} could not be added because of an internal error.", 0, 0,
                    "failed",
                )
            if outcome.ok and outcome.status != "unchanged" and name in repaired:
                outcome = replace(
                    outcome, message=f"{outcome.message} An earlier add of it had been interrupted; "
                    "its partial passages were removed."
                )
            outcomes.append(outcome)
        report("")
        return outcomes

    def _repair(self, stored: StoredCollection) -> set[str]:
        """Remove what a killed ingest left half-written in this collection; the file names mended."""
        repaired: set[str] = set()
        with self._write_lock:
            for head in self.store.metadatas(stored, {"$and": [{"chunk_index": 0}, {"complete": False}]}):
                name, sha = str(head.get("file_name", "")), str(head.get("sha256", ""))
                if (stored.chroma_name, name) in self._adding:
                    continue  # being written right now, not left over
                log.warning("removing the passages of an interrupted add of %s in '%s'", name, stored.name)
                self.store.delete_where(stored, {"$and": [{"file_name": name}, {"sha256": sha}]})
                repaired.add(name)
        return repaired

    @contextmanager
    def _adding_file(self, stored: StoredCollection, name: str) -> Iterator[bool]:
        """Mark (collection, file) as being written; yields False if another ingest already is."""
        key = (stored.chroma_name, name)
        with self._write_lock:
            if key in self._adding:
                yield False
                return
            self._adding.add(key)
        try:
            yield True
        finally:
            with self._write_lock:
                self._adding.discard(key)

    def _ingest_one(
        self,
        stored: StoredCollection,
        path: Path,
        name: str,
        counts: dict[str, int],
        report: Callable[[str], None],
        control: IngestControl,
    ) -> FileOutcome:
        data = read_document_file(path, name, max_bytes=self.max_file_bytes)
        size = len(data)
        sha = hashlib.sha256(data).hexdigest()

        heads = self.store.metadatas(stored, {"$and": [{"file_name": name}, {"chunk_index": 0}]})
        same_name = [m for m in heads if _is_complete(m)]
        if any(m.get("sha256") == sha for m in same_name):
            head = next(m for m in same_name if m.get("sha256") == sha)
            if len(same_name) > 1:  # a kill between writing a new version and removing the old
                with self._write_lock:
                    if (stored.chroma_name, name) in self._adding:
                        return FileOutcome(
                            name, False,
                            f"{name} is being added by another upload right now; wait for it.",
                            0, 0, "failed",
                        )
                    self.store.delete_where(
                        stored, {"$and": [{"file_name": name}, {"sha256": {"$ne": sha}}]}
                    )
            return FileOutcome(
                name, True, f"{name} is already in this collection, unchanged.",
                int(head.get("doc_chunks", 0)), int(head.get("pages", 1)), "unchanged",
            )
        twins = [
            m for m in self.store.metadatas(stored, {"$and": [{"sha256": sha}, {"chunk_index": 0}]})
            if _is_complete(m)
        ]
        if twins:
            other = twins[0]
            return FileOutcome(
                name, True,
                f"{name} has the same content as {other.get('file_name')}, already in this collection.",
                int(other.get("doc_chunks", 0)), int(other.get("pages", 1)), "unchanged",
            )

        document = load_document(
            data, name, max_unpacked_bytes=unpacked_limit(self.max_file_bytes)
        )
        counts["pages"] += document.pages
        report(name)
        chunk_tokens, overlap = chunk_budget(
            self.embedder.max_seq_tokens, stored.settings.chunk_tokens, stored.settings.overlap_tokens
        )

        def count_tokens(text: str) -> int:
            control.check()  # chunking a large file takes a while; let Cancel stop it
            return self.embedder.count_tokens(text)

        chunks = chunk_sections(
            document.sections,
            count_tokens=count_tokens,
            chunk_tokens=chunk_tokens,
            overlap_tokens=overlap,
            with_headings=True,
        )
        if not chunks:
            raise DocumentParseError(f"{name} contains no text to index.")

        added_at = _now()
        ids = [f"{sha}-{c.index}" for c in chunks]
        metadatas = [
            _chunk_metadata(c, name, sha, size, document.pages, len(chunks), added_at)
            for c in chunks
        ]
        # The head (chunk 0, written with the first batch) says "incomplete" until the last batch
        # is in, so a kill part way is never taken for a finished document; see _repair.
        metadatas[0]["complete"] = False
        with self._adding_file(stored, name) as free:
            if not free:
                return FileOutcome(
                    name, False, f"{name} is being added by another upload right now; wait for it.",
                    0, 0, "failed",
                )
            try:
                batches = embedding_batches(
                    self.embedder.count_tokens_each([c.text for c in chunks]), self.embed_batch
                )
                head_vector: list[float] = []
                # One writer thread: Chroma and the keyword index take a batch while the next one is
                # embedded. A batch counts as done (progress, and what a kill leaves) once written.
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-write") as writer:
                    writing: tuple[Future[None], int] | None = None
                    for batch in batches:
                        with control.turn():
                            vectors = self.embedder.embed([chunks[i].text for i in batch])
                        head_vector = head_vector or vectors[0]  # chunk 0 leads the first batch
                        if writing is not None:
                            self._written(writing, counts, report, name)
                        writing = (writer.submit(
                            self._write_batch, stored, [ids[i] for i in batch], vectors,
                            [chunks[i].text for i in batch], [metadatas[i] for i in batch],
                        ), len(batch))
                    if writing is not None:
                        self._written(writing, counts, report, name)
                with self._write_lock:
                    self.store.add(
                        stored, ids[:1], [head_vector], [chunks[0].text],
                        [{**metadatas[0], "complete": True}],
                    )
                    # New chunks first, old ones after: a reader never sees the file missing.
                    if same_name:
                        self.store.delete_where(
                            stored, {"$and": [{"file_name": name}, {"sha256": {"$ne": sha}}]}
                        )
                    self._keep_copy(stored, name, data)
            except BaseException:
                self._roll_back(stored, name, sha)
                raise
        status: IngestStatus = "replaced" if same_name else "added"
        verb = "Replaced" if same_name else "Added"
        pages = f"{document.pages} pages, " if document.pages > 1 else ""
        return FileOutcome(
            name, True, f"{verb} {name} ({pages}{len(chunks)} passages).", len(chunks),
            document.pages, status,
        )

    def _write_batch(
        self,
        stored: StoredCollection,
        ids: list[str],
        vectors: list[list[float]],
        texts: list[str],
        metadatas: list[dict[str, str | int | bool]],
    ) -> None:
        with self._write_lock:
            self.store.add(stored, ids, vectors, texts, metadatas)

    @staticmethod
    def _written(
        writing: tuple[Future[None], int],
        counts: dict[str, int],
        report: Callable[[str], None],
        name: str,
    ) -> None:
        """Wait for a batch's write (its error is raised here) and report it done."""
        future, size = writing
        future.result()
        counts["chunks"] += size
        report(name)

    def _roll_back(self, stored: StoredCollection, name: str, sha: str) -> None:
        """Remove the passages a failed or cancelled ingest wrote; an older version stays."""
        try:
            with self._write_lock:
                self.store.delete_where(stored, {"$and": [{"file_name": name}, {"sha256": sha}]})
        except Exception:  # what stays is marked incomplete and mended by the next add
            log.exception("could not roll back the partial add of %s in '%s'", name, stored.name)

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

    def update_retrieval_settings(
        self, owner: str, collection: str, settings: RetrievalSettings
    ) -> RetrievalSettings:
        """Keep new settings with the collection; chunk size and overlap apply to files added later."""
        try:
            settings.validated()
        except InvalidRetrievalSettingsError as exc:
            raise InvalidSettingsError(str(exc)) from exc
        with self._write_lock:
            stored = self._editable(owner, collection)
            return self.store.update_settings(stored, settings).settings


def embedding_batches(token_counts: Sequence[int], batch_size: int) -> list[list[int]]:
    """A document's chunk positions in batches to embed and write, longest first.

    The encoder pads a batch to its longest text, so batches of like lengths waste less than
    batches in reading order (about 15% fewer tokens on prose). The head (chunk 0) goes in the
    first batch, as the mark of an unfinished document must be written before anything else.
    """
    if not token_counts:
        return []
    order = [0, *sorted(range(1, len(token_counts)), key=lambda i: -token_counts[i])]
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _is_complete(head: dict[str, Any]) -> bool:
    """Heads written before the flag existed were written in one go, so they count as complete."""
    return bool(head.get("complete", True))


def _chunk_metadata(
    chunk: Chunk, name: str, sha: str, size: int, pages: int, total: int, added_at: str
) -> dict[str, str | int | bool]:
    """Chroma metadata cannot hold None, so page and heading are left out when unknown."""
    meta: dict[str, str | int | bool] = {
        "file_name": name,
        "sha256": sha,
        "chunk_index": chunk.index,
        "doc_chunks": total,
        "pages": pages,
        "size_bytes": size,
        "added_at": added_at,
    }
    if chunk.page is not None:
        meta["page"] = chunk.page
    if chunk.heading:
        meta["heading"] = chunk.heading
    return meta
