"""The Documents tab's actions over the document library, opened on first use."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from webui.auth import User
from webui.config import Settings
from webui.private_files import TEMP_DIR_NAME
from webui.rag import (
    ChromaServer,
    CollectionInfo,
    DocumentInfo,
    DocumentLibrary,
    FileOutcome,
    IngestCancelled,
    IngestControl,
    IngestProgress,
    Passage,
)
from webui.rag.embeddings import Embedder
from webui.rag.evaluation import EXAMPLE_QUESTIONS_CSV
from webui.rag.settings import RetrievalSettings
from webui.services.access import NotAuthorized
from webui.services.retrieval_eval import (
    EvaluationProgress,
    RetrievalEvaluation,
    comparison_choices,
    evaluate_collection,
)
from webui.services.rerankers import RerankerService

log = logging.getLogger(__name__)

def format_size(size_bytes: int) -> str:
    """'812 B', '14.2 KB', '3.1 MB': sizes as people read them."""
    size = float(size_bytes)
    for unit in ("B", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # unreachable; keeps type checkers content


_STATE_NOTES = {
    "complete": "",
    "adding": " (being added)",
    "incomplete": " (incomplete: an add was interrupted; add the file again)",
}


def document_rows(documents: Sequence[DocumentInfo]) -> list[list[str | int]]:
    """Rows of (file, pages, passages, size, added) for the Documents tab's table."""
    return [
        [d.file_name + _STATE_NOTES[d.state], d.pages, d.chunks, format_size(d.size_bytes),
         d.added_at.replace("T", " ")[:16]]
        for d in documents
    ]


_OUTCOME_MARKS = {
    "added": "added", "replaced": "replaced", "unchanged": "unchanged", "failed": "**failed**",
    "cancelled": "cancelled",
}


def outcome_report(outcomes: Sequence[FileOutcome]) -> str:
    """One Markdown line per file saying what happened to it, with a count first."""
    if not outcomes:
        return "No files were chosen."
    cancelled = sum(o.status == "cancelled" for o in outcomes)
    failed = sum(not o.ok for o in outcomes) - cancelled
    head = f"**{len(outcomes) - failed - cancelled} of {len(outcomes)} files added or already there.**"
    if failed:
        head += f" {failed} could not be added."
    if cancelled:
        head += f" Cancelled: {cancelled} not added, nothing of them kept."
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


@dataclass(eq=False)
class _IngestJob(IngestControl):
    """One running ingest: it waits for its turns through the shared IngestTurns."""

    turns: IngestTurns
    user: str
    cancelled: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def turn(self) -> Iterator[None]:
        self.turns.acquire(self)
        try:
            yield
        finally:
            self.turns.release()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise IngestCancelled("The add was cancelled.")


class IngestTurns:
    """Ingests take turns one batch at a time; of those waiting, the user served longest ago goes first.

    One batch runs at a time whoever asks (the embedding model and the cores are shared anyway),
    and a user who just had a turn goes behind every other user waiting, so a three-line file
    finishes within a batch or two of someone else's 40 MB upload instead of after it. Turns are
    taken in the document service, not the web page's queue, so every front end gets the same.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._tickets = itertools.count()
        self._waiting: dict[_IngestJob, int] = {}  # job -> ticket, in the order they asked
        self._last_turn: dict[str, int] = {}  # user -> ticket of their latest turn
        self._jobs: set[_IngestJob] = set()

    @contextmanager
    def job(self, user: str) -> Iterator[_IngestJob]:
        """A running ingest for ``user``, cancellable through cancel(user) until it ends."""
        job = _IngestJob(self, user)
        with self._changed:
            self._jobs.add(job)
        try:
            yield job
        finally:
            with self._changed:
                self._jobs.discard(job)
                self._waiting.pop(job, None)
                self._changed.notify_all()

    def _next(self) -> _IngestJob:
        return min(self._waiting, key=lambda j: (self._last_turn.get(j.user, -1), self._waiting[j]))

    def acquire(self, job: _IngestJob) -> None:
        """Wait until it is this job's turn; raise IngestCancelled if it is cancelled meanwhile."""
        with self._changed:
            self._waiting[job] = next(self._tickets)
            try:
                while True:
                    job.check()
                    if not self._busy and self._next() is job:
                        break
                    self._changed.wait()
            except BaseException:
                del self._waiting[job]
                self._changed.notify_all()  # the next in line may have been waiting behind this job
                raise
            del self._waiting[job]
            self._busy = True
            self._last_turn[job.user] = next(self._tickets)

    def release(self) -> None:
        with self._changed:
            self._busy = False
            self._changed.notify_all()

    def cancel(self, user: str) -> int:
        """Cancel every running ingest of ``user``; how many there were."""
        with self._changed:
            mine = [job for job in self._jobs if job.user == user]
            for job in mine:
                job.cancelled.set()
            self._changed.notify_all()
        return len(mine)


