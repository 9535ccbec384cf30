"""ChatService with the real engine: waits during a model switch, size limits, replies saved as they stream."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from webui.engine import Engine, LoadSettings, SamplingParams
from webui.history import HistoryStore
from webui.services import ChatService
from webui.services.admission import MAX_MESSAGE_CHARS, MessageTooLong


def test_a_reply_asked_for_during_a_model_switch_says_so_then_comes_from_the_new_model(
    smollm_path: Path, gemma_path: Path, tmp_path: Path
) -> None:
    engine = Engine()
    settings = LoadSettings(n_ctx=512, n_threads=2)
    engine.load(smollm_path, settings)
    chat = ChatService(engine, HistoryStore(tmp_path / "history.sqlite3"))
    stop_running_reply = threading.Event()
    running_reply = engine.stream_chat([{"role": "user", "content": "Write a very long story."}],
                                       SamplingParams(max_tokens=400), cancel=stop_running_reply)
    next(running_reply)  # a reply is streaming: the engine is busy
    switch = threading.Thread(target=engine.load, args=(gemma_path, settings))
    switch.start()
    deadline = time.monotonic() + 10
    while engine.switching_to != gemma_path.name and time.monotonic() < deadline:
        time.sleep(0.01)

    updates = chat.stream("waiting-user", [{"role": "user", "content": "Hi"}], system_prompt="",
                          sampling=SamplingParams(max_tokens=4, temperature=0))
    first = next(updates)
    assert first.notice and f"switched to {gemma_path.name}" in first.notice

    stop_running_reply.set()
    list(running_reply)
    rest = list(updates)
    switch.join(60)
    assert engine.info is not None and engine.info.path == gemma_path
    assert engine.switching_to is None
    assert rest[-1].done and rest[-1].error is None and rest[-1].stats is not None
    engine.unload()


# --- message size, replies saved as they stream, replies to cleared chats, edits -------------------

LONG_REPLY = SamplingParams(max_tokens=300, temperature=0.8, seed=3)


@pytest.fixture(scope="module")
def smollm_engine(smollm_path: Path):
    engine = Engine()
    engine.load(smollm_path, LoadSettings(n_ctx=1024, n_threads=2))
    yield engine
    engine.unload()


@pytest.fixture()
def chat(smollm_engine: Engine, tmp_path: Path) -> ChatService:
    return ChatService(smollm_engine, HistoryStore(tmp_path / "history.sqlite3"))


def test_a_20_mb_message_is_refused_at_once_and_nothing_is_saved(chat: ChatService) -> None:
    huge = "word " * 4_000_000  # 20 MB
    started = time.perf_counter()
    with pytest.raises(MessageTooLong, match="the limit is 100,000") as refused:
        chat.add_user_message("alice", None, huge)
    [api_reply] = list(chat.stream("api", [{"role": "user", "content": huge}], system_prompt="",
                                   sampling=SamplingParams(max_tokens=4)))
    elapsed = time.perf_counter() - started
    assert "20,000,000 characters" in str(refused.value) and "Documents tab" in str(refused.value)
    assert api_reply.done and api_reply.error == str(refused.value)
    assert elapsed < 1.0, f"refused in {elapsed:.2f}s: it must not reach the tokenizer"
    assert chat.conversations("alice") == []
    chat.add_user_message("alice", None, "x" * MAX_MESSAGE_CHARS)  # the limit itself is accepted


def test_a_reply_is_saved_marked_incomplete_while_it_streams_then_whole(chat: ChatService) -> None:
    conversation = chat.add_user_message("alice", None, "Write a long story about a lighthouse.")
    replies = chat.reply_in("alice", "s1", conversation, system_prompt="", sampling=LONG_REPLY)
    first = next(u for u in replies if u.text)
    [_, saved] = chat.messages("alice", conversation)
    assert saved.role == "assistant" and saved.meta["incomplete"] is True
    assert first.text.startswith(saved.content) and saved.content
    final = list(replies)[-1]
    [_, done] = chat.messages("alice", conversation)
    assert final.done and done.id == saved.id and done.content == final.text
    assert "incomplete" not in done.meta and done.meta["stats"]["completion_tokens"] > 0


@pytest.mark.parametrize("action", ["clear", "delete"])
def test_a_reply_to_a_chat_cleared_or_deleted_meanwhile_stops_and_leaves_no_orphan(
    chat: ChatService, action: str
) -> None:
    conversation = chat.add_user_message("alice", None, "Write a very long story about dragons.")
    replies = chat.reply_in("alice", "s2", conversation, system_prompt="", sampling=LONG_REPLY)
    next(u for u in replies if u.text)
    getattr(chat, action)("alice", conversation)
    rest = list(replies)  # no exception: the reply is dropped quietly
    assert rest and rest[-1].done and rest[-1].dropped and rest[-1].error is None
    if action == "clear":
        assert chat.messages("alice", conversation) == []
        chat.add_user_message("alice", conversation, "Hello again.")
        assert [m.role for m in chat.messages("alice", conversation)] == ["user"]
    else:
        assert chat.conversations("alice") == []


def test_editing_a_question_drops_the_old_reply_and_a_new_one_answers_it(chat: ChatService) -> None:
    conversation = chat.add_user_message("alice", None, "What is the capital of Italy?")
    short = SamplingParams(max_tokens=16, temperature=0.0, seed=1)
    list(chat.reply_in("alice", "s3", conversation, system_prompt="", sampling=short))
    chat.add_user_message("alice", conversation, "And of Spain?")
    list(chat.reply_in("alice", "s3", conversation, system_prompt="", sampling=short))
    assert len(chat.messages("alice", conversation)) == 4
    chat.edit_user_message("alice", conversation, 0, "What is the capital of France? Answer in one word.")
    assert [(m.role, m.content) for m in chat.messages("alice", conversation)] == [
        ("user", "What is the capital of France? Answer in one word.")]
    final = list(chat.reply_in("alice", "s3", conversation, system_prompt="", sampling=short))[-1]
    assert "Paris" in final.text and chat.messages("alice", conversation)[-1].content == final.text
    with pytest.raises(ValueError, match="Only your own messages"):
        chat.edit_user_message("alice", conversation, 1, "I said Rome.")
    with pytest.raises(MessageTooLong):
        chat.edit_user_message("alice", conversation, 0, "x" * (MAX_MESSAGE_CHARS + 1))
