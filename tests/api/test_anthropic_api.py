"""Anthropic's Messages API through the official ``anthropic`` client.

The first part drives the routes in-process with a fake Services whose replies hold thinking, text
and tool calls (what the tool parsers will produce); the second part drives the real app with
SmolLM2 (single-user and team mode) for text replies, counting, errors and keys.
"""

from __future__ import annotations

import json

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi
import httpx2
import pytest

from tests.api.conftest import ServedModel, Team
from tests.support.app_server import RunningApp
from webui.api.anthropic import build_anthropic_router
from webui.services.access import LOCAL_USER, NotAuthorized
from webui.services.completions import Generation, GenerationOptions
from webui.services.models import ModelEntry
from webui.services.types import ContextExceeded, GenerationStats, StreamChunk, ToolCall, ToolChoice

anthropic = pytest.importorskip("anthropic")

MODEL = "local-model.gguf"
CALL_HEX = "0123456789abcdef01234567"


def stats(finish: str, completion_tokens: int = 9, stop_sequence: str | None = None) -> StreamChunk:
    return StreamChunk(stats=GenerationStats(prompt_tokens=21, completion_tokens=completion_tokens, ttft_s=0.1,
                                             total_s=0.5, stopped_by_user=False, dropped_messages=0,
                                             finish_reason=finish, stop_sequence=stop_sequence))


THINK_SAY_AND_CALL = [
    StreamChunk(reasoning="The user wants the weather."),
    StreamChunk(reasoning=" I should call the tool."),
    StreamChunk(text="Let me check "),
    StreamChunk(text="Paris."),
    StreamChunk(tool_calls=(ToolCall(f"call_{CALL_HEX}", "get_weather", {"city": "Paris", "days": 3}),)),
    stats("tool_calls"),
]


@dataclass
class FakeCompletions:
    """Replies with ``chunks`` and remembers what the route asked for."""

    chunks: list[StreamChunk | Exception] = field(default_factory=lambda: [StreamChunk(text="Hi."), stats("stop")])
    asked: list[tuple[list[dict[str, Any]], GenerationOptions]] = field(default_factory=list)

    def chat(self, user, messages, options: GenerationOptions) -> Generation:
        self.asked.append((messages, options))

        def replay() -> Iterator[StreamChunk]:
            for item in self.chunks:
                if isinstance(item, Exception):
                    raise item
                yield item

        return Generation(MODEL, 21, replay(), threading.Event())

    def count_chat_tokens(self, user, messages, options: GenerationOptions) -> int:
        self.asked.append((messages, options))
        return 42


class FakeAccess:
    def caller(self, authorization: str | None):
        if authorization != "Bearer right-key":
            raise NotAuthorized("This API key is not valid.")
        return LOCAL_USER


class FakeModels:
    def entries(self) -> list[ModelEntry]:
        return [ModelEntry(name=MODEL, loaded=True, size_bytes=1, modified=0.0, architecture="llama", parameters="",
                           quant=None, context_length=1024)]


@dataclass
class FakeServices:
    completions: FakeCompletions = field(default_factory=FakeCompletions)
    api_access: FakeAccess = field(default_factory=FakeAccess)
    models: FakeModels = field(default_factory=FakeModels)


def in_process(services: FakeServices, call, api_key: str = "right-key"):
    """``call(client)`` with the official async client talking to the routes in this process."""
    app = fastapi.FastAPI()
    app.include_router(build_anthropic_router(services))

    async def run():
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://app") as http:
            client = anthropic.AsyncAnthropic(api_key=api_key, base_url="http://app", http_client=http, max_retries=0)
            return await call(client)

    return asyncio.run(run())


WEATHER_TOOL = {"name": "get_weather", "description": "The weather for a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def ask(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Weather in Paris?"}], **extra}


def test_a_reply_with_thinking_text_and_a_call_becomes_blocks_in_the_order_written() -> None:
    services = FakeServices(FakeCompletions(THINK_SAY_AND_CALL))

    async def call(client):
        return await client.messages.create(**ask(tools=[WEATHER_TOOL]))

    message = in_process(services, call)
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    thinking, text, tool_use = message.content
    assert thinking.thinking == "The user wants the weather. I should call the tool." and thinking.signature
    assert text.text == "Let me check Paris."
    assert (tool_use.id, tool_use.name, tool_use.input) == (f"toolu_{CALL_HEX}", "get_weather",
                                                            {"city": "Paris", "days": 3})
    assert message.stop_reason == "tool_use" and message.model == MODEL
    assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 9)


