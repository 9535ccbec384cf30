"""Document Q&A: load files, chunk, embed, store in Chroma, retrieve numbered passages.

The modules, by job: ``library`` (collections, their documents, the door to ingest and retrieval),
``ingest`` (adding files), ``originals`` (the uploaded files kept), ``passages`` (what is cited),
``citations`` (whether an answer cites them fairly), ``retrieval`` and ``keyword`` (hybrid
search), ``store`` (Chroma), ``loaders``, ``chunking``, ``context`` (what a chunk is indexed with),
``embeddings``, ``rerank``, ``settings`` (per collection), ``summarize``; every error is a ``RagError``.
"""

from webui.rag.chroma_server import ChromaServer
from webui.rag.citations import CitationCheck, check_citations
from webui.rag.errors import DocumentStoreUnavailable, IngestCancelled, RagError
from webui.rag.ingest import FileOutcome, IngestControl, IngestProgress
from webui.rag.library import CollectionInfo, DocumentInfo, DocumentLibrary
from webui.rag.loaders import DocumentParseError
from webui.rag.passages import NO_RELEVANT_PASSAGES_MESSAGE, Passage, build_context, fit_passages
from webui.rag.settings import DEFAULT_MIN_SCORE

__all__ = [
    "DEFAULT_MIN_SCORE",
    "NO_RELEVANT_PASSAGES_MESSAGE",
    "ChromaServer",
    "CitationCheck",
    "CollectionInfo",
    "DocumentInfo",
    "DocumentLibrary",
    "DocumentParseError",
    "DocumentStoreUnavailable",
    "FileOutcome",
    "IngestCancelled",
    "IngestControl",
    "IngestProgress",
    "Passage",
    "RagError",
    "build_context",
    "check_citations",
    "fit_passages",
]
