"""One admission path: a request's sampling built in one place, checked in one order, one error per failure.

Pure parts with plain values; the engine's prepare step is stood in for by a recorder here, and
driven for real in tests/integration/test_prepare_once.py.
"""

from __future__ import annotations

import re

import pytest

from webui.engine import (
    MIN_REPLY_TOKENS,
    ContextExceeded,
    FittedPrompt,
    InvalidGrammar,
    PromptRequest,
    SamplingParams,
    reply_budget,
)
from webui.services.admission import (
    MAX_MESSAGE_CHARS,
    MessageTooLong,
    SamplingOutOfBounds,
    SamplingRequest,
    admit,
    sampling_from,
)


class RecordingEngine:
    """Stands in for the engine's prepare step: records what reached it and fits nothing."""

    def __init__(self) -> None:
        self.prepared: list[PromptRequest] = []

    def prepare(self, request: PromptRequest) -> FittedPrompt:
        self.prepared.append(request)
        return FittedPrompt(request=request, tokens=[1, 2, 3], prompt_tokens=3, sampling=request.sampling,
                            stop=request.sampling.stop, messages=request.messages)


# --- the reply budget: strict for the API, shrinking for the page -------------------------------

def test_the_api_gets_the_max_tokens_it_asked_for_or_a_sentence_saying_how_many_fit() -> None:
    assert reply_budget(1024, 200, 100, strict=True) == 100
    assert reply_budget(1024, 200, None, strict=True) == 824, "no max_tokens: as many as the context leaves"
    with pytest.raises(ContextExceeded, match="max_tokens is 5000, but this model's context window holds 1024"):
        reply_budget(1024, 10, 5000, strict=True)
    with pytest.raises(ContextExceeded, match="The prompt has 1024 tokens, but this model's context window holds 1024"):
        reply_budget(1024, 1024, None, strict=True)
    with pytest.raises(ContextExceeded, match="max_tokens asks for 900, but the context window holds 1024; "
                                              "ask for at most 824"):
        reply_budget(1024, 200, 900, strict=True)


def test_the_page_reply_shrinks_to_the_room_left_and_is_refused_below_the_least_useful() -> None:
    assert reply_budget(1024, 200, 512, strict=False) == 512
    assert reply_budget(1024, 900, 512, strict=False) == 124, "shrinks to the room left"
    assert reply_budget(1024, 1024 - MIN_REPLY_TOKENS, 512, strict=False) == MIN_REPLY_TOKENS
    assert reply_budget(1024, 1020, 4, strict=False) == 4, "a reply asked to be short needs only that room"
    with pytest.raises(ContextExceeded, match="The message is too long for this model's context window: it needs "
                                              "1000 tokens and the context holds 1024"):
        reply_budget(1024, 1000, 512, strict=False)


# --- sampling from a request, in one place ------------------------------------------------------

def test_what_a_request_leaves_out_takes_the_faces_defaults_and_what_it_sets_wins() -> None:
    openai_defaults = SamplingParams(repeat_penalty=1.0, max_tokens=None)
    left_out = sampling_from(SamplingRequest(), openai_defaults)
    assert left_out == openai_defaults
    asked = sampling_from(SamplingRequest(temperature=0.0, top_k=5, seed=7, max_tokens=30, stop=["", "\nUser:"],
                                          presence_penalty=0.5, logprobs=2), openai_defaults)
    assert (asked.temperature, asked.top_k, asked.seed, asked.max_tokens) == (0.0, 5, 7, 30)
    assert asked.stop == ("\nUser:",), "empty stop strings are dropped"
    assert (asked.presence_penalty, asked.logprobs, asked.repeat_penalty) == (0.5, 2, 1.0)
    assert sampling_from(SamplingRequest(stop="###")).stop == ("###",), "OpenAI's single stop string"


