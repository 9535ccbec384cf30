"""Citations for the page: which passages an answer cites, what is wrong with its citations, and the
sentences of a passage that share words with the answer (to highlight), from a reply's saved sources."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from webui.rag import CitationCheck, Passage, check_citations
from webui.rag.citations import cited_numbers, content_words

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)|\n\s*\n")
# A marker as rag.citations reads it: "[1]", "[1, 2]", "[1-3]", "[Source 2]"; not "items[1]".
_MARKER = re.compile(r"(?<!\w)\[(?:(?:source|passage)s?\s*)?\d{1,3}(?:\s*(?:,|;|-|–|and)\s*\d{1,3})*\]",
                     re.IGNORECASE)
EXCERPT_CHARS = 600  # what a passage shows around its matching sentences: a few sentences, read at a glance
MIN_SHARED_WORDS = 2  # a sentence sharing fewer content words with the answer is not highlighted...
# ...unless it is the best the passage has and shares at least one.


@dataclass(frozen=True)
class CitationMarker:
    """One "[n]" of an answer: where it is and the passage numbers it names."""

    start: int
    end: int
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class PassageExcerpt:
    """A passage trimmed to its matching sentences, each marked whether to highlight it."""

    sentences: tuple[tuple[str, bool], ...]
    cut_before: bool
    cut_after: bool


def passages_from_sources(sources: Sequence[dict[str, Any]]) -> list[Passage]:
    """The passages as a reply's meta saved them (services.chat.sources_meta)."""
    return [Passage(number=int(s.get("number") or 0), text=str(s.get("text") or ""),
                    file_name=str(s.get("file_name") or ""), page=s.get("page"), heading=s.get("heading"),
                    score=float(s.get("score") or 0.0), collection=str(s.get("collection") or ""))
            for s in sources]


def check_answer(answer: str, sources: Sequence[dict[str, Any]]) -> CitationCheck:
    """What the answer cites of its saved sources, and its problems as sentences for the user."""
    return check_citations(answer, passages_from_sources(sources))


def citation_markers(answer: str) -> list[CitationMarker]:
    """The citation markers of an answer, in order, to turn into chips."""
    return [CitationMarker(m.start(), m.end(), tuple(dict.fromkeys(cited_numbers(m.group()))))
            for m in _MARKER.finditer(answer)]


def words_cited_for(check: CitationCheck, number: int, answer: str) -> set[str]:
    """The content words of the answer's sentences that cite ``number``; the whole answer's when none does."""
    sentences = [s.text for s in check.sentences if number in s.numbers]
    return content_words(" ".join(sentences) if sentences else answer)


def passage_excerpt(text: str, answer_words: set[str], *, limit: int = EXCERPT_CHARS) -> PassageExcerpt:
    """The passage's sentences around those sharing the most words with the answer, within ``limit``
    characters; those matching marked for highlighting. No match: the passage's start."""
    sentences = [" ".join(s.split()) for s in _SENTENCE.split(text) if s.strip()]
    if not sentences:
        return PassageExcerpt((), False, False)
    shared = [len(content_words(s) & answer_words) for s in sentences]
    best = max(shared)
    threshold = min(MIN_SHARED_WORDS, best) if best else None
    marked = [threshold is not None and n >= threshold for n in shared]
    first = marked.index(True) if any(marked) else 0
    start, end, used = first, first + 1, len(sentences[first])
    while end < len(sentences) and used + len(sentences[end]) + 1 <= limit:  # forwards first: the matches
        used += len(sentences[end]) + 1
        end += 1
    while start > 0 and used + len(sentences[start - 1]) + 1 <= limit:  # then the context before them
        start -= 1
        used += len(sentences[start]) + 1
    kept = [(sentence, marked[i]) for i, sentence in enumerate(sentences[start:end], start)]
    if len(kept) == 1 and len(kept[0][0]) > limit:  # one long sentence: cut it at a word
        cut = kept[0][0][:limit].rsplit(" ", 1)[0]
        return PassageExcerpt(((cut, kept[0][1]),), start > 0, True)
    return PassageExcerpt(tuple(kept), start > 0, end < len(sentences))
