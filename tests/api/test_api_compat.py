"""What benchmark and llama-server-style clients send to /v1 and /api is answered, not refused.

GuideLLM and vLLM's benchmark send their exact bodies (extensions such as ``ignore_eos`` and
``stream_options.continuous_usage_stats`` included); fields the app does not apply are accepted and
named in ``X-Ignored-Fields``, malformed values of fields it knows still get a 400; ``logit_bias``
steers a greedy reply; a listed remote model answers by name while the page keeps its local model.
The app runs SmolLM2 locally, with a scripted OpenAI-compatible server as its ``--backend``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import START_TIMEOUT_S, app_args
from tests.support.app_server import RunningApp, running_app
from tests.support.model_servers import ScriptedServer, scripted_server

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

IGNORED = "X-Ignored-Fields"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[tuple[RunningApp, ScriptedServer]]:
    """SmolLM2 loaded here, and a scripted server's model offered beside it."""
    workdir = tmp_path_factory.mktemp("api-compat")
    with scripted_server() as scripted:
        args = [*app_args(workdir, smollm_path), "--backend", scripted.url]
        with running_app(workdir, args, timeout=START_TIMEOUT_S) as app:
            yield app, scripted


@pytest.fixture(scope="module")
def app(served) -> RunningApp:
    return served[0]


@pytest.fixture(scope="module")
def vocabulary(smollm_path: Path):
    """SmolLM2's tokenizer alone (no weights), to name tokens by id as logit_bias does."""
    import llama_cpp

    return llama_cpp.Llama(str(smollm_path), vocab_only=True, verbose=False)


def post(app: RunningApp, route: str, body: dict) -> httpx.Response:
    return httpx.post(app.url + route, json=body, timeout=120)


def sse_events(response: httpx.Response) -> list[dict]:
    """The JSON events of a streamed reply, which must end with ``data: [DONE]``."""
    data = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert data and data[-1] == "[DONE]", response.text[-500:]
    return [json.loads(item) for item in data[:-1]]


def assert_usage_in_every_chunk(events: list[dict], most: int) -> None:
    """vLLM's continuous usage: every chunk counts the tokens so far; the last count is the whole reply's."""
    usages = [event["usage"] for event in events]
    assert all(u is not None and u["prompt_tokens"] > 0 for u in usages), usages
    counts = [u["completion_tokens"] for u in usages]
    assert counts == sorted(counts) and 0 < counts[-1] <= most, counts
    assert usages[-1]["total_tokens"] == usages[-1]["prompt_tokens"] + counts[-1]


# GuideLLM 0.8.1, guidellm/backends/openai/request_handlers.py: ChatCompletionsRequestHandler.format and
# TextCompletionsRequestHandler.format, streaming with an output length set by the benchmark's data.
def guidellm_chat(model: str, tokens: int) -> dict:
    return {"model": model, "stream": True, "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "max_completion_tokens": tokens, "stop": None, "ignore_eos": True,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Tell me about the sea."}]}]}


