"""Ingestion: add files to a collection (read, chunk, embed in batches, write), one outcome per file.

A failed or cancelled file is rolled back; a killed ingest leaves its document marked incomplete,
and the next ingest into that collection removes what it left.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from webui.rag.chunking import Chunk, chunk_budget, chunk_sections
from webui.rag.context import INDEX_FORMAT, embedded_text
from webui.rag.embeddings import Embedder
from webui.rag.errors import IngestCancelled
from webui.rag.loaders import (
    DocumentParseError,
    load_document,
    read_document_file,
    sanitize_file_name,
    unpacked_limit,
)
from webui.rag.ocr import OcrEngine, OcrUnavailableError
from webui.rag.originals import OriginalFiles
from webui.rag.store import ChromaStore, StoredCollection

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)

# Chunks embedded and written at a time: one progress report, and one turn when several ingests
# share the machine. The encoder's own batch (32), so turns cost no speed; about a second of
# MiniLM on two idle cores, so another user's small upload waits little.
EMBED_BATCH = 32

IngestStatus = Literal["added", "unchanged", "replaced", "failed", "cancelled"]


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


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_complete(head: dict[str, Any]) -> bool:
    """Whether a document's head (chunk 0) says its last batch was written.

    Heads written before the flag existed were written in one go, so they count as complete.
    """
    return bool(head.get("complete", True))


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


class Ingester:
    """Writes files into a library's collections; knows which (collection, file) it is writing now.

    ``write_lock`` is the library's: every change to a collection's passages holds it.
    """

    def __init__(
        self,
        store: ChromaStore,
        embedder: Embedder,
        originals: OriginalFiles,
        *,
        write_lock: threading.RLock,
        max_file_bytes: int,
        embed_batch: int = EMBED_BATCH,
        ocr: OcrEngine | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.ocr = ocr or OcrEngine()
        self.originals = originals
        self.max_file_bytes = max_file_bytes
        self.embed_batch = max(1, embed_batch)
        self._write_lock = write_lock
        # (collection, file name) pairs an ingest is writing now: their heads say "incomplete"
        # until the last batch, and must not be taken for the leftovers of a killed ingest.
        self._adding: set[tuple[str, str]] = set()

    def is_adding(self, stored: StoredCollection, file_name: str) -> bool:
        """True while an ingest writes this file into this collection."""
        return (stored.chroma_name, file_name) in self._adding

    def add_files(
        self,
        stored: StoredCollection,
        files: Sequence[Path],
        *,
        progress: Callable[[IngestProgress], None] | None = None,
        control: IngestControl | None = None,
    ) -> list[FileOutcome]:
        """Add files to a collection the caller may edit; each file gets its own outcome.

        Cancelling (through ``control``) keeps the files already added, rolls back the one in
        progress and skips the rest; each gets a "cancelled" outcome.
        """
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

        if stored.index_format < INDEX_FORMAT and self.store.count(stored):
            try:
                stored = self._reindex(stored, report, control)
            except IngestCancelled:
                return [FileOutcome(sanitize_file_name(Path(p).name), False,
                                    f"{sanitize_file_name(Path(p).name)} was not added: the add was cancelled.",
                                    0, 0, "cancelled") for p in files]
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
            except (DocumentParseError, OcrUnavailableError) as exc:
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
    def _reindex(
        self, stored: StoredCollection, report: Callable[[str], None], control: IngestControl
    ) -> StoredCollection:
        """Bring a collection indexed by an older INDEX_FORMAT up to date before adding to it, so
        its old and new passages are found alike; progress shows as the file being worked on."""
        log.info("re-indexing '%s' (format %d -> %d)", stored.name, stored.index_format, INDEX_FORMAT)

        def embed(texts: list[str]) -> list[list[float]]:
            with control.turn():
                return self.embedder.embed(texts)

        return self.store.reembed(
            stored, embed, check=control.check,
            progress=lambda done, total: report(f"updating the index of '{stored.name}': {done}/{total} passages"),
        )

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
        same_name = [m for m in heads if is_complete(m)]
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
            if is_complete(m)
        ]
        if twins:
            other = twins[0]
            return FileOutcome(
                name, True,
                f"{name} has the same content as {other.get('file_name')}, already in this collection.",
                int(other.get("doc_chunks", 0)), int(other.get("pages", 1)), "unchanged",
            )

        ocr_pages = 0

        def read_page(images: Sequence[PILImage]) -> str:
            """One scanned page read by OCR: a turn of its own, so Stop acts between pages and
            another user's upload waits at most one page."""
            nonlocal ocr_pages
            control.check()
            with control.turn():
                text = self.ocr.read_page(images)
            ocr_pages += 1
            counts["pages"] += 1
            report(name)
            return text

        document = load_document(
            data, name, max_unpacked_bytes=unpacked_limit(self.max_file_bytes), read_page=read_page
        )
        counts["pages"] += document.pages - ocr_pages
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

        added_at = now_iso()
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
                            vectors = self.embedder.embed(
                                [embedded_text(chunks[i].text, name) for i in batch])
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
                    self.originals.keep(stored, name, data)
            except BaseException:
                self._roll_back(stored, name, sha)
                raise
        status: IngestStatus = "replaced" if same_name else "added"
        verb = "Replaced" if same_name else "Added"
        pages = f"{document.pages} pages, " if document.pages > 1 else ""
        message = " ".join([f"{verb} {name} ({pages}{len(chunks)} passages).", *document.notes])
        return FileOutcome(name, True, message, len(chunks), document.pages, status)

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
