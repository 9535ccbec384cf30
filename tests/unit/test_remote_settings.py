"""Pure decisions for remote servers: flag values, server URLs, model names, request bodies."""

from __future__ import annotations

import pytest

from webui.cli import parse_backends, parse_settings
from webui.engine import SamplingParams
from webui.engine.remote import estimate_tokens, remote_model_info, sampling_body, short_model_name
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
    vllm = remote_model_info("http://gpu1:8080", {"id": "Qwen/Qwen2.5-7B-Instruct", "max_model_len": 32768})
    assert (vllm.file, vllm.n_ctx) == ("Qwen/Qwen2.5-7B-Instruct @ gpu1:8080", 32768)
    assert remote_model_info("http://gpu1:8080", {"id": "x.gguf"}).n_ctx == 2048


def test_request_bodies_carry_our_sampling_and_counts_are_estimated_high() -> None:
    body = sampling_body(SamplingParams(temperature=0.2, max_tokens=9, seed=-1, stop=("END",)))
    assert (body["temperature"], body["max_tokens"], body["stop"]) == (0.2, 9, ["END"]) and "seed" not in body
    assert sampling_body(SamplingParams(seed=7))["seed"] == 7
    assert estimate_tokens("word " * 100) >= 100  # English runs ~4 characters a token: never underestimated
