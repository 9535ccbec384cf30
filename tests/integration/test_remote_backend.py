"""Remote inference (--backend): a real `python -m llama_cpp.server` with SmolLM2, driven through the services."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.app_server import free_port
from tests.support.hardware_fakes import hardware_with
from tests.support.model_servers import start_llama_server
from webui.auth import User
from webui.config import Settings
from webui.engine import SamplingParams
from webui.engine.remote import RemoteBackend
from webui.engine.router import EngineRouter
from webui.history import HistoryStore
from webui.services import LOCAL_USER, ChatService, NotAuthorized
from webui.services.models import ModelService
from webui.services.notebook import NotebookService

pytestmark = pytest.mark.slow
SHORT = SamplingParams(temperature=0.0, max_tokens=8, seed=1)
OWNER = "alice"


@pytest.fixture(scope="module")
def server_url(smollm_path: Path) -> Iterator[str]:
    port = free_port()
    process = start_llama_server(smollm_path, port)
    yield f"http://127.0.0.1:{port}"
    process.kill()
    process.wait(timeout=10)


def remote_router(url: str) -> EngineRouter:
    """A front-end-only router (no local model) using the server's one model."""
    router = EngineRouter(None, [RemoteBackend(url)])
    [model] = router.remote_models()
    router.use_remote(model)
    return router


def test_remote_models_are_listed_with_where_they_run_and_picked_by_an_admin(server_url: str, tmp_path: Path) -> None:
    router = EngineRouter(None, [RemoteBackend(server_url)])
    models = ModelService(Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models"), hardware_with(), router)
    name = f"SmolLM2-135M-Instruct.Q4_1.gguf @ {server_url.removeprefix('http://')}"

    assert models.names() == [name]
    [entry] = models.entries()
    assert (entry.where, entry.loaded, entry.context_length) == (server_url.removeprefix("http://"), False, 2048)
    assert models.loaded() is None
    with pytest.raises(NotAuthorized):
        models.load(User(name="bob", is_admin=False), name)

    picked = models.load(LOCAL_USER, name)

    assert picked.file == name and models.loaded().file == name and models.entries()[0].loaded
    assert "The server formats the prompt" in (picked.chat_format_note or "")


def test_a_chat_reply_streams_from_the_server_with_speed_measured_here(server_url: str, tmp_path: Path) -> None:
    router = remote_router(server_url)
    chat = ChatService(router, HistoryStore(tmp_path / "history.sqlite3"))
    conversation = chat.add_user_message(OWNER, None, "Say hello to Ada.")

    updates = list(chat.reply_in(OWNER, "s1", conversation, system_prompt="Be brief.", sampling=SHORT))

    final = updates[-1]
    assert final.done and final.error is None and final.text.strip()
    assert final.stats is not None and 0 < final.stats.completion_tokens <= SHORT.max_tokens
    assert 0 < final.stats.ttft_s <= final.stats.total_s and final.stats.finish_reason == "length"
    [_, reply] = chat.messages(OWNER, conversation)
    assert reply.content == final.text
    shown = chat.exact_prompt(OWNER, conversation, "Be brief.")
    assert shown.startswith("[The server formats the prompt") and "user: Say hello to Ada." in shown


def test_stop_closes_the_stream_and_the_notebook_continues_text_remotely(server_url: str) -> None:
    router = remote_router(server_url)
    cancel = threading.Event()
    chunks = []
    for chunk in router.stream_chat([{"role": "user", "content": "Count from one to fifty in words."}],
                                    SamplingParams(temperature=0.0, max_tokens=200), cancel=cancel):
        chunks.append(chunk)
        if chunk.text:
            cancel.set()
    stats = chunks[-1].stats
    assert stats is not None and stats.stopped_by_user and stats.finish_reason == "cancelled"
    assert stats.completion_tokens < 200

    updates = list(NotebookService(router).complete("s1", "The capital of France is", SHORT))
    assert updates[-1].done and updates[-1].text.strip()


def test_a_server_killed_mid_reply_keeps_the_partial_reply_and_says_so(smollm_path: Path, tmp_path: Path) -> None:
    port = free_port()
    process = start_llama_server(smollm_path, port)
    try:
        router = remote_router(f"http://127.0.0.1:{port}")
        chat = ChatService(router, HistoryStore(tmp_path / "history.sqlite3"))
        conversation = chat.add_user_message(OWNER, None, "Tell me a long story about a lighthouse keeper.")
        updates = []
        for update in chat.reply_in(OWNER, "s1", conversation, system_prompt="",
                                    sampling=SamplingParams(temperature=0.0, max_tokens=400)):
            updates.append(update)
            if update.text.strip() and process.poll() is None:
                process.kill()
    finally:
        process.kill()
        process.wait(timeout=10)

    final = updates[-1]
    partial = next(u.text for u in updates if u.text.strip())
    assert final.done and final.error is not None
    assert f"The model server at 127.0.0.1:{port} stopped answering after part of the reply" in final.error
    assert final.text.startswith(partial.strip()[:5])
    [_, reply] = chat.messages(OWNER, conversation)
    assert reply.content == final.text
