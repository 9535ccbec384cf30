"""Citations: whether an answer cites the numbered passages it was given, and cites them fairly.

A small model given passages [1]..[4] may answer from its own memory and cite nothing, cite a [5]
that was never given, or put [2] after a sentence [2] does not say. None of this needs a model to
notice: the markers are text, and a sentence that shares no content word with the passage it
cites was not taken from it. The check is cheap and conservative (a paraphrase that shares one
content word passes); it flags, it does not judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from webui.rag.keyword import keyword_tokens
from webui.rag.passages import Passage

# "[1]", "[1, 2]", "[1-3]", "[2][3]", "[Source 2]", "[passage 3]"; not "items[1]" (an index in code).
_MARKER = re.compile(
    r"(?<!\w)\[(?:(?:source|passage)s?\s*)?(\d{1,3}(?:\s*(?:,|;|-|–|and)\s*\d{1,3})*)\]",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d{1,3}")
_RANGE = re.compile(r"(\d{1,3})\s*[-–]\s*(\d{1,3})")
_MAX_RANGE = 20  # "[1-999]" is no citation worth expanding
# A sentence ends at . ! ? or a line break; a citation written after the full stop ("... 3. [1]")
# still belongs to the sentence before it.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?!\[)|(?<=\])\s+(?=[A-Z])|\n+")
# Words this short, or this common, say nothing of where a sentence came from.
_MIN_WORD_CHARS = 3
# Word stems are compared on their first letters, so "overwrites" meets "overwriting".
_STEM_CHARS = 6

NOT_SUPPORTED_MESSAGE = "This answer is not supported by the cited passages"


@dataclass(frozen=True)
class CitedSentence:
    """One sentence of the answer with the passage numbers it cites."""

    text: str
    numbers: tuple[int, ...]
    shared_words: tuple[str, ...]  # content words it shares with the passages it cites (and were given)

    @property
    def supported(self) -> bool:
        return bool(self.shared_words) or not content_words(_MARKER.sub(" ", self.text))


@dataclass(frozen=True)
class CitationCheck:
    """What an answer cites, and what is wrong with it (``problems``: sentences for the user)."""

    cited: tuple[int, ...]  # distinct numbers, in the order first cited
    unknown: tuple[int, ...]  # cited but not given
    unsupported: tuple[CitedSentence, ...]  # cited sentences sharing no content word with their passages
    sentences: tuple[CitedSentence, ...]  # every sentence that cites something
    given: int = 0  # how many passages the answer was given

    @property
    def cites_nothing(self) -> bool:
        """Passages were given and none is cited."""
        return self.given > 0 and not self.cited

    @property
    def supported(self) -> bool:
        """True when the answer cites something (if it was given anything), every number was given, and every cited sentence
        shares words with what it cites."""
        return not self.cites_nothing and not self.unknown and not self.unsupported

    @property
    def problems(self) -> tuple[str, ...]:
        found = []
        if self.cites_nothing:
            found.append(f"{NOT_SUPPORTED_MESSAGE}: it cites none of them.")
        if self.unknown:
            names = ", ".join(f"[{n}]" for n in self.unknown)
            found.append(f"{NOT_SUPPORTED_MESSAGE}: it cites {names}, which it was not given.")
        for sentence in self.unsupported:
            names = ", ".join(f"[{n}]" for n in sentence.numbers)
            found.append(f"{NOT_SUPPORTED_MESSAGE}: {names} does not say \"{_short(sentence.text)}\"")
        return tuple(found)


def _short(text: str, limit: int = 80) -> str:
    plain = re.sub(r"\s+(?=[.,;:!?])", "", " ".join(_MARKER.sub(" ", text).split()))
    return plain if len(plain) <= limit else plain[: limit - 1].rstrip() + "…"


def cited_numbers(text: str) -> list[int]:
    """The passage numbers a text cites, in order, ranges expanded ("[1-3]" gives 1, 2, 3)."""
    numbers: list[int] = []
    for marker in _MARKER.finditer(text):
        inside = marker.group(1)
        for part in re.split(r"\s*(?:,|;|and)\s*", inside):
            bounds = _RANGE.fullmatch(part)
            if bounds and 0 <= int(bounds[2]) - int(bounds[1]) < _MAX_RANGE:
                numbers.extend(range(int(bounds[1]), int(bounds[2]) + 1))
            else:
                numbers.extend(int(n) for n in _NUMBER.findall(part))
    return numbers


def content_words(text: str) -> set[str]:
    """The stems of a text's words that say what it is about (no function words, none under 3
    letters); identifiers count whole and in their parts (see keyword.keyword_tokens)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return {
        token[:_STEM_CHARS] if token.isalpha() else token
        for token in keyword_tokens(text)
        if len(token.strip("-")) >= _MIN_WORD_CHARS and token not in ENGLISH_STOP_WORDS
        and not token.isdigit()
    }


def _sentences(answer: str) -> Iterable[str]:
    return (s.strip() for s in _SENTENCE_END.split(answer) if s.strip())


def check_citations(answer: str, passages: Sequence[Passage]) -> CitationCheck:
    """Check an answer against the numbered passages it was given (``Passage.number``).

    Flags an answer that cites no passage, one that cites a number it was not given, and each
    cited sentence that shares no content word with the given passages it cites.
    """
    given = {p.number: p for p in passages}
    passage_words: dict[int, set[str]] = {}

    def words_of(number: int) -> set[str]:
        if number not in passage_words:
            passage_words[number] = content_words(given[number].text)
        return passage_words[number]

    sentences: list[CitedSentence] = []
    for text in _sentences(answer):
        numbers = tuple(dict.fromkeys(cited_numbers(text)))
        if not numbers:
            continue
        own = content_words(_MARKER.sub(" ", text))
        shared: set[str] = set()
        for number in numbers:
            if number in given:
                shared |= own & words_of(number)
        sentences.append(CitedSentence(text, numbers, tuple(sorted(shared))))
    cited = tuple(dict.fromkeys(n for s in sentences for n in s.numbers))
    unknown = tuple(n for n in cited if n not in given)
    unsupported = tuple(
        s for s in sentences
        if not s.supported and any(n in given for n in s.numbers)  # an unknown number is flagged once, above
    )
    return CitationCheck(cited, unknown, unsupported, tuple(sentences), given=len(given))
