"""A reply's thinking saved beside its answer (migration m003): kept, updated, exported and imported, absent
from old chats."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from webui.history import HistoryStore, ImportedChat, ImportedMessage, m001_initial, m002_chat_collections
from webui.services.conversations import ConversationService


def test_a_database_from_before_m003_opens_with_its_replies_unthinking_and_keeps_thinking_from_then_on(
        tmp_path: Path) -> None:
    db_path = tmp_path / "history.sqlite3"
    with closing(sqlite3.connect(db_path)) as db:  # the schema as version 2 left it, with one reply
        m001_initial(db)
        m002_chat_collections(db)
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        db.executemany("INSERT INTO _migrations VALUES (?, '2026-01-01T00:00:00+00:00')",
                       [("m001_initial",), ("m002_chat_collections",)])
        db.execute("INSERT INTO conversations (id, owner, title, model, created_at, updated_at, activity)"
                   " VALUES ('c1', 'alice', 'Old chat', NULL, '2026-01-01T00:00:00+00:00',"
                   " '2026-01-01T00:00:00+00:00', 1)")
        db.execute("INSERT INTO messages (conversation_id, role, content, created_at)"
                   " VALUES ('c1', 'assistant', 'Old answer', '2026-01-01T00:00:00+00:00')")
        db.commit()
    store = HistoryStore(db_path)
    [old] = store.messages("alice", "c1")
    assert (old.content, old.reasoning) == ("Old answer", "")

    question = store.append("alice", "c1", "user", "Why is the sky blue?")
    reply = store.append_reply("alice", "c1", question.id, "", reasoning="Rayleigh…", meta={"incomplete": True})
    store.update_message("alice", "c1", reply.id, "Scattering.", reasoning="Rayleigh scattering, short waves.",
                         meta={"thinking_s": 1.5})
    saved = HistoryStore(db_path).messages("alice", "c1")[-1]
    assert (saved.content, saved.reasoning, saved.meta) == (
        "Scattering.", "Rayleigh scattering, short waves.", {"thinking_s": 1.5})


def test_imported_replies_keep_their_thinking(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    [chat] = store.import_chats("bob", [ImportedChat("Thought through", (
        ImportedMessage("user", "2+2?"), ImportedMessage("assistant", "4", reasoning="two and two")))])
    assert [(m.content, m.reasoning) for m in store.messages("bob", chat.id)] == [("2+2?", ""), ("4", "two and two")]


def test_a_replys_thinking_is_exported_in_json_and_markdown_and_comes_back_on_import(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    service = ConversationService(store, tmp_path / "exports")
    chat = store.create("alice", "Sums")
    question = store.append("alice", chat.id, "user", "2+2?")
    store.append_reply("alice", chat.id, question.id, "4", reasoning="Two and two.\n\nThat is four.",
                       meta={"thinking_s": 4.25})
    markdown, exported = service.export_files("alice", chat.id)

    text = markdown.read_text(encoding="utf-8")
    assert "<details><summary>Thinking (4.2 s)</summary>\n\nTwo and two.\n\nThat is four.\n\n</details>\n\n4\n" in text
    assert json.loads(exported.read_text(encoding="utf-8"))["messages"][1]["reasoning"] == (
        "Two and two.\n\nThat is four.")
    copy = service.import_file("bob", exported).conversations[0]
    reply = store.messages("bob", copy.id)[-1]
    assert (reply.content, reply.reasoning, reply.meta["thinking_s"]) == ("4", "Two and two.\n\nThat is four.", 4.25)
