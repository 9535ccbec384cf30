"""A chat exported as Markdown and JSON and imported back (also from Open WebUI and ChatGPT), on a real SQLite store."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from webui.history import HistoryStore
from webui.services.conversations import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_MESSAGES,
    ConversationService,
    ImportRefused,
)

STATS = {"prompt_tokens": 30, "completion_tokens": 12, "tokens_per_s": 9.5, "ttft_ms": 120.0, "stopped_by_user": False}
SOURCES = [{"number": 1, "file_name": "guide.pdf", "citation": "guide.pdf, page 4", "text": "Open 9-19."}]


@pytest.fixture()
def store(data_dir: Path) -> HistoryStore:
    return HistoryStore(data_dir / "history.sqlite3")


@pytest.fixture()
def service(store: HistoryStore) -> ConversationService:
    return ConversationService(store)


def rome_trip(store: HistoryStore) -> str:
    chat = store.create("alice", "Trip to Rome", model="smollm.gguf")
    store.append("alice", chat.id, "user", "When does the Colosseum open?")
    store.append("alice", chat.id, "assistant", "From 9 to 19 [1].", meta={"stats": STATS, "sources": SOURCES})
    store.append("alice", chat.id, "user", "And **on Sundays**?\n\n```\ncode stays\n```")
    store.append("alice", chat.id, "assistant", "The same, I th", meta={"incomplete": True})
    return chat.id


def stored(store: HistoryStore, owner: str, chat_id: str) -> list[tuple]:
    return [(m.role, m.content, m.created_at, m.meta) for m in store.messages(owner, chat_id)]


def test_json_export_then_import_gives_the_same_chat_as_a_new_one(
    store: HistoryStore, service: ConversationService
) -> None:
    original = rome_trip(store)
    markdown, exported = service.export_files("alice", original, system_prompt="You are a Roman guide.")
    assert (markdown.name, exported.name) == ("trip-to-rome.md", "trip-to-rome.json")

    result = service.import_file("bob", exported)  # another user may import what alice shared
    copy = result.conversations[0]
    assert (copy.title, copy.model, copy.owner) == ("Trip to Rome", "smollm.gguf", "bob")
    assert copy.id != original and copy.created_at == store.get("alice", original).created_at
    assert stored(store, "bob", copy.id) == stored(store, "alice", original)
    assert (result.message_count, result.source, result.system_prompt) == (4, "this app's export",
                                                                           "You are a Roman guide.")
    assert len(store.list("alice")) == 1  # the original is untouched


def test_the_markdown_export_reads_as_the_chat(store: HistoryStore, service: ConversationService) -> None:
    markdown, _ = service.export_files("alice", rome_trip(store), system_prompt="Be brief.")
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("# Trip to Rome\n") and "model smollm.gguf" in text
    assert "## System prompt\n\n> Be brief." in text
    assert text.count("### You · ") == 2 and text.count("### Assistant · ") == 2
    assert "And **on Sundays**?\n\n```\ncode stays\n```" in text
    assert "Sources: [1] guide.pdf, page 4" in text and "unfinished reply" in text


def test_a_new_export_replaces_the_users_previous_files(store: HistoryStore, service: ConversationService) -> None:
    chat = rome_trip(store)
    first = service.export_files("alice", chat)
    second = service.export_files("alice", chat)
    assert all(path.exists() for path in second) and not any(path.exists() for path in first)


def refused(service: ConversationService, text: str) -> str:
    with pytest.raises(ImportRefused) as caught:
        service.import_text("alice", text)
    return str(caught.value)


def own_export(**changes: object) -> dict:
    document = {"format": "local-llm-webui.chat", "version": 1, "title": "T", "system_prompt": "",
                "messages": [{"role": "user", "content": "Hi", "created_at": "2024-05-01T09:30:00+00:00", "meta": {}}]}
    return {**document, **changes}


def test_a_file_that_is_not_an_export_is_refused_with_a_reason_and_nothing_is_saved(
    store: HistoryStore, service: ConversationService, tmp_path: Path
) -> None:
    assert "not valid JSON" in refused(service, "{not json")
    assert "not a chat export this app can read" in refused(service, '{"name": "a preset"}')
    assert "not a chat export this app can read" in refused(service, "[1, 2]")
    assert "not this app's chat export" in refused(service, json.dumps(own_export(format="other.app")))
    assert "version 2; this app reads version 1" in refused(service, json.dumps(own_export(version=2)))
    bad_role = own_export(messages=[{"role": "user", "content": "ok"}, {"role": "tool", "content": "x"}])
    assert "message 2, role: Input should be 'system', 'user' or 'assistant'" in refused(service, json.dumps(bad_role))
    bad_stats = own_export(messages=[{"role": "assistant", "content": "x",
                                      "meta": {"stats": {"completion_tokens": "many"}}}])
    assert "message 1, meta, stats" in refused(service, json.dumps(bad_stats))
    assert "unknown" not in refused(service, json.dumps(own_export(extra_field=1)))
    assert "Extra inputs are not permitted" in refused(service, json.dumps(own_export(extra_field=1)))
    assert "not valid JSON" in refused(service, "[" * 100_000)  # deeper than the parser goes

    too_many = own_export(messages=[{"role": "user", "content": "x"}] * (MAX_IMPORT_MESSAGES + 1))
    assert f"up to {MAX_IMPORT_MESSAGES:,}" in refused(service, json.dumps(too_many))
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_IMPORT_BYTES + 1))
    with pytest.raises(ImportRefused, match="a chat import can be up to 20 MB"):
        service.import_file("alice", big)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"title": "café"}'.encode("latin-1"))
    with pytest.raises(ImportRefused, match="not UTF-8"):
        service.import_file("alice", latin)
    assert store.list("alice") == []


def test_an_open_webui_export_imports_each_chat_along_its_shown_branch(
    store: HistoryStore, service: ConversationService
) -> None:
    export = [
        {"title": "Linear", "created_at": 1714555800, "updated_at": 1714555900, "chat": {
            "models": ["llama3:8b"],
            "messages": [{"role": "user", "content": "Hi there", "timestamp": 1714555800},
                         {"role": "assistant", "content": "Hello!", "timestamp": 1714555805}]}},
        {"title": "Tree only", "updated_at": 1714556000, "chat": {"history": {"currentId": "c", "messages": {
            "a": {"id": "a", "parentId": None, "role": "user", "content": "Question"},
            "b": {"id": "b", "parentId": "a", "role": "assistant", "content": "Old answer"},
            "c": {"id": "c", "parentId": "a", "role": "assistant", "content": [{"type": "text", "text": "New answer"}]},
        }}}},
        {"title": "Empty", "chat": {"messages": []}},
    ]
    result = service.import_text("alice", json.dumps(export))
    assert (len(result.conversations), result.skipped, result.source) == (2, 1, "an Open WebUI export")
    assert [c.title for c in store.list("alice")] == ["Tree only", "Linear"]  # the most recent on top
    linear, tree = sorted(result.conversations, key=lambda c: c.title)
    assert [(m.role, m.content) for m in store.messages("alice", tree.id)] == [("user", "Question"),
                                                                              ("assistant", "New answer")]
    first = store.messages("alice", linear.id)[0]
    assert first.created_at == datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc) and linear.model == "llama3:8b"


def test_a_chatgpt_export_imports_the_kept_answers_and_leaves_out_tools_and_hidden_text(
    store: HistoryStore, service: ConversationService
) -> None:
    def node(parent, role, parts, content_type="text", **metadata):
        return {"parent": parent, "message": {"author": {"role": role}, "create_time": 1714555800.5,
                                              "content": {"content_type": content_type, "parts": parts},
                                              "metadata": metadata}}
    mapping = {
        "root": {"parent": None, "message": None},
        "sys": node("root", "system", [""], is_visually_hidden_from_conversation=True),
        "q": node("sys", "user", ["What is 2+2?"]),
        "tool": node("q", "tool", ["python output"], content_type="execution_output"),
        "old": node("tool", "assistant", ["5"]),
        "new": node("tool", "assistant", ["4"], model_slug="gpt-4o"),
    }
    export = [{"title": "Math", "create_time": 1714555800.0, "update_time": 1714555900.0, "mapping": mapping,
               "current_node": "new"}]
    chat = service.import_text("alice", json.dumps(export)).conversations[0]
    assert (chat.title, chat.model) == ("Math", "gpt-4o")
    assert [(m.role, m.content) for m in store.messages("alice", chat.id)] == [("user", "What is 2+2?"),
                                                                              ("assistant", "4")]
    broken = [{"title": "Fine", "mapping": mapping, "current_node": "new"}, {"title": "Broken", "mapping": {
        "x": {"parent": None, "message": {"author": "not a dict"}}}, "current_node": "x"}]
    assert "Chat 2 of a ChatGPT export cannot be read" in refused(service, json.dumps(broken))
    assert len(store.list("alice")) == 1  # the refused file's good first chat was not saved either
