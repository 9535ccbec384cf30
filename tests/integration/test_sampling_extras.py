"""What tool calls and benchmarks need of the sampler, with real llama.cpp and SmolLM2: lazy grammars,
logit_bias, ignore_eos, typical_p."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.streams import collect
from webui.engine import Engine, InvalidGrammar, InvalidSampling, LoadSettings, PromptRequest, SamplingParams
from webui.engine.scheduler import Batcher, Job, open_model

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
GREEDY = SamplingParams(temperature=0.0, max_tokens=48, seed=1)
TRIGGER_TOKEN = "<jupyter_code>"  # a special token of SmolLM2's vocabulary that no chat reply writes
CITY_OBJECT = r'''
city ::= "{" ws "\"city\"" ws ":" ws "\"" [A-Za-z ]+ "\"" ws "}"
ws ::= [ \t\n]*
'''


@pytest.fixture(scope="module")
def engine(smollm_path: Path) -> Iterator[Engine]:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=512, n_threads=2))
    yield engine
    engine.unload()


def token_id(engine: Engine, text: str, *, special: bool = False) -> int:
    [token] = engine._loaded.tokenize(text, add_bos=False, special=special)  # noqa: SLF001 - the vocabulary's id
    return token


def test_a_lazy_grammar_whose_trigger_never_comes_leaves_the_greedy_reply_as_it_was(engine: Engine) -> None:
    plain, plain_stats = collect(engine.stream_chat(QUESTION, GREEDY))
    lazy = replace(GREEDY, grammar=f'root ::= "{TRIGGER_TOKEN}" city{CITY_OBJECT}', grammar_lazy=True,
                   grammar_trigger_tokens=(TRIGGER_TOKEN,), grammar_triggers=(r'[\s\S]*?(\{\s*"city")[\s\S]*',))

    text, stats = collect(engine.stream_chat(QUESTION, lazy))

    assert "Paris" in plain and plain_stats.finish_reason == "stop"
    assert (text, stats.completion_tokens, stats.finish_reason) == (plain, plain_stats.completion_tokens, "stop")


@pytest.mark.parametrize("trigger", ["token", "pattern"])
def test_a_forced_trigger_makes_the_rest_of_the_reply_follow_the_grammar(engine: Engine, trigger: str) -> None:
    if trigger == "token":  # the trigger token's own text is the grammar's start (a control token shows nothing)
        sampling = replace(GREEDY, grammar=f'root ::= "{TRIGGER_TOKEN}" city{CITY_OBJECT}', grammar_lazy=True,
                           grammar_trigger_tokens=(TRIGGER_TOKEN,),
                           logit_bias=((token_id(engine, TRIGGER_TOKEN, special=True), 100.0),))
    else:  # the grammar reads the reply from where the pattern matched
        sampling = replace(GREEDY, grammar=f"root ::= city{CITY_OBJECT}", grammar_lazy=True,
                           grammar_triggers=(r"[\s\S]*?(\{)[\s\S]*",), logit_bias=((token_id(engine, "{"), 100.0),))

    text, stats = collect(engine.stream_chat(QUESTION, sampling))

    assert set(json.loads(text)) == {"city"}, text
    assert stats.finish_reason == "stop", "the grammar ended the reply once the object was complete"


def test_a_logit_bias_of_minus_100_bans_a_token_and_plus_100_forces_one(engine: Engine) -> None:
    paris = token_id(engine, " Paris")
    plain, _ = collect(engine.stream_chat(QUESTION, GREEDY))
    assert paris in engine._loaded.tokenize(plain, add_bos=False, special=False)  # noqa: SLF001

    banned, _ = collect(engine.stream_chat(QUESTION, replace(GREEDY, logit_bias=((paris, -100.0),))))
    forced, stats = collect(engine.stream_chat(QUESTION, replace(GREEDY, max_tokens=6,
                                                                 logit_bias=((token_id(engine, " banana"), 100.0),))))

    assert banned != plain and " Paris" not in banned
    assert forced == " banana" * 6 and stats.finish_reason == "length"


def test_ignore_eos_runs_to_max_tokens_where_the_plain_reply_stops_early(engine: Engine) -> None:
    _, plain = collect(engine.stream_chat(QUESTION, replace(GREEDY, max_tokens=40)))
    text, stats = collect(engine.stream_chat(QUESTION, replace(GREEDY, max_tokens=40, ignore_eos=True)))

    assert plain.finish_reason == "stop" and plain.completion_tokens < 40
    assert (stats.finish_reason, stats.completion_tokens) == ("length", 40)
    assert text.startswith("The capital of France is Paris.")


def test_ignore_eos_keeps_the_stop_strings(engine: Engine) -> None:
    text, stats = collect(engine.stream_chat(QUESTION, replace(GREEDY, max_tokens=40, ignore_eos=True,
                                                               stop=("Paris",))))

    assert text == "The capital of France is " and stats.finish_reason == "stop"


def test_typical_p_samples_a_reply_the_seed_repeats(engine: Engine) -> None:
    typical = SamplingParams(temperature=0.9, typical_p=0.5, max_tokens=24, seed=11)

    first, stats = collect(engine.stream_chat(QUESTION, typical))
    again, _ = collect(engine.stream_chat(QUESTION, typical))

    assert first.strip() and first == again and stats.finish_reason in ("stop", "length")


@pytest.mark.parametrize(("sampling", "error", "words"), [
    (SamplingParams(logit_bias=((10_000_000, -100.0),)), InvalidSampling, "vocabulary has 49152 tokens"),
    (SamplingParams(logit_bias=((5, float("nan")),)), InvalidSampling, "must be a number"),
    (SamplingParams(grammar='root ::= "{" [a-z]* "}"', grammar_lazy=True, grammar_triggers=('{"name"',)),
     InvalidGrammar, "a literal { must be written"),
    (SamplingParams(grammar='root ::= "x"', grammar_lazy=True, grammar_triggers=("(?i)x",)), InvalidGrammar,
     "not a regular expression llama.cpp accepts"),
    (SamplingParams(grammar='root ::= "x"', grammar_lazy=True, grammar_triggers=("(x",)), InvalidGrammar,
     "not a regular expression llama.cpp accepts"),
    (SamplingParams(grammar='root ::= "{}"', grammar_lazy=True, grammar_trigger_tokens=(TRIGGER_TOKEN,)),
     InvalidGrammar, "cannot start with its trigger token '<jupyter_code>'"),
    (SamplingParams(grammar="root ::= nothing", grammar_lazy=True, grammar_triggers=("x",)), InvalidGrammar,
     "llama.cpp rejected the GBNF text"),
], ids=["bias-outside-vocabulary", "bias-not-a-number", "unescaped-brace", "inline-flag", "unbalanced",
        "grammar-not-starting-with-its-trigger", "lazy-grammar-that-does-not-compile"])
def test_sampling_the_model_cannot_take_is_refused_before_it_runs(
        engine: Engine, sampling: SamplingParams, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        engine.prepare(PromptRequest(sampling, messages=tuple(QUESTION)))

    text, _ = collect(engine.stream_chat(QUESTION, GREEDY))  # the engine (and the process) carry on
    assert "Paris" in text


def test_a_job_may_see_control_tokens_as_text_for_its_reply_parser(smollm_path: Path) -> None:
    loaded = open_model(smollm_path, LoadSettings(n_ctx=256, n_threads=2), parallel=1, free_bytes=0)
    batcher = Batcher(loaded, cache_bytes=0)
    try:
        trigger = loaded.tokenize(TRIGGER_TOKEN, add_bos=False, special=True)[0]
        prompt = loaded.tokenize("Hello", add_bos=True, special=False)
        texts: dict[bool, str] = {}
        for special_text in (False, True):
            out: list = []
            batcher.admit(Job(tokens=prompt, stop=(), dropped=0, cancel=threading.Event(), emit=out.append,
                              finished=lambda: None, special_text=special_text,
                              sampling=SamplingParams(temperature=0.0, max_tokens=2, logit_bias=((trigger, 100.0),))))
            while not batcher.idle:
                batcher.step()
            texts[special_text] = "".join(chunk.text for chunk in out)
    finally:
        batcher.close()
        loaded.close()

    assert texts == {False: "", True: TRIGGER_TOKEN * 2}
