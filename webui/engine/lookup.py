"""Prompt lookup: draft a reply's next tokens from where its last few tokens appeared before, and how many to try.

A document answer or an edit of pasted text repeats runs of its prompt. Finding the reply's last
tokens earlier in the prompt (or in the reply) and proposing what followed them there lets the model
check several tokens in one pass instead of writing one per pass, as llama.cpp's ``llama-lookup`` and
its server's n-gram speculation do. The model's own pick decides every token, so the text is the one
it writes anyway; a wrong draft costs only the rows it added to the pass.

Pure logic, no llama.cpp: the scheduler feeds tokens in and step times back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

MIN_MATCH = 3  # a draft needs the last 3 tokens to have appeared before: 1-2 tokens match by chance too often
MAX_DRAFT = 16  # most tokens drafted for one step (llama-lookup drafts up to its --spec-draft-n-max)
CANDIDATES = 8  # most earlier places of the same tokens compared to find the longest match
LONGEST_MATCH = 32  # matches are compared this far back, no further
# Acceptance is learned per length of the match a draft came from: a reply copying a passage keeps
# matching the prompt further and further back, a reply in its own words matches 3-4 tokens by chance.
MATCH_BUCKETS = (3, 4, 6, 8, 12, 16, 24, 32)
PRIOR_ACCEPTANCE = 0.6  # before any outcome is known, a drafted token counts as 60% likely to be accepted
PRIOR_WEIGHT = 2.0  # ... with the weight of two outcomes
FORGET = 0.97  # each outcome counts 3% less than the one after it, so the estimate follows the current text
TIMING_WEIGHT = 0.2  # how much one step's time moves the running estimate for its number of rows


@dataclass(frozen=True)
class Draft:
    """Tokens proposed to follow a sequence, and how many tokens before them matched (the evidence)."""

    tokens: list[int]
    match: int


class PromptLookup:
    """One reply's history (its prompt, then every token it wrote) indexed by runs of ``min_match`` tokens."""

    def __init__(self, tokens: Sequence[int], *, min_match: int = MIN_MATCH) -> None:
        self.tokens: list[int] = []
        self._n = min_match
        self._followers: dict[tuple[int, ...], list[int]] = {}  # n tokens -> each position that followed them
        self.extend(tokens)

    def extend(self, tokens: Sequence[int]) -> None:
        """Add tokens to the history (the prompt once, then each token of the reply)."""
        history, n = self.tokens, self._n
        start = len(history)
        history.extend(tokens)
        followers = self._followers
        for i in range(max(start, n), len(history)):
            key = tuple(history[i - n:i])
            places = followers.get(key)
            if places is None:
                followers[key] = [i]
            else:
                places.append(i)

    def draft(self, limit: int) -> Draft | None:
        """Up to ``limit`` tokens that followed the history's last ``min_match`` tokens where they last
        appeared with the longest match; None when they never appeared before.

        A draft that runs past the end of the history goes on copying itself, so a repeating pattern
        (a list, a table's rows) is drafted whole.
        """
        history, n = self.tokens, self._n
        if limit <= 0 or len(history) < n:
            return None
        places = self._followers.get(tuple(history[-n:]))
        if not places:
            return None
        end = len(history)
        best, best_match = places[-1], n
        for follower in reversed(places[-CANDIDATES:]):
            match = n
            while (match < LONGEST_MATCH and follower - 1 - match >= 0
                   and history[follower - 1 - match] == history[end - 1 - match]):
                match += 1
            if match > best_match:
                best, best_match = follower, match
        tokens: list[int] = []
        for i in range(limit):
            position = best + i
            tokens.append(history[position] if position < end else tokens[position - end])
        return Draft(tokens, best_match)


def match_bucket(match: int) -> int:
    """The index of the acceptance estimate a draft from a match of ``match`` tokens uses."""
    bucket = 0
    for index, least in enumerate(MATCH_BUCKETS):
        if match >= least:
            bucket = index
    return bucket


