"""Summary planning: which passages go into which model call, and how page citations survive map-reduce.

Pure functions over plain values (the token counter is passed in), so the plan is tested without
a model. A long input is summarized part by part ("map"); the partial summaries are then combined
a group at a time ("reduce") until one is left. Every text handed to the model is numbered and
labelled with the pages it covers; the model cites [1], [2]... and those numbers are turned back
into page citations right away, so a citation means the same thing at every level.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

CountTokens = Callable[[str], int]

# Tokens a chat template adds around a system and a user message (role markers, BOS/EOS):
# ChatML spends about 10, Llama 3 about 20; 48 leaves room for longer formats.
TEMPLATE_TOKENS = 48
BLOCK_SEPARATOR_TOKENS = 2  # the blank line between two numbered blocks
MAX_LISTED_HEADINGS = 3  # a longer list of headings is shown as "first … last"

MAP_INSTRUCTIONS = (
    "Summarize the numbered passages below, which are consecutive parts of {title}. After each "
    "statement, cite the passage it comes from as [1], [2], ... Use only what the passages say."
)
REDUCE_INSTRUCTIONS = (
    "Below are numbered summaries of consecutive parts of {title}, in order. Combine them into one "
    "summary of the whole. After each statement, cite the summary it comes from as [1], [2], ... "
    "Use only what the summaries say."
)


@dataclass(frozen=True)
class Place:
    """Where a text comes from: a file and, when known, its page or the heading it sits under."""

    file_name: str
    page: int | None = None
    heading: str | None = None


@dataclass(frozen=True)
class Piece:
    """A text handed to the model (a passage, or a summary of several) and every place it covers."""

    text: str
    places: tuple[Place, ...]


def _page_ranges(pages: Iterable[int]) -> str:
    """[3, 4, 5, 7] -> "pp. 3–5, 7"; [3] -> "p. 3"."""
    ordered = sorted(set(pages))
    runs: list[list[int]] = []
    for page in ordered:
        if runs and page == runs[-1][1] + 1:
            runs[-1][1] = page
        else:
            runs.append([page, page])
    spans = [f"{a}" if a == b else f"{a}–{b}" for a, b in runs]
    return ("p. " if len(ordered) == 1 else "pp. ") + ", ".join(spans)


def _headings(headings: Sequence[str]) -> str:
    unique = list(dict.fromkeys(headings))
    if len(unique) > MAX_LISTED_HEADINGS:
        return f"{unique[0]} … {unique[-1]}"
    return "; ".join(unique)


def format_places(places: Iterable[Place], *, with_file: bool) -> str:
    """A citation a reader can look up: "pp. 3–7", or "a.pdf, pp. 3–7; b.md, Usage" across files.

    Pages win over headings (a PDF has both only when a loader found headings too); a file with
    neither is cited by its name.
    """
    by_file: dict[str, list[Place]] = {}
    for place in places:
        by_file.setdefault(place.file_name, []).append(place)
    parts = []
    for file_name, found in by_file.items():
        pages = [p.page for p in found if p.page is not None]
        headings = [p.heading for p in found if p.page is None and p.heading]
        where = _page_ranges(pages) if pages else _headings(headings) if headings else ""
        if with_file or not where:
            where = f"{file_name}, {where}" if where else file_name
        parts.append(where)
    return "; ".join(parts)


# Chunks of one section overlap by up to 40 embedding tokens (a sentence or two) so retrieval finds
# facts on a boundary; read in order, that text would be summarized twice. Repeats shorter than
# MIN_OVERLAP_CHARS are left alone: they may be a chance match of a few words.
MAX_OVERLAP_CHARS = 1000
MIN_OVERLAP_CHARS = 20


def _after_overlap(previous: str, text: str) -> str:
    """``text`` without its beginning where that repeats the end of ``previous``."""
    for size in range(min(len(previous), len(text) - 1, MAX_OVERLAP_CHARS), MIN_OVERLAP_CHARS - 1, -1):
        if previous.endswith(text[:size]):
            return text[size:].lstrip()
    return text


def without_overlaps(pieces: Sequence[Piece]) -> list[Piece]:
    """Passages in reading order with the chunk overlap taken out, so no sentence is read twice."""
    out: list[Piece] = []
    for index, piece in enumerate(pieces):
        previous = pieces[index - 1] if index else None
        if previous is not None and previous.places == piece.places:
            piece = replace(piece, text=_after_overlap(previous.text, piece.text))
        out.append(piece)
    return out


def spans_several_files(pieces: Iterable[Piece]) -> bool:
    """Whether citations must name the file (a collection), or pages alone are clear (one document)."""
    return len({place.file_name for piece in pieces for place in piece.places}) > 1


def merged_places(pieces: Iterable[Piece]) -> tuple[Place, ...]:
    """Every place the pieces cover, once each, in order of first appearance."""
    return tuple(dict.fromkeys(place for piece in pieces for place in piece.places))


def numbered_block(number: int, piece: Piece, *, with_file: bool) -> str:
    return f"[{number}] ({format_places(piece.places, with_file=with_file)}) {piece.text}"


def render_numbered(pieces: Sequence[Piece], *, with_file: bool) -> str:
    """The model's input: "[1] (pp. 3–4) text", blocks one blank line apart."""
    return "\n\n".join(
        numbered_block(number, piece, with_file=with_file) for number, piece in enumerate(pieces, start=1)
    )


