"""The document library's errors: every one is a RagError, whose str() is the sentence a user sees.

Callers catch RagError alone. The errors raised deep inside one part (a loader, the embedding model,
the reranker, the retrieval settings) are defined beside that part and rooted here too.
"""

from __future__ import annotations

from webui.errors import UserError


class RagError(UserError):
    """Base of the library's errors; str(error) is one sentence fit for the user."""


class DocumentStoreUnavailable(RagError, ConnectionError):
    """The Chroma server (``--chroma-url``) cannot be reached; plain chat still works without it."""


class CollectionNotFoundError(RagError):
    """No collection of that name is visible to the user."""


class CollectionExistsError(RagError):
    """The user already sees a collection of that name (their own or a shared one)."""


class CollectionPermissionError(RagError):
    """A shared collection only its creator may change."""


class InvalidCollectionNameError(RagError):
    """An empty, too long or control-character name."""


class EmbeddingModelMismatchError(RagError):
    """The collection was built with another embedding model than the one in use."""


class DocumentNotFoundError(RagError):
    """No file of that name in the collection."""


class DocumentBusyError(RagError):
    """The file is being added right now."""


class IngestCancelled(RagError):
    """The user cancelled an ingest: files done before stay, the file in progress is rolled back."""