def guidellm_text(model: str, tokens: int) -> dict:
    return {"model": model, "stream": True, "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "max_tokens": tokens, "stop": None, "ignore_eos": True, "prompt": "The sea is"}


# vLLM 0.34.0, vllm/benchmarks/lib/endpoint_request_func.py: async_request_openai_completions and
# async_request_openai_chat_completions, with --ignore-eos and serve.py's sampling flags as extra_body.
def vllm_bench_text(model: str, tokens: int) -> dict:
    return {"model": model, "prompt": "The sea is", "repetition_penalty": 1.0, "max_tokens": tokens,
            "logprobs": None, "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True,
            "temperature": 0.0, "top_k": 40, "min_p": 0.0}


def vllm_bench_chat(model: str, tokens: int) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": "Tell me about the sea."}]}],
            "max_completion_tokens": tokens, "stream": True, "stream_options": {"include_usage": True},
            "ignore_eos": True, "temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0}


def test_guidellm_bodies_stream_with_usage_in_every_chunk_and_nothing_ignored(app: RunningApp,
                                                                               smollm_path: Path) -> None:
    health = httpx.get(f"{app.url}/health", timeout=30)  # GuideLLM's OpenAIHTTPBackend.validate probes it first
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    for route, body in (("/v1/chat/completions", guidellm_chat(smollm_path.name, 12)),
                        ("/v1/completions", guidellm_text(smollm_path.name, 12))):
        response = post(app, route, body)

        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
        assert IGNORED not in response.headers, "every field GuideLLM sends is applied"
        events = sse_events(response)
        assert len(events) >= 3, "the reply streams in pieces"
        assert_usage_in_every_chunk(events, most=12)


def test_vllm_benchmark_bodies_stream_with_final_usage(app: RunningApp, smollm_path: Path) -> None:
    for route, body in (("/v1/completions", vllm_bench_text(smollm_path.name, 10)),
                        ("/v1/chat/completions", vllm_bench_chat(smollm_path.name, 10))):
        response = post(app, route, body)

        assert response.status_code == 200, response.text
        assert IGNORED not in response.headers
        events = sse_events(response)
        text = "".join(c.get("text") or (c.get("delta") or {}).get("content") or ""
                       for e in events for c in e["choices"])
        assert text.strip()
        assert [e["usage"] is not None for e in events] == [False] * (len(events) - 1) + [True]
        assert 0 < events[-1]["usage"]["completion_tokens"] <= 10


def test_ignore_eos_runs_the_reply_to_max_tokens(app: RunningApp, smollm_path: Path) -> None:
    body = {"model": smollm_path.name, "messages": [{"role": "user", "content": "Reply with the single word: yes."}],
            "max_tokens": 60, "temperature": 0}
    short = post(app, "/v1/chat/completions", body).json()
    forced = post(app, "/v1/chat/completions", {**body, "ignore_eos": True}).json()

    assert short["usage"]["completion_tokens"] < 60 and short["choices"][0]["finish_reason"] == "stop"
    assert forced["usage"]["completion_tokens"] == 60 and forced["choices"][0]["finish_reason"] == "length"


def test_logit_bias_bans_and_forces_tokens_in_a_greedy_reply(app: RunningApp, smollm_path: Path, vocabulary) -> None:
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key="unused-on-localhost", max_retries=0, timeout=120)

    def reply_tokens(**bias: float) -> list[str]:
        """The greedy reply's tokens, as the app names them in its logprobs."""
        reply = client.chat.completions.create(
            model=smollm_path.name, messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=12, temperature=0, logit_bias=bias, logprobs=True)
        return [t.token for t in reply.choices[0].logprobs.content]

    greedy = reply_tokens()
    first = vocabulary.tokenize(greedy[0].encode(), add_bos=False)
    paris = vocabulary.tokenize(b" Paris", add_bos=False)
    assert len(first) == 1 and len(paris) == 1, "both are single tokens of SmolLM2's vocabulary"

    banned = reply_tokens(**{str(first[0]): -100})
    forced = reply_tokens(**{str(paris[0]): 100})

    assert greedy[0] not in banned, (greedy, banned)
    assert forced == [" Paris"] * 12, forced


def test_a_bad_logit_bias_is_refused_naming_it(app: RunningApp, smollm_path: Path) -> None:
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key="unused-on-localhost", max_retries=0, timeout=120)
    for bias in ({"hello": 5}, {"-3": 5}, {"42": 250}, {"42": "lots"}):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=smollm_path.name, messages=[{"role": "user", "content": "Hi."}],
                                           max_tokens=4, logit_bias=bias)
        assert "logit_bias" in refused.value.message and (refused.value.param or "").startswith("logit_bias")


