"""The engine with the real SmolLM2 GGUF through llama-cpp-python."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support.streams import collect
from webui.engine import Engine, LoadSettings, ModelLoadError, PromptRequest, SamplingParams, StreamChunk

GREEDY = SamplingParams(temperature=0.0, max_tokens=48, seed=1)


@pytest.fixture(scope="module")
def engine(smollm_path: Path) -> Engine:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=512, n_threads=2))
    yield engine
    engine.unload()


def test_streams_a_reply_token_by_token_with_stats(engine: Engine) -> None:
    chunks: list[StreamChunk] = list(
        engine.stream_chat([{"role": "user", "content": "What is the capital of France? Answer in one word."}], GREEDY)
    )
    texts = [c.text for c in chunks if c.text]
    stats = chunks[-1].stats
    assert len(texts) > 3, "the reply should arrive in several pieces"
    assert "Paris" in "".join(texts)
    assert stats is not None and stats.completion_tokens >= len(texts) - 1
    assert stats.ttft_s > 0 and stats.tokens_per_s > 0
    assert not stats.stopped_by_user


def test_uses_the_template_from_the_gguf(engine: Engine) -> None:
    assert engine.info is not None
    assert engine.info.chat_format_source == "gguf"
    prompt = engine.render([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert "<|im_start|>system\nBe brief.<|im_end|>" in prompt.text
    assert prompt.text.rstrip().endswith("<|im_start|>assistant")


def test_stop_ends_generation_within_a_couple_of_tokens(engine: Engine) -> None:
    cancel = threading.Event()
    long_reply = SamplingParams(temperature=0.7, max_tokens=400, seed=3)
    pieces_after_stop = 0
    text = ""
    stats = None
    for chunk in engine.stream_chat([{"role": "user", "content": "Write a very long story about a dragon."}],
                                    long_reply, cancel=cancel):
        if chunk.stats:
            stats = chunk.stats
            continue
        text += chunk.text
        if cancel.is_set():
            pieces_after_stop += 1
        elif len(text) > 40:
            cancel.set()
    assert stats is not None and stats.stopped_by_user
    assert pieces_after_stop <= 2
    assert stats.completion_tokens < 100
    assert text, "the partial reply is kept"


def test_conversation_longer_than_the_context_is_trimmed_and_still_answered(engine: Engine) -> None:
    filler = "Tell me about the weather in a long and detailed way. " * 12
    conversation = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(12):
        conversation += [{"role": "user", "content": f"{i}: {filler}"}, {"role": "assistant", "content": filler}]
    conversation.append({"role": "user", "content": "What is 2 + 2?"})
    fitted = engine.prepare(PromptRequest(SamplingParams(max_tokens=64), messages=tuple(conversation)))
    assert fitted.dropped_messages > 0
    assert fitted.messages[0]["role"] == "system", "the system prompt stays"
    assert fitted.messages[-1]["content"] == "What is 2 + 2?"
    assert len(fitted.tokens) + fitted.max_tokens <= 512
    text, stats = collect(engine.stream_chat(conversation, SamplingParams(temperature=0, max_tokens=64)))
    assert text.strip()
    assert stats.dropped_messages == fitted.dropped_messages


def test_two_concurrent_requests_both_complete_in_arrival_order(engine: Engine) -> None:
    order: list[str] = []
    results: dict[str, str] = {}
    waits: list[int] = []

    def ask(name: str, question: str, delay: float) -> None:
        time.sleep(delay)
        text, _ = collect(engine.stream_chat([{"role": "user", "content": question}], GREEDY,
                                             on_wait=waits.append))
        order.append(name)
        results[name] = text

    first = threading.Thread(target=ask, args=("first", "Name three colours.", 0))
    second = threading.Thread(target=ask, args=("second", "Name three animals.", 0.2))
    first.start(), second.start()
    first.join(60), second.join(60)
    assert order == ["first", "second"]
    assert results["first"].strip() and results["second"].strip()
    assert waits and waits[0] == 1, "the second request saw it was next in line"


def test_a_bad_file_fails_clearly_and_the_loaded_model_keeps_answering(engine: Engine, tmp_path: Path,
                                                                       smollm_path: Path) -> None:
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(smollm_path.read_bytes()[: 5_000_000])
    not_gguf = tmp_path / "random.gguf"
    not_gguf.write_bytes(b"\x00\x01garbage" * 1000)
    with pytest.raises(ModelLoadError, match="not a GGUF"):
        engine.load(not_gguf, LoadSettings(n_ctx=512))
    with pytest.raises(ModelLoadError, match="could not load truncated.gguf"):
        engine.load(truncated, LoadSettings(n_ctx=512, n_threads=2))
    assert engine.info is not None and engine.info.path == smollm_path
    text, _ = collect(engine.stream_chat([{"role": "user", "content": "Say hello."}], GREEDY))
    assert text.strip()
