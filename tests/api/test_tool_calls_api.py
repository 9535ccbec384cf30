"""Tool calls and reasoning through the real app with the official clients: openai, ollama, LangChain.

SmolLM2's template knows no tools, so these run the generic fallback: the tools are described in the
system prompt and the reply is held to a JSON object by a grammar. A second app loads SmolLM2 with a
template whose reply opens a thinking block, to check that thinking comes back apart from the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field

from tests.api.conftest import START_TIMEOUT_S, ServedModel, app_args
from tests.support.app_server import RunningApp, running_app

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "units": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "units"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "The time now in a city.",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                        "required": ["city"]}}}
QUESTION = [{"role": "user", "content": "What is the weather in Paris right now?"}]
GREEDY = {"temperature": 0, "max_tokens": 96}


@pytest.fixture(scope="module")
def client(local_app: RunningApp):
    return openai.OpenAI(base_url=f"{local_app.url}/v1", api_key="unused-on-localhost", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def tool_client(tool_model: ServedModel):
    """An openai client for each small model: the key cases run on SmolLM2 and on Gemma 3 270M."""
    return openai.OpenAI(base_url=f"{tool_model.app.url}/v1", api_key="unused-on-localhost", max_retries=0,
                         timeout=120)


def arguments_of(call) -> dict:
    return json.loads(call.function.arguments)


def test_a_named_tool_is_called_with_arguments_that_satisfy_its_schema(tool_client, tool_model: ServedModel) -> None:
    # One call: with parallel calls allowed, Gemma 270M calls again and again until max_tokens.
    reply = tool_client.chat.completions.create(model=tool_model.model, messages=QUESTION, tools=[WEATHER, TIME],
                                                tool_choice={"type": "function", "function": {"name": "get_weather"}},
                                                parallel_tool_calls=False, **GREEDY)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls and all(c.function.name == "get_weather" for c in choice.message.tool_calls)
    for call in choice.message.tool_calls:
        arguments = arguments_of(call)
        assert set(arguments) == {"city", "units"} and arguments["units"] in ("celsius", "fahrenheit")
        assert call.id.startswith("call_")
    assert not choice.message.content, "no tool markup or JSON leaks into content"


def test_a_required_call_streams_as_deltas_the_client_assembles(tool_client, tool_model: ServedModel) -> None:
    with tool_client.chat.completions.stream(model=tool_model.model, messages=QUESTION, tools=[WEATHER, TIME],
                                        tool_choice="required", parallel_tool_calls=False, **GREEDY) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert "tool_calls.function.arguments.done" in kinds
    assert choice.finish_reason == "tool_calls" and len(choice.message.tool_calls) == 1
    assert choice.message.tool_calls[0].function.name in ("get_weather", "get_time")
    assert "city" in arguments_of(choice.message.tool_calls[0])


def test_auto_may_answer_in_text_and_the_text_is_plain(client, smollm_path: Path) -> None:
    reply = client.chat.completions.create(
        model=smollm_path.name, tools=[WEATHER], tool_choice="auto", **GREEDY,
        messages=[{"role": "user", "content": "Say hello to me in one short sentence."}])
    choice = reply.choices[0]
    if choice.message.tool_calls:  # the model may still call; then the call is well formed
        assert choice.finish_reason == "tool_calls" and "city" in arguments_of(choice.message.tool_calls[0])
    else:
        assert choice.finish_reason in ("stop", "length") and choice.message.content.strip()
        assert not choice.message.content.lstrip().startswith("{"), "the generic JSON wrapper is taken off"


def test_a_tool_result_goes_back_and_the_model_answers_from_it(tool_client, tool_model: ServedModel) -> None:
    called = tool_client.chat.completions.create(model=tool_model.model, messages=QUESTION, tools=[WEATHER],
                                            tool_choice="required", parallel_tool_calls=False, **GREEDY)
    call = called.choices[0].message.tool_calls[0]
    follow_up = [*QUESTION, called.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18 degrees celsius, sunny"}]
    answer = tool_client.chat.completions.create(model=tool_model.model, messages=follow_up, tools=[WEATHER],
                                            tool_choice="none", **GREEDY)
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.choices[0].message.content.strip() and not answer.choices[0].message.tool_calls
    bare = tool_client.chat.completions.create(model=tool_model.model, messages=QUESTION, tools=[WEATHER],
                                          tool_choice="none", **GREEDY)
    assert answer.usage.prompt_tokens > bare.usage.prompt_tokens + 10, "the call and its result were in the prompt"


@pytest.mark.parametrize(("change", "words"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]}, "type object"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "send_mail"}}}, "send_mail"),
    ({"tools": [{"type": "function", "function": {"name": f"tool_{i}"}} for i in range(129)]}, "at most 128"),
    ({"tools": [WEATHER], "messages": [*QUESTION, {"role": "tool", "tool_call_id": "call_nobody", "content": "x"}]},
     "answers no tool call"),
])
def test_bad_tool_requests_get_a_400_in_openai_shape(client, smollm_path: Path, change: dict, words: str) -> None:
    ask = {"model": smollm_path.name, "messages": QUESTION, **GREEDY, **change}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(**ask)
    error = refused.value.body
    assert words in error["message"] and error["type"] == "invalid_request_error"


def test_langchain_bind_tools_and_structured_output(local_app: RunningApp, smollm_path: Path) -> None:
    langchain_openai = pytest.importorskip("langchain_openai")

    class Weather(BaseModel):
        """The weather a user asked about."""

        city: str = Field(description="The city")
        celsius: int = Field(description="The temperature in degrees Celsius")

    def get_weather(city: str) -> str:
        """The current weather for a city."""
        return "sunny"

    model = langchain_openai.ChatOpenAI(base_url=f"{local_app.url}/v1", api_key="unused", model=smollm_path.name,
                                        temperature=0, max_tokens=96, max_retries=0)
    message = model.bind_tools([get_weather], tool_choice="get_weather").invoke("What is the weather in Paris?")
    assert message.tool_calls and message.tool_calls[0]["name"] == "get_weather"
    assert isinstance(message.tool_calls[0]["args"]["city"], str)
    structured = model.with_structured_output(Weather, method="function_calling").invoke(
        "It is 21 degrees Celsius in Lyon today. Extract the weather.")
    assert isinstance(structured, Weather) and structured.city


def test_ollama_client_tool_calls_and_tool_results(local_app: RunningApp, smollm_path: Path) -> None:
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=local_app.url, timeout=120)
    options = {"temperature": 0, "num_predict": 96}
    reply = client.chat(model=smollm_path.name, messages=QUESTION, tools=[WEATHER], options=options)
    for call in reply.message.tool_calls or []:
        assert call.function.name == "get_weather" and isinstance(call.function.arguments, dict)
    if not reply.message.tool_calls:
        assert reply.message.content.strip() and not reply.message.content.lstrip().startswith("{")
    history = [*QUESTION,
               {"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "get_weather", "arguments": {"city": "Paris", "units": "celsius"}}}]},
               {"role": "tool", "tool_name": "get_weather", "content": "18 degrees celsius, sunny"}]
    answer = client.chat(model=smollm_path.name, messages=history, options=options)
    assert answer.message.content.strip()
    streamed = list(client.chat(model=smollm_path.name, messages=history, options=options, stream=True))
    assert streamed[-1].done and "".join(part.message.content for part in streamed).strip()


def test_an_ollama_tool_result_for_no_call_is_refused(local_app: RunningApp, smollm_path: Path) -> None:
    response = httpx.post(f"{local_app.url}/api/chat", timeout=60, json={
        "model": smollm_path.name, "stream": False,
        "messages": [*QUESTION, {"role": "tool", "tool_name": "get_weather", "content": "18 C"}]})
    assert response.status_code == 400 and "no earlier message made a call" in response.json()["error"]


# -- reasoning ----------------------------------------------------------------------------------

# ChatML whose reply starts inside a thinking block unless enable_thinking is false (as Qwen 3 and the
# DeepSeek R1 distills do): SmolLM2 writes on, so everything up to a </think> is thinking.
THINKING_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)


@pytest.fixture(scope="module")
def thinking_app(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[RunningApp]:
    from webui.models.model_settings import ModelLoadOptions, ModelSettingsStore

    workdir = tmp_path_factory.mktemp("api-thinking")
    args = app_args(workdir, smollm_path)
    ModelSettingsStore(workdir / "data" / "model-settings.json").save(
        smollm_path.name, ModelLoadOptions(chat_format=THINKING_CHATML))
    with running_app(workdir, args, timeout=START_TIMEOUT_S) as app:
        yield app


def test_thinking_comes_back_apart_from_the_answer_and_can_be_turned_off(thinking_app: RunningApp,
                                                                         smollm_path: Path) -> None:
    client = openai.OpenAI(base_url=f"{thinking_app.url}/v1", api_key="unused", max_retries=0, timeout=120)
    ask = {"model": smollm_path.name, "messages": [{"role": "user", "content": "What is 2 + 2?"}],
           "temperature": 0, "max_tokens": 24}
    reply = client.chat.completions.create(**ask).choices[0].message
    thinking = reply.model_extra.get("reasoning_content")
    assert thinking and "<think>" not in thinking and "<think>" not in (reply.content or "")
    streamed = [chunk.choices[0].delta for chunk in client.chat.completions.create(**ask, stream=True)
                if chunk.choices]
    assert "".join(d.model_extra.get("reasoning_content") or "" for d in streamed) == thinking
    plain = client.chat.completions.create(**ask, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert plain.choices[0].message.content.strip()
    assert not plain.choices[0].message.model_extra.get("reasoning_content")


def test_ollama_think_returns_message_thinking(thinking_app: RunningApp, smollm_path: Path) -> None:
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=thinking_app.url, timeout=120)
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    options = {"temperature": 0, "num_predict": 24}
    thought = client.chat(model=smollm_path.name, messages=messages, think=True, options=options)
    assert thought.message.thinking and "<think>" not in thought.message.thinking
    plain = client.chat(model=smollm_path.name, messages=messages, think=False, options=options)
    assert plain.message.content.strip() and not plain.message.thinking


def test_api_show_lists_thinking_for_a_template_that_writes_it(local_app: RunningApp, thinking_app: RunningApp,
                                                               smollm_path: Path) -> None:
    for app, thinks in ((local_app, False), (thinking_app, True)):
        shown = httpx.post(f"{app.url}/api/show", timeout=60, json={"model": smollm_path.name}).json()
        assert "tools" in shown["capabilities"] and ("thinking" in shown["capabilities"]) is thinks
