"""Prompt lookup's pure parts: where a draft comes from, and how many drafted tokens a step verifies."""

from __future__ import annotations

import pytest

from webui.engine.lookup import MAX_DRAFT, PRIOR_ACCEPTANCE, DraftPlanner, PromptLookup, expected_tokens


def test_the_draft_is_what_followed_the_last_three_tokens_in_the_prompt() -> None:
    lookup = PromptLookup([5, 6, 7, 8, 9, 1, 2, 5, 6, 7])
    draft = lookup.draft(3)
    assert draft is not None and draft.tokens == [8, 9, 1] and draft.match == 3


def test_no_draft_without_a_match_of_three_tokens() -> None:
    assert PromptLookup([1, 2, 3, 4, 9, 3, 4]).draft(4) is None, "two tokens in common are not enough"
    assert PromptLookup([1, 2]).draft(4) is None
    assert PromptLookup([1, 2, 3, 1, 2, 3]).draft(0) is None


def test_the_place_with_the_longest_match_wins_over_a_later_one() -> None:
    # (2, 3, 4) appears twice before the end; only the first is preceded by 1, as the end is.
    lookup = PromptLookup([1, 2, 3, 4, 50, 9, 2, 3, 4, 60, 1, 2, 3, 4])
    draft = lookup.draft(1)
    assert draft is not None and draft.tokens == [50] and draft.match == 4
    # With no longer match, the latest place wins.
    later = PromptLookup([8, 2, 3, 4, 50, 9, 2, 3, 4, 60, 1, 2, 3, 4]).draft(1)
    assert later is not None and later.tokens == [60]


def test_a_repeating_pattern_is_drafted_past_the_end_of_the_history() -> None:
    draft = PromptLookup([1, 2, 3, 1, 2, 3]).draft(5)
    assert draft is not None and draft.tokens == [1, 2, 3, 1, 2]
    same = PromptLookup([7, 7, 7, 7]).draft(4)
    assert same is not None and same.tokens == [7, 7, 7, 7]


def test_tokens_of_the_reply_are_looked_up_too() -> None:
    lookup = PromptLookup([10, 11, 12])
    lookup.extend([20, 21, 22, 23, 20, 21])
    assert lookup.draft(4) is None, "(23, 20, 21) is new"
    lookup.extend([22])
    draft = lookup.draft(2)
    assert draft is not None and draft.tokens == [23, 20]


def test_expected_tokens_counts_the_models_own_token_and_each_draft_up_to_the_first_miss() -> None:
    assert expected_tokens(0.5, 0) == 1
    assert expected_tokens(0.5, 2) == pytest.approx(1.75)
    assert expected_tokens(1.0, 4) == 5


def test_acceptance_follows_what_drafts_from_matches_of_that_length_got() -> None:
    planner = DraftPlanner()
    assert planner.acceptance(3) == pytest.approx(PRIOR_ACCEPTANCE)
    for _ in range(5):
        planner.record(20, accepted=8, missed=False)
        planner.record(3, accepted=0, missed=True)
    assert planner.acceptance(20) > 0.9, "long matches were always right"
    assert planner.acceptance(3) < 0.2, "three-token matches were always wrong"
    assert planner.acceptance(5) == pytest.approx(PRIOR_ACCEPTANCE), "other lengths keep their own estimate"


def test_no_draft_before_a_step_was_timed_or_when_a_sequence_has_none() -> None:
    planner = DraftPlanner()
    assert planner.choose([(0.99, 8)]) == 0, "nothing timed yet"
    planner.observe(2, 0.010)
    assert planner.choose([(0.99, 8), (0.99, 0)]) == 0, "one sequence without a draft: no step of two passes"
    assert planner.choose([(0.99, 8), (0.99, 8)]) > 0


def test_rows_that_cost_little_are_worth_a_long_draft() -> None:
    planner = DraftPlanner()
    for rows in range(1, 18):
        planner.observe(rows, 0.010 + 0.0002 * (rows - 1))  # a GPU: rows nearly free
    assert planner.choose([(0.9, 32)]) == MAX_DRAFT
    assert 0 < planner.choose([(0.6, 32)]) < MAX_DRAFT, "tokens past the likely first miss are not worth even a little"


def test_rows_that_cost_as_much_as_a_step_are_worth_a_draft_only_when_it_is_nearly_sure() -> None:
    planner = DraftPlanner()
    for rows in range(1, 18):
        planner.observe(rows, 0.020 + 0.012 * (rows - 1))  # a CPU with a large vocabulary
    assert planner.choose([(0.6, 16)]) == 0, "a draft right 60% of the time does not pay"
    assert planner.choose([(0.98, 16)]) > 4, "a passage being copied does"
    assert planner.choose([(1.0, 16)]) == 16


def test_a_step_size_not_timed_yet_counts_as_the_largest_timed_one_below_it_until_it_is_tried() -> None:
    planner = DraftPlanner()
    assert planner.cost(3) is None
    planner.observe(1, 0.010)
    planner.observe(5, 0.030)
    assert planner.cost(3) == pytest.approx(0.010), "untimed: what the largest smaller timed step took"
    assert planner.cost(9) == pytest.approx(0.030)
    planner.observe(5, 0.040)
    assert planner.cost(5) == pytest.approx(0.032), "a new time moves the estimate a fifth of the way"


def test_a_larger_pass_that_proves_cheaper_per_row_is_kept_and_one_that_proves_dear_is_left() -> None:
    planner = DraftPlanner()
    planner.observe(1, 0.014)
    assert planner.choose([(0.95, 16)]) == 16, "untimed sizes look as cheap as one row: the longest is tried"
    for rows, seconds in ((17, 0.087), (16, 0.070), (9, 0.064), (8, 0.046), (5, 0.049), (4, 0.032), (2, 0.024)):
        planner.observe(rows, seconds)  # Gemma 3 270M on 2 cores
    for rows in range(3, 17):
        planner.step_seconds.setdefault(rows, 0.090)  # every other size proved dear
    assert planner.choose([(0.95, 16)]) == 15, "16 rows: ~11 tokens in 70 ms"
    assert planner.choose([(0.3, 16)]) == 0, "a draft right 30% of the time pays for no row"
