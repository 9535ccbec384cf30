"""Tools through a remote OpenAI-compatible server: what it is sent, and its streamed calls and thinking as ours."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.model_servers import scripted_server
from webui.engine import PromptRequest, SamplingParams, StreamChunk
from webui.engine.handoff import merge_handed_over
from webui.engine.remote import RemoteBackend
from webui.engine.router import EngineRouter
from webui.prompts.toolcalls import ToolCall, ToolCallError, ToolChoice, ToolRequest, ToolSpec

WEATHER = ToolSpec("get_weather", "The weather in a city today.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
TIME = ToolSpec("get_time", "The time in a city now.", {"type": "object", "properties": {"city": {"type": "string"}}})
HISTORY = (
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "4 C, rain"},
    {"role": "user", "content": "And in Paris and what time is it there?"},
)


def event(delta: dict | None = None, finish: str | None = None) -> dict:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


def call_delta(index: int, *, arguments: str, call_id: str | None = None, name: str | None = None) -> dict:
    piece: dict = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        piece.update(id=call_id, type="function")
    if name is not None:
        piece["function"]["name"] = name
    return event({"tool_calls": [piece]})


TWO_CALLS = [
    event({"role": "assistant", "reasoning_content": "The user wants "}),
    event({"reasoning_content": "two things."}),
    event({"content": "Let me check."}),
    call_delta(0, call_id="call_w", name="get_weather", arguments=""),
    call_delta(0, arguments='{"city": '),
    call_delta(0, arguments='"Paris"}'),
    call_delta(1, call_id="call_t", name="get_time", arguments='{"city"'),
    call_delta(1, arguments=': "Paris"}'),
    event(finish="tool_calls"),
]


def stream_with_tools(events: list[dict], tools: ToolRequest, sampling: SamplingParams = SamplingParams(),
                      thinking: bool | None = None) -> tuple[list, dict]:
    """What a router over a scripted server streams for ``HISTORY`` with ``tools``, and the body the server got."""
    with scripted_server(events=events) as server:
        router = EngineRouter(None, [RemoteBackend(server.url)])
        [model] = router.remote_models()
        router.use_remote(model)
        prompt = router.prepare(PromptRequest(sampling, messages=HISTORY, strict=True, tools=tools, thinking=thinking))
        chunks = list(router.stream(prompt))
        [body] = server.seen_bodies
    return chunks, body


def test_streamed_tool_call_deltas_and_reasoning_come_out_as_calls_and_thinking() -> None:
    chunks, _ = stream_with_tools(TWO_CALLS, ToolRequest((WEATHER, TIME)))

    assert "".join(c.reasoning for c in chunks) == "The user wants two things."
    assert "".join(c.text for c in chunks) == "Let me check."
    # Each call arrives once complete: the first when the second starts, the second at the end of the stream.
    assert [c.tool_calls for c in chunks if c.tool_calls] == [
        (ToolCall("call_w", "get_weather", {"city": "Paris"}),),
        (ToolCall("call_t", "get_time", {"city": "Paris"}),),
    ]
    stats = chunks[-1].stats
    assert stats is not None and stats.finish_reason == "tool_calls"


def test_the_server_gets_the_tools_the_tool_turns_and_the_sampling_extras() -> None:
    sampling = SamplingParams(temperature=0.0, max_tokens=64, logit_bias=((42, -float("inf")), (7, 5.0)),
                              ignore_eos=True, typical_p=0.8)
    tools = ToolRequest((WEATHER, TIME), choice=ToolChoice("named", "get_time"), parallel=False)

    _, body = stream_with_tools(TWO_CALLS, tools, sampling, thinking=False)

    assert body["tools"] == [WEATHER.as_template_tool(), TIME.as_template_tool()]
    assert body["tools"][0]["function"]["parameters"]["required"] == ["city"]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}
    assert body["parallel_tool_calls"] is False
    assistant, tool = body["messages"][1], body["messages"][2]
    assert assistant["tool_calls"] == [{"id": "call_1", "type": "function",
                                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]
    assert tool == {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "4 C, rain"}
    assert body["logit_bias"] == {"42": -100.0, "7": 5.0}  # OpenAI's range; JSON has no -inf
    assert (body["ignore_eos"], body["typical_p"]) == (True, 0.8)
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_without_tools_the_request_stays_as_before() -> None:
    chunks, body = stream_with_tools([event({"content": "Hi."}), event(finish="stop")], None)  # type: ignore[arg-type]

    extras = {"tools", "tool_choice", "parallel_tool_calls", "logit_bias", "ignore_eos", "chat_template_kwargs"}
    assert not extras & set(body)
    assert "".join(c.text for c in chunks) == "Hi." and chunks[-1].stats.finish_reason == "stop"


def test_a_whole_call_in_one_delta_without_an_id_gets_one() -> None:
    events = [event({"tool_calls": [{"index": 0, "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
                                    {"index": 1, "function": {"name": "get_time", "arguments": ""}}]}),
              event(finish="tool_calls")]

    chunks, _ = stream_with_tools(events, ToolRequest((WEATHER, TIME), choice=ToolChoice("required")))

    calls = [call for c in chunks for call in c.tool_calls]
    assert [(c.name, dict(c.arguments)) for c in calls] == [("get_weather", {"city": "Rome"}), ("get_time", {})]
    assert all(re.fullmatch(r"call_[0-9a-f]{24}", c.id) for c in calls) and calls[0].id != calls[1].id


def test_a_call_whose_arguments_are_not_json_is_an_error_naming_the_server_and_the_tool() -> None:
    events = [call_delta(0, call_id="call_x", name="get_weather", arguments='{"city": Par'), event(finish="tool_calls")]

    with pytest.raises(ToolCallError, match=r"The model server at 127\.0\.0\.1:\d+ sent a call to get_weather whose "
                                            r"arguments are not a JSON object"):
        stream_with_tools(events, ToolRequest((WEATHER,)))


def test_the_prompt_estimate_counts_the_tools_sent() -> None:
    with scripted_server() as server:
        router = EngineRouter(None, [RemoteBackend(server.url)])
        router.use_remote(router.remote_models()[0])
        plain = router.prepare(PromptRequest(SamplingParams(), messages=HISTORY))
        tools = ToolRequest((WEATHER, TIME))
        with_tools = router.prepare(PromptRequest(SamplingParams(), messages=HISTORY, tools=tools))

    tools_text = json.dumps([WEATHER.as_template_tool(), TIME.as_template_tool()])
    assert with_tools.prompt_tokens - plain.prompt_tokens >= len(tools_text) // 4


def test_a_slow_reader_gets_text_before_each_call_and_the_calls_apart() -> None:
    first, second = ToolCall("call_a", "get_weather", {"city": "Oslo"}), ToolCall("call_b", "get_time", {})
    handed_over = [StreamChunk(reasoning="Hm. "), StreamChunk(text="Checking"), StreamChunk(text="."),
                   StreamChunk(tool_calls=(first,)), StreamChunk(tool_calls=(second,)), StreamChunk(text=" Done.")]

    merged = list(merge_handed_over(handed_over))

    assert merged == [StreamChunk(text="Checking.", reasoning="Hm. ", tool_calls=(first,)),
                      StreamChunk(tool_calls=(second,)), StreamChunk(text=" Done.")]