def test_the_stream_builds_the_same_blocks_through_the_clients_own_accumulator() -> None:
    services = FakeServices(FakeCompletions(THINK_SAY_AND_CALL))

    async def call(client):
        async with client.messages.stream(**ask(tools=[WEATHER_TOOL])) as stream:
            kinds = [event.type async for event in stream]
            return kinds, await stream.get_final_message()

    kinds, message = in_process(services, call)
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    starts_and_stops = [kind for kind in kinds if kind in ("content_block_start", "content_block_stop")]
    assert starts_and_stops == ["content_block_start", "content_block_stop"] * 3, "each block closes before the next"
    assert [block.type for block in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "The user wants the weather. I should call the tool."
    assert message.content[0].signature, "a signature_delta closes the thinking block"
    assert message.content[1].text == "Let me check Paris."
    assert message.content[2].input == {"city": "Paris", "days": 3}
    assert message.stop_reason == "tool_use" and message.usage.output_tokens == 9


def test_thinking_shown_as_omitted_keeps_the_block_without_its_text() -> None:
    services = FakeServices(FakeCompletions(THINK_SAY_AND_CALL))

    async def call(client):
        return await client.messages.create(**ask(thinking={"type": "enabled", "budget_tokens": 1024,
                                                            "display": "omitted"}))

    message = in_process(services, call)
    assert message.content[0].type == "thinking" and message.content[0].thinking == ""
    assert services.completions.asked[0][1].thinking is True


def test_a_reply_cut_by_max_tokens_says_max_tokens() -> None:
    services = FakeServices(FakeCompletions([StreamChunk(text="Once upon"), stats("length", 2)]))

    async def call(client):
        return await client.messages.create(**ask())

    message = in_process(services, call)
    assert message.stop_reason == "max_tokens" and message.content[0].text == "Once upon"


def test_a_reply_ended_by_a_stop_sequence_names_it_whole_and_streamed() -> None:
    services = FakeServices(FakeCompletions([StreamChunk(text="1, "), stats("stop", 2, stop_sequence="2")]))

    async def call(client):
        whole = await client.messages.create(**ask(stop_sequences=["2"]))
        async with client.messages.stream(**ask(stop_sequences=["2"])) as stream:
            return whole, await stream.get_final_message()

    for message in in_process(services, call):
        assert (message.stop_reason, message.stop_sequence, message.content[0].text) == ("stop_sequence", "2", "1, ")


def test_tool_turns_become_normalized_messages_and_a_tool_request() -> None:
    services = FakeServices()
    conversation = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I need the tool.", "signature": "abc"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "18 C"}]},
            {"type": "text", "text": "And tomorrow?"}]},
    ]

    async def call(client):
        return await client.messages.create(
            model="claude-opus-4-1", max_tokens=32, system=[{"type": "text", "text": "Be brief."}],
            messages=conversation, tools=[WEATHER_TOOL],
            tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            stop_sequences=["END"], thinking={"type": "disabled"})

    in_process(services, call)
    messages, options = services.completions.asked[0]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "toolu_01", "name": "get_weather", "content": "18 C"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    assert options.model == MODEL, "claude- names are served by the loaded model"
    assert options.tools is not None and options.tools.names() == ("get_weather",)
    assert options.tools.choice == ToolChoice("named", "get_weather") and options.tools.parallel is False
    assert options.tools.tools[0].parameters == WEATHER_TOOL["input_schema"]
    assert options.thinking is False
    assert options.sampling.stop == ("END",) and options.sampling.max_tokens == 32


def test_count_tokens_answers_from_the_services_count() -> None:
    services = FakeServices()

    async def call(client):
        return await client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Hi"}],
                                                  tools=[WEATHER_TOOL], tool_choice={"type": "any"})

    assert in_process(services, call).input_tokens == 42
    options = services.completions.asked[0][1]
    assert options.tools is not None and options.tools.choice == ToolChoice("required")


