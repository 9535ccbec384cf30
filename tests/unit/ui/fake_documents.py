"""A fake document library and summary service for the Documents tab's handlers.

Collections are kept in memory with the library's rules and sentences (webui/rag/pipeline.py): each
belongs to a user id, shared ones are seen by everyone and changed only by whoever made them, and
only an admin shares (webui/services/documents.py). Ingest reports progress and outcomes the way
the library words them, so the handlers' lines are checked against what users read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import gradio as gr

from webui.rag import CollectionInfo, DocumentInfo, FileOutcome, IngestProgress, RagError
from webui.rag.settings import RetrievalSettings
from webui.rag.summarize import Piece, Place
from webui.services import NotAuthorized
from webui.services.summaries import Summary, SummaryRunning, SummaryUpdate
from webui.services.types import ConversationNotFound, StoredMessage, User

from tests.unit.ui.fakes import FakeServices

SHARED = "*shared*"


@dataclass
class FakeCollection:
    owner: str  # a user id, or SHARED
    name: str
    created_by: str  # the creator's id
    creator_name: str
    settings: RetrievalSettings = field(default_factory=RetrievalSettings)
    documents: dict[str, DocumentInfo] = field(default_factory=dict)


@dataclass
class FakeDocumentActions:
    """The part of Services the Documents tab calls (``document_actions``)."""

    max_upload_mb: int = 20
    stored: list[FakeCollection] = field(default_factory=list)
    ingested: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (owner, collection, file names)
    cancelled: list[str] = field(default_factory=list)
    running: set[str] = field(default_factory=set)  # owners with an ingest under way
    failing: Exception | None = None  # raised by every call, e.g. a store that cannot be opened

    def _check(self) -> None:
        if self.failing is not None:
            raise self.failing

    def _visible(self, owner: str) -> list[FakeCollection]:
        return [c for c in self.stored if c.owner in (owner, SHARED)]

    def _resolve(self, owner: str, name: str) -> FakeCollection:
        found = [c for c in self._visible(owner) if c.name == name]
        if not found:
            raise RagError(f"There is no collection named '{name}'.")
        return min(found, key=lambda c: c.owner == SHARED)  # the user's own first

    def _editable(self, owner: str, name: str) -> FakeCollection:
        stored = self._resolve(owner, name)
        if stored.owner != owner and stored.created_by != owner:
            raise RagError(f"'{name}' is shared by {stored.creator_name or 'another user'}; only they can change it.")
        return stored

    def _info(self, owner: str, stored: FakeCollection) -> CollectionInfo:
        return CollectionInfo(
            name=stored.name, shared=stored.owner == SHARED, documents=len(stored.documents),
            chunks=sum(d.chunks for d in stored.documents.values()), embedding_model="all-MiniLM-L6-v2",
            created_by=stored.creator_name, created_at="2026-12-07T08:00:00",
            editable=stored.owner == owner or stored.created_by == owner, settings=stored.settings,
        )

    def collections(self, owner: str) -> list[CollectionInfo]:
        self._check()
        ordered = sorted(self._visible(owner), key=lambda c: (c.owner == SHARED, c.name.lower()))
        return [self._info(owner, c) for c in ordered]

    def collection_names(self, owner: str) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.collections(owner)))

    def create(self, user: User, name: str, *, shared: bool = False) -> CollectionInfo:
        self._check()
        if shared and not user.is_admin:
            raise NotAuthorized("Only an admin can do this.")
        if not name.strip():
            raise RagError("A collection needs a name.")
        if any(c.name == name for c in self._visible(user.id)):
            raise RagError(f"A collection named '{name}' already exists.")
        stored = FakeCollection(SHARED if shared else user.id, name, user.id, user.name)
        self.stored.append(stored)
        return self._info(user.id, stored)

    def rename(self, owner: str, old: str, new: str) -> CollectionInfo:
        stored = self._editable(owner, old)
        if not new.strip():
            raise RagError("A collection needs a name.")
        stored.name = new
        return self._info(owner, stored)

    def delete(self, owner: str, name: str) -> None:
        self.stored.remove(self._editable(owner, name))

    def documents(self, owner: str, collection: str) -> list[DocumentInfo]:
        stored = self._resolve(owner, collection)
        return sorted(stored.documents.values(), key=lambda d: d.file_name.lower())

    def delete_document(self, owner: str, collection: str, file_name: str) -> None:
        stored = self._editable(owner, collection)
        if stored.documents.pop(file_name, None) is None:
            raise RagError(f"'{file_name}' is not in '{collection}'.")

    def retrieval_settings(self, owner: str, collection: str) -> RetrievalSettings:
        return self._resolve(owner, collection).settings

    def update_retrieval_settings(self, owner: str, collection: str, settings: RetrievalSettings) -> RetrievalSettings:
        settings.validated()
        stored = self._editable(owner, collection)
        stored.settings = settings
        return settings

    def ingest(self, owner: str, collection: str, files: Sequence[Path], *,
               progress: Callable[[IngestProgress], None] | None = None) -> list[FileOutcome]:
        """Each file becomes one page of as many passages as it has lines; a file named bad* fails."""
        stored = self._editable(owner, collection)
        self.ingested.append((owner, collection, [Path(f).name for f in files]))
        outcomes = []
        chunks = 0
        for done, path in enumerate(files):
            name = Path(path).name
            if progress:
                progress(IngestProgress(done, len(files), done, chunks, name))
            if name.startswith("bad"):
                outcomes.append(FileOutcome(name, False, f"{name} contains no text to index.", 0, 0, "failed"))
                continue
            lines = len(Path(path).read_text().splitlines())
            chunks += lines
            stored.documents[name] = DocumentInfo(name, 1, lines, Path(path).stat().st_size,
                                                  "2026-12-07T09:30:00", "0" * 64)
            outcomes.append(FileOutcome(name, True, f"Added {name} ({lines} passages).", lines, 1, "added"))
        return outcomes

    def cancel_ingest(self, owner: str) -> int:
        self.cancelled.append(owner)
        return int(owner in self.running)


@dataclass
class FakeJob:
    """A summary job as the page follows it: the updates a test set, in order."""

    subject: str
    steps: list[SummaryUpdate]

    def updates(self) -> Iterator[SummaryUpdate]:
        yield from self.steps


@dataclass
class FakeSummaries:
    """Summary jobs as the service runs them: the updates a test sets, each user's last job, and the
    chat a finished summary with text is saved as (c1, c2...), as the service does."""

    updates: list[SummaryUpdate] = field(default_factory=list)
    asked: list[tuple[str, str, str | None]] = field(default_factory=list)  # (user, collection, file)
    stopped: list[str] = field(default_factory=list)  # user ids
    saved: list[tuple[str, Summary]] = field(default_factory=list)
    jobs: dict[str, FakeJob] = field(default_factory=dict)  # user id -> their last job
    running: set[str] = field(default_factory=set)  # user ids whose job still runs: a new start is refused

    def start(self, user: User, collection: str, file_name: str | None = None) -> FakeJob:
        if user.id in self.running:
            raise SummaryRunning(f"A summary of {self.jobs[user.id].subject} is still running.")
        self.asked.append((user.name, collection, file_name))
        steps = list(self.updates)
        last = steps[-1] if steps else None
        if last is not None and last.summary is not None and last.summary.text.strip():
            self.saved.append((user.id, last.summary))
            steps[-1] = replace(last, conversation=f"c{len(self.saved)}")
        self.jobs[user.id] = FakeJob(file_name or f"the collection '{collection}'", steps)
        return self.jobs[user.id]

    def job(self, user: User) -> FakeJob | None:
        return self.jobs.get(user.id)

    def stop(self, user: User) -> bool:
        self.stopped.append(user.id)
        return user.id in self.running


@dataclass
class FakeConversation:
    id: str
    title: str


@dataclass
class FakeChat:
    """Only the chat listing the summary panel reads after saving: the saved summaries as chats."""

    summaries: FakeSummaries

    def conversations(self, owner: str) -> list[FakeConversation]:
        return [FakeConversation(f"c{n}", f"Summary of {s.subject}")
                for n, (who, s) in enumerate(self.summaries.saved, start=1) if who == owner]

    def messages(self, owner: str, conversation: str) -> list[StoredMessage]:
        number = int(conversation[1:]) - 1
        who, summary = self.summaries.saved[number]
        if who != owner:
            raise ConversationNotFound(conversation)
        at = datetime(2026, 12, 7, 10, 0)
        return [StoredMessage(1, "user", f"Summarize {summary.subject}.", at),
                StoredMessage(2, "assistant", summary.text, at)]


@dataclass
class FakeDocumentServices(FakeServices):
    """FakeServices with a library, summaries and a chat listing; ``auth_required``: team mode."""

    auth_required: bool = True
    document_actions: FakeDocumentActions = field(default_factory=FakeDocumentActions)
    summaries: FakeSummaries = field(default_factory=FakeSummaries)
    chat: FakeChat = field(init=False)

    def __post_init__(self) -> None:
        self.chat = FakeChat(self.summaries)


def team() -> FakeDocumentServices:
    """Alice is an admin, Bob and Carol are not; each has an id of their own, as 'users add' gives."""
    return FakeDocumentServices(users={
        "alice": User("alice", is_admin=True, id="id-alice"),
        "bob": User("bob", is_admin=False, id="id-bob"),
        "carol": User("carol", is_admin=False, id="id-carol"),
    })


def summary_of(collection: str, text: str, **changes: object) -> Summary:
    """A finished one-pass summary of two pages of one file."""
    parts = (Piece("Heat to 12 °C in frost.", (Place("greenhouse.pdf", 2),)),
             Piece("Vent at 30 °C.", (Place("greenhouse.pdf", 1),)))
    return replace(Summary(collection, None, text, parts, passages=2, map_steps=1, calls=1, seconds=3.2), **changes)


def record_toasts(monkeypatch) -> list[tuple[str, str]]:
    """The toasts a handler shows, as (kind, sentence): Info and Warning, in order."""
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(gr, "Info", lambda message, *args, **kwargs: shown.append(("info", message)))
    monkeypatch.setattr(gr, "Warning", lambda message, *args, **kwargs: shown.append(("warning", message)))
    return shown
