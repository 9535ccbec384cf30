"""The official ollama package against the running app: list, chat streaming, generate, show, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.app_server import RunningApp

ollama = pytest.importorskip("ollama")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(local_app: RunningApp):
    return ollama.Client(host=local_app.url, timeout=120)


def test_list_shows_the_loaded_model(client, smollm_path: Path) -> None:
    models = client.list().models
    assert models[0].model == smollm_path.name
    assert models[0].size > 0 and models[0].details.format == "gguf"


def test_chat_streams_pieces_then_a_done_line(client, smollm_path: Path) -> None:
    parts = list(client.chat(model=smollm_path.name, messages=[{"role": "user", "content": "Count to five."}],
                             stream=True, options={"num_predict": 20, "temperature": 0}))
    assert len([p for p in parts if p.message.content]) >= 2
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    assert parts[-1].eval_count > 0 and parts[-1].prompt_eval_count > 0


def test_chat_without_streaming(client, smollm_path: Path) -> None:
    reply = client.chat(model=smollm_path.name, messages=[{"role": "user", "content": "Say hi."}],
                        options={"num_predict": 6})
    assert reply.message.role == "assistant" and reply.message.content.strip() and reply.done


def test_json_format_constrains_the_reply(client, smollm_path: Path) -> None:
    import json

    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    reply = client.chat(model=smollm_path.name, messages=[{"role": "user", "content": "Is water wet?"}],
                        format=schema, options={"num_predict": 30, "temperature": 0})
    assert isinstance(json.loads(reply.message.content)["ok"], bool)


def test_generate_and_show(client, smollm_path: Path) -> None:
    reply = client.generate(model=smollm_path.name, prompt="The sky is", options={"num_predict": 5})
    assert reply.response.strip() and reply.done
    shown = client.show(smollm_path.name)
    assert shown.details.format == "gguf"


def test_unknown_model_is_an_error_naming_the_local_ones(client, smollm_path: Path) -> None:
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model="llama3:8b", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.status_code == 404 and smollm_path.name in refused.value.error
