"""Tools on the wire: OpenAI/Ollama shapes to the services' types and back, and the 400s for bad input."""

from __future__ import annotations

import json

import pytest

from webui.api.common import ApiProblem
from webui.api.tool_wire import CallLedger, assistant_calls, call_as_ollama, call_as_openai, tool_request
from webui.services.types import ToolCall

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_openai_tools_and_choices_become_a_tool_request():
    request = tool_request([WEATHER], {"type": "function", "function": {"name": "get_weather"}}, parallel=False)
    assert request.names() == ("get_weather",)
    assert (request.choice.mode, request.choice.name, request.parallel) == ("named", "get_weather", False)
    assert tool_request([WEATHER], "required").choice.mode == "required"
    assert tool_request([WEATHER]).choice.mode == "auto"
    assert tool_request(None) is None and tool_request([], "auto") is None


def test_a_function_without_parameters_takes_no_arguments():
    request = tool_request([{"type": "function", "function": {"name": "now"}}])
    assert request.tools[0].parameters == {"type": "object", "properties": {}}


@pytest.mark.parametrize(("tools", "choice", "words"), [
    ([{"type": "code_interpreter"}], None, "only 'function' tools"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}], None, "of type object"),
    ([{"type": "function", "function": {"name": "f", "parameters": "nope"}}], None, "JSON schema object"),
    ([WEATHER], {"type": "function", "function": {"name": "missing"}}, "not among the tools"),
    ([WEATHER], "sometimes", "must be 'none', 'auto', 'required'"),
    ([{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)], None, "at most 128"),
    ([WEATHER, WEATHER], None, "unique"),
    (None, "required", "needs tools"),
])
def test_bad_tools_are_refused_with_a_sentence(tools, choice, words):
    with pytest.raises(ApiProblem) as refused:
        tool_request(tools, choice)
    assert refused.value.status == 400 and words in refused.value.message


def test_assistant_calls_parse_openai_json_strings_and_keep_ollama_objects():
    openai_calls = assistant_calls([{"id": "call_9", "type": "function",
                                     "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}], "m")
    ollama_calls = assistant_calls([{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}], "m",
                                   ids=["call_x"])
    assert openai_calls[0]["function"]["arguments"] == {"city": "Paris"} and openai_calls[0]["id"] == "call_9"
    assert ollama_calls[0]["function"]["arguments"] == {"city": "Paris"} and ollama_calls[0]["id"] == "call_x"
    with pytest.raises(ApiProblem, match="not valid JSON"):
        assistant_calls([{"id": "c", "function": {"name": "f", "arguments": "{city"}}], "messages[1].tool_calls")


def test_tool_results_are_matched_to_calls_by_id_or_by_name():
    ledger = CallLedger()
    ledger.add(assistant_calls([{"id": "a", "function": {"name": "f", "arguments": "{}"}},
                                {"id": "b", "function": {"name": "g", "arguments": "{}"}}], "m"))
    assert ledger.answer(None, "g", "messages[2]") == ("b", "g")
    assert ledger.answer("a", None, "messages[3]") == ("a", "f")
    with pytest.raises(ApiProblem, match="answers no tool call"):
        ledger.answer("zzz", None, "messages[4]")
    with pytest.raises(ApiProblem, match="no earlier message"):
        ledger.answer(None, "f", "messages[4]")


def test_calls_go_back_out_in_each_face_shape():
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Paris"})
    assert json.loads(call_as_openai(call)["function"]["arguments"]) == {"city": "Paris"}
    assert call_as_openai(call, 0)["index"] == 0
    assert call_as_ollama(call) == {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
