"""Bad requests each get a clear 4xx JSON error, and the server keeps serving afterwards."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.app_server import RunningApp

pytestmark = pytest.mark.slow

CHAT = "/v1/chat/completions"


def post(app: RunningApp, route: str, body: bytes | dict, **headers: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(app.url + route, data=data, timeout=120,
                         headers={"Content-Type": "application/json", **headers})


def chat_body(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, **extra}


def assert_refused(response: requests.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    message = error["message"] if isinstance(error, dict) else error
    for word in words:
        assert word in message, message


def assert_still_serving(app: RunningApp, model: str) -> None:
    response = post(app, CHAT, chat_body(model))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_malformed_json(local_app: RunningApp, smollm_path: Path) -> None:
    assert_refused(post(local_app, CHAT, b'{"model": "x", "messages": [}'), 400, "not valid JSON")
    assert_refused(post(local_app, "/api/chat", b"not json"), 400, "not valid JSON")
    assert_refused(post(local_app, CHAT, b'["a", "list"]'), 400, "JSON object")
    assert_still_serving(local_app, smollm_path.name)


def test_json_nested_100000_deep_is_malformed_not_a_crash(local_app: RunningApp, smollm_path: Path) -> None:
    deep = b'{"model": "x", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    logged_before = len(local_app.log())
    openai_answer = post(local_app, CHAT, deep)
    assert_refused(openai_answer, 400, "nested too deeply")
    assert openai_answer.json()["error"]["code"] == "invalid_json"
    assert_refused(post(local_app, "/api/chat", deep), 400, "nested too deeply")
    assert "RecursionError" not in local_app.log()[logged_before:], "a refusal, not a crash with a traceback"
    assert_still_serving(local_app, smollm_path.name)


def test_stop_top_k_and_seed_beyond_their_bounds_are_refused(local_app: RunningApp, smollm_path: Path) -> None:
    """A 200,000-entry stop list would be scanned after every token in the engine's one thread, slowing
    every user's reply; a huge top_k or seed has no meaning for llama.cpp."""
    too_much = {
        "stop": ({"stop": ["ab"] * 200_000}, "at most 16"),
        "long stop": ({"stop": ["x" * 5_000]}, "at most 100 are allowed"),
        "top_k": ({"top_k": 100_000_000}, "between 0 (off) and 1000"),
        "seed": ({"seed": 2**70}, "between 0 and 4294967295"),
    }
    for name, (fields, words) in too_much.items():
        assert_refused(post(local_app, CHAT, chat_body(smollm_path.name, **fields)), 400, words)
        ollama = {"model": smollm_path.name, "messages": [{"role": "user", "content": "hi"}], "stream": False,
                  "options": fields}
        assert_refused(post(local_app, "/api/chat", ollama), 400, words)
    assert_still_serving(local_app, smollm_path.name)


def test_max_tokens_zero_negative_or_over_the_context(local_app: RunningApp, smollm_path: Path) -> None:
    assert_refused(post(local_app, CHAT, chat_body(smollm_path.name, max_tokens=0)), 400, "max_tokens")
    assert_refused(post(local_app, CHAT, chat_body(smollm_path.name, max_tokens=-5)), 400, "max_tokens")
    over = post(local_app, CHAT, chat_body(smollm_path.name, max_tokens=100_000))
    assert_refused(over, 400, "context window")
    assert over.json()["error"]["code"] == "context_length_exceeded"
    assert_still_serving(local_app, smollm_path.name)


def test_prompt_over_the_context(local_app: RunningApp, smollm_path: Path) -> None:
    long = " ".join(["The quick brown fox jumps over the lazy dog."] * 400)  # ~4,000 tokens, context 1,024
    response = post(local_app, CHAT, {"model": smollm_path.name, "messages": [{"role": "user", "content": long}]})
    assert_refused(response, 400, "tokens")
    assert response.json()["error"]["code"] == "context_length_exceeded"
    assert_still_serving(local_app, smollm_path.name)


def test_non_string_message_content(local_app: RunningApp, smollm_path: Path) -> None:
    for content in (42, {"text": "hi"}, ["hi"]):
        body = {"model": smollm_path.name, "messages": [{"role": "user", "content": content}]}
        assert_refused(post(local_app, CHAT, body), 400, "messages.0.content")
    assert_refused(post(local_app, CHAT, {"model": smollm_path.name, "messages": [{"role": "wizard",
                                                                                    "content": "hi"}]}),
                   400, "role")
    assert_still_serving(local_app, smollm_path.name)


def test_a_10_mb_body_is_refused(local_app: RunningApp, smollm_path: Path) -> None:
    huge = {"model": smollm_path.name, "messages": [{"role": "user", "content": "x" * (10 * 2**20)}]}
    assert_refused(post(local_app, CHAT, huge), 413, "larger than")
    assert_still_serving(local_app, smollm_path.name)


def test_a_bad_json_schema_is_refused(local_app: RunningApp, smollm_path: Path) -> None:
    body = chat_body(smollm_path.name, response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    assert_refused(post(local_app, CHAT, body), 400, "schema")
    assert_refused(post(local_app, CHAT, chat_body(smollm_path.name, response_format={"type": "yaml"})), 400, "yaml")
    assert_still_serving(local_app, smollm_path.name)


def test_a_client_that_disconnects_cancels_its_generation(local_app: RunningApp, smollm_path: Path) -> None:
    """A long streamed reply dropped after its first piece is cancelled, and the next request is served."""
    body = {"model": smollm_path.name, "stream": True, "max_tokens": 900, "temperature": 1.0, "seed": 3,
            "messages": [{"role": "user", "content": "Write a very long story about the sea."}]}
    with requests.post(local_app.url + CHAT, json=body, stream=True, timeout=120) as response:
        assert response.status_code == 200
        next(response.iter_lines())
    deadline = time.monotonic() + 30
    while "generation cancelled before its end" not in local_app.log():
        assert time.monotonic() < deadline, "the server never noticed the client had gone"
        time.sleep(0.2)
    assert_still_serving(local_app, smollm_path.name)


def test_concurrent_bad_and_good_requests(local_app: RunningApp, smollm_path: Path) -> None:
    results: list[int] = []

    def bad() -> None:
        results.append(post(local_app, CHAT, b"{oops").status_code)

    threads = [threading.Thread(target=bad) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [400] * 8
    assert_still_serving(local_app, smollm_path.name)
