"""Thinking and a required tool call in one reply, with real SmolLM2 under Qwen 3.5's own chat template.

The prompt opens a thinking block; the reply grammar lets the model think, then holds it to a call in
Qwen 3.5's XML format. SmolLM2 thinks on for long, so a small logit bias on "</" makes it close the
block within a few tokens: the thinking must come back as reasoning and the call as a call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llama_cpp
import pytest

from webui.engine import Engine, LoadSettings, SamplingParams
from webui.engine.types import PromptRequest
from webui.prompts.toolcalls import ToolChoice, ToolRequest, ToolSpec

TEMPLATE = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates" / "Qwen3.5-4B.jinja"
WEATHER = ToolSpec("get_weather", "The current weather for a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


@pytest.fixture(scope="module")
def qwen35_smollm(smollm_path: Path) -> Iterator[Engine]:
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=1024, n_threads=2, chat_format=TEMPLATE.read_text()))
    yield engine
    engine.unload()


def first_token(smollm_path: Path, text: str) -> int:
    vocab = llama_cpp.Llama(str(smollm_path), vocab_only=True, verbose=False)
    try:
        return vocab.tokenize(text.encode(), add_bos=False, special=True)[0]
    finally:
        vocab.close()


def test_a_required_call_after_thinking_comes_back_as_reasoning_and_a_call(qwen35_smollm: Engine,
                                                                            smollm_path: Path) -> None:
    close = first_token(smollm_path, "</think>")
    ask = PromptRequest(
        SamplingParams(temperature=0, max_tokens=80, logit_bias=((close, 2.0),)),
        messages=({"role": "user", "content": "What is the weather in Paris?"},), strict=True,
        tools=ToolRequest((WEATHER,), ToolChoice("required"), parallel=False), thinking=True)
    prepared = qwen35_smollm.prepare(ask)
    assert prepared.reply_format.family == "hermes-xml" and prepared.reply_format.thinking_open
    chunks = list(qwen35_smollm.stream(prepared))
    reasoning = "".join(c.reasoning for c in chunks)
    calls = [call for c in chunks for call in c.tool_calls]
    assert reasoning.strip() and "</think>" not in reasoning
    assert [call.name for call in calls] == ["get_weather"] and isinstance(calls[0].arguments["city"], str)
    assert not "".join(c.text for c in chunks).strip(), "no markup or thinking leaks into the answer"
    assert chunks[-1].stats is not None and chunks[-1].stats.finish_reason == "tool_calls"
