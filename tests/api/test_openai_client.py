"""The official openai package against the running app: models, chat, completions, embeddings, JSON schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.support.app_server import RunningApp

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(local_app: RunningApp):
    return openai.OpenAI(base_url=f"{local_app.url}/v1", api_key="unused-on-localhost", max_retries=0, timeout=120)


def test_models_lists_the_local_ggufs_loaded_first(client, smollm_path: Path) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids[0] == smollm_path.name


def test_chat_without_streaming_returns_text_usage_and_finish_reason(client, smollm_path: Path) -> None:
    reply = client.chat.completions.create(
        model=smollm_path.name, messages=[{"role": "user", "content": "Say hello."}],
        max_tokens=8, temperature=0, seed=1,
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content.strip()
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_max_tokens_cuts_the_reply_with_finish_reason_length(client, smollm_path: Path) -> None:
    reply = client.chat.completions.create(
        model=smollm_path.name, max_tokens=3, temperature=0,
        messages=[{"role": "user", "content": "Write a long story about a dragon and a knight."}],
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 3


def test_chat_streams_pieces_then_usage(client, smollm_path: Path) -> None:
    stream = client.chat.completions.create(
        model=smollm_path.name, messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=24, temperature=0, stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2, "the reply arrives in several pieces"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [finishes[-1]] and finishes[-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_same_seed_gives_the_same_reply(client, smollm_path: Path) -> None:
    def ask() -> str:
        return client.chat.completions.create(
            model=smollm_path.name, messages=[{"role": "user", "content": "Name a fruit."}],
            max_tokens=10, temperature=1.0, seed=1234,
        ).choices[0].message.content

    assert ask() == ask()


def test_stop_strings_end_the_reply_where_they_appear(client, smollm_path: Path) -> None:
    def ask(**extra):
        return client.chat.completions.create(
            model=smollm_path.name, max_tokens=40, temperature=0, seed=7,
            messages=[{"role": "user", "content": "Count from 1 to 10, digits separated by commas."}], **extra,
        )

    free = ask()
    assert "2" in free.choices[0].message.content, "the model counts past 2 without a stop string"
    stopped = ask(stop=["2"])
    assert "2" not in stopped.choices[0].message.content
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.usage.completion_tokens < free.usage.completion_tokens


def test_text_completion(client, smollm_path: Path) -> None:
    reply = client.completions.create(model=smollm_path.name, prompt="The capital of France is",
                                      max_tokens=6, temperature=0)
    assert reply.choices[0].text.strip()
    assert reply.usage.completion_tokens > 0


def test_text_completion_streams(client, smollm_path: Path) -> None:
    pieces = [c.choices[0].text for c in client.completions.create(
        model=smollm_path.name, prompt="One, two, three,", max_tokens=8, temperature=0, stream=True) if c.choices]
    assert "".join(pieces).strip()


def test_json_schema_output_follows_the_schema(client, smollm_path: Path) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]},
                                               "count": {"type": "integer"}},
              "required": ["colour", "count"], "additionalProperties": False}
    reply = client.chat.completions.create(
        model=smollm_path.name, max_tokens=60, temperature=0,
        messages=[{"role": "user", "content": "Pick a colour and a number, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "pick", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content)
    assert data["colour"] in ("red", "green", "blue") and isinstance(data["count"], int)


def test_json_object_mode_returns_json(client, smollm_path: Path) -> None:
    reply = client.chat.completions.create(
        model=smollm_path.name, max_tokens=60, temperature=0, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Describe a cat as a JSON object with a name."}],
    )
    if reply.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(reply.choices[0].message.content), dict)
    else:  # cut by max_tokens: still JSON so far
        assert reply.choices[0].message.content.lstrip().startswith("{")


def test_embeddings_are_unit_vectors_of_the_app_model(client) -> None:
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=["a cat sat", "a dog ran"])
    assert len(result.data) == 2
    vector = result.data[0].embedding
    assert len(vector) == 384
    assert math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-3)
    assert result.usage.prompt_tokens > 0


def test_unknown_model_is_404_naming_the_local_ones(client, smollm_path: Path) -> None:
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert refused.value.status_code == 404
    assert smollm_path.name in refused.value.message
    assert refused.value.code == "model_not_found"


def test_logprobs_come_with_each_token_where_the_engine_gives_them(client, smollm_path: Path) -> None:
    try:
        reply = client.chat.completions.create(
            model=smollm_path.name, messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=5, temperature=0, logprobs=True, top_logprobs=2,
        )
    except openai.BadRequestError as refused:  # llama-cpp-python's own sampling needs logits_all for them
        assert "logits_all" in refused.value.message and refused.value.code == "unsupported_parameter"
        return
    tokens = reply.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == reply.choices[0].message.content
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in tokens)