def expected_tokens(acceptance: float, drafted: int) -> float:
    """Tokens a step gives on average when it verifies ``drafted`` tokens, each accepted with ``acceptance``
    while all before it were: the model's own token, plus each draft token up to the first miss."""
    return sum(acceptance ** i for i in range(drafted + 1))


@dataclass
class DraftPlanner:
    """Chooses how many drafted tokens a step verifies: as many as pay for the rows they add.

    A step's time grows with its rows, by how much depends on the machine and not smoothly: on 2 CPU
    cores a second row of Gemma 3 270M (logits over a 262k-token vocabulary) cost ~1.7x a one-row step,
    sixteen rows ~4.9x; on a GPU rows are nearly free. So the planner times the steps it runs, per number of rows, learns how
    often drafts from matches of each length are accepted, and picks the length with the most
    expected tokens per second; no draft at all when none pays.
    """

    max_draft: int = MAX_DRAFT
    step_seconds: dict[int, float] = field(default_factory=dict)  # running estimate per number of rows
    _hits: list[float] = field(default_factory=lambda: [0.0] * len(MATCH_BUCKETS))
    _misses: list[float] = field(default_factory=lambda: [0.0] * len(MATCH_BUCKETS))

    def acceptance(self, match: int) -> float:
        """How likely a token drafted from a match of ``match`` tokens is to be accepted, as seen so far."""
        bucket = match_bucket(match)
        hits, misses = self._hits[bucket], self._misses[bucket]
        return (hits + PRIOR_ACCEPTANCE * PRIOR_WEIGHT) / (hits + misses + PRIOR_WEIGHT)

    def record(self, match: int, accepted: int, missed: bool) -> None:
        """One verified draft: ``accepted`` tokens confirmed, then a rejected one if ``missed``."""
        bucket = match_bucket(match)
        for _ in range(accepted + int(missed)):
            self._hits[bucket] *= FORGET
            self._misses[bucket] *= FORGET
        self._hits[bucket] += accepted
        self._misses[bucket] += int(missed)

    def observe(self, rows: int, seconds: float) -> None:
        """A decode step of ``rows`` rows (all sequences' tokens and drafts) took ``seconds``, sampling included."""
        previous = self.step_seconds.get(rows)
        self.step_seconds[rows] = seconds if previous is None else previous + TIMING_WEIGHT * (seconds - previous)

    def cost(self, rows: int) -> float | None:
        """Estimated seconds of a step of ``rows`` rows: as timed, or, for a size not timed yet, what the
        largest timed size below it took; None before any step was timed.

        The estimate for an untimed size is optimistic on purpose. llama.cpp's CPU kernels make some larger
        passes cheaper per row than smaller ones (Gemma 3 270M on 2 cores: 4 rows 32 ms, 5 rows 49 ms, 8 rows
        46 ms, 16 rows 70 ms, one row 14 ms), so no line through a few sizes predicts the others: each size
        that looks worth it is tried once, and from then on its own time decides.
        """
        timed = self.step_seconds
        if rows in timed:
            return timed[rows]
        if not timed:
            return None
        below = [r for r in timed if r < rows]
        return timed[max(below)] if below else timed[min(timed)]

    def choose(self, sequences: Sequence[tuple[float, int]]) -> int:
        """How many draft tokens each sequence verifies this step (the same for all, so one pass runs them).

        ``sequences``: each running sequence's acceptance estimate and how many drafted tokens it may
        verify (0: no match; fewer near its end of reply or of context). Every sequence must have a draft: a sequence without one would need rows of its
        own and llama.cpp would run the step as two passes.
        """
        if not sequences:
            return 0
        available = min(min(n for _, n in sequences), self.max_draft)
        base = self.cost(len(sequences))
        if available <= 0 or base is None:
            return 0
        best, best_rate = 0, len(sequences) / base
        for drafted in range(1, available + 1):
            cost = self.cost(len(sequences) * (1 + drafted))
            assert cost is not None
            rate = sum(expected_tokens(p, drafted) for p, _ in sequences) / cost
            if rate > best_rate:
                best, best_rate = drafted, rate
        return best
