"""Regenerate and edit keep what they replace as versions (migration m004): switched between, continued
from, exported and imported; chats saved before have none."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from webui.history import (
    HistoryStore,
    MessageNotFound,
    m001_initial,
    m002_chat_collections,
    m003_message_reasoning,
)
from webui.services.conversations import ConversationService


def shown(store: HistoryStore, chat: str) -> list[tuple[str, tuple[int, int] | None]]:
    return [(m.content, m.version) for m in store.messages("alice", chat)]


def regenerate(store: HistoryStore, chat: str, question_id: int, answer: str) -> None:
    store.truncate_after("alice", chat, question_id, keep_version=True)
    store.append_reply("alice", chat, question_id, answer)


def test_a_database_from_before_m004_opens_without_versions_and_keeps_them_from_then_on(tmp_path: Path) -> None:
    db_path = tmp_path / "history.sqlite3"
    with closing(sqlite3.connect(db_path)) as db:  # the schema as version 3 left it, with one exchange
        for migration in (m001_initial, m002_chat_collections, m003_message_reasoning):
            migration(db)
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        db.executemany("INSERT INTO _migrations VALUES (?, '2026-01-01T00:00:00+00:00')",
                       [("m001_initial",), ("m002_chat_collections",), ("m003_message_reasoning",)])
        db.execute("INSERT INTO conversations (id, owner, title, model, created_at, updated_at, activity)"
                   " VALUES ('c1', 'alice', 'Old chat', NULL, '2026-01-01T00:00:00+00:00',"
                   " '2026-01-01T00:00:00+00:00', 1)")
        db.executemany("INSERT INTO messages (conversation_id, role, content, created_at)"
                       " VALUES ('c1', ?, ?, '2026-01-01T00:00:00+00:00')",
                       [("user", "Capital of Italy?"), ("assistant", "Rome.")])
        db.commit()
    store = HistoryStore(db_path)
    assert shown(store, "c1") == [("Capital of Italy?", None), ("Rome.", None)]
    assert not store.get("alice", "c1").renamed

    question = store.messages("alice", "c1")[0]
    regenerate(store, "c1", question.id, "Rome, since 1871.")
    assert shown(HistoryStore(db_path), "c1") == [("Capital of Italy?", None), ("Rome, since 1871.", (2, 2))]


def test_switching_back_to_the_first_reply_shows_it_and_the_chat_continues_from_it(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    chat = store.create("alice", "Capitals").id
    question = store.append("alice", chat, "user", "Capital of France?")
    store.append_reply("alice", chat, question.id, "Paris.")
    regenerate(store, chat, question.id, "It is Paris.")
    assert shown(store, chat) == [("Capital of France?", None), ("It is Paris.", (2, 2))]

    second = store.messages("alice", chat)[1]
    store.switch_version("alice", chat, second.id, 1)
    assert shown(store, chat) == [("Capital of France?", None), ("Paris.", (1, 2))]

    follow_up = store.append("alice", chat, "user", "And of Spain?")  # continues from the version shown
    store.append_reply("alice", chat, follow_up.id, "Madrid.")
    assert [m.content for m in store.messages("alice", chat)] == [
        "Capital of France?", "Paris.", "And of Spain?", "Madrid."]

    first = store.messages("alice", chat)[1]
    store.switch_version("alice", chat, first.id, 2)  # the follow-up belongs to version 1 and goes with it
    assert shown(store, chat) == [("Capital of France?", None), ("It is Paris.", (2, 2))]
    store.switch_version("alice", chat, store.messages("alice", chat)[1].id, 1)
    assert [m.content for m in store.messages("alice", chat)] == [
        "Capital of France?", "Paris.", "And of Spain?", "Madrid."]

    with pytest.raises(MessageNotFound):
        store.switch_version("alice", chat, store.messages("alice", chat)[1].id, 3)


def test_an_edit_keeps_the_earlier_branch_with_its_own_versions(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    chat = store.create("alice", "Capitals").id
    question = store.append("alice", chat, "user", "Capital of France?")
    store.append_reply("alice", chat, question.id, "Paris.")
    regenerate(store, chat, question.id, "It is Paris.")  # a nested version, inside the branch edited away
    store.edit_and_truncate("alice", chat, question.id, "Capital of Peru?", keep_version=True)
    store.append_reply("alice", chat, question.id, "Lima.")
    assert shown(store, chat) == [("Capital of Peru?", (2, 2)), ("Lima.", None)]

    store.switch_version("alice", chat, question.id, 1)
    assert shown(store, chat) == [("Capital of France?", (1, 2)), ("It is Paris.", (2, 2))]


def test_versions_are_exported_in_json_and_come_back_on_import(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    service = ConversationService(store, tmp_path / "exports")
    chat = store.create("alice", "Capitals").id
    question = store.append("alice", chat, "user", "Capital of France?")
    store.append_reply("alice", chat, question.id, "Paris.")
    regenerate(store, chat, question.id, "It is Paris.")
    store.edit_and_truncate("alice", chat, question.id, "Capital of Peru?", keep_version=True)
    store.append_reply("alice", chat, question.id, "Lima.")
    _, exported = service.export_files("alice", chat)

    document = json.loads(exported.read_text(encoding="utf-8"))
    [earlier] = document["versions"]["others"]
    assert [m["content"] for m in earlier] == ["Capital of France?", "It is Paris."]
    assert [m["content"] for m in earlier[0]["versions"]["others"][0]] == ["Paris."]

    imported = service.import_text("alice", exported.read_text(encoding="utf-8")).conversations[0]
    assert shown(store, imported.id) == [("Capital of Peru?", (2, 2)), ("Lima.", None)]
    store.switch_version("alice", imported.id, store.messages("alice", imported.id)[0].id, 1)
    assert shown(store, imported.id) == [("Capital of France?", (1, 2)), ("It is Paris.", (2, 2))]


def test_clearing_a_chat_forgets_its_versions(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    chat = store.create("alice", "Capitals").id
    question = store.append("alice", chat, "user", "Capital of France?")
    store.edit_and_truncate("alice", chat, question.id, "Capital of Peru?", keep_version=True)
    store.clear("alice", chat)
    store.append("alice", chat, "user", "Hello")
    assert shown(store, chat) == [("Hello", None)]