def input_budget(n_ctx: int, reply_tokens: int, overhead_tokens: int) -> int:
    """Tokens left for the numbered blocks of one call, after the reply and the fixed prompt."""
    return max(0, n_ctx - reply_tokens - overhead_tokens - TEMPLATE_TOKENS)


def reply_tokens_for(n_ctx: int, wanted: int, overhead_tokens: int) -> int:
    """The reply length for every call: at most a quarter of what the prompt leaves free.

    Four partial summaries must fit one reduce call, or combining them would never finish (two
    would do in theory; four keeps the number of reduce levels low).
    """
    free = n_ctx - overhead_tokens - TEMPLATE_TOKENS
    return max(16, min(wanted, free // 4))


def _shortened(piece: Piece, words: list[str], keep: int) -> Piece:
    return replace(piece, text=" ".join(words[:keep]) + (" …" if keep < len(words) else ""))


def split_to_fit(piece: Piece, budget_tokens: int, cost: Callable[[Piece], int]) -> list[Piece]:
    """A piece too long for one call, cut at word boundaries into pieces that fit (same places).

    Chunks are far smaller than a context window, so this only matters for tiny contexts.
    """
    words = piece.text.split()
    out: list[Piece] = []
    while words:
        low, high, best = 1, len(words), 0
        while low <= high:  # the most words that still fit, by bisection
            middle = (low + high) // 2
            if cost(replace(piece, text=" ".join(words[:middle]))) <= budget_tokens:
                best, low = middle, middle + 1
            else:
                high = middle - 1
        best = max(best, 1)  # one word that does not fit still goes, or this would never end
        out.append(replace(piece, text=" ".join(words[:best])))
        words = words[best:]
    return out


def pack(
    pieces: Sequence[Piece], *, budget_tokens: int, count_tokens: CountTokens, with_file: bool
) -> list[list[Piece]]:
    """Consecutive pieces grouped greedily so each group's numbered blocks fit ``budget_tokens``.

    Each block is counted once, numbered as if it were [99]: counting every prefix again would
    cost a tokenizer call per passage per group.
    """

    def cost(piece: Piece) -> int:
        return count_tokens(numbered_block(99, piece, with_file=with_file)) + BLOCK_SEPARATOR_TOKENS

    groups: list[list[Piece]] = []
    current: list[Piece] = []
    used = 0
    for whole in pieces:
        parts = [whole] if cost(whole) <= budget_tokens else split_to_fit(whole, budget_tokens, cost)
        for piece in parts:
            size = cost(piece)
            if current and used + size > budget_tokens:
                groups.append(current)
                current, used = [], 0
            current.append(piece)
            used += size
    if current:
        groups.append(current)
    return groups


def trim_to(piece: Piece, max_tokens: int, count_tokens: CountTokens) -> Piece:
    """The piece cut to at most ``max_tokens`` (by words, marked with "…"), places kept."""
    if count_tokens(piece.text) <= max_tokens:
        return piece
    words = piece.text.split()
    low, high, best = 1, len(words), 1
    while low <= high:
        middle = (low + high) // 2
        if count_tokens(_shortened(piece, words, middle).text) <= max_tokens:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return _shortened(piece, words, best)


def reduce_groups(
    pieces: Sequence[Piece], *, budget_tokens: int, count_tokens: CountTokens, with_file: bool
) -> list[list[Piece]]:
    """Partial summaries grouped for one reduce level; always fewer groups than pieces.

    If the summaries came out so long that no two fit together, each is trimmed to a share of the
    budget: losing the end of a long partial summary beats never finishing.
    """
    groups = pack(pieces, budget_tokens=budget_tokens, count_tokens=count_tokens, with_file=with_file)
    if len(pieces) > 1 and len(groups) >= len(pieces):
        share = max(8, budget_tokens // 4 - 16)  # 16: the "[n] (pp. …)" label and the separator
        trimmed = [trim_to(p, share, count_tokens) for p in pieces]
        groups = pack(trimmed, budget_tokens=budget_tokens, count_tokens=count_tokens, with_file=with_file)
        if len(groups) >= len(pieces):  # a budget too small to be useful: pair them regardless
            groups = [list(trimmed[i : i + 2]) for i in range(0, len(trimmed), 2)]
    return groups


def estimated_calls(map_steps: int, per_group: int) -> int:
    """Model calls for a summary: the map steps plus the reduce levels, for the progress bar."""
    if map_steps <= 1:
        return 1
    per_group = max(2, per_group)
    calls, left = map_steps, map_steps
    while left > 1:
        left = math.ceil(left / per_group)
        calls += left
    return calls


_CITATION = re.compile(r"( ?)\[\s*(\d+(?:\s*(?:,|;|–|-|and)\s*\d+)*)\s*\]")
_NUMBER_OR_DASH = re.compile(r"\d+|[–-]")


def _cited_numbers(inside: str) -> list[int]:
    """"1, 3-5" -> [1, 3, 4, 5]."""
    numbers: list[int] = []
    tokens = _NUMBER_OR_DASH.findall(inside)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.isdigit():
            if index + 2 < len(tokens) and tokens[index + 1] in "–-" and tokens[index + 2].isdigit():
                first, last = int(token), int(tokens[index + 2])
                numbers.extend(range(first, last + 1) if 0 < last - first < 100 else (first, last))
                index += 3
                continue
            numbers.append(int(token))
        index += 1
    return numbers


def resolve_citations(text: str, pieces: Sequence[Piece], *, with_file: bool) -> str:
    """The model's [1], [2, 3] turned into the page citations of those pieces: [pp. 3–7].

    A number that matches no piece is a citation the model made up; it is dropped rather than
    shown as if it pointed somewhere.
    """

    def swap(match: re.Match[str]) -> str:
        cited = [pieces[n - 1] for n in dict.fromkeys(_cited_numbers(match.group(2))) if 1 <= n <= len(pieces)]
        if not cited:
            return ""  # the space before it goes too, so no "word ." is left behind
        return f"{match.group(1)}[{format_places(merged_places(cited), with_file=with_file)}]"

    return _CITATION.sub(swap, text).strip()


def cites_anything(text: str) -> bool:
    """Whether a summary holds at least one page or section citation in square brackets."""
    return bool(re.search(r"\[[^\[\]]+\]", text))


def map_prompt(title: str, pieces: Sequence[Piece], *, with_file: bool) -> str:
    """The user message of one map step: instructions, then the numbered passages."""
    return f"{MAP_INSTRUCTIONS.replace('{title}', title)}\n\n{render_numbered(pieces, with_file=with_file)}"


def reduce_prompt(title: str, pieces: Sequence[Piece], *, with_file: bool) -> str:
    """The user message of one reduce step: instructions, then the numbered partial summaries."""
    return f"{REDUCE_INSTRUCTIONS.replace('{title}', title)}\n\n{render_numbered(pieces, with_file=with_file)}"


def summary_title(file_name: str | None, collection: str) -> str:
    """How the prompt and the saved chat name what is summarized."""
    return f"the document '{file_name}'" if file_name else f"the documents of the collection '{collection}'"
