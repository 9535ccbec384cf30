"""Store: document collections in a local Chroma database (or a Chroma server), with vectors always computed by us.

Each collection has a keyword (BM25) index beside it under ``keyword/``; every write here goes to
both, and an index that is missing or out of step is rebuilt from Chroma's own copy of the texts.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webui.quarantine import SQLITE_SIDECARS, SetAside, is_damaged_database, keep_aside
from webui.rag.chroma_server import ChromaServer, connect
from webui.rag.context import INDEX_FORMAT, embedded_text, keyword_heading
from webui.rag.keyword import INDEX_VERSION, KeywordIndex
from webui.rag.settings import RetrievalSettings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

log = logging.getLogger(__name__)

SHARED_OWNER = ""  # collections with this owner are visible to every user
_MARKER = "webui-rag"  # collections without it are someone else's and are left alone

MetadataValue = str | int | float | bool
Metadata = Mapping[str, MetadataValue]


@dataclass(frozen=True)
class StoredCollection:
    """What the collection's own metadata says about it."""

    chroma_name: str
    owner: str  # the owning user's id; SHARED_OWNER for a shared collection
    name: str
    created_by: str  # the creator's user id, who may change a shared collection
    created_at: str
    embedding_model: str
    settings: RetrievalSettings = field(default_factory=RetrievalSettings)
    created_by_name: str = ""  # the creator's user name, as shown; empty: created_by (ids were names)
    index_format: int = 1  # webui.rag.context.INDEX_FORMAT its vectors were made with (1: before stamps)

    @property
    def creator_name(self) -> str:
        return self.created_by_name or self.created_by

    @property
    def shared(self) -> bool:
        return self.owner == SHARED_OWNER


@dataclass(frozen=True)
class Hit:
    """One chunk found by a query; score is cosine similarity (1 = same direction)."""

    text: str
    metadata: dict[str, Any]
    score: float
    id: str = ""


@dataclass(frozen=True)
class StoredChunk:
    """A chunk fetched by id, with its vector (to score keyword hits by cosine as well)."""

    id: str
    text: str
    metadata: dict[str, Any]
    embedding: list[float]


