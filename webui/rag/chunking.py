"""Chunking: split sections into overlapping passages that fit the embedding model's input."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from webui.rag.loaders import Section

# all-MiniLM-L6-v2 reads at most 256 word pieces and silently drops the rest. 200 leaves room for
# [CLS]/[SEP] and for word pieces that only appear when a chunk is tokenized whole; 40 tokens of
# overlap (~ two sentences) keep a fact that straddles a boundary retrievable from either side.
DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 40

# Paragraphs first, then lines, then sentences, then clauses, then words.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


@dataclass(frozen=True)
class Chunk:
    """One passage to embed, with where it came from."""

    text: str
    index: int
    page: int | None
    heading: str | None


def chunk_budget(
    max_seq_tokens: int,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> tuple[int, int]:
    """Chunk and overlap sizes in tokens: the wanted ones, capped to what the model reads whole."""
    size = max(32, min(chunk_tokens, int(max_seq_tokens * 0.8)))
    # A chunk capped by the model keeps the overlap's share of it, never over half of it.
    overlap = overlap_tokens if size == chunk_tokens else overlap_tokens * size // chunk_tokens
    return size, max(0, min(overlap, size // 2))


def chunk_sections(
    sections: Sequence[Section],
    *,
    count_tokens: Callable[[str], int],
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[Chunk]:
    """Split each section on its own, so every chunk keeps exactly one page and heading."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        keep_separator="end",  # a sentence keeps its full stop; the next chunk does not start with ". "
        chunk_size=chunk_tokens,
        chunk_overlap=overlap_tokens,
        length_function=count_tokens,
    )
    chunks: list[Chunk] = []
    for section in sections:
        for piece in splitter.split_text(section.text):
            piece = piece.strip()
            if piece:
                chunks.append(Chunk(piece, len(chunks), section.page, section.heading))
    return chunks
