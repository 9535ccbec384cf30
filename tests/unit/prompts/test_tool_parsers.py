"""Streaming reply parsers: each family's tool calls and thinking split from the answer the user reads.

Replies are what each family's own template (tests/fixtures/chat_templates) writes for an assistant
turn, so the parsers read exactly what the models were trained to write. Every reply is fed whole
and one character at a time, and both must read the same.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import llama_cpp.llama_chat_format as lcf
import pytest

from webui.prompts.toolcalls import (
    ReplyEvent,
    ReplyFormat,
    ToolCall,
    ToolCallError,
    ToolRequest,
    ToolSpec,
    parser_for,
    reply_family,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "fixtures" / "chat_templates"
WEATHER = ToolSpec("get_weather", "Weather for a city", {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]})
OFFERED = ("get_weather",)
PARIS = {"city": "Paris", "days": 3}
LYON = {"city": "Lyon"}
CALL_ID = re.compile(r"call_[0-9a-f]{24}")
# Nothing of this may ever reach what the user reads.
MARKUP = ("<tool_call>", "</tool_call>", "<function=", "<think>", "</think>", "<|python_tag|>", "<|eom_id|>",
          "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "<|tool_call>", "<tool_call|>", '<|"|>', "<|tool_response>",
          "<|channel>", "<channel|>", "tool▁call", "tool▁sep", "<|channel|>", "<|message|>", "<|start|>", "<|end|>",
          "<|call|>", "<|constrain|>", '"tool_calls"', '"response"')


def tool_call(name: str, arguments: dict[str, Any], call_id: str = "abcdefghi") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def assistant_turn(template_file: str, message: dict[str, Any], *, header: str, end: str, **variables: Any) -> str:
    """What ``template_file`` renders for ``message`` answering "Weather?": the reply the model learned to write."""
    template = (TEMPLATES / template_file).read_text()
    question = [{"role": "user", "content": "Weather?"}]

    def render(messages: list[dict[str, Any]]) -> str:
        formatter = lcf.Jinja2ChatFormatter(template, eos_token="</s>", bos_token="<s>", add_generation_prompt=False)
        tools = [WEATHER.as_template_tool()]
        return formatter(messages=messages, tools=tools, **variables).prompt  # type: ignore[arg-type]

    before, after = render(question), render([*question, message])
    assert after.startswith(before + header) and after.endswith(end), after
    return after[len(before) + len(header):len(after) - len(end)]


def fmt_for(template_file: str, *, tools: tuple[str, ...] = OFFERED, reasoning: bool = False,
            thinking_open: bool = False) -> ReplyFormat:
    family = reply_family((TEMPLATES / template_file).read_text())
    return ReplyFormat(family=family, tool_names=tools, reasoning=reasoning, thinking_open=thinking_open)


@dataclass
class Parsed:
    content: str
    reasoning: str
    calls: list[ToolCall]

    def named_arguments(self) -> list[tuple[str, dict[str, Any]]]:
        return [(call.name, dict(call.arguments)) for call in self.calls]


def feed_all(fmt: ReplyFormat, pieces: list[str]) -> list[ReplyEvent]:
    parser = parser_for(fmt)
    events = [event for piece in pieces for event in parser.feed(piece)]
    return events + parser.finish()


def joined(events: list[ReplyEvent]) -> Parsed:
    return Parsed("".join(e.content for e in events), "".join(e.reasoning for e in events),
                  [e.tool_call for e in events if e.tool_call is not None])


def parse(fmt: ReplyFormat, reply: str) -> Parsed:
    """``reply`` fed whole and one character at a time: both must read the same, with no markup in the text."""
    whole, by_char = joined(feed_all(fmt, [reply])), joined(feed_all(fmt, list(reply)))
    assert (by_char.content, by_char.reasoning) == (whole.content, whole.reasoning)
    assert by_char.named_arguments() == whole.named_arguments()
    assert [c.id for c in by_char.calls if not c.id.startswith("call_")] == [
        c.id for c in whole.calls if not c.id.startswith("call_")]
    if fmt.tool_names:
        for markup in MARKUP:
            assert markup not in whole.content and markup not in whole.reasoning, markup
    return whole


def parse_error(fmt: ReplyFormat, reply: str) -> str:
    """The message of the ToolCallError ``reply`` gives, fed whole and one character at a time."""
    for pieces in ([reply], list(reply)):
        with pytest.raises(ToolCallError) as failure:
            feed_all(fmt, pieces)
    return str(failure.value)


# ---- hermes: Qwen 2.5 / 3 / 3.5, Hermes 3 ----

QWEN25, QWEN3, QWEN35, HERMES3 = ("Qwen-Qwen2.5-7B-Instruct.jinja", "Qwen-Qwen3-0.6B.jinja", "Qwen3.5-4B.jinja",
                                  "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja")
CHATML = {"header": "<|im_start|>assistant\n", "end": "<|im_end|>\n"}


def test_hermes_plain_answer_is_content() -> None:
    reply = assistant_turn(QWEN25, {"role": "assistant", "content": "It is 18 C."}, **CHATML)
    assert parse(fmt_for(QWEN25), reply) == Parsed("It is 18 C.", "", [])


def test_hermes_one_call() -> None:
    message = {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", PARIS)]}
    reply = assistant_turn(HERMES3, message, **CHATML)
    parsed = parse(fmt_for(HERMES3), reply)
    assert (parsed.content, parsed.named_arguments()) == ("", [("get_weather", PARIS)])
    assert CALL_ID.fullmatch(parsed.calls[0].id)


def test_hermes_text_then_parallel_calls() -> None:
    message = {"role": "assistant", "content": "Let me check.",
               "tool_calls": [tool_call("get_weather", PARIS), tool_call("get_weather", LYON, "bcdefghij")]}
    parsed = parse(fmt_for(QWEN25), assistant_turn(QWEN25, message, **CHATML))
    assert parsed.content == "Let me check."
    assert parsed.named_arguments() == [("get_weather", PARIS), ("get_weather", LYON)]
    assert len({call.id for call in parsed.calls}) == 2


def test_hermes_thinking_then_text_and_call() -> None:
    message = {"role": "assistant", "content": "Let me check.", "reasoning_content": "The user wants the weather.",
               "tool_calls": [tool_call("get_weather", PARIS)]}
    reply = assistant_turn(QWEN3, message, **CHATML)
    assert reply.startswith("<think>\n")
    parsed = parse(fmt_for(QWEN3, reasoning=True), reply)
    assert (parsed.reasoning, parsed.content) == ("The user wants the weather.", "Let me check.")
    assert parsed.named_arguments() == [("get_weather", PARIS)]


def test_qwen35_xml_calls_after_thinking_the_prompt_opened() -> None:
    message = {"role": "assistant", "content": "Let me check.", "reasoning_content": "Two cities.",
               "tool_calls": [tool_call("get_weather", PARIS), tool_call("get_weather", LYON, "bcdefghij")]}
    turn = assistant_turn(QWEN35, message, **CHATML)
    reply = turn.removeprefix("<think>\n")  # the generation prompt ends with "<think>\n": the model starts inside
    assert "<function=get_weather>" in reply and "<think>" not in reply
    parsed = parse(fmt_for(QWEN35, reasoning=True, thinking_open=True), reply)
    assert (parsed.reasoning, parsed.content) == ("Two cities.", "Let me check.")
    assert parsed.named_arguments() == [("get_weather", PARIS), ("get_weather", LYON)]


def test_qwen35_parameters_take_the_types_of_their_schema() -> None:
    arguments = {"city": "1984", "days": 3}  # a city named by digits: the template writes it bare, like the number
    message = {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", arguments)]}
    reply = assistant_turn(QWEN35, message, **CHATML).removeprefix("<think>\n\n</think>\n\n")
    assert "<parameter=city>\n1984\n</parameter>" in reply
    typed = replace(fmt_for(QWEN35), tool_schemas=ToolRequest((WEATHER,)).schemas_as_text())
    assert parse(typed, reply).named_arguments() == [("get_weather", {"city": "1984", "days": 3})]
    # Without the schema, what reads as JSON is JSON.
    assert parse(fmt_for(QWEN35), reply).named_arguments() == [("get_weather", {"city": 1984, "days": 3})]


@pytest.mark.parametrize(
    ("schema", "written", "value"),
    [({"type": "boolean"}, "true", True), ({"type": "boolean"}, "False", False), ({"type": "number"}, "2.5", 2.5),
     ({"type": "array", "items": {"type": "string"}}, '["a", "b"]', ["a", "b"]), ({"enum": ["1", "2"]}, "2", "2"),
     ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "7", 7), ({"type": ["string", "null"]}, "null", None),
     ({"type": "integer"}, "seven", "seven")],
)
def test_qwen35_parameter_values_by_schema(schema: dict[str, Any], written: str, value: Any) -> None:
    tool = ToolSpec("f", "", {"type": "object", "properties": {"x": schema}})
    fmt = ReplyFormat("hermes-xml", ("f",), tool_schemas=ToolRequest((tool,)).schemas_as_text())
    reply = f"<tool_call>\n<function=f>\n<parameter=x>\n{written}\n</parameter>\n</function>\n</tool_call>"
    assert parse(fmt, reply).named_arguments() == [("f", {"x": value})]


def test_hermes_malformed_calls_say_what_is_wrong() -> None:
    fmt = fmt_for(QWEN25)
    broken_json = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"</tool_call>'
    assert "not valid JSON" in parse_error(fmt, broken_json)
    not_object = '<tool_call>\n{"name": "get_weather", "arguments": ["Paris"]}\n</tool_call>'
    assert "arguments are not a JSON object" in parse_error(fmt, not_object)
    nameless = '<tool_call>\n{"arguments": {"city": "Paris"}}\n</tool_call>'
    assert "names no function" in parse_error(fmt, nameless)
    cut_off = '<tool_call>\n{"name": "get_weather", "argum'
    assert "ended before the call was complete" in parse_error(fmt, cut_off)


def test_hermes_call_without_closing_marker_at_the_end_still_counts() -> None:
    parsed = parse(fmt_for(QWEN25), '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lyon"}}\n')
    assert parsed.named_arguments() == [("get_weather", LYON)]


def test_call_to_a_tool_not_offered_is_returned_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    reply = '<tool_call>\n{"name": "send_email", "arguments": {"to": "bob"}}\n</tool_call>'
    with caplog.at_level(logging.WARNING):
        parsed = parse(fmt_for(QWEN25), reply)
    assert parsed.named_arguments() == [("send_email", {"to": "bob"})]
    assert "send_email" in caplog.text and "does not offer" in caplog.text


def test_without_tools_markup_looking_text_is_content() -> None:
    message = {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", PARIS)]}
    reply = assistant_turn(QWEN25, message, **CHATML)
    assert parse(fmt_for(QWEN25, tools=()), reply) == Parsed(reply, "", [])


# ---- llama3: Llama 3.1 / 3.2 ----

LLAMA31, LLAMA32 = "meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.2-3B-Instruct.jinja"
LLAMA = {"header": "<|start_header_id|>assistant<|end_header_id|>\n\n", "end": "<|eot_id|>"}


def llama_call_turn(arguments: dict[str, Any] = PARIS) -> str:
    message = {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", arguments)]}
    return assistant_turn(LLAMA32, message, **LLAMA)


def test_llama3_plain_answer_is_content() -> None:
    reply = assistant_turn(LLAMA31, {"role": "assistant", "content": "It is 18 C."}, **LLAMA)
    assert parse(fmt_for(LLAMA31), reply) == Parsed("It is 18 C.", "", [])


def test_llama3_one_call() -> None:
    reply = llama_call_turn()
    assert reply.startswith('{"name": "get_weather", "parameters": ')
    parsed = parse(fmt_for(LLAMA32), reply)
    assert (parsed.content, parsed.named_arguments()) == ("", [("get_weather", PARIS)])


@pytest.mark.parametrize("separator", ["; ", "\n"])
def test_llama3_parallel_calls(separator: str) -> None:
    # The templates render one call per message; models write several separated by ";" or lines.
    reply = llama_call_turn() + separator + llama_call_turn(LYON)
    parsed = parse(fmt_for(LLAMA32), reply)
    assert (parsed.content, parsed.named_arguments()) == ("", [("get_weather", PARIS), ("get_weather", LYON)])


def test_llama3_text_then_call() -> None:
    parsed = parse(fmt_for(LLAMA32), "Let me look that up.\n" + llama_call_turn())
    assert (parsed.content, parsed.named_arguments()) == ("Let me look that up.", [("get_weather", PARIS)])


def test_llama31_builtin_tool_through_the_python_tag() -> None:
    search = tool_call("brave_search", {"query": "Paris weather"})
    message = {"role": "assistant", "content": "", "tool_calls": [search]}
    reply = assistant_turn(LLAMA31, message, header=LLAMA["header"], end="", builtin_tools=["brave_search"])
    assert reply == '<|python_tag|>brave_search.call(query="Paris weather")<|eom_id|>'
    parsed = parse(fmt_for(LLAMA31, tools=("brave_search",)), reply)
    assert (parsed.content, parsed.named_arguments()) == ("", [("brave_search", {"query": "Paris weather"})])


def test_llama3_json_answer_that_is_no_call_is_content() -> None:
    reply = '{"colour": "blue"}\nThat is the JSON you asked for.'
    assert parse(fmt_for(LLAMA32), reply) == Parsed(reply, "", [])


def test_llama3_malformed_calls_say_what_is_wrong() -> None:
    fmt = fmt_for(LLAMA31)
    assert "not valid JSON" in parse_error(fmt, '{"name": "get_weather", "parameters": {"city": "Paris"}')
    assert "not a function call" in parse_error(fmt, "<|python_tag|>brave_search.call(query=")
    assert "nothing follows" in parse_error(fmt, "<|python_tag|>")


# ---- mistral: Nemo, Small 3.2 ----

NEMO, SMALL32 = "mistralai-Mistral-Nemo-Instruct-2407.jinja", "Mistral-Small-3.2-24B-Instruct-2506.jinja"
PARALLEL = {"role": "assistant", "content": "",
            "tool_calls": [tool_call("get_weather", PARIS), tool_call("get_weather", LYON, "bcdefghij")]}


def test_mistral_plain_answer_is_content() -> None:
    reply = assistant_turn(NEMO, {"role": "assistant", "content": "It is 18 C."}, header="", end="</s>")
    assert parse(fmt_for(NEMO), reply) == Parsed("It is 18 C.", "", [])


@pytest.mark.parametrize("template", [NEMO, SMALL32])
def test_mistral_parallel_calls_keep_the_ids_the_model_wrote(template: str) -> None:
    reply = assistant_turn(template, PARALLEL, header="", end="</s>")
    parsed = parse(fmt_for(template), reply)
    assert parsed.named_arguments() == [("get_weather", PARIS), ("get_weather", LYON)]
    assert [call.id for call in parsed.calls] == ["abcdefghi", "bcdefghij"]


def test_mistral_small_call_without_id_and_text_before_it() -> None:
    reply = 'Let me check. [TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 3}'
    parsed = parse(fmt_for(SMALL32), reply)
    assert (parsed.content, parsed.named_arguments()) == ("Let me check.", [("get_weather", PARIS)])
    assert CALL_ID.fullmatch(parsed.calls[0].id)


def test_mistral_malformed_calls_say_what_is_wrong() -> None:
    assert "not valid JSON" in parse_error(fmt_for(SMALL32), '[TOOL_CALLS]get_weather[ARGS]{"city": Paris}')
    assert "no [ARGS]" in parse_error(fmt_for(SMALL32), "[TOOL_CALLS]get_weather")
    nemo_bad_arguments = '[TOOL_CALLS][{"name": "get_weather", "arguments": "{city"}]'
    assert "arguments are not valid JSON" in parse_error(fmt_for(NEMO), nemo_bad_arguments)


# ---- gemma4 ----

GEMMA4 = "google-gemma-4-31B-it.jinja"
GEMMA_MODEL = {"header": "<|turn>model\n", "enable_thinking": True}


def test_gemma4_plain_answer_is_content() -> None:
    reply = assistant_turn(GEMMA4, {"role": "assistant", "content": "It is 18 C."}, end="<turn|>\n", **GEMMA_MODEL)
    assert parse(fmt_for(GEMMA4, reasoning=True), reply) == Parsed("It is 18 C.", "", [])


def test_gemma4_thinking_then_parallel_calls_then_text() -> None:
    message = {**PARALLEL, "content": "Let me check.", "reasoning_content": "Two cities."}
    reply = assistant_turn(GEMMA4, message, end="<|tool_response>", **GEMMA_MODEL)
    assert reply.startswith("<|channel>thought\nTwo cities.\n<channel|><|tool_call>call:get_weather{city:<|\"|>Paris")
    parsed = parse(fmt_for(GEMMA4, reasoning=True), reply)
    assert (parsed.reasoning, parsed.content) == ("Two cities.", "Let me check.")
    assert parsed.named_arguments() == [("get_weather", PARIS), ("get_weather", LYON)]


def test_gemma4_arguments_of_every_kind_become_json() -> None:
    arguments = {"city": "Paris, \"centre\"", "days": [1, 2], "note": None,
                 "options": {"hourly": True, "units": "metric"}, "scale": -2.5}
    message = {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", arguments)]}
    reply = assistant_turn(GEMMA4, message, end="<|tool_response>", **GEMMA_MODEL)
    assert parse(fmt_for(GEMMA4, reasoning=True), reply).named_arguments() == [("get_weather", arguments)]


def test_gemma4_malformed_call_says_what_is_wrong() -> None:
    fmt = fmt_for(GEMMA4, reasoning=True)
    assert "cannot be read as an object" in parse_error(fmt, "<|tool_call>call:get_weather{city:Paris}<tool_call|>")
    assert "call:name{...}" in parse_error(fmt, "<|tool_call>get_weather(city='Paris')<tool_call|>")


# ---- deepseek: R1, V3.1 ----

R1, V31 = "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "deepseek-ai-DeepSeek-V3.1.jinja"
DEEPSEEK = {"header": "<｜Assistant｜>", "end": "<｜end▁of▁sentence｜>"}
# R1's template renders an assistant turn with calls and then its (empty) content as a second turn.
R1_CALLS = {"header": "<｜Assistant｜>", "end": "<｜end▁of▁sentence｜><｜Assistant｜><｜end▁of▁sentence｜>"}


def test_deepseek_plain_answer_after_thinking_the_prompt_opened() -> None:
    answer = assistant_turn(R1, {"role": "assistant", "content": "It is 18 C."}, **DEEPSEEK)
    reply = "Just answer.\n</think>\n\n" + answer  # the prompt ends with "<think>\n"
    parsed = parse(fmt_for(R1, reasoning=True, thinking_open=True), reply)
    assert parsed == Parsed("It is 18 C.", "Just answer.", [])


def test_deepseek_r1_thinking_then_parallel_calls() -> None:
    calls = assistant_turn(R1, PARALLEL, **R1_CALLS)
    assert "function<｜tool▁sep｜>get_weather\n```json\n" in calls
    parsed = parse(fmt_for(R1, reasoning=True, thinking_open=True), "Two cities.\n</think>\n\n" + calls)
    assert (parsed.reasoning, parsed.content) == ("Two cities.", "")
    assert parsed.named_arguments() == [("get_weather", PARIS), ("get_weather", LYON)]


def test_deepseek_v31_text_then_parallel_calls() -> None:
    reply = assistant_turn(V31, {**PARALLEL, "content": "Let me check."}, **DEEPSEEK)
    assert reply.startswith("<think></think>Let me check.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>")
    parsed = parse(fmt_for(V31, reasoning=True), reply)
    assert (parsed.reasoning, parsed.content) == ("", "Let me check.")
    assert parsed.named_arguments() == [("get_weather", PARIS), ("get_weather", LYON)]


def test_deepseek_malformed_calls_say_what_is_wrong() -> None:
    fmt = fmt_for(V31, reasoning=True)
    begin = "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>"
    end = "<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
    assert "no separator" in parse_error(fmt, begin + 'get_weather{"city": "Paris"}' + end)
    assert "not valid JSON" in parse_error(fmt, begin + "get_weather<｜tool▁sep｜>{city: Paris}" + end)


# ---- gpt-oss: harmony ----

GPT_OSS = "openai-gpt-oss-120b.jinja"
HARMONY = {"header": "<|start|>assistant"}


def test_harmony_analysis_then_final_answer() -> None:
    message = {"role": "assistant", "content": "It is 18 C.", "thinking": "Answer now."}
    reply = assistant_turn(GPT_OSS, message, end="<|return|>", **HARMONY)
    assert parse(fmt_for(GPT_OSS, reasoning=True), reply) == Parsed("It is 18 C.", "Answer now.", [])


def test_harmony_thinking_then_call() -> None:
    message = {"role": "assistant", "content": "", "thinking": "User wants weather.",
               "tool_calls": [tool_call("get_weather", PARIS)]}
    reply = assistant_turn(GPT_OSS, message, end="<|call|>", **HARMONY)
    assert " to=functions.get_weather<|channel|>commentary json<|message|>" in reply
    parsed = parse(fmt_for(GPT_OSS, reasoning=True), reply)
    assert (parsed.reasoning, parsed.content) == ("User wants weather.", "")
    assert parsed.named_arguments() == [("get_weather", PARIS)]


def test_harmony_preamble_then_parallel_calls_with_the_recipient_after_the_channel() -> None:
    reply = ('<|channel|>commentary<|message|>Let me check.<|end|>'
             '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>'
             '{"city": "Paris", "days": 3}<|call|>'
             '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>'
             '{"city": "Lyon"}<|call|>')
    parsed = parse(fmt_for(GPT_OSS, reasoning=True), reply)
    assert parsed.content == "Let me check."
    assert parsed.named_arguments() == [("get_weather", PARIS), ("get_weather", LYON)]


def test_harmony_malformed_call_says_what_is_wrong() -> None:
    reply = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": Paris}<|call|>'
    assert "not valid JSON" in parse_error(fmt_for(GPT_OSS, reasoning=True), reply)


# ---- generic: the fallback's one JSON object (SmolLM2, Gemma 3) ----

GENERIC = ReplyFormat(family="generic", tool_names=OFFERED, generic_json=True)


def test_generic_response_streams_as_content_with_escapes_split_anywhere() -> None:
    reply = '{"response": "Caf\\u00e9 \\"ouvert\\" \\ud83d\\ude00\\nA\\\\B"}'
    assert parse(GENERIC, reply) == Parsed('Café "ouvert" 😀\nA\\B', "", [])


def test_generic_response_is_shown_before_the_reply_ends() -> None:
    parser = parser_for(GENERIC)
    assert parser.feed('{"response": "It is') == [ReplyEvent(content="It is")]
    assert parser.feed(' 18 C."}') == [ReplyEvent(content=" 18 C.")]
    assert parser.finish() == []


def test_generic_parallel_calls() -> None:
    reply = ('{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}, '
             '{"name": "get_weather", "arguments": {"city": "Lyon"}}]}')
    parsed = parse(GENERIC, reply)
    assert (parsed.content, parsed.named_arguments()) == ("", [("get_weather", PARIS), ("get_weather", LYON)])


def test_generic_thinking_then_call_in_a_code_fence() -> None:
    reply = ('<think>\nParis, then.\n</think>\n'
             '```json\n{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Lyon"}}]}\n```')
    parsed = parse(ReplyFormat("generic", OFFERED, reasoning=True, generic_json=True), reply)
    assert (parsed.reasoning, parsed.content, parsed.named_arguments()) == ("Paris, then.", "", [("get_weather", LYON)])


def test_generic_reply_that_is_no_json_object_is_shown_as_text() -> None:
    reply = "It is 18 C in Paris."
    assert parse(GENERIC, reply) == Parsed(reply, "", [])


def test_generic_malformed_calls_say_what_is_wrong() -> None:
    assert "not valid JSON" in parse_error(GENERIC, '{"tool_calls": [{"name": "get_weather", "arguments": "{city"}]}')
    assert "incomplete or invalid" in parse_error(GENERIC, '{"tool_calls": [{"name": "get_weather", "argu')


# ---- reasoning and holding back, for every family ----

def test_thinking_streams_before_it_closes() -> None:
    parser = parser_for(ReplyFormat("hermes", reasoning=True))
    assert parser.feed("<think>\nStep one") == [ReplyEvent(reasoning="Step one")]
    assert parser.feed(", step two.\n</th") == [ReplyEvent(reasoning=", step two.")]
    assert parser.feed("ink>\n\nDone.") == [ReplyEvent(content="Done.")]
    assert parser.finish() == []


def test_only_a_closing_marker_when_the_prompt_opened_thinking() -> None:
    parsed = parse(ReplyFormat("hermes", reasoning=True, thinking_open=True), "Hmm, easy.</think>\n\n  Four.")
    assert parsed == Parsed("Four.", "Hmm, easy.", [])


def test_without_reasoning_thinking_markers_are_content() -> None:
    reply = "Use <think> tags, like <think>this</think>."
    assert parse(ReplyFormat("hermes"), reply) == Parsed(reply, "", [])


def test_a_marker_cut_anywhere_is_held_until_it_is_known() -> None:
    parser = parser_for(ReplyFormat("hermes", OFFERED))
    assert parser.feed("Checking <tool_") == [ReplyEvent(content="Checking")]
    assert parser.feed("cat> done") == [ReplyEvent(content=" <tool_cat> done")]


def test_text_before_a_malformed_call_is_kept_and_the_error_follows() -> None:
    parser = parser_for(ReplyFormat("hermes", OFFERED))
    assert parser.feed("Let me check.\n<tool_call>\n{bad}</tool_call>") == [ReplyEvent(content="Let me check.")]
    with pytest.raises(ToolCallError, match="not valid JSON"):
        parser.finish()


# ---- every family: no tools offered, and one call ----

ONE_CALL = {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", PARIS)]}
CALL_TURNS = [  # (template, how its assistant turn is cut out, variables)
    (QWEN25, CHATML, {}),
    (LLAMA32, LLAMA, {}),
    (NEMO, {"header": "", "end": "</s>"}, {}),
    (SMALL32, {"header": "", "end": "</s>"}, {}),
    (GEMMA4, {"header": "<|turn>model\n", "end": "<|tool_response>"}, {"enable_thinking": True}),
    (R1, R1_CALLS, {}),
    (V31, DEEPSEEK, {}),
]


@pytest.mark.parametrize(("template", "cut", "variables"), CALL_TURNS, ids=[t[0] for t in CALL_TURNS])
def test_each_family_reads_its_own_call(template: str, cut: dict[str, str], variables: dict[str, Any]) -> None:
    reply = assistant_turn(template, ONE_CALL, **cut, **variables)
    parsed = parse(fmt_for(template, reasoning=template in (GEMMA4, V31)), reply)
    assert (parsed.content, parsed.reasoning, parsed.named_arguments()) == ("", "", [("get_weather", PARIS)])


@pytest.mark.parametrize(("template", "cut", "variables"), CALL_TURNS, ids=[t[0] for t in CALL_TURNS])
def test_each_family_without_tools_shows_call_markup_as_content(
        template: str, cut: dict[str, str], variables: dict[str, Any]) -> None:
    reply = assistant_turn(template, ONE_CALL, **cut, **variables)
    assert parse(fmt_for(template, tools=()), reply) == Parsed(reply, "", [])


def test_harmony_without_tools_keeps_thinking_apart_and_shows_the_arguments() -> None:
    reply = ('<|channel|>analysis<|message|>Maybe a call.<|end|>'
             '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Lyon"}<|call|>')
    assert parse(fmt_for(GPT_OSS, tools=(), reasoning=True), reply) == Parsed('{"city": "Lyon"}', "Maybe a call.", [])


def test_generic_without_tools_shows_the_json_as_content() -> None:
    reply = '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Lyon"}}]}'
    assert parse(ReplyFormat("generic", (), generic_json=True), reply) == Parsed(reply, "", [])


def test_gemma4_text_then_call() -> None:
    reply = 'Let me check.<|tool_call>call:get_weather{city:<|"|>Lyon<|"|>}<tool_call|><|tool_response>'
    parsed = parse(fmt_for(GEMMA4, reasoning=True), reply)
    assert (parsed.content, parsed.named_arguments()) == ("Let me check.", [("get_weather", LYON)])
