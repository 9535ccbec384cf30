"""Where a lazy grammar starts, watched in Python by llama.cpp's rules (whole-match ``^...$`` or search), and when
the grammar may be asked about the most likely tokens only."""

from __future__ import annotations

from webui.engine.constrained import TriggerWatch

ANYWHERE = r"^[\s\S]*?(<tool_call>)[\s\S]*$"
AFTER_THINKING = r"^\s*<think>[\s\S]*?</think>[\s\S]*?(<tool_call>)[\s\S]*$"


def feed(watch: TriggerWatch, pieces: list[bytes]) -> tuple[int, bytes] | None:
    """(index of the piece that started it, the constrained text) or None."""
    for index, piece in enumerate(pieces):
        started = watch.start(piece)
        if started is not None:
            return index, started
    return None


def test_an_opener_split_across_tokens_starts_the_grammar_at_its_first_byte() -> None:
    watch = TriggerWatch([ANYWHERE], [])
    assert feed(watch, [b"Let me check.", b" <tool", b"_call>\n{", b'"name"']) == (2, b'<tool_call>\n{')


def test_text_without_the_opener_never_starts_it() -> None:
    assert feed(TriggerWatch([ANYWHERE], []), [b"I use <tool> and ", b"call> tags", b" and <tool_", b"cal"]) is None


def test_a_whole_match_pattern_skips_an_opener_inside_thinking() -> None:
    watch = TriggerWatch([AFTER_THINKING], [])
    pieces = [b"<think>", b"maybe <tool_call> here", b"</think>", b"\n\nOk ", b"<tool_call>", b"{"]
    assert feed(watch, pieces) == (4, b"<tool_call>")


def test_a_pattern_without_anchors_is_searched_for_and_the_match_start_counts_without_a_group() -> None:
    assert feed(TriggerWatch([r'\{\s*"name"'], []), [b"Sure: ", b'{ "na', b'me": 1']) == (2, b'{ "name": 1')


def test_a_multibyte_opener_split_between_tokens_matches_once_whole() -> None:
    opener = "<｜tool▁calls▁begin｜>".encode()
    watch = TriggerWatch([r"^[\s\S]*?(<｜tool▁calls▁begin｜>)[\s\S]*$"], [])
    assert feed(watch, [b"ok ", opener[:5], opener[5:], b"x"]) == (2, opener)


def test_trigger_tokens_are_recognised_by_id() -> None:
    watch = TriggerWatch([], [42])
    assert watch.is_trigger_token(42) and not watch.is_trigger_token(41)


def test_the_grammar_shortlist_is_used_only_where_it_picks_what_the_whole_vocabulary_would() -> None:
    from webui.engine.constrained import allowed_needed
    from webui.engine.sampling import PENALTY_LAST_N
    from webui.engine.types import SamplingParams

    assert allowed_needed(SamplingParams(temperature=0.0, repeat_penalty=1.0), banned=0) == 1
    assert allowed_needed(SamplingParams(temperature=0.8, top_k=40, repeat_penalty=1.1), banned=2) == 40 + PENALTY_LAST_N + 2
    assert allowed_needed(SamplingParams(temperature=0.8, top_k=0), banned=0) is None, "every allowed token counts"
    assert allowed_needed(SamplingParams(temperature=0.0, logit_bias=((5, 3.0),)), banned=1) is None, "a raised token"
    assert allowed_needed(SamplingParams(temperature=0.0, repeat_penalty=0.9), banned=0) is None, "a penalty that raises"
