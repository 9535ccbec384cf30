"""The Models tab's Capabilities column, read from real chat templates (tests/fixtures/chat_templates)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.unit.ui.fake_models import local_model
from webui.ui.models import LOCAL_HEADERS, local_rows

TEMPLATES = Path(__file__).parents[2] / "fixtures" / "chat_templates"


@pytest.mark.parametrize(("template", "shown"), [
    ("NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja", "tools: hermes · thinking: no"),
    ("Qwen-Qwen3-0.6B.jinja", "tools: hermes · thinking: switchable"),
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", "tools: llama3 · thinking: no"),
    ("google-gemma-2-2b-it.jinja", "tools: generic JSON · thinking: no"),
    ("openai-gpt-oss-120b.jinja", "tools: gpt-oss · thinking: switchable"),
])
def test_each_local_model_shows_what_its_template_can_do(template: str, shown: str) -> None:
    model = dataclasses.replace(local_model("m.gguf"), chat_template=(TEMPLATES / template).read_text())
    row = local_rows([model])[0]
    assert row[LOCAL_HEADERS.index("Capabilities")] == shown


def test_a_model_without_a_template_gets_the_generic_fallback_and_a_damaged_one_none() -> None:
    plain, damaged = local_model("plain.gguf"), dataclasses.replace(local_model("bad.gguf"), error="not a GGUF file")
    rows = local_rows([plain, damaged])
    column = LOCAL_HEADERS.index("Capabilities")
    assert rows[0][column] == "tools: generic JSON · thinking: no"
    assert rows[1][column] == "" and rows[1][-1] == "not a GGUF file"
    assert all(len(row) == len(LOCAL_HEADERS) for row in rows)
