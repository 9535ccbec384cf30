"""Prompt lookup (speculative decoding from the prompt) against real llama.cpp: the same replies, sooner.

SmolLM2 with flash attention on is a configuration where llama.cpp computes a pass of several tokens
bit for bit as a pass of one (the probe at load says so), so greedy replies draft there and must equal
the replies of the same model loaded without prompt lookup. Gemma 3 with the CPU's defaults is not,
so there greedy replies must not draft at all, while sampled ones still do.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support.streams import all_at_once, collect
from webui.engine import Engine, LoadSettings, SamplingParams

PASSAGE = ("The reading room of the Hallam Library opens at nine in the morning and closes at six in the evening. "
           "Visitors must sign the register at the front desk and leave coats and bags in the lockers by the stairs.")
QUOTES = [
    f"Here are the house rules:\n\n{PASSAGE}\n\nRepeat the house rules above exactly, word for word.",
    "Copy this list exactly: apples, pears, plums, cherries, apples, pears, plums, cherries, apples, pears.",
    "Repeat after me three times: the quick brown fox jumps over the lazy dog.",
    f"{PASSAGE}\n\nWhen does the reading room open and close? Quote the sentence that says so.",
]
GREEDY = SamplingParams(temperature=0.0, max_tokens=60, seed=1)
EXACT = LoadSettings(n_ctx=1024, n_threads=1, flash_attn=True)


def engine_for(model: Path, settings: LoadSettings, *, lookup: bool, parallel: int = 1) -> Engine:
    engine = Engine(parallel=parallel, prompt_cache_mb=64)
    engine.load(model, LoadSettings(**{**settings.__dict__, "prompt_lookup": lookup}))
    return engine


def ask(engine: Engine, prompt: str | list[dict[str, str]], sampling: SamplingParams = GREEDY, **kwargs):
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return collect(engine.stream_chat(messages, sampling, **kwargs))


@pytest.fixture(scope="module")
def plain(smollm_path: Path) -> Engine:
    # The same slots and cache as drafting, so both reuse cached prefixes alike: a prefix evaluated within
    # a longer prompt (64+ tokens take flash attention's tiled path) is not bit for bit the prefix alone.
    engine = engine_for(smollm_path, EXACT, lookup=False, parallel=4)
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def drafting(smollm_path: Path) -> Engine:
    engine = engine_for(smollm_path, EXACT, lookup=True, parallel=4)
    yield engine
    engine.unload()


def test_greedy_replies_with_prompt_lookup_are_the_replies_without_it(plain: Engine, drafting: Engine) -> None:
    before = drafting.prompt_lookup
    assert before is not None and before.enabled and before.greedy_drafts, "the probe found passes that agree"
    for prompt in QUOTES:
        expected, _ = ask(plain, prompt)
        text, stats = ask(drafting, prompt)
        assert text == expected, prompt
        assert stats.accepted_tokens <= stats.drafted_tokens
    after = drafting.prompt_lookup
    assert after.drafted_tokens > before.drafted_tokens and after.accepted_tokens > before.accepted_tokens, (
        "drafts were made and some were accepted, so the equality above was put to the test")
    assert plain.prompt_lookup.drafted_tokens == 0


def test_four_users_at_once_with_prompt_lookup_each_get_their_solo_greedy_text(plain: Engine,
                                                                                drafting: Engine) -> None:
    solo = {prompt: ask(plain, prompt)[0] for prompt in QUOTES}
    results = all_at_once(lambda prompt: ask(drafting, prompt), QUOTES)
    assert {prompt: text for prompt, (text, _) in results.items()} == solo
    assert sum(stats.drafted_tokens for _, stats in results.values()) > 0


def test_stop_frees_the_slot_and_the_next_reply_is_its_solo_text(plain: Engine, drafting: Engine) -> None:
    stop = threading.Event()
    stream = drafting.stream_chat([{"role": "user", "content": QUOTES[1]}],
                                  SamplingParams(temperature=0.0, max_tokens=200, seed=1), cancel=stop)
    next(stream)
    stop.set()
    _, stats = collect(stream)
    assert stats.stopped_by_user and stats.finish_reason == "cancelled"
    assert ask(drafting, QUOTES[2])[0] == ask(plain, QUOTES[2])[0]


def test_a_trimmed_history_and_a_reply_cut_at_max_tokens_come_out_as_without_lookup(smollm_path: Path) -> None:
    small = LoadSettings(n_ctx=256, n_threads=1, flash_attn=True)
    history = [{"role": "user", "content": f"{PASSAGE} Say it again."}, {"role": "assistant", "content": PASSAGE}] * 2
    history.append({"role": "user", "content": "Write the word 'apple' 100 times."})
    results = []
    for lookup in (False, True):
        engine = engine_for(smollm_path, small, lookup=lookup)
        try:
            results.append([ask(engine, history, SamplingParams(temperature=0.0, max_tokens=n, seed=1))
                            for n in (400, 37)])
        finally:
            engine.unload()
    (whole, cut), (whole_drafting, cut_drafting) = results
    assert whole_drafting[0] == whole[0] and cut_drafting[0] == cut[0]
    assert whole_drafting[1].dropped_messages == whole[1].dropped_messages > 0, "the history was trimmed to fit"
    assert whole_drafting[1].drafted_tokens > 0
    assert cut_drafting[1].finish_reason == "length" and cut_drafting[1].completion_tokens == 37, (
        "drafts never carry a reply past max_tokens")


def test_a_returning_conversation_keeps_its_cache_with_lookup(plain: Engine, drafting: Engine) -> None:
    replies = {}
    for name, engine in (("plain", plain), ("drafting", drafting)):
        history = [{"role": "user", "content": QUOTES[0]}]
        first, _ = ask(engine, history, conversation=f"rules-{name}")
        history += [{"role": "assistant", "content": first}, {"role": "user", "content": "Now say it once more."}]
        second, stats = ask(engine, history, conversation=f"rules-{name}")
        replies[name] = (first, second, stats.cached_tokens)
    assert replies["drafting"][:2] == replies["plain"][:2]
    assert replies["drafting"][2] > 50, "the first turn and its reply came from the cache"


def test_where_passes_of_several_tokens_round_differently_greedy_replies_never_draft(gemma_path: Path) -> None:
    engine = engine_for(gemma_path, LoadSettings(n_ctx=1024, n_threads=1, flash_attn=False), lookup=True)
    try:
        assert engine.prompt_lookup.enabled and not engine.prompt_lookup.greedy_drafts
        _, greedy = ask(engine, QUOTES[0])
        _, sampled = ask(engine, QUOTES[0], SamplingParams(temperature=0.1, top_p=0.9, min_p=0.05,
                                                           repeat_penalty=1.1, max_tokens=60, seed=1))
    finally:
        engine.unload()
    assert greedy.drafted_tokens == 0, "a greedy reply decodes one token per pass: its text cannot change"
    assert sampled.drafted_tokens > 0 and sampled.accepted_tokens > 0, "a sampled one drafts"