@pytest.mark.parametrize(("extra", "words"), [
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "x"}}]}]},
     "image content blocks are not supported"),
    ({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]}]}, "toolu_9"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure,"}]}, "prefill"),
    ({"tool_choice": {"type": "tool", "name": "nope"}, "tools": [WEATHER_TOOL]}, "'nope'"),
    ({"extra_body": {"mcp_servers": [{"type": "url", "url": "https://example.com", "name": "x"}]}}, "mcp_servers"),
    ({"extra_body": {"bogus": 1}}, "Unknown field 'bogus'"),
])
def test_requests_that_cannot_be_honoured_get_a_400_that_says_why(extra: dict[str, Any], words: str) -> None:
    services = FakeServices()

    async def call(client):
        return await client.messages.create(**{**ask(), **extra})

    with pytest.raises(anthropic.BadRequestError) as refused:
        in_process(services, call)
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert words in refused.value.body["error"]["message"]
    assert not services.completions.asked, "nothing was generated"


def test_a_wrong_key_gets_an_authentication_error() -> None:
    async def call(client):
        return await client.messages.create(**ask())

    with pytest.raises(anthropic.AuthenticationError) as refused:
        in_process(FakeServices(), call, api_key="wrong-key")
    assert refused.value.body["error"]["type"] == "authentication_error"


def test_a_failure_after_the_stream_started_arrives_as_an_error_event() -> None:
    services = FakeServices(FakeCompletions([StreamChunk(text="Hel"), ContextExceeded("The context is full.")]))

    async def call(client):
        async with client.messages.stream(**ask()) as stream:
            return [text async for text in stream.text_stream]

    with pytest.raises(anthropic.APIStatusError) as failed:
        in_process(services, call)
    assert failed.value.body["error"]["message"] == "The context is full."


# -- the real app -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(local_app: RunningApp):
    return anthropic.Anthropic(base_url=local_app.url, api_key="unused-on-localhost", max_retries=0, timeout=120)


def client_of(served: ServedModel):
    return anthropic.Anthropic(base_url=served.app.url, api_key="unused-on-localhost", max_retries=0, timeout=120)


# This version of the client has no temperature argument; Anthropic's API (and this server) still takes it.
GREEDY = {"extra_body": {"temperature": 0}}
COUNT = [{"role": "user", "content": "Count from 1 to 10, digits separated by commas."}]


@pytest.mark.slow
def test_create_answers_with_text_usage_and_a_stop_reason(client, smollm_path: Path) -> None:
    message = client.messages.create(model=smollm_path.name, max_tokens=12, **GREEDY, system="Be brief.",
                                     messages=[{"role": "user", "content": "Say hello."}])
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text.strip()
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and 0 < message.usage.output_tokens <= 12


@pytest.mark.slow
def test_claude_model_names_are_answered_by_the_loaded_model(client, smollm_path: Path) -> None:
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=4, **GREEDY,
                                     messages=[{"role": "user", "content": "Hi"}])
    assert message.model == smollm_path.name


@pytest.mark.slow
def test_max_tokens_cuts_the_reply_with_stop_reason_max_tokens(client, smollm_path: Path) -> None:
    message = client.messages.create(model=smollm_path.name, max_tokens=3, **GREEDY, messages=[
        {"role": "user", "content": "Write a long story about a dragon and a knight."}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 3


@pytest.mark.slow
def test_stop_sequences_end_the_reply_and_are_named(client, local_app: RunningApp, smollm_path: Path) -> None:
    free = client.messages.create(model=smollm_path.name, max_tokens=40, **GREEDY, messages=COUNT)
    assert "2" in free.content[0].text, "the model counts past 2 without a stop sequence"
    stopped = client.messages.create(model=smollm_path.name, max_tokens=40, **GREEDY, messages=COUNT,
                                     stop_sequences=["never written", "2"])
    assert "2" not in stopped.content[0].text
    assert stopped.usage.output_tokens < free.usage.output_tokens
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "2"
    with client.messages.stream(model=smollm_path.name, max_tokens=40, **GREEDY, messages=COUNT,
                                stop_sequences=["2"]) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "stop_sequence" and streamed.stop_sequence == "2"
    assert free.stop_reason in ("end_turn", "max_tokens") and free.stop_sequence is None
    # OpenAI's face says only "stop" for a stop string.
    openai_reply = httpx2.post(f"{local_app.url}/v1/chat/completions", timeout=120, json={
        "model": smollm_path.name, "messages": COUNT, "max_tokens": 40, "temperature": 0, "stop": ["2"]}).json()
    assert openai_reply["choices"][0]["finish_reason"] == "stop"


@pytest.mark.slow
def test_stream_gives_text_pieces_and_the_final_message(client, smollm_path: Path) -> None:
    with client.messages.stream(model=smollm_path.name, max_tokens=24, **GREEDY, messages=COUNT) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) >= 2, "the reply arrives in several pieces"
    assert "".join(pieces) == final.content[0].text
    assert final.stop_reason in ("end_turn", "max_tokens") and final.usage.output_tokens > 0


@pytest.mark.slow
def test_count_tokens_matches_the_prompt_a_reply_is_given(client, smollm_path: Path) -> None:
    conversation = {"messages": [{"role": "user", "content": "Say hello."}], "system": "Be brief."}
    counted = client.messages.count_tokens(model=smollm_path.name, **conversation).input_tokens
    replied = client.messages.create(model=smollm_path.name, max_tokens=2, **conversation)
    assert counted == replied.usage.input_tokens > 0
    longer = client.messages.count_tokens(model=smollm_path.name, messages=conversation["messages"],
                                          system="Be brief. Answer in English, in one short sentence.")
    assert longer.input_tokens > counted


@pytest.mark.slow
def test_models_list_in_anthropics_shape(client, smollm_path: Path) -> None:
    models = client.models.list()
    assert models.data[0].id == smollm_path.name and models.data[0].type == "model"
    assert models.data[0].display_name and models.has_more is False
    assert client.models.retrieve(smollm_path.name).id == smollm_path.name


@pytest.mark.slow
def test_a_bad_body_and_an_unknown_model_are_refused(client, smollm_path: Path) -> None:
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model=smollm_path.name, max_tokens=4, messages=[], **GREEDY)
    assert "messages" in refused.value.message
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="no-such-model", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert smollm_path.name in missing.value.message, "the refusal lists the models that exist"


