"""Pure decisions on API requests: which sampling values a client may send, and replies at once per user."""

from __future__ import annotations

import pytest

from webui.config import Settings
from webui.engine import SamplingParams
from webui.services.admission import sampling_problem
from webui.services.completions import StreamSlots, TooManyStreams, streams_per_user


def test_stop_top_k_and_seed_are_bounded_with_a_sentence_naming_the_limit() -> None:
    assert sampling_problem(SamplingParams(stop=("\nUser:",) * 16, top_k=1000, seed=2**32 - 1)) is None
    assert sampling_problem(SamplingParams(top_k=0, seed=-1)) is None
    refused = {
        "stop holds 17 sequences; at most 16": SamplingParams(stop=("x",) * 17),
        "A stop sequence is 101 characters long; at most 100": SamplingParams(stop=("x" * 101,)),
        "top_k is 1001; it must be between 0 (off) and 1000": SamplingParams(top_k=1001),
        "top_k is -1": SamplingParams(top_k=-1),
        f"seed is {2**32}; it must be between 0 and 4294967295": SamplingParams(seed=2**32),
        "seed is -2": SamplingParams(seed=-2),
    }
    for words, sampling in refused.items():
        assert words in (sampling_problem(sampling) or ""), words


def test_each_user_gets_n_replies_at_once_and_a_freed_place_is_free_once() -> None:
    slots = StreamSlots(2)
    alice = [slots.take("alice"), slots.take("alice")]
    with pytest.raises(TooManyStreams, match="You already have 2 replies generating, and this server allows 2 at once"):
        slots.take("alice")
    slots.take("bob")  # another user's count is their own

    alice[0]()
    alice[0]()  # freeing twice (the reply ended and the client left) frees one place only
    alice.append(slots.take("alice"))
    with pytest.raises(TooManyStreams) as refused:
        slots.take("alice")
    assert refused.value.status == 429

    unlimited = StreamSlots(0)
    for _ in range(100):
        unlimited.take("alice")


def test_the_limit_defaults_to_four_in_team_mode_and_none_for_a_single_user() -> None:
    assert streams_per_user(Settings(), team_mode=True) == 4
    assert streams_per_user(Settings(), team_mode=False) == 0
    assert streams_per_user(Settings(max_streams_per_user=2), team_mode=False) == 2
    assert streams_per_user(Settings(max_streams_per_user=0), team_mode=True) == 0


def test_the_flag_and_its_variable_set_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from webui.cli import parse_settings

    assert parse_settings([]).max_streams_per_user is None
    assert parse_settings(["--max-streams-per-user", "2"]).max_streams_per_user == 2
    monkeypatch.setenv("WEBUI_MAX_STREAMS_PER_USER", "0")
    assert parse_settings([]).max_streams_per_user == 0
    with pytest.raises(SystemExit):
        parse_settings(["--max-streams-per-user", "-1"])
