"""Tools and tool turns rendered through each real model's own chat template (tests/fixtures/chat_templates)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webui.prompts.templates import ChatFormat, resolve_chat_format
from webui.prompts.toolcalls.families import has_thinking_switch, reply_family
from webui.prompts.toolcalls.render import mistral_call_id
from webui.prompts.toolcalls.types import ToolCallError, ToolChoice, ToolRequest, ToolSpec

TEMPLATES = Path(__file__).resolve().parents[2] / "fixtures" / "chat_templates"
TEMPLATE_FILES = sorted(p.name for p in TEMPLATES.glob("*.jinja"))

WEATHER = ToolSpec(
    "get_weather",
    "Current weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolSpec("get_time", "Current time in a time zone", {"type": "object", "properties": {"zone": {"type": "string"}}})
TWO_TOOLS = ToolRequest((WEATHER, TIME))

# A finished round: the user asks, the assistant calls a tool, the tool answers; the model replies next.
ROUND = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_0123456789abcdef01234567", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        ],
    },
    {"role": "tool", "tool_call_id": "call_0123456789abcdef01234567", "content": "18 C and sunny"},
]


def _format(file_name: str) -> ChatFormat:
    return ChatFormat("gguf", "gguf", None, (TEMPLATES / file_name).read_text(), (), "<s>", "</s>")


def _thinking_cases(file_name: str) -> list[bool | None]:
    return [None, True, False] if has_thinking_switch((TEMPLATES / file_name).read_text()) else [None]


@pytest.mark.parametrize(
    ("file_name", "thinking"),
    [(name, thinking) for name in TEMPLATE_FILES for thinking in _thinking_cases(name)],
)
def test_every_real_template_shows_the_tools_the_call_and_its_result(file_name: str, thinking: bool | None) -> None:
    prompt = _format(file_name).render_tools(ROUND, TWO_TOOLS, thinking)
    for seen in ("get_weather", "get_time", "Current weather in a city", "Paris", "18 C and sunny"):
        assert seen in prompt.text
    assert prompt.reply_format.family == reply_family((TEMPLATES / file_name).read_text())
    assert prompt.reply_format.tool_names == ("get_weather", "get_time")
    assert prompt.grammar is not None


@pytest.mark.parametrize("file_name", TEMPLATE_FILES)
def test_a_reply_with_two_parallel_calls_renders_in_every_template(file_name: str) -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": {"zone": "CET"}}},
    ]
    messages = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_a", "name": "get_weather", "content": "18 C"},
        {"role": "tool", "tool_call_id": "call_b", "name": "get_time", "content": "14:05"},
    ]
    text = _format(file_name).render_tools(messages, TWO_TOOLS, None).text
    for seen in ("Paris", "CET", "18 C", "14:05"):
        assert seen in text


@pytest.mark.parametrize("generic", ["google-gemma-2-2b-it.jinja", "HuggingFaceTB-SmolLM3-3B.jinja", "chatml"])
def test_templates_without_tools_get_them_described_with_the_json_reply_format(generic: str) -> None:
    chat_format = (
        resolve_chat_format({}, model_name="m.gguf", bos_token="<s>", eos_token="</s>", override="chatml")
        if generic == "chatml" else _format(generic)
    )
    prompt = chat_format.render_tools(ROUND, TWO_TOOLS, None)
    assert prompt.reply_format.generic_json is True
    assert '{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}' in prompt.text
    assert '{"response": "<your answer>"}' in prompt.text
    assert '"parameters": {"type": "object", "properties": {"city": {"type": "string"}}' in prompt.text
    # The earlier call is the JSON object the model wrote, the result a user turn it can read.
    assert '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}' in prompt.text
    assert "Result of get_weather (call_0123456789abcdef01234567): 18 C and sunny" in prompt.text
    assert "Be brief." in prompt.text


def test_a_native_family_whose_template_knows_no_tools_is_told_its_own_call_format() -> None:
    prompt = _format("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja").render_tools(ROUND, TWO_TOOLS, None)
    assert prompt.reply_format.family == "deepseek" and not prompt.reply_format.generic_json
    assert "To call a tool, write exactly:\n<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>" in prompt.text
    assert prompt.text.startswith("<s>Be brief.\n\nYou can call these tools")


def test_thinking_off_closes_the_thinking_block_and_on_leaves_it_open() -> None:
    qwen35 = _format("Qwen3.5-4B.jinja")
    question = [{"role": "user", "content": "Hi"}]
    on = qwen35.render_tools(question, TWO_TOOLS, True)
    off = qwen35.render_tools(question, TWO_TOOLS, False)
    assert on.text.endswith("<|im_start|>assistant\n<think>\n") and on.reply_format.thinking_open
    assert off.text.endswith("<think>\n\n</think>\n\n") and not off.reply_format.thinking_open
    assert on.reply_format.reasoning and off.reply_format.reasoning
    qwen3_off = _format("Qwen-Qwen3-0.6B.jinja").render_tools(question, None, False)
    assert qwen3_off.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    gemma4_on = _format("google-gemma-4-31B-it.jinja").render_tools(question, None, True)
    assert gemma4_on.text.startswith("<s><|turn>system\n<|think|>")


def test_the_grammar_lets_a_reasoning_model_think_before_a_required_call() -> None:
    required = ToolRequest((WEATHER, TIME), ToolChoice("required"))
    question = [{"role": "user", "content": "Weather in Paris?"}]
    opened = _format("Qwen3.5-4B.jinja").render_tools(question, required, True)
    assert opened.grammar is not None and opened.grammar_lazy is False
    assert re.search(r'^root ::= tc-text "</think>" tc-ws tc-calls$', opened.grammar, re.M)
    closed = _format("Qwen3.5-4B.jinja").render_tools(question, required, False)
    assert re.search(r"^root ::= tc-calls$", closed.grammar or "", re.M)


def test_earlier_thinking_is_dropped_and_the_current_turns_is_kept() -> None:
    messages = [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer", "reasoning_content": "OLD THOUGHT"},
        {"role": "user", "content": "Weather in Paris?"},
        {**ROUND[2], "reasoning_content": "CURRENT THOUGHT"},
        ROUND[3],
    ]
    text = _format("Qwen-Qwen3-0.6B.jinja").render_tools(messages, TWO_TOOLS, None).text
    assert "OLD THOUGHT" not in text
    assert "<think>\nCURRENT THOUGHT\n</think>" in text
    harmony = _format("openai-gpt-oss-120b.jinja").render_tools(messages, TWO_TOOLS, None).text
    assert "OLD THOUGHT" not in harmony
    assert "<|channel|>analysis<|message|>CURRENT THOUGHT<|end|>" in harmony


@pytest.mark.parametrize("file_name", ["mistralai-Mistral-Nemo-Instruct-2407.jinja", "Mistral-Small-3.2-24B-Instruct-2506.jinja"])
def test_mistral_gets_nine_character_ids_that_keep_the_call_and_its_result_together(file_name: str) -> None:
    text = _format(file_name).render_tools(ROUND, TWO_TOOLS, None).text
    short = mistral_call_id("call_0123456789abcdef01234567")
    assert re.fullmatch(r"[A-Za-z0-9]{9}", short)
    assert text.count(short) == 2  # the call and the result
    assert "call_0123456789abcdef01234567" not in text
    assert mistral_call_id("abcdefghi") == "abcdefghi"


def test_gemma4_names_each_result_after_the_call_with_its_id() -> None:
    text = _format("google-gemma-4-31B-it.jinja").render_tools(ROUND, TWO_TOOLS, None).text
    assert "response:get_weather{value:<|\"|>18 C and sunny<|\"|>}" in text


def test_tool_choice_none_shows_the_tools_but_parses_and_constrains_nothing() -> None:
    prompt = _format("Qwen-Qwen2.5-7B-Instruct.jinja").render_tools(
        ROUND, ToolRequest((WEATHER, TIME), ToolChoice("none")), None
    )
    assert "get_time" in prompt.text
    assert prompt.reply_format.tool_names == ()
    assert prompt.grammar is None


def test_no_tools_renders_like_a_plain_chat() -> None:
    chat_format = _format("Qwen-Qwen2.5-7B-Instruct.jinja")
    plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompt = chat_format.render_tools(plain, None, None)
    assert prompt.text == chat_format.render(plain).text
    assert prompt.reply_format.tool_names == () and prompt.grammar is None


def test_a_named_tool_that_was_not_offered_is_refused_with_its_name() -> None:
    with pytest.raises(ToolCallError, match="'send_mail'.*get_weather"):
        ToolRequest((WEATHER,), ToolChoice("named", "send_mail"))


def test_a_tool_whose_parameters_are_not_an_object_schema_is_refused_by_name() -> None:
    with pytest.raises(ToolCallError, match="'lookup'"):
        ToolRequest((ToolSpec("lookup", "", {"type": "string"}),))


def test_earlier_call_arguments_that_are_not_json_are_refused_clearly() -> None:
    bad = [ROUND[1], {**ROUND[2], "tool_calls": [{"id": "c1", "type": "function",
                                                   "function": {"name": "get_weather", "arguments": "{city: Paris"}}]}]
    with pytest.raises(ToolCallError, match="earlier call to 'get_weather' are not valid JSON"):
        _format("Qwen-Qwen2.5-7B-Instruct.jinja").render_tools(bad, TWO_TOOLS, None)


def test_qwen35_gets_a_grammar_in_its_own_xml_call_format_and_its_schemas_for_the_parser() -> None:
    qwen35 = _format("Qwen3.5-4B.jinja")
    question = [{"role": "user", "content": "Weather in Paris?"}]
    required = qwen35.render_tools(question, ToolRequest((WEATHER, TIME), ToolChoice("required")), False)
    assert required.reply_format.family == "hermes-xml"
    grammar = required.grammar or ""
    assert '"<function=get_weather>"' in grammar and '"<parameter=city>"' in grammar
    assert '"\\"name\\""' not in grammar  # no JSON call object: the model is not pushed off its own format
    assert dict(required.reply_format.parameter_schemas()) == {"get_weather": WEATHER.parameters,
                                                              "get_time": TIME.parameters}
    qwen25 = _format("Qwen-Qwen2.5-7B-Instruct.jinja").render_tools(question, TWO_TOOLS, None)
    assert qwen25.reply_format.family == "hermes" and qwen25.grammar_trigger_tokens == ("<tool_call>",)


def test_a_lazy_trigger_looks_past_the_thinking_block_when_the_model_thinks() -> None:
    question = [{"role": "user", "content": "Weather in Paris?"}]
    opened = _format("Qwen3.5-4B.jinja").render_tools(question, TWO_TOOLS, True)  # the prompt ends in <think>
    optional = _format("Qwen-Qwen3-0.6B.jinja").render_tools(question, TWO_TOOLS, None)  # the model may open one
    for prompt, thinking in ((opened, ""), (optional, "<think>\n")):
        assert prompt.grammar_lazy and prompt.grammar_trigger_tokens == ()

        def starts(text: str, patterns: tuple[str, ...] = prompt.grammar_triggers) -> int | None:
            found = [m for p in patterns if (m := re.fullmatch(p.strip("^$"), text))]
            return found[0].start(1) if found else None

        inside = f"{thinking}Maybe <tool_call> later."
        assert starts(inside) is None
        after = f"{thinking}Maybe <tool_call> later.\n</think>\n\nSure. <tool_call>\n"
        assert starts(after) == len(after) - len("<tool_call>\n")
    assert _format("Qwen-Qwen3-0.6B.jinja").render_tools(question, TWO_TOOLS, False).grammar_trigger_tokens == (
        "<tool_call>",)
