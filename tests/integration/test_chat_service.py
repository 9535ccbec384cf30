"""ChatService with the real engine: users who ask during a model switch are told why they wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from webui.engine import Engine, LoadSettings, SamplingParams
from webui.history import HistoryStore
from webui.services import ChatService


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