class DocumentService:
    """The document library, opened on first use: Chroma and the embedding model are slow to load."""

    def __init__(
        self, settings: Settings, *, embedder: Embedder | None = None, embed_batch: int | None = None,
        rerankers: RerankerService | None = None,
    ) -> None:
        """``embedder`` lets several libraries (tests, tools) share one loaded model; ``embed_batch``
        sets the chunks per turn (tests use a few, to see turns taken within a small file);
        ``rerankers`` says which cross-encoder rescores passages (the Models tab's pick)."""
        self._settings = settings
        self._rerankers = rerankers if rerankers is not None else RerankerService(settings)
        self._embedder = embedder
        self._embed_batch = embed_batch
        self._library: DocumentLibrary | None = None
        self._guard = threading.Lock()
        self._turns = IngestTurns()

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
                    chroma_server=(ChromaServer(self._settings.chroma_url, self._settings.chroma_token)
                                   if self._settings.chroma_url else None),
                    **({"embed_batch": self._embed_batch} if self._embed_batch else {}),
                )
            # Picked or removed in the Models tab at any time; the next search uses what is current.
            self._library.reranker = self._rerankers.current()
            return self._library

    def _never_used(self) -> bool:
        """No collection was ever made here, so listing can skip opening Chroma (page loads stay cheap)."""
        return self._library is None and not self._settings.chroma_url and not self._settings.chroma_dir.exists()

    def collections(self, owner: str) -> list[CollectionInfo]:
        return [] if self._never_used() else self.library.collections(owner)

    def collection_names(self, owner: str) -> list[str]:
        """Names the user can pick in the chat: their own, then the shared ones."""
        return list(dict.fromkeys(c.name for c in self.collections(owner)))

    def create(self, user: User, name: str, *, shared: bool = False) -> CollectionInfo:
        """A new empty collection; only an admin may share one with the whole team."""
        if shared and not user.is_admin:
            raise NotAuthorized("Only an admin can do this.")
        return self.library.create_collection(user.id, name, shared=shared, creator_name=user.name)

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
        """Add files to a collection; every file gets an outcome, one bad file stops nothing.

        Several ingests take turns batch by batch, rotating between users; cancel_ingest stops
        the owner's ingests, keeping the files already added and nothing of the one in progress.
        """
        with self._turns.job(owner) as job:
            return self.library.ingest(
                owner, collection, [Path(f) for f in files], progress=progress, control=job
            )

    def cancel_ingest(self, owner: str) -> int:
        """Cancel the owner's running ingests (never anyone else's); how many were running."""
        return self._turns.cancel(owner)

    def retrieval_choices(self) -> list[str]:
        """What "Measure retrieval" can compare a collection's current settings with."""
        return [c.label for c in comparison_choices(reranker=self._rerankers.current() is not None)]

    def evaluate_retrieval(
        self, user: User, collection: str, questions_file: Path, alternative: str,
        *, progress: EvaluationProgress | None = None,
    ) -> RetrievalEvaluation:
        """hit@1, hit@5 and MRR of the collection on a question CSV, now and with ``alternative``.

        For an admin or the collection's owner; runs in the caller's thread (see retrieval_eval.py).
        """
        return evaluate_collection(self.library, user, collection, Path(questions_file), alternative,
                                   progress=progress)

    def example_questions_file(self) -> Path:
        """A small question CSV to download as a model, in the app's private temporary folder."""
        path = self._settings.data_dir / TEMP_DIR_NAME / "retrieval-questions-example.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(EXAMPLE_QUESTIONS_CSV, encoding="utf-8")
        return path
