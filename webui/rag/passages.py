"""Passages: retrieved chunks numbered for citation, and the numbered sources a prompt gets from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

NO_RELEVANT_PASSAGES_MESSAGE = (
    "I found nothing in the selected documents that answers this. "
    "Try rephrasing the question, or choose other collections."
)

_MIN_SHORTENED_WORDS = 20  # a shorter fragment rarely answers anything and costs a citation


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, numbered in rank order so the answer can cite it as [number]."""

    number: int
    text: str
    file_name: str
    page: int | None
    heading: str | None
    score: float
    collection: str

    @property
    def citation(self) -> str:
        """Where the passage comes from, as a reader would look it up: "a.pdf, p. 3"."""
        if self.page is not None:
            return f"{self.file_name}, p. {self.page}"
        if self.heading:
            return f"{self.file_name}, {self.heading}"
        return self.file_name


def build_context(passages: Sequence[Passage], *, max_chars: int | None = None) -> str:
    """Numbered sources for the prompt: "[1] (a.pdf, p. 3) text", one blank line apart."""
    parts: list[str] = []
    used = 0
    for passage in passages:
        block = f"[{passage.number}] ({passage.citation}) {passage.text}"
        if max_chars is not None:
            room = max_chars - used - (2 if parts else 0)
            if room <= 0:
                break
            if len(block) > room:
                parts.append(block[: max(0, room - 1)].rstrip() + "…")
                break
        parts.append(block)
        used += len(block) + (2 if len(parts) > 1 else 0)
    return "\n\n".join(parts)


def fit_passages(
    passages: Sequence[Passage], *, budget_tokens: int, count_tokens: Callable[[str], int]
) -> list[Passage]:
    """The best-ranked passages whose build_context fits budget_tokens; the last may be shortened."""
    kept: list[Passage] = []
    for passage in passages:
        if count_tokens(build_context([*kept, passage])) <= budget_tokens:
            kept.append(passage)
            continue
        words = passage.text.split()
        low, high, best = _MIN_SHORTENED_WORDS, len(words) - 1, 0
        while low <= high:  # the most words that still fit, by bisection
            middle = (low + high) // 2
            trial = replace(passage, text=" ".join(words[:middle]) + " …")
            if count_tokens(build_context([*kept, trial])) <= budget_tokens:
                best, low = middle, middle + 1
            else:
                high = middle - 1
        if best:
            kept.append(replace(passage, text=" ".join(words[:best]) + " …"))
        break
    return kept