@pytest.mark.slow
def test_a_required_tool_call_comes_back_as_a_tool_use_block(tool_model: ServedModel) -> None:
    client = client_of(tool_model)
    message = client.messages.create(model=tool_model.model, max_tokens=80, **GREEDY, tools=[WEATHER_TOOL],
                                     tool_choice={"type": "any", "disable_parallel_tool_use": True},
                                     messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert message.stop_reason == "tool_use"
    tool_use = next(block for block in message.content if block.type == "tool_use")
    assert tool_use.name == "get_weather" and isinstance(tool_use.input.get("city"), str)
    assert tool_use.id.startswith("toolu_")


@pytest.mark.slow
def test_a_streamed_tool_call_arrives_as_input_json_deltas_and_its_result_goes_back(tool_model: ServedModel) -> None:
    client = client_of(tool_model)
    ask = {"model": tool_model.model, "max_tokens": 80, **GREEDY, "tools": [WEATHER_TOOL]}
    question = {"role": "user", "content": "What is the weather in Paris?"}
    named = {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}
    with client.messages.stream(**ask, tool_choice=named, messages=[question]) as stream:
        deltas = [event.delta.partial_json for event in stream
                  if event.type == "content_block_delta" and event.delta.type == "input_json_delta"]
        message = stream.get_final_message()
    assert deltas and message.stop_reason == "tool_use"
    tool_use = next(block for block in message.content if block.type == "tool_use")
    assert json.loads("".join(deltas)) == tool_use.input, "the deltas assemble into the call's input"
    answer = client.messages.create(**ask, messages=[
        question, {"role": "assistant", "content": [block.model_dump() for block in message.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18 C and sunny"}]},
    ], tool_choice={"type": "none"})
    assert answer.stop_reason in ("end_turn", "max_tokens") and answer.content[0].type == "text"
    assert answer.content[0].text.strip()


@pytest.mark.slow
def test_team_keys_work_as_x_api_key_and_a_wrong_one_is_refused(team: Team, smollm_path: Path) -> None:
    bob = anthropic.Anthropic(base_url=team.app.url, api_key=team.keys["bob"], max_retries=0, timeout=120)
    message = bob.messages.create(model=smollm_path.name, max_tokens=4, **GREEDY,
                                  messages=[{"role": "user", "content": "Hi"}])
    assert message.usage.output_tokens > 0
    assert bob.models.list().data[0].id == smollm_path.name
    for key in ("sk-local-made-up", team.keys["bob"] + "x"):
        with pytest.raises(anthropic.AuthenticationError) as refused:
            anthropic.Anthropic(base_url=team.app.url, api_key=key, max_retries=0).messages.create(
                model=smollm_path.name, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
        assert "not valid" in refused.value.message
