"""A reasoning reply through the real engine and ChatService: SmolLM2 made to think by a chat template whose
generation prompt opens ``<think>`` (and reads ``enable_thinking``), and a grammar that closes it.

The thinking is split from the answer, saved with it, kept out of the next turn's prompt; "Think" off
asks the template not to think.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from webui.engine import Engine, LoadSettings, SamplingParams
from webui.history import HistoryStore
from webui.services import ChatService

# ChatML whose assistant turn starts inside <think>, unless the page turns thinking off (Qwen 3's way).
THINKING_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)
THINK_THEN_ANSWER = 'root ::= [a-z ]{12,40} "</think>" [A-Za-z ]{4,40}'
ANSWER_ONLY = "root ::= [A-Za-z ]{4,40}"


@pytest.fixture(scope="module")
def thinking_engine(smollm_path: Path):
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=1024, n_threads=2, chat_format=THINKING_CHATML))
    yield engine
    engine.unload()


def test_the_thinking_is_saved_apart_from_the_answer_and_never_sent_back(thinking_engine: Engine,
                                                                         tmp_path: Path) -> None:
    chat = ChatService(thinking_engine, HistoryStore(tmp_path / "history.sqlite3"))
    assert chat.thinking_switch()
    current = chat.add_user_message("alice", None, "What is two plus two?")
    sampling = SamplingParams(max_tokens=80, temperature=0, grammar=THINK_THEN_ANSWER)
    updates = list(chat.reply_in("alice", "page", current, system_prompt="", sampling=sampling))

    final = updates[-1]
    assert final.done and final.error is None
    assert len(final.reasoning.strip()) >= 8 and final.text.strip()
    assert "think>" not in final.text and "think>" not in final.reasoning
    assert final.thinking_s is not None and final.thinking_s >= 0
    assert any(update.reasoning and not update.text for update in updates[:-1]), "the thinking streams first"
    reply = chat.messages("alice", current)[-1]
    assert (reply.content, reply.reasoning) == (final.text, final.reasoning)
    assert reply.meta["thinking_s"] == final.thinking_s and "incomplete" not in reply.meta

    prompt = chat.exact_prompt("alice", current, "", "And three plus three?")
    assert final.text.strip() in prompt and final.reasoning.strip() not in prompt
    assert prompt.endswith("<|im_start|>assistant\n<think>\n")


def test_think_off_asks_the_template_not_to_think(thinking_engine: Engine, tmp_path: Path) -> None:
    chat = ChatService(thinking_engine, HistoryStore(tmp_path / "history.sqlite3"))
    current = chat.add_user_message("alice", None, "Say hi.")
    sampling = SamplingParams(max_tokens=40, temperature=0, grammar=ANSWER_ONLY)
    final = list(chat.reply_in("alice", "page", current, system_prompt="", sampling=sampling, thinking=False))[-1]
    assert final.error is None and final.text.strip() and final.reasoning == "" and final.thinking_s is None
    assert chat.messages("alice", current)[-1].reasoning == ""


def test_a_template_without_the_switch_offers_none(smollm_path: Path, tmp_path: Path) -> None:
    engine = Engine()
    chat = ChatService(engine, HistoryStore(tmp_path / "history.sqlite3"))
    assert not chat.thinking_switch()  # no model loaded
    engine.load(smollm_path, LoadSettings(n_ctx=512, n_threads=2))
    try:
        assert not chat.thinking_switch()  # SmolLM2's own ChatML has no enable_thinking
    finally:
        engine.unload()