def _int(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default


def chroma_name(owner: str, name: str) -> str:
    """A Chroma-legal, collision-free name for (owner, name); Chroma allows only [a-zA-Z0-9._-]."""
    digest = hashlib.sha256(f"{owner}\x00{name}".encode()).hexdigest()[:40]
    return f"rag-{digest}"


class ChromaStore:
    """A thin layer over one PersistentClient (or HttpClient): names, metadata, batching, scores."""

    def __init__(self, path: Path, *, keyword_dir: Path | None = None, server: ChromaServer | None = None) -> None:
        """``server``: use that Chroma server instead of the database at ``path``; the keyword index stays local."""
        self.path = Path(path)
        self.server = server
        self.keyword_dir = Path(keyword_dir) if keyword_dir else self.path.parent / "keyword"
        self._client: ClientAPI | None = None
        self._lock = threading.Lock()
        self._keyword_lock = threading.Lock()
        self._keyword_checked: set[str] = set()  # collections whose index was checked this run
        self.set_aside: list[SetAside] = []  # a damaged database or index kept aside, to report

    @property
    def client(self) -> ClientAPI:
        """The Chroma client, opened on first use so start-up does not pay for it."""
        with self._lock:
            if self._client is None and self.server is not None:
                self._client = connect(self.server)
            if self._client is None:
                import chromadb
                from chromadb.config import Settings

                self._keep_damaged_database_aside()
                self.path.mkdir(parents=True, exist_ok=True)
                # Telemetry off (in 1.5.9 the Posthog client is a no-op anyway); no reset endpoint.
                self._client = chromadb.PersistentClient(
                    path=str(self.path),
                    settings=Settings(anonymized_telemetry=False, allow_reset=False),
                )
            return self._client

    def _keep_damaged_database_aside(self) -> None:
        """A damaged ``chroma.sqlite3`` fails every call, and Chroma's process-wide client cache keeps the
        failed client: checked first with sqlite3, the folder is kept aside whole and Chroma starts empty
        (the uploaded originals stay in ``uploads/`` to add again)."""
        database = self.path / "chroma.sqlite3"
        if not database.is_file():
            return
        try:
            with closing(sqlite3.connect(database)) as db:
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as error:
            if is_damaged_database(error):
                kept = keep_aside(self.path, str(error))
                self.set_aside += [kept] if kept else []
            # anything else (locked, unreadable) is Chroma's to report

    def _collection(self, stored: StoredCollection) -> Collection:
        # embedding_function=None: Chroma's default would fetch an ONNX model the first time it
        # embedded; we always pass vectors, so none is needed.
        return self.client.get_collection(stored.chroma_name, embedding_function=None)

    def list(self) -> list[StoredCollection]:
        found = []
        for collection in self.client.list_collections():
            meta = collection.metadata or {}
            if meta.get("app") != _MARKER:
                continue
            found.append(
                StoredCollection(
                    chroma_name=collection.name,
                    owner=str(meta.get("owner", "")),
                    name=str(meta.get("name", "")),
                    created_by=str(meta.get("created_by", "")),
                    created_at=str(meta.get("created_at", "")),
                    embedding_model=str(meta.get("embedding_model", "")),
                    settings=RetrievalSettings.from_metadata(meta),
                    created_by_name=str(meta.get("created_by_name", "")),
                    index_format=_int(meta.get("index_format"), 1),
                )
            )
        return found

    def find(self, owner: str, name: str) -> StoredCollection | None:
        wanted = chroma_name(owner, name)
        return next((c for c in self.list() if c.chroma_name == wanted), None)

    @staticmethod
    def _metadata(stored: StoredCollection) -> dict[str, MetadataValue]:
        return {
            "app": _MARKER,
            "owner": stored.owner,
            "name": stored.name,
            "created_by": stored.created_by,
            **({"created_by_name": stored.created_by_name} if stored.created_by_name else {}),
            "created_at": stored.created_at,
            "embedding_model": stored.embedding_model,
            "index_format": stored.index_format,
            **stored.settings.to_metadata(),
        }

    def create(
        self,
        owner: str,
        name: str,
        *,
        created_by: str,
        created_at: str,
        embedding_model: str,
        settings: RetrievalSettings | None = None,
        created_by_name: str = "",
    ) -> StoredCollection:
        stored = StoredCollection(
            chroma_name(owner, name), owner, name, created_by, created_at, embedding_model,
            settings or RetrievalSettings(), created_by_name, INDEX_FORMAT,
        )
        self.client.create_collection(
            stored.chroma_name,
            metadata=self._metadata(stored),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )
        return stored

    def rename(self, stored: StoredCollection, new_name: str) -> StoredCollection:
        renamed = replace(stored, chroma_name=chroma_name(stored.owner, new_name), name=new_name)
        self._collection(stored).modify(name=renamed.chroma_name, metadata=self._metadata(renamed))
        with self._keyword_lock:
            self._keyword_index(stored).move_to(self._keyword_path(renamed))
            self._keyword_checked.discard(stored.chroma_name)
        return renamed

    def update_settings(
        self, stored: StoredCollection, settings: RetrievalSettings
    ) -> StoredCollection:
        """Keep new retrieval settings in the collection's own metadata."""
        updated = replace(stored, settings=settings)
        self._collection(stored).modify(metadata=self._metadata(updated))
        return updated

    def reembed(
        self,
        stored: StoredCollection,
        embed: Callable[[list[str]], list[list[float]]],
        *,
        progress: Callable[[int, int], None] | None = None,
        check: Callable[[], None] | None = None,
    ) -> StoredCollection:
        """Embed every chunk again as the current INDEX_FORMAT has it (webui/rag/context.py), a
        page at a time, then stamp the collection with that format. ``progress`` gets (chunks
        done, total); ``check`` may raise to stop between pages, leaving the old stamp (the work
        is then redone, which is harmless: a chunk embedded twice gets the same vector)."""
        collection = self._collection(stored)
        total = self.count(stored)
        page = max(1, min(256, self.client.get_max_batch_size()))
        done = 0
        while done < total:
            if check is not None:
                check()
            got = collection.get(include=["documents", "metadatas"], limit=page, offset=done)
            ids = list(got["ids"])
            if not ids:
                break
            metadatas = got["metadatas"] or [None] * len(ids)
            texts = [embedded_text(t or "", str((m or {}).get("file_name", "")))
                     for t, m in zip(got["documents"] or [], metadatas, strict=True)]
            collection.update(ids=ids, embeddings=[list(v) for v in embed(texts)])
            done += len(ids)
            if progress is not None:
                progress(done, total)
        updated = replace(stored, index_format=INDEX_FORMAT)
        collection.modify(metadata=self._metadata(updated))
        return updated

    def delete(self, stored: StoredCollection) -> None:
        self.client.delete_collection(stored.chroma_name)
        with self._keyword_lock:
            self._keyword_index(stored).remove()
            self._keyword_checked.discard(stored.chroma_name)

    def add(
        self,
        stored: StoredCollection,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        texts: Sequence[str],
        metadatas: Sequence[Metadata],
    ) -> None:
        """Upsert in batches no larger than Chroma accepts at once."""
        collection = self._collection(stored)
        index = self._keyword_before_write(stored)
        step = max(1, self.client.get_max_batch_size())
        for start in range(0, len(ids), step):
            end = start + step
            collection.upsert(
                ids=list(ids[start:end]),
                embeddings=[list(v) for v in embeddings[start:end]],
                documents=list(texts[start:end]),
                metadatas=[dict(m) for m in metadatas[start:end]],
            )
        headings = [keyword_heading(m) for m in metadatas]
        self._keyword_write(stored, index, lambda found: found.add(ids, texts, headings))

    def metadatas(self, stored: StoredCollection, where: dict[str, Any]) -> list[dict[str, Any]]:
        result = self._collection(stored).get(where=where, include=["metadatas"])
        return [dict(m or {}) for m in result["metadatas"] or []]

    def chunks_where(
        self, stored: StoredCollection, where: dict[str, Any] | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Every stored chunk's text and metadata (those matching ``where``), in no set order."""
        result = self._collection(stored).get(where=where, include=["documents", "metadatas"])
        texts = result["documents"] or []
        metadatas = result["metadatas"] or [None] * len(texts)
        return [(text or "", dict(meta or {})) for text, meta in zip(texts, metadatas, strict=True)]

    def delete_where(self, stored: StoredCollection, where: dict[str, Any]) -> None:
        """Delete matching chunks from Chroma and the keyword index alike (by id, so both agree)."""
        collection = self._collection(stored)
        index = self._keyword_before_write(stored)
        ids = list(collection.get(where=where, include=[])["ids"])
        step = max(1, self.client.get_max_batch_size())
        for start in range(0, len(ids), step):
            collection.delete(ids=ids[start : start + step])
        self._keyword_write(stored, index, lambda found: found.delete(ids))

    def count(self, stored: StoredCollection) -> int:
        return self._collection(stored).count()

    def query(self, stored: StoredCollection, embedding: Sequence[float], k: int) -> list[Hit]:
        collection = self._collection(stored)
        result = collection.query(
            query_embeddings=[list(embedding)],
            n_results=k,
            include=["documents", "metadatas", "distances"],
        )
        documents = (result["documents"] or [[]])[0]
        metadatas = (result["metadatas"] or [[]])[0]
        distances = (result["distances"] or [[]])[0]
        ids = (result["ids"] or [[]])[0]
        return [
            Hit(text or "", dict(meta or {}), 1.0 - float(distance), chunk_id)
            for chunk_id, text, meta, distance in zip(
                ids, documents, metadatas, distances, strict=True
            )
        ]

    def chunks(self, stored: StoredCollection, ids: Sequence[str]) -> list[StoredChunk]:
        """The chunks with these ids (those that still exist), vectors included."""
        if not ids:
            return []
        got = self._collection(stored).get(
            ids=list(ids), include=["documents", "metadatas", "embeddings"]
        )
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        return [
            StoredChunk(str(i), text or "", dict(meta or {}), [float(x) for x in vector])
            for i, text, meta, vector in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], embeddings, strict=True
            )
        ]

    # --- keyword index -----------------------------------------------------------------------

    def _keyword_path(self, stored: StoredCollection) -> Path:
        return self.keyword_dir / f"{stored.chroma_name}.sqlite3"

    def _keyword_index(self, stored: StoredCollection) -> KeywordIndex:
        return KeywordIndex(self._keyword_path(stored))

    def _all_texts(
        self, stored: StoredCollection
    ) -> Iterator[tuple[list[str], list[str], list[str | None]]]:
        """Every chunk's id, text and heading, a page at a time, so a large collection never sits
        in memory."""
        collection = self._collection(stored)
        page = max(1, min(5000, self.client.get_max_batch_size()))
        offset = 0
        while True:
            got = collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
            ids = list(got["ids"])
            if not ids:
                return
            metadatas = got["metadatas"] or [None] * len(ids)
            yield (ids, [t or "" for t in got["documents"] or []],
                   [keyword_heading(m) if m else None for m in metadatas])
            offset += len(ids)

    def keyword_index(self, stored: StoredCollection) -> KeywordIndex:
        """The collection's keyword index, rebuilt from Chroma first when missing or out of step.

        Checked once per run (and again after a failed write): a crash between the Chroma write
        and the index write leaves the two with different counts. With a Chroma server, other app
        instances may write too, so the count is compared on every use (one cheap call).
        """
        with self._keyword_lock:
            index = self._keyword_index(stored)
            if stored.chroma_name not in self._keyword_checked:
                chroma_count = self.count(stored)
                if (not index.exists() or self._keyword_count(index) != chroma_count
                        or index.version() != INDEX_VERSION):  # written by older tokens
                    log.info("rebuilding the keyword index of '%s' (%d chunks) from Chroma",
                             stored.name, chroma_count)
                    index.rebuild(self._all_texts(stored))
                if self.server is None:
                    self._keyword_checked.add(stored.chroma_name)
            return index

    def _keyword_count(self, index: KeywordIndex) -> int | None:
        """The index's chunk count; None when its file is damaged, which is then kept aside to be rebuilt."""
        try:
            return index.count()
        except sqlite3.DatabaseError as error:
            if not is_damaged_database(error):
                raise
            kept = keep_aside(index.path, str(error), sidecars=SQLITE_SIDECARS)
            self.set_aside += [kept] if kept else []
            return None

    def _keyword_before_write(self, stored: StoredCollection) -> KeywordIndex | None:
        """The checked index before a Chroma write, so the write does not look like a mismatch."""
        try:
            return self.keyword_index(stored)
        except Exception:  # the index is derived data: Chroma's write must still happen
            log.exception("the keyword index of '%s' could not be checked", stored.name)
            return None

    def _keyword_write(
        self,
        stored: StoredCollection,
        index: KeywordIndex | None,
        write: Callable[[KeywordIndex], None],
    ) -> None:
        """Apply a write to the keyword index; a failure is logged and mended at the next check."""
        try:
            if index is None:
                raise RuntimeError("the index was not ready before the write")
            with self._keyword_lock:
                if index.exists():
                    write(index)
                else:  # removed behind our back since the check: rebuild, which includes the write
                    index.rebuild(self._all_texts(stored))
        except Exception:  # Chroma has the data; the index is derived and rebuilt on next use
            log.exception("the keyword index of '%s' could not be updated", stored.name)
            with self._keyword_lock:
                self._keyword_checked.discard(stored.chroma_name)

    def keyword_search(self, stored: StoredCollection, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) pairs, best first."""
        index = self.keyword_index(stored)
        if not index.exists():  # removed since the check
            with self._keyword_lock:
                self._keyword_checked.discard(stored.chroma_name)
            index = self.keyword_index(stored)
        return index.search(query, k)
