"""Searching the chats and importing them, against a real SQLite history (with and without FTS5)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

import webui.history
from webui.history import HistoryStore, ImportedChat, ImportedMessage, snippet


@pytest.fixture()
def store(data_dir: Path) -> HistoryStore:
    return HistoryStore(data_dir / "history.sqlite3")


def rome_trip(store: HistoryStore, owner: str = "alice") -> str:
    conversation = store.create(owner, "Trip to Rome")
    store.append(owner, conversation.id, "user", "Where should we eat tonight?")
    store.append(owner, conversation.id, "assistant", "Try the trattorias near the Pantheon.")
    store.append(owner, conversation.id, "user", "And when does the Colosseum open on Sundays?")
    return conversation.id


def found(store: HistoryStore, text: str, owner: str = "alice") -> list[tuple[str, str]]:
    return [(hit.conversation.title, hit.snippet) for hit in store.search(owner, text)]


def test_a_word_of_the_third_message_finds_the_chat_with_the_text_around_it(store: HistoryStore) -> None:
    rome_trip(store)
    store.create("alice", "Pasta recipes")
    assert found(store, "colosseum") == [("Trip to Rome", "And when does the Colosseum open on Sundays?")]
    assert found(store, "COLOSS") == found(store, "colosseum")  # any part of a word, any case
    assert found(store, "rome") == [("Trip to Rome", "")]  # only the title holds it
    assert found(store, "zebra") == []
    assert found(store, "   ") == []


def test_every_word_must_be_in_the_title_or_a_message(store: HistoryStore) -> None:
    rome_trip(store)
    other = store.create("alice", "Paris")
    store.append("alice", other.id, "user", "Where should we eat near the Louvre?")
    assert [title for title, _ in found(store, "eat")] == ["Paris", "Trip to Rome"]  # most recent first
    assert found(store, "rome eat") == [("Trip to Rome", "Where should we eat tonight?")]
    assert found(store, "louvre eat") == [("Paris", "Where should we eat near the Louvre?")]
    assert found(store, "louvre pantheon") == []


def test_another_users_chats_and_hidden_system_messages_are_never_found(store: HistoryStore) -> None:
    rome_trip(store, owner="bob")
    mine = store.create("alice", "Mine")
    store.append("alice", mine.id, "system", "Secret instructions about the Colosseum.")
    assert found(store, "colosseum") == []
    assert found(store, "colosseum", owner="bob")[0][0] == "Trip to Rome"


def test_the_results_follow_edits_clears_and_deletes(store: HistoryStore) -> None:
    chat = rome_trip(store)
    question = store.messages("alice", chat)[0]
    store.edit_and_truncate("alice", chat, question.id, "Which gelato shop is best?")
    assert found(store, "colosseum") == [] and found(store, "pantheon") == []
    assert found(store, "gelato") == [("Trip to Rome", "Which gelato shop is best?")]
    reply = store.append("alice", chat, "assistant", "Giolitti, near the Senate.")
    store.update_message("alice", chat, reply.id, "Fatamorgana, in Trastevere.")
    assert found(store, "giolitti") == [] and found(store, "trastevere")[0][1] == "Fatamorgana, in Trastevere."
    store.clear("alice", chat)
    assert found(store, "gelato") == []
    store.append("alice", chat, "user", "Gelato again")
    store.delete("alice", chat)
    assert found(store, "gelato") == []


def test_short_words_and_quotes_are_searched_as_typed(store: HistoryStore) -> None:
    chat = store.create("alice", "Quotes")
    store.append("alice", chat.id, "user", 'He said "ok" to AI and C++')
    assert found(store, '"ok"')[0][0] == "Quotes"
    assert found(store, "ai c++")[0][0] == "Quotes"
    assert found(store, "x") == []


def test_without_fts5_search_scans_and_the_index_is_rebuilt_when_it_returns(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = data_dir / "history.sqlite3"
    rome_trip(HistoryStore(path))
    monkeypatch.setattr(webui.history, "trigram_search_available", lambda db: False)
    without = HistoryStore(path)  # as a Python whose SQLite lacks FTS5 opens the same file
    later = without.create("alice", "Venice")
    without.append("alice", later.id, "user", "Gondola prices?")  # written while the index is not kept
    assert [title for title, _ in found(without, "gondola")] == ["Venice"]
    assert [title for title, _ in found(without, "colosseum")] == ["Trip to Rome"]
    monkeypatch.undo()
    again = HistoryStore(path)
    assert found(again, "gondola") == [("Venice", "Gondola prices?")]
    assert found(again, "colosseum")[0][0] == "Trip to Rome"


def test_a_snippet_is_one_line_around_the_word_cut_at_spaces() -> None:
    text = "Intro words here.\n\n" + "filler " * 30 + "the KEYWORD sits here " + "tail " * 30
    shown = snippet(text, "keyword", width=60)
    assert "KEYWORD" in shown and "\n" not in shown
    assert shown.startswith("…") and shown.endswith("…") and len(shown) <= 62
    assert snippet("Short one.", "short") == "Short one."


def test_an_import_saves_every_chat_with_its_times_and_meta_or_none(store: HistoryStore) -> None:
    then = datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc)
    first = ImportedChat("Old chat", (
        ImportedMessage("user", "Hello", then),
        ImportedMessage("assistant", "Hi!", then, {"stats": {"completion_tokens": 2, "tokens_per_s": 5.0,
                                                             "ttft_ms": 80.0}}),
    ), model="smollm.gguf")
    second = ImportedChat("", (ImportedMessage("user", "No title here"),))
    saved = store.import_chats("alice", [first, second])
    assert [c.title for c in store.list("alice")] == ["New chat", "Old chat"]  # the last imported on top
    assert saved[0].created_at == then and saved[0].updated_at == then and saved[0].model == "smollm.gguf"
    messages = store.messages("alice", saved[0].id)
    assert [(m.role, m.content, m.created_at) for m in messages] == [("user", "Hello", then),
                                                                      ("assistant", "Hi!", then)]
    assert messages[1].meta["stats"]["completion_tokens"] == 2
    assert found(store, "hello") == [("Old chat", "Hello")]  # imported messages are searchable

    bad = ImportedChat("Bad", (ImportedMessage("user", "fine"), ImportedMessage("tool", "not a role")))
    with pytest.raises(ValueError, match="unknown message role 'tool'"):
        store.import_chats("alice", [ImportedChat("Would be third", (ImportedMessage("user", "x"),)), bad])
    assert len(store.list("alice")) == 2  # nothing of the refused import was saved