def test_a_response_format_becomes_a_grammar_and_an_unknown_one_is_named() -> None:
    schema = {"type": "object", "properties": {"tree": {"type": "string"}}, "required": ["tree"]}
    json_schema = {"type": "json_schema", "json_schema": {"schema": schema}}
    sampling = sampling_from(SamplingRequest(response_format=json_schema))
    assert sampling.grammar and "tree" in sampling.grammar
    assert sampling_from(SamplingRequest(response_format={"type": "json_object"})).grammar
    assert sampling_from(SamplingRequest(response_format={"type": "text"})).grammar is None
    with pytest.raises(InvalidGrammar, match="Unknown response_format type 'yaml'"):
        sampling_from(SamplingRequest(response_format={"type": "yaml"}))
    with pytest.raises(InvalidGrammar, match="must be a JSON schema object"):
        sampling_from(SamplingRequest(response_format={"type": "json_schema", "json_schema": {"name": "x"}}))


# --- admission: size, sampling bounds, then the engine's one prepare step ------------------------

def test_a_request_that_fits_reaches_the_engine_once_as_it_was_asked() -> None:
    engine = RecordingEngine()
    request = PromptRequest(SamplingParams(max_tokens=8), messages=({"role": "user", "content": "Hi"},), strict=True)
    prompt = admit(engine, request)
    assert engine.prepared == [request]
    assert prompt.prompt_tokens == 3


def test_an_oversized_message_or_text_is_refused_before_the_engine_sees_it() -> None:
    engine = RecordingEngine()
    huge = "x" * (MAX_MESSAGE_CHARS + 1)
    with pytest.raises(MessageTooLong, match="Your message is 100,001 characters long; the limit is 100,000"):
        admit(engine, PromptRequest(SamplingParams(), messages=({"role": "system", "content": huge},
                                                                {"role": "user", "content": "Hi"})))
    with pytest.raises(MessageTooLong, match="Your text is 100,001 characters long"):
        admit(engine, PromptRequest(SamplingParams(), text=huge))
    assert engine.prepared == []
    admit(engine, PromptRequest(SamplingParams(), text="x" * MAX_MESSAGE_CHARS))  # the limit itself is accepted


def test_sampling_out_of_bounds_is_refused_from_either_face_before_the_engine_sees_it() -> None:
    engine = RecordingEngine()
    for sampling, words in ((SamplingParams(stop=("x",) * 17), "at most 16"),
                            (SamplingParams(seed=2**40), "between 0 and 4294967295"),
                            (SamplingParams(top_k=5000), "between 0 (off) and 1000")):
        with pytest.raises(SamplingOutOfBounds, match=re.escape(words)):
            admit(engine, PromptRequest(sampling, messages=({"role": "user", "content": "Hi"},)))
    assert engine.prepared == []


# --- a remote server's request: it renders and fits itself; the API's budget is checked on an estimate ------

def test_a_remote_model_gets_the_messages_as_sent_and_the_api_budget_is_checked_on_an_estimate() -> None:
    from webui.engine.remote import RemoteBackend, fit_for_server, remote_model_info, sampling_body

    server = remote_model_info(RemoteBackend("http://gpu1:8080"), {"id": "m.gguf", "max_model_len": 1000})
    chat = ({"role": "user", "content": "x" * 300},)  # about 100 tokens, estimated
    page = fit_for_server(server, PromptRequest(SamplingParams(max_tokens=64), messages=chat))
    assert page.messages == chat and page.tokens == [] and page.prompt_tokens == 104
    api = fit_for_server(server, PromptRequest(SamplingParams(max_tokens=None), messages=chat, strict=True))
    assert api.sampling.max_tokens == 1000 - 104, "no max_tokens: what the listed window leaves"
    assert "max_tokens" not in sampling_body(SamplingParams(max_tokens=None)), "the server decides"
    with pytest.raises(ContextExceeded, match="ask for at most 896"):
        fit_for_server(server, PromptRequest(SamplingParams(max_tokens=900), messages=chat, strict=True))
