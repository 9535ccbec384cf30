"""The document library's errors: one base class whose str() is the sentence a user sees."""

from __future__ import annotations

from webui.errors import UserError


class RagError(UserError):
    """Base of the library's errors; str(error) is one sentence fit for the user."""


class DocumentStoreUnavailable(RagError, ConnectionError):
    """The Chroma server (``--chroma-url``) cannot be reached; plain chat still works without it."""
