"""Reply grammars per family and tool_choice: what is lazy, what triggers it, and which schemas are refused."""

from __future__ import annotations

import re

import pytest

from webui.prompts.toolcalls.grammar import tool_grammar
from webui.prompts.toolcalls.types import ToolCallError, ToolChoice, ToolRequest, ToolSpec

WEATHER = ToolSpec(
    "get_weather", "", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
)
TIME = ToolSpec("get_time", "", {"type": "object", "properties": {"zone": {"type": "string"}}})
NATIVE = ["hermes", "llama3", "mistral", "gemma4", "gpt-oss", "deepseek"]

# Where a call starts in each family, written as the model writes it after some free text.
CALL_STARTS = {
    "hermes": ("Checking. ", '<tool_call>\n{"name": "get_weather"'),
    "mistral": ("Checking. ", "[TOOL_CALLS]get_weather[ARGS]"),
    "gemma4": ("Checking. ", "<|tool_call>call:get_weather{"),
    "gpt-oss": ("<|channel|>commentary", " to=functions.get_weather"),
    "deepseek": ("Checking. ", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>"),
    "llama3": ("", '{"name": "get_weather"'),
}


@pytest.mark.parametrize("family", NATIVE)
def test_auto_on_a_native_family_is_lazy_and_starts_exactly_at_the_call(family: str) -> None:
    grammar = tool_grammar(family, ToolRequest((WEATHER, TIME)), generic_json=False)
    assert grammar is not None and grammar.lazy
    before, call = CALL_STARTS[family]
    # llama.cpp's convention: a pattern matches all the text so far; its group is where the grammar starts.
    matched = [m for p in grammar.trigger_patterns if (m := re.fullmatch(p, before + call + " ..."))]
    assert matched and matched[0].start(1) == len(before)
    assert not any(re.fullmatch(p, "Just an answer, no call.") for p in grammar.trigger_patterns)


def test_single_token_openers_are_offered_as_trigger_tokens() -> None:
    assert tool_grammar("hermes", ToolRequest((WEATHER,)), generic_json=False).trigger_tokens == ("<tool_call>",)
    assert tool_grammar("llama3", ToolRequest((WEATHER,)), generic_json=False).trigger_tokens == ("<|python_tag|>",)
    # harmony's " to=functions." is several tokens: a pattern only.
    assert tool_grammar("gpt-oss", ToolRequest((WEATHER,)), generic_json=False).trigger_tokens == ()


@pytest.mark.parametrize("family", [*NATIVE, "generic"])
@pytest.mark.parametrize("choice", [ToolChoice("required"), ToolChoice("named", "get_time")])
def test_required_and_named_constrain_the_whole_reply(family: str, choice: ToolChoice) -> None:
    grammar = tool_grammar(family, ToolRequest((WEATHER, TIME), choice), generic_json=family == "generic")
    assert grammar is not None and not grammar.lazy and grammar.trigger_patterns == ()
    assert ("get_weather" in grammar.gbnf) is (choice.mode == "required")


def test_generic_auto_is_a_whole_reply_choice_between_calls_and_an_answer() -> None:
    grammar = tool_grammar("generic", ToolRequest((WEATHER,)), generic_json=True)
    assert grammar is not None and not grammar.lazy
    assert re.search(r"^tc-reply ::= tc-tool-calls \| tc-response$", grammar.gbnf, re.M)


@pytest.mark.parametrize("family", [*NATIVE, "generic"])
def test_tool_choice_none_has_no_grammar(family: str) -> None:
    assert tool_grammar(family, ToolRequest((WEATHER,), ToolChoice("none")), generic_json=family == "generic") is None


@pytest.mark.parametrize(
    "parameters",
    [{"type": "array", "items": {"type": "string"}}, {"type": "object", "properties": {"x": {"$ref": "#/missing"}}}],
)
def test_a_schema_that_cannot_constrain_a_reply_is_refused_naming_the_tool(parameters: dict) -> None:
    with pytest.raises(ToolCallError, match="tool 'broken'"):
        tool_grammar("hermes", ToolRequest((WEATHER, ToolSpec("broken", "", parameters)), ToolChoice("required")),
                     generic_json=False)


def test_rules_of_several_tools_do_not_collide() -> None:
    grammar = tool_grammar("hermes", ToolRequest((WEATHER, TIME), ToolChoice("required")), generic_json=False)
    names = [line.split(" ::= ")[0] for line in grammar.gbnf.splitlines() if " ::= " in line]
    assert len(names) == len(set(names))
    assert "t0-root" in names and "t1-root" in names
