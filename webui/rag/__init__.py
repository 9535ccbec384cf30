"""Document Q&A: load files, chunk, embed, store in Chroma, retrieve numbered passages."""

from webui.rag.chroma_server import ChromaServer
from webui.rag.errors import DocumentStoreUnavailable
from webui.rag.loaders import DocumentParseError
from webui.rag.pipeline import (
    NO_RELEVANT_PASSAGES_MESSAGE,
    CollectionInfo,
    DocumentInfo,
    DocumentLibrary,
    FileOutcome,
    IngestCancelled,
    IngestControl,
    IngestProgress,
    Passage,
    RagError,
    build_context,
    build_prompt,
    fit_passages,
    format_sources,
)

__all__ = [
    "NO_RELEVANT_PASSAGES_MESSAGE",
    "ChromaServer",
    "CollectionInfo",
    "DocumentInfo",
    "DocumentStoreUnavailable",
    "DocumentLibrary",
    "DocumentParseError",
    "FileOutcome",
    "IngestCancelled",
    "IngestControl",
    "IngestProgress",
    "Passage",
    "RagError",
    "build_context",
    "build_prompt",
    "fit_passages",
    "format_sources",
]
