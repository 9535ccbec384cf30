"""One prepare step with real SmolLM2: a request is rendered and tokenized once, and page and API share its checks."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from webui.config import Settings
from webui.engine import ContextExceeded, Engine, LoadSettings, SamplingParams, grammar_for, scheduler
from webui.hardware import HardwareInfo
from webui.prompts import templates
from webui.services import Services
from webui.services.access import LOCAL_USER
from webui.services.completions import GenerationOptions

N_CTX = 512
FILLER = "Tell me about the weather in a long and detailed way, with every cloud named. " * 6


@pytest.fixture(scope="module")
def engine(smollm_path: Path) -> Iterator[Engine]:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=N_CTX, n_threads=2))
    yield engine
    engine.unload()


@pytest.fixture()
def services(engine: Engine, tmp_path: Path) -> Services:
    hardware = HardwareInfo(cpu_physical_cores=2, cpu_logical_cores=2, ram_total_mb=8192, ram_available_mb=4096,
                            gpus=(), gpu_offload_supported=False)
    return Services(Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models"), hardware, engine)


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often this thread renders a chat template and tokenizes (the engine thread's work is not counted)."""
    counted = {"render": 0, "tokenize": 0}
    me = threading.get_ident()

    def counting(name: str, original):
        def wrapper(*args, **kwargs):
            if threading.get_ident() == me:
                counted[name] += 1
            return original(*args, **kwargs)
        return wrapper

    # A chat is rendered by render_tools (tools and tool turns included); render is the exact-prompt view's.
    monkeypatch.setattr(templates.ChatFormat, "render", counting("render", templates.ChatFormat.render))
    monkeypatch.setattr(templates.ChatFormat, "render_tools", counting("render", templates.ChatFormat.render_tools))
    monkeypatch.setattr(scheduler.LoadedModel, "tokenize", counting("tokenize", scheduler.LoadedModel.tokenize))
    return counted


def long_chat(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(turns):
        messages += [{"role": "user", "content": f"{i}: {FILLER}"}, {"role": "assistant", "content": FILLER}]
    return messages + [{"role": "user", "content": "What is 2 + 2?"}]


def test_an_api_request_is_rendered_and_tokenized_once_and_its_usage_is_what_the_model_read(
        services: Services, engine: Engine, calls: dict[str, int]) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    sampling = SamplingParams(temperature=0, max_tokens=12, seed=1, grammar=grammar_for(
        {"type": "json_schema", "json_schema": {"schema": schema}}))
    conversation = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "What is 2 + 3?"},
                    {"role": "assistant", "content": '{"answer": 5}'}, {"role": "user", "content": "And 2 + 2?"}]

    generation = services.completions.chat(LOCAL_USER, conversation,
                                           GenerationOptions(model=engine.info.file, sampling=sampling))
    assert calls == {"render": 1, "tokenize": 1}, "the prompt is prepared once, before it queues"
    chunks = list(generation.chunks)
    text = "".join(c.text for c in chunks)
    stats = chunks[-1].stats
    assert text.startswith("{") and '"answer"' in text
    assert stats is not None and stats.prompt_tokens == generation.prompt_tokens, "usage counts what the model read"


def test_a_chat_too_long_for_the_context_is_trimmed_on_the_page_and_refused_by_the_api(
        services: Services, engine: Engine) -> None:
    conversation = long_chat(turns=4)
    assert engine.count_prompt_tokens(conversation) > N_CTX

    updates = list(services.chat.stream("page", conversation[1:], system_prompt=conversation[0]["content"],
                                        sampling=SamplingParams(temperature=0, max_tokens=8)))
    last = updates[-1]
    assert last.error is None and last.text.strip(), "the page answers"
    assert last.notice and "oldest messages were left out" in last.notice
    assert last.stats is not None and last.stats.prompt_tokens + 8 <= N_CTX

    with pytest.raises(ContextExceeded, match=f"context window holds {N_CTX}"):
        services.completions.chat(LOCAL_USER, conversation, GenerationOptions(
            model=engine.info.file, sampling=SamplingParams(temperature=0, max_tokens=8)))


def test_a_message_too_long_for_the_context_is_one_error_for_the_page_and_the_api(
        services: Services, engine: Engine) -> None:
    question = [{"role": "user", "content": FILLER * 8}]
    [update] = list(services.chat.stream("page", question, system_prompt="", sampling=SamplingParams(max_tokens=8)))
    assert update.done and update.error and "too long for this model's context window" in update.error
    with pytest.raises(ContextExceeded, match="Shorten it"):
        services.completions.chat(LOCAL_USER, question, GenerationOptions(model=engine.info.file,
                                                                          sampling=SamplingParams(max_tokens=None)))
