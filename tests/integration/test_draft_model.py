"""Draft-model speculation against real llama.cpp: a second GGUF with the same vocabulary guesses, the chat
model checks; replies are the ones it writes alone, and a draft model of another vocabulary is refused.

SmolLM2 drafts for itself (the issue's "the test model as its own draft"), with flash attention on, where
passes of several tokens agree bit for bit with passes of one, so greedy replies draft too.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.integration.test_prompt_lookup import QUOTES, ask
from tests.support.streams import all_at_once
from webui.engine import Engine, LoadSettings, ModelLoadError, SamplingParams

SETTINGS = LoadSettings(n_ctx=1024, n_threads=1, flash_attn=True, prompt_lookup=False)
QUESTIONS = ["Name three colours of the rainbow.", "What sound does a dog make?",
             "Write two sentences about the sea.", QUOTES[0]]


@pytest.fixture(scope="module")
def alone(smollm_path: Path) -> Engine:
    # The same slots and cache as with_draft, so both reuse cached prefixes alike: a prefix evaluated within
    # a longer prompt (64+ tokens take flash attention's tiled path) is not bit for bit the prefix alone.
    engine = Engine(parallel=4, prompt_cache_mb=64)
    engine.load(smollm_path, SETTINGS)
    yield engine
    engine.unload()


@pytest.fixture(scope="module")
def with_draft(smollm_path: Path) -> Engine:
    engine = Engine(parallel=4, prompt_cache_mb=64)
    engine.load(smollm_path, LoadSettings(**{**SETTINGS.__dict__, "draft_model": smollm_path}))
    yield engine
    engine.unload()


def test_greedy_replies_drafted_by_a_draft_model_are_the_replies_without_it(alone: Engine,
                                                                            with_draft: Engine) -> None:
    status = with_draft.prompt_lookup
    assert status.enabled and status.greedy_drafts and status.draft_model == alone.info.file
    for question in QUESTIONS:
        expected, _ = ask(alone, question)
        text, stats = ask(with_draft, question)
        assert text == expected, question
        assert stats.drafted_tokens > 0 and stats.accepted_tokens > 0, "the model as its own draft guesses right"
    assert alone.prompt_lookup.drafted_tokens == 0


def test_four_users_at_once_with_a_draft_model_each_get_their_solo_greedy_text(alone: Engine,
                                                                                with_draft: Engine) -> None:
    solo = {question: ask(alone, question)[0] for question in QUESTIONS}
    results = all_at_once(lambda question: ask(with_draft, question), QUESTIONS)
    assert {question: text for question, (text, _) in results.items()} == solo
    assert all(stats.accepted_tokens > 0 for _, stats in results.values())


def test_stop_with_a_draft_model_frees_the_slot(alone: Engine, with_draft: Engine) -> None:
    stop = threading.Event()
    stream = with_draft.stream_chat([{"role": "user", "content": "Write a long story about a dragon."}],
                                    SamplingParams(temperature=0.0, max_tokens=300, seed=1), cancel=stop)
    next(stream)
    stop.set()
    _, stats = next((None, chunk.stats) for chunk in stream if chunk.stats)
    assert stats.stopped_by_user
    assert ask(with_draft, QUESTIONS[1])[0] == ask(alone, QUESTIONS[1])[0]


def test_a_draft_model_with_another_vocabulary_is_refused_and_the_loaded_model_stays(
        smollm_path: Path, gemma_path: Path) -> None:
    engine = Engine(parallel=1, prompt_cache_mb=0)
    engine.load(smollm_path, SETTINGS)
    try:
        expected, _ = ask(engine, QUESTIONS[0])
        with pytest.raises(ModelLoadError, match=r"gemma-3-270m-q4_k_m.gguf cannot draft for this model: it uses "
                                                 r"another kind of tokenizer\. A draft model must share"):
            engine.load(smollm_path, LoadSettings(**{**SETTINGS.__dict__, "draft_model": gemma_path}))
        assert engine.info.file == smollm_path.name and engine.prompt_lookup.draft_model is None
        assert ask(engine, QUESTIONS[0])[0] == expected
    finally:
        engine.unload()
