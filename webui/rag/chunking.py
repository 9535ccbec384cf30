"""Chunking: split sections into overlapping passages that fit the embedding model's input."""

from __future__ import annotations

import functools
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


def context_line(heading: str | None, piece: str) -> str:
    """The heading path a chunk is prefixed with, less what its first line already says.

    A chunk from the middle of a section ("... and exit.") does not say what it is about; its
    heading ("venv > Command-line interface > --clear") does, for BM25 and the embedding alike.
    """
    if not heading or piece.startswith(heading):
        return ""
    parent, _, last = heading.rpartition(" > ")
    if parent and piece.startswith(last):
        return parent
    return heading


def chunk_sections(
    sections: Sequence[Section],
    *,
    count_tokens: Callable[[str], int],
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    with_headings: bool = False,
) -> list[Chunk]:
    """Split each section on its own, so every chunk keeps exactly one page and heading.

    With ``with_headings``, each chunk starts with its heading path on a line of its own (see
    context_line), inside the same token budget.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    # The splitter measures the same strings over and over (each separator at every merge, each
    # piece again at every level), about seven calls per distinct string; tokenizing is most of
    # chunking's time, so each distinct string is counted once per call.
    count_tokens_once = functools.cache(count_tokens)

    def splitter(size: int) -> RecursiveCharacterTextSplitter:
        return RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",  # a sentence keeps its full stop; the next one does not start with ". "
            chunk_size=size,
            chunk_overlap=min(overlap_tokens, size // 2),
            length_function=count_tokens_once,
        )

    plain = splitter(chunk_tokens)
    chunks: list[Chunk] = []
    for section in sections:
        heading = section.heading if with_headings else None
        # The heading's tokens come out of the budget, never more than half of it.
        room = chunk_tokens - min(chunk_tokens // 2, count_tokens_once(heading) + 1) if heading else 0
        pieces = [p.strip() for p in (splitter(room) if heading else plain).split_text(section.text)]
        pieces = [p for p in pieces if p]
        if heading and len(pieces) > 1 and pieces[0] in (heading, heading.rpartition(" > ")[2]):
            # The heading line alone (its text was too long to join it): every chunk after it
            # carries the heading anyway.
            pieces = pieces[1:]
        for piece in pieces:
            context = context_line(heading, piece)
            if context and count_tokens_once(context) > chunk_tokens // 2:
                context = ""  # a heading longer than half a chunk would crowd out the text
            text = f"{context}\n{piece}" if context else piece
            chunks.append(Chunk(text, len(chunks), section.page, section.heading))
    return chunks
