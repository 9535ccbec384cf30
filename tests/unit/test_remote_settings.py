"""Pure decisions for remote servers: flag values, server URLs, model names, request bodies."""

from __future__ import annotations

import base64

import httpx
import pytest

from webui.cli import parse_backend_keys, parse_backends, parse_settings
from webui.engine import SamplingParams
from webui.engine.remote import RemoteBackend, estimate_tokens, remote_model_info, sampling_body, short_model_name
from webui.rag.chroma_server import parse_chroma_url


def test_backend_flags_are_repeatable_comma_separated_and_lose_a_trailing_v1() -> None:
    assert parse_backends(["http://a:8080/v1/, http://b:8000", "http://a:8080"]) == ("http://a:8080", "http://b:8000")
    with pytest.raises(SystemExit, match="--backend takes a URL"):
        parse_backends(["gpu1:8080"])
    settings = parse_settings(["--backend", "http://a:1", "--no-local-model", "--chroma-url", "http://c:8000",
                               "--chroma-token", "s3cret"])
    assert (settings.backends, settings.no_local_model, settings.chroma_url) == (("http://a:1",), True, "http://c:8000")
    assert "s3cret" not in repr(settings), "the token never reaches a log line"


def test_chroma_urls_default_to_chromas_port_and_refuse_other_schemes() -> None:
    assert parse_chroma_url("http://docs:9000") == ("docs", 9000, False)
    assert parse_chroma_url("docs") == ("docs", 8000, False)
    assert parse_chroma_url("https://docs") == ("docs", 443, True)
    with pytest.raises(ValueError, match="--chroma-url"):
        parse_chroma_url("ftp://docs")


def test_remote_models_are_named_with_where_they_run() -> None:
    assert short_model_name("/srv/models/Qwen2.5-7B.gguf") == "Qwen2.5-7B.gguf"
    assert short_model_name("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    vllm = remote_model_info(RemoteBackend("http://gpu1:8080"), {"id": "Qwen/Qwen2.5-7B-Instruct", "max_model_len": 32768})
    assert (vllm.file, vllm.n_ctx) == ("Qwen/Qwen2.5-7B-Instruct @ gpu1:8080", 32768)
    assert remote_model_info(RemoteBackend("http://gpu1:8080"), {"id": "x.gguf"}).n_ctx == 2048


def test_a_backends_credentials_never_reach_its_name_url_or_model_names() -> None:
    backend = RemoteBackend("https://ada:s3cret%40x@Gpu1:8443/llm", key=None)
    model = remote_model_info(backend, {"id": "/srv/m.gguf"})

    assert (backend.url, backend.display) == ("https://Gpu1:8443/llm", "Gpu1:8443/llm")
    assert model.file == "m.gguf @ Gpu1:8443/llm" and "s3cret" not in repr(model)
    assert model.chat_format_note == "The server formats the prompt at Gpu1:8443/llm."


def test_a_key_goes_as_a_bearer_token_and_url_credentials_as_basic_never_in_the_url() -> None:
    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        return httpx.Response(200, json={"data": [{"id": "m.gguf"}]})

    client = httpx.Client(transport=httpx.MockTransport(answer))
    RemoteBackend("http://gpu1:8080", key="sk-9", client=client).models()
    RemoteBackend("http://ada:pw%3A1@gpu1:8080", client=client).models()
    RemoteBackend("http://gpu1:8080", client=client).models()

    basic = "Basic " + base64.b64encode(b"ada:pw:1").decode()
    url = "http://gpu1:8080/v1/models"
    assert seen == [(url, "Bearer sk-9"), (url, basic), (url, None)]


def test_backend_keys_pair_with_their_server_and_stay_out_of_the_settings_repr(monkeypatch) -> None:
    one = ("http://gpu1:8080",)
    assert parse_backend_keys(["sk-1=="], one) == (("http://gpu1:8080", "sk-1=="),), "a bare key, '=' and all"
    two = ("http://gpu1:8080", "http://ada:pw@gpu2:8000")
    assert parse_backend_keys(["http://GPU2:8000/v1/=k2, http://gpu1:8080=k1"], two) == (
        ("http://ada:pw@gpu2:8000", "k2"), ("http://gpu1:8080", "k1"))
    for values, backends, message in ((["k"], two, "say whose key"), (["k"], (), "none is given"),
                                      (["http://gpu3:1=k"], two, "not one of the --backend servers"),
                                      (["http://gpu1:8080="], two, "gives no key")):
        with pytest.raises(SystemExit, match=message):
            parse_backend_keys(values, backends)

    settings = parse_settings(["--backend", "http://ada:pw-9@gpu2:8000", "--backend-key", "sk-live-7"])
    assert settings.backend_keys == (("http://ada:pw-9@gpu2:8000", "sk-live-7"),)
    assert "pw-9" not in repr(settings) and "sk-live-7" not in repr(settings)
    monkeypatch.setenv("WEBUI_BACKEND", "http://a:1,http://b:2")
    monkeypatch.setenv("WEBUI_BACKEND_KEY", "http://b:2=kb")
    assert parse_settings([]).backend_keys == (("http://b:2", "kb"),)


def test_request_bodies_carry_our_sampling_and_counts_are_estimated_high() -> None:
    body = sampling_body(SamplingParams(temperature=0.2, max_tokens=9, seed=-1, stop=("END",)))
    assert (body["temperature"], body["max_tokens"], body["stop"]) == (0.2, 9, ["END"]) and "seed" not in body
    assert sampling_body(SamplingParams(seed=7))["seed"] == 7
    assert estimate_tokens("word " * 100) >= 100  # English runs ~4 characters a token: never underestimated