def test_unknown_fields_are_answered_and_named_in_a_header(app: RunningApp, smollm_path: Path) -> None:
    openai_body = {"model": smollm_path.name, "max_tokens": 4, "temprature": 0.5, "cache_prompt": True,
                   "dry_multiplier": 0.8, "stream_options": {"include_usage": True, "colour": "blue"},
                   "messages": [{"role": "user", "content": "Say hi.", "mood": "happy"}]}
    ollama_body = {"model": smollm_path.name, "stream": False, "colour": 1, "keep_alive": "5m",
                   "options": {"num_predict": 4, "flavour": "mint", "num_ctx": 4096},
                   "messages": [{"role": "user", "content": "Say hi."}]}
    openai_answer = post(app, "/v1/chat/completions", openai_body)
    ollama_answer = post(app, "/api/chat", ollama_body)

    assert openai_answer.status_code == 200, openai_answer.text
    assert openai_answer.json()["choices"][0]["message"]["content"]
    assert openai_answer.headers[IGNORED].split(", ") == [
        "temprature", "stream_options.colour", "cache_prompt", "dry_multiplier", "messages.0.mood"]
    assert ollama_answer.status_code == 200, ollama_answer.text
    assert ollama_answer.json()["message"]["content"]
    assert ollama_answer.headers[IGNORED].split(", ") == ["colour", "options.flavour", "options.num_ctx",
                                                          "keep_alive"]
    assert app.wait_for_log_line("accepted without applying: temprature, stream_options.colour")


def test_thousands_of_odd_field_names_make_one_short_readable_header(app: RunningApp, smollm_path: Path) -> None:
    body = {"model": smollm_path.name, "max_tokens": 2, "messages": [{"role": "user", "content": "Hi."}],
            "line\r\nX-Injected: 1": 1, "naïve": 2, **{f"extra_{i}": i for i in range(3000)}}
    response = post(app, "/v1/chat/completions", body)

    assert response.status_code == 200, response.text
    header = response.headers[IGNORED]
    assert header.startswith("line??X-Injected: 1, na?ve, extra_0, ") and header.endswith("more)")
    assert len(header) <= 1100 and "X-Injected" not in response.headers


def test_malformed_values_of_known_fields_are_still_refused(app: RunningApp, smollm_path: Path) -> None:
    chat = {"model": smollm_path.name, "messages": [{"role": "user", "content": "Hi."}], "max_tokens": 4}
    for field, value in (("ignore_eos", "very much"), ("typical_p", 5), ("repetition_penalty", -1),
                         ("stream_options", {"continuous_usage_stats": "sometimes"}),
                         ("chat_template_kwargs", {"enable_thinking": "maybe"}), ("mirostat", 7),
                         ("max_completion_tokens", 0)):
        response = post(app, "/v1/chat/completions", {**chat, field: value})
        assert response.status_code == 400, (field, response.text)
        assert field in response.json()["error"]["message"]
    ollama = {"model": smollm_path.name, "stream": False, "messages": [{"role": "user", "content": "Hi."}]}
    for field, value in (("options", {"typical_p": "high"}), ("think", "extremely")):
        response = post(app, "/api/chat", {**ollama, field: value})
        assert response.status_code == 400, (field, response.text)
        assert field in response.json()["error"]


def test_a_remote_model_answers_by_name_while_the_page_keeps_the_local_model(served, smollm_path: Path) -> None:
    app, scripted = served
    remote = f"{scripted.model} @ {scripted.url.removeprefix('http://')}"
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key="unused-on-localhost", max_retries=0, timeout=120)
    assert remote in [m.id for m in client.models.list().data]

    chat = client.chat.completions.create(model=remote, messages=[{"role": "user", "content": "Hi."}], max_tokens=8)
    text = client.completions.create(model=remote, prompt="Once", max_tokens=8)
    ollama = post(app, "/api/chat", {"model": remote, "stream": False, "messages": [{"role": "user", "content": "Hi."}]})
    local = client.chat.completions.create(model=smollm_path.name, messages=[{"role": "user", "content": "Hi."}],
                                           max_tokens=4)

    assert chat.choices[0].message.content == "Hello from the scripted server." and chat.model == remote
    assert text.choices[0].text == "Hello from the scripted server."
    assert ollama.status_code == 200 and ollama.json()["message"]["content"] == "Hello from the scripted server."
    assert app.status()["model"]["file"] == smollm_path.name, "the page's model did not change"
    assert local.choices[0].message.content and local.model == smollm_path.name
