"""Store: document collections in a local Chroma database, with vectors always computed by us."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

SHARED_OWNER = ""  # collections with this owner are visible to every user
_MARKER = "webui-rag"  # collections without it are someone else's and are left alone

MetadataValue = str | int | float | bool
Metadata = Mapping[str, MetadataValue]


@dataclass(frozen=True)
class StoredCollection:
    """What the collection's own metadata says about it."""

    chroma_name: str
    owner: str
    name: str
    created_by: str
    created_at: str
    embedding_model: str

    @property
    def shared(self) -> bool:
        return self.owner == SHARED_OWNER


@dataclass(frozen=True)
class Hit:
    """One chunk found by a query; score is cosine similarity (1 = same direction)."""

    text: str
    metadata: dict[str, Any]
    score: float


def chroma_name(owner: str, name: str) -> str:
    """A Chroma-legal, collision-free name for (owner, name); Chroma allows only [a-zA-Z0-9._-]."""
    digest = hashlib.sha256(f"{owner}\x00{name}".encode()).hexdigest()[:40]
    return f"rag-{digest}"


class ChromaStore:
    """A thin layer over one PersistentClient: names, metadata, batching, scores."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._client: ClientAPI | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> ClientAPI:
        """The Chroma client, opened on first use so start-up does not pay for it."""
        with self._lock:
            if self._client is None:
                import chromadb
                from chromadb.config import Settings

                self.path.mkdir(parents=True, exist_ok=True)
                # Telemetry off (in 1.5.9 the Posthog client is a no-op anyway); no reset endpoint.
                self._client = chromadb.PersistentClient(
                    path=str(self.path),
                    settings=Settings(anonymized_telemetry=False, allow_reset=False),
                )
            return self._client

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
            "created_at": stored.created_at,
            "embedding_model": stored.embedding_model,
        }

    def create(
        self, owner: str, name: str, *, created_by: str, created_at: str, embedding_model: str
    ) -> StoredCollection:
        stored = StoredCollection(
            chroma_name(owner, name), owner, name, created_by, created_at, embedding_model
        )
        self.client.create_collection(
            stored.chroma_name,
            metadata=self._metadata(stored),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )
        return stored

    def rename(self, stored: StoredCollection, new_name: str) -> StoredCollection:
        renamed = StoredCollection(
            chroma_name(stored.owner, new_name),
            stored.owner,
            new_name,
            stored.created_by,
            stored.created_at,
            stored.embedding_model,
        )
        self._collection(stored).modify(name=renamed.chroma_name, metadata=self._metadata(renamed))
        return renamed

    def delete(self, stored: StoredCollection) -> None:
        self.client.delete_collection(stored.chroma_name)

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
        step = max(1, self.client.get_max_batch_size())
        for start in range(0, len(ids), step):
            end = start + step
            collection.upsert(
                ids=list(ids[start:end]),
                embeddings=[list(v) for v in embeddings[start:end]],
                documents=list(texts[start:end]),
                metadatas=[dict(m) for m in metadatas[start:end]],
            )

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
        self._collection(stored).delete(where=where)

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
        return [
            Hit(text or "", dict(meta or {}), 1.0 - float(distance))
            for text, meta, distance in zip(documents, metadatas, distances, strict=True)
        ]
