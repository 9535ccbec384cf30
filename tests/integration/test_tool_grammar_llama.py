"""Reply grammars checked by llama.cpp itself: they compile against a real vocabulary (SmolLM2's), and
hand-written replies in each family's syntax pass token by token while wrong ones are stopped."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from webui.prompts.toolcalls.grammar import ToolGrammar, tool_grammar
from webui.prompts.toolcalls.types import ToolChoice, ToolRequest, ToolSpec

WEATHER = ToolSpec(
    "get_weather",
    "",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city"],
        "additionalProperties": False,
    },
)
TIME = ToolSpec("get_time", "", {"type": "object", "properties": {"zone": {"type": "string"}}})
TWO_TOOLS = (WEATHER, TIME)

# One reply per family, as its models write a call (several forms where the family has several).
GOOD = {
    "hermes": ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>\n'
               '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'],
    # Qwen 3.5 / Qwen3-Coder, as their template writes a call: string values raw, one <parameter=...> each.
    "hermes-xml": ['<tool_call>\n<function=get_weather>\n<parameter=city>\nSaint-Denis </ <p\n</parameter>\n'
                   '<parameter=unit>\ncelsius\n</parameter>\n</function>\n</tool_call>\n'
                   '<tool_call>\n<function=get_time>\n</function>\n</tool_call>'],
    "llama3": ['{"name": "get_weather", "parameters": {"city": "Paris"}}',
               '<|python_tag|>{"name": "get_weather", "arguments": {"city": "Paris"}}; '
               '{"name": "get_time", "parameters": {"zone": "UTC"}}'],
    "mistral": ['[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]',
                '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}'],
    "gemma4": ['<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,unit:<|"|>celsius<|"|>}<tool_call|>'],
    "gpt-oss": ['<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>',
                ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>'],
    "deepseek": ['<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}\n'
                 '```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>get_time<｜tool▁sep｜>{}<｜tool▁call▁end｜><｜tool▁calls▁end｜>'],
    "generic": ['{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, '
                '{"name": "get_time", "arguments": {"zone": "UTC"}}]}'],
}
# Calls that break the schema (a required key missing, a value outside the enum, a key not allowed) or
# name a tool not offered: (reply, where the fault starts: llama.cpp must refuse a token there, not before).
BAD = {
    "hermes": ('<tool_call>\n{"name": "get_weather", "arguments": {"unit": "celsius"}}\n</tool_call>', '"unit"'),
    "hermes-xml": ('<tool_call>\n<function=get_weather>\n<parameter=unit>\ncelsius\n</parameter>\n</function>', "unit"),
    "gemma4": ('<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,unit:<|"|>kelvin<|"|>}<tool_call|>', "kelvin"),
    "mistral": ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "country": "FR"}', '"country"'),
    "generic": ('{"tool_calls": [{"name": "send_mail", "arguments": {}}]}', '"send_mail"'),
    "deepseek": ("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{}<｜tool▁call▁end｜>", "}"),
}


@pytest.fixture(scope="module")
def smollm_vocab(smollm_path: Path) -> Iterator[llama_cpp.Llama]:
    llm = llama_cpp.Llama(str(smollm_path), vocab_only=True, verbose=False)
    yield llm
    llm.close()


def _sampler(llm: llama_cpp.Llama, grammar: ToolGrammar) -> llama_cpp.llama_sampler_p:
    vocab = llm._model.vocab
    if grammar.lazy:
        patterns = (ctypes.c_char_p * len(grammar.trigger_patterns))(*(p.encode() for p in grammar.trigger_patterns))
        no_tokens = (llama_cpp.llama_token * 1)()
        return llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            vocab, grammar.gbnf.encode(), b"root", patterns, len(grammar.trigger_patterns), no_tokens, 0
        )
    return llama_cpp.llama_sampler_init_grammar(vocab, grammar.gbnf.encode(), b"root")


def _allowed(sampler: llama_cpp.llama_sampler_p, token: int) -> bool:
    """Whether the grammar lets ``token`` come next: llama.cpp masks refused tokens to -inf."""
    data = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(token, 0.0, 0.0))
    candidates = llama_cpp.llama_token_data_array(data, 1, -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(candidates))
    return data[0].logit != float("-inf")


def _first_refusal(llm: llama_cpp.Llama, grammar: ToolGrammar, reply: str) -> str | None:
    """The reply up to the first token the grammar refuses (the end of text counts); None if all pass."""
    sampler = _sampler(llm, grammar)
    assert sampler, "llama.cpp could not compile the grammar"
    try:
        tokens = llm.tokenize(reply.encode(), add_bos=False, special=True)
        for index, token in enumerate(tokens):
            if not _allowed(sampler, token):
                return llm.detokenize(tokens[: index + 1]).decode(errors="replace")
            llama_cpp.llama_sampler_accept(sampler, token)
        return None if _allowed(sampler, llm.token_eos()) else reply + "<end>"
    finally:
        llama_cpp.llama_sampler_free(sampler)


@pytest.mark.parametrize("family", list(GOOD))
@pytest.mark.parametrize("mode", ["auto", "required", "named"])
def test_each_family_and_choice_compiles_against_a_real_vocabulary(
    smollm_vocab: llama_cpp.Llama, family: str, mode: str
) -> None:
    choice = ToolChoice(mode, "get_weather" if mode == "named" else None)
    grammar = tool_grammar(family, ToolRequest(TWO_TOOLS, choice), generic_json=family == "generic")
    sampler = _sampler(smollm_vocab, grammar)
    assert sampler
    llama_cpp.llama_sampler_free(sampler)


@pytest.mark.parametrize("family", list(GOOD))
@pytest.mark.parametrize("mode", ["auto", "required"])
def test_calls_written_in_the_familys_syntax_pass(smollm_vocab: llama_cpp.Llama, family: str, mode: str) -> None:
    grammar = tool_grammar(family, ToolRequest(TWO_TOOLS, ToolChoice(mode)), generic_json=family == "generic")
    free_text = "Let me check that. " if grammar.lazy and family != "llama3" else ""
    for reply in GOOD[family]:
        assert _first_refusal(smollm_vocab, grammar, free_text + reply) is None


@pytest.mark.parametrize("family", list(BAD))
@pytest.mark.parametrize("mode", ["auto", "required"])
def test_calls_that_break_the_schema_or_name_another_tool_are_stopped(
    smollm_vocab: llama_cpp.Llama, family: str, mode: str
) -> None:
    grammar = tool_grammar(family, ToolRequest(TWO_TOOLS, ToolChoice(mode)), generic_json=family == "generic")
    reply, fault = BAD[family]
    stopped = _first_refusal(smollm_vocab, grammar, reply)
    assert stopped is not None and reply.index(fault) < len(stopped) <= len(reply)


def test_auto_leaves_a_plain_answer_free_until_a_call_starts(smollm_vocab: llama_cpp.Llama) -> None:
    grammar = tool_grammar("hermes", ToolRequest(TWO_TOOLS), generic_json=False)
    assert _first_refusal(smollm_vocab, grammar, "Paris is sunny today {not json}.") is None
    started = _first_refusal(smollm_vocab, grammar, 'Sure. <tool_call>\n{"name": "send_mail"')
    assert started is not None and len(started) > len('Sure. <tool_call>\n{"name": ')


def test_generic_auto_allows_a_json_answer_and_required_does_not(smollm_vocab: llama_cpp.Llama) -> None:
    answer = '{"response": "It is \\"sunny\\" in Paris."}'
    auto = tool_grammar("generic", ToolRequest(TWO_TOOLS), generic_json=True)
    required = tool_grammar("generic", ToolRequest(TWO_TOOLS, ToolChoice("required")), generic_json=True)
    assert _first_refusal(smollm_vocab, auto, answer) is None
    assert _first_refusal(smollm_vocab, required, answer) is not None
    assert _first_refusal(smollm_vocab, auto, "It is sunny.") is not None


def test_named_allows_only_that_tool(smollm_vocab: llama_cpp.Llama) -> None:
    grammar = tool_grammar("hermes", ToolRequest(TWO_TOOLS, ToolChoice("named", "get_time")), generic_json=False)
    assert _first_refusal(smollm_vocab, grammar, '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>') is None
    assert _first_refusal(smollm_vocab, grammar, GOOD["hermes"][0]) is not None


@pytest.mark.parametrize(
    ("family", "prefix", "thinking"),
    [
        ("hermes", "<think>\nThe user wants weather </ maybe.\n</think>\n\n", "optional"),
        ("hermes", "", "optional"),
        ("hermes", "The user wants weather.\n</think>\n\n", "open"),
        ("hermes-xml", "The user wants weather.\n</think>\n\n", "open"),
        ("gemma4", "<|channel>thought\nNeed the weather.<channel|>", "optional"),
        ("gpt-oss", "<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant", "optional"),
        ("deepseek", "<think>\nweather\n</think>\n\n", "optional"),
    ],
)
def test_a_required_call_may_come_after_the_models_thinking(
    smollm_vocab: llama_cpp.Llama, family: str, prefix: str, thinking: str
) -> None:
    grammar = tool_grammar(
        family, ToolRequest(TWO_TOOLS, ToolChoice("required")), generic_json=False, thinking=thinking  # type: ignore[arg-type]
    )
    assert _first_refusal(smollm_vocab, grammar, prefix + GOOD[family][0]) is None


def test_a_qwen35_number_parameter_must_be_json(smollm_vocab: llama_cpp.Llama) -> None:
    counted = ToolSpec("count", "", {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    grammar = tool_grammar("hermes-xml", ToolRequest((counted,), ToolChoice("required")), generic_json=False)
    call = "<tool_call>\n<function=count>\n<parameter=n>\n{}\n</parameter>\n</function>\n</tool_call>"
    assert _first_refusal(smollm_vocab, grammar, call.format("42")) is None
    stopped = _first_refusal(smollm_vocab, grammar, call.format("forty-two"))
    assert stopped is not None and "-two" not in stopped


@pytest.mark.parametrize(
    ("thinking", "before"),
    [("optional", "<think>\nI could write <tool_call>{not a call} here.\n</think>\n\n"),
     ("open", "I could write <tool_call>{not a call} here.\n</think>\n\n")],
)
def test_a_lazy_grammar_does_not_start_inside_thinking(smollm_vocab: llama_cpp.Llama, thinking: str,
                                                       before: str) -> None:
    grammar = tool_grammar("hermes", ToolRequest(TWO_TOOLS), generic_json=False,
                           thinking=thinking)  # type: ignore[arg-type]
    assert grammar.trigger_tokens == ()  # a special token would fire inside thinking too
    assert _first_refusal(smollm_vocab, grammar, before + "It is sunny {not json}.") is None
    assert _first_refusal(smollm_vocab, grammar, before + GOOD["hermes"][0]) is None
    wrong = before + '<tool_call>\n{"name": "send_mail"'
    stopped = _first_refusal(smollm_vocab, grammar, wrong)
    assert stopped is not None and len(stopped) > len(before + '<tool_call>\n{"name": ')


def test_a_reply_that_does_not_think_may_call_anywhere_when_thinking_is_optional(smollm_vocab: llama_cpp.Llama) -> None:
    grammar = tool_grammar("hermes", ToolRequest(TWO_TOOLS), generic_json=False, thinking="optional")
    stopped = _first_refusal(smollm_vocab, grammar, 'Sure. <tool_call>\n{"name": "send_mail"')
    assert stopped is not None and len(stopped) > len('Sure. <tool_call>\n{"name": ')


@pytest.mark.parametrize(("family", "closer"), [("hermes", "</think>"), ("gemma4", "<channel|>")])
def test_thinking_ends_at_its_first_closer_as_the_parser_reads_it(smollm_vocab: llama_cpp.Llama, family: str,
                                                                   closer: str) -> None:
    grammar = tool_grammar(family, ToolRequest(TWO_TOOLS, ToolChoice("required")), generic_json=False, thinking="open")
    thinking = f"Maybe <b>, a </thin or a <{closer[1:4]}; done.{closer}"
    assert _first_refusal(smollm_vocab, grammar, thinking + GOOD[family][0]) is None
    stopped = _first_refusal(smollm_vocab, grammar, f"{thinking} and more thinking.")
    assert stopped is not None and stopped.startswith(thinking) and "more" not in stopped
