"""Retrieval settings kept with each collection: chunk size, overlap, passages (k) and cut-off."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webui.rag.chunking import DEFAULT_CHUNK_TOKENS, DEFAULT_OVERLAP_TOKENS
from webui.rag.errors import RagError

# Passages given to the model. Chosen with scripts/eval_retrieval.py on its tuning half as the
# smallest k past which more passages bring no more answers to the model (k 3, 4, 5: 28, 28, 29 of
# 30; 6 and 8 no more). A passage is at most 200 tokens, so 5 cost about 1,000 of the context.
# Collections keep the k they were made with.
DEFAULT_K = 5
# Cosine similarity (all-MiniLM-L6-v2) under which a passage is treated as not answering the
# question; any cut-off above 0 also gives nothing to a question naming something the collection
# never mentions (see webui/rag/retrieval.py). Chosen by scripts/eval_retrieval.py on its tuning half
# (licences + Python docs, with near-topic questions the documents do not answer) as the middle of
# the range that refuses the most unanswerable questions while refusing at most 5% of answerable
# ones. On the reported half: 1 of 44 answerable questions refused (it names the DMCA, which the
# GPL does not), 5 of 18 unanswerable ones still given passages (cosine alone: 0 and 11 or 12 of 18).
# Since chunks are embedded with their document's title (webui/rag/context.py) cosines run higher
# and the same procedure picks 0.32; 0.21 is kept because the cut-off drops every passage under it,
# the relevant ones ranked 2 to 5 included, and reaching the model matters more than refusing.
DEFAULT_MIN_SCORE = 0.21

MIN_CHUNK_TOKENS, MAX_CHUNK_TOKENS = 32, 512
MAX_K = 20

_PREFIX = "rag_"  # metadata keys, apart from the collection's own facts


class InvalidRetrievalSettingsError(RagError, ValueError):
    """A setting out of range; str(error) says which and what is allowed."""


@dataclass(frozen=True)
class RetrievalSettings:
    """How a collection is chunked at ingestion and searched at question time."""

    chunk_tokens: int = DEFAULT_CHUNK_TOKENS
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
    k: int = DEFAULT_K
    min_score: float = DEFAULT_MIN_SCORE

    def validated(self) -> RetrievalSettings:
        """Itself, or InvalidRetrievalSettingsError naming the first value out of range."""
        if not MIN_CHUNK_TOKENS <= self.chunk_tokens <= MAX_CHUNK_TOKENS:
            raise InvalidRetrievalSettingsError(
                f"Chunk size must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS} tokens."
            )
        if not 0 <= self.overlap_tokens <= self.chunk_tokens // 2:
            raise InvalidRetrievalSettingsError(
                "Overlap must be between 0 and half the chunk size "
                f"({self.chunk_tokens // 2} tokens)."
            )
        if not 1 <= self.k <= MAX_K:
            raise InvalidRetrievalSettingsError(f"Passages (k) must be between 1 and {MAX_K}.")
        if not 0.0 <= self.min_score <= 1.0:
            raise InvalidRetrievalSettingsError("The relevance cut-off must be between 0 and 1.")
        return self

    def to_metadata(self) -> dict[str, int | float]:
        return {
            f"{_PREFIX}chunk_tokens": self.chunk_tokens,
            f"{_PREFIX}overlap_tokens": self.overlap_tokens,
            f"{_PREFIX}k": self.k,
            f"{_PREFIX}min_score": self.min_score,
        }

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> RetrievalSettings:
        """Settings stored with a collection; collections made before settings existed get defaults."""
        default = cls()

        def number(key: str, fallback: float, kind: type) -> Any:
            try:
                return kind(meta.get(f"{_PREFIX}{key}", fallback))
            except (TypeError, ValueError):
                return fallback

        return cls(
            chunk_tokens=number("chunk_tokens", default.chunk_tokens, int),
            overlap_tokens=number("overlap_tokens", default.overlap_tokens, int),
            k=number("k", default.k, int),
            min_score=number("min_score", default.min_score, float),
        )
