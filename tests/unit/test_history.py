"""Conversation history in SQLite: CRUD, ordering, isolation between users, migrations, threads."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from webui.history import (
    MIGRATIONS,
    ConversationNotFound,
    HistoryStore,
    MessageNotFound,
    StoredMessage,
    migrate,
    title_from_first_message,
)
from webui.quarantine import set_aside_files


@pytest.fixture()
def db_path(data_dir: Path) -> Path:
    return data_dir / "history.sqlite3"


@pytest.fixture()
def store(db_path: Path) -> HistoryStore:
    return HistoryStore(db_path)


def contents(messages: list[StoredMessage]) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def test_create_get_rename_delete(store: HistoryStore) -> None:
    created = store.create("alice", "Trip to Rome", model="smollm.gguf")
    assert len(created.id) == 32 and int(created.id, 16) >= 0  # uuid4 hex
    assert (created.owner, created.title, created.model) == ("alice", "Trip to Rome", "smollm.gguf")
    assert created.created_at == created.updated_at
    assert created.created_at.tzinfo is not None

    assert store.get("alice", created.id) == created
    assert store.create("alice").title == "New chat"

    renamed = store.rename("alice", created.id, "  Rome,\n in May ")
    assert renamed.title == "Rome, in May"
    assert store.get("alice", created.id).title == "Rome, in May"
    with pytest.raises(ValueError, match="cannot be empty"):
        store.rename("alice", created.id, "   ")

    store.delete("alice", created.id)
    with pytest.raises(ConversationNotFound):
        store.get("alice", created.id)
    with pytest.raises(ConversationNotFound):
        store.delete("alice", created.id)
    assert [c.title for c in store.list("alice")] == ["New chat"]


def test_messages_append_in_order_and_bump_updated_at(store: HistoryStore) -> None:
    conversation = store.create("alice")
    first = store.append("alice", conversation.id, "system", "Be brief.")
    store.append("alice", conversation.id, "user", "Hi")
    reply = store.append("alice", conversation.id, "assistant", "Hello!")

    assert contents(store.messages("alice", conversation.id)) == [
        ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"),
    ]
    assert first.id < reply.id
    assert store.get("alice", conversation.id).updated_at == reply.created_at
    assert store.get("alice", conversation.id).updated_at > conversation.updated_at
    with pytest.raises(ValueError, match="unknown message role 'tool'"):
        store.append("alice", conversation.id, "tool", "x")


def test_meta_round_trips(store: HistoryStore) -> None:
    conversation = store.create("alice")
    meta = {
        "tokens": 42,
        "tok_per_s": 31.5,
        "ttft_s": 0.12,
        "sources": [{"n": 1, "file": "rapport-été.pdf", "page": 3, "score": 0.81}],
        "stopped": False,
        "model": None,
    }
    stored = store.append("alice", conversation.id, "assistant", "Answer [1]", meta=meta)
    assert stored.meta == meta
    assert store.messages("alice", conversation.id)[0].meta == meta
    assert store.append("alice", conversation.id, "user", "no meta").meta == {}
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.append("alice", conversation.id, "assistant", "x", meta={"bad": object()})
    assert len(store.messages("alice", conversation.id)) == 2  # the failed append left nothing


def test_list_is_newest_first_and_per_owner(store: HistoryStore) -> None:
    first = store.create("alice", "first")
    second = store.create("alice", "second")
    third = store.create("alice", "third")
    store.create("bob", "bob's")
    assert [c.title for c in store.list("alice")] == ["third", "second", "first"]

    store.append("alice", first.id, "user", "back to the first one")
    assert [c.title for c in store.list("alice")] == ["first", "third", "second"]

    store.rename("alice", second.id, "second, renamed")  # renaming does not reorder
    assert [c.id for c in store.list("alice")] == [first.id, third.id, second.id]

    store.clear("alice", second.id)
    assert [c.id for c in store.list("alice")] == [second.id, first.id, third.id]
    assert [c.title for c in store.list("bob")] == ["bob's"]
    assert store.list("carol") == []


def test_another_user_cannot_touch_a_conversation(store: HistoryStore) -> None:
    mine = store.create("alice", "private")
    message = store.append("alice", mine.id, "user", "my secret")

    attempts = [
        lambda: store.get("bob", mine.id),
        lambda: store.messages("bob", mine.id),
        lambda: store.rename("bob", mine.id, "pwned"),
        lambda: store.delete("bob", mine.id),
        lambda: store.append("bob", mine.id, "user", "injected"),
        lambda: store.replace_last_assistant("bob", mine.id, "injected"),
        lambda: store.truncate_after("bob", mine.id, message.id),
        lambda: store.clear("bob", mine.id),
    ]
    for attempt in attempts:
        with pytest.raises(ConversationNotFound) as caught:
            attempt()
        # the same error as for an id that never existed: nothing says "forbidden"
        with pytest.raises(ConversationNotFound) as missing:
            store.get("bob", "0" * 32)
        assert type(caught.value) is type(missing.value)

    assert store.list("bob") == []
    assert store.get("alice", mine.id).title == "private"
    assert contents(store.messages("alice", mine.id)) == [("user", "my secret")]


def test_regenerate_replaces_the_last_assistant_message(store: HistoryStore) -> None:
    conversation = store.create("alice")
    store.append("alice", conversation.id, "user", "Tell a joke")
    old = store.append("alice", conversation.id, "assistant", "Knock knock", meta={"tokens": 2})

    new = store.replace_last_assistant("alice", conversation.id, "Why did...", meta={"tokens": 3})
    assert new.id == old.id and new.meta == {"tokens": 3}
    assert contents(store.messages("alice", conversation.id)) == [
        ("user", "Tell a joke"), ("assistant", "Why did..."),
    ]

    # after the user's turn, with no reply yet (e.g. the reply was stopped), it appends one
    store.append("alice", conversation.id, "user", "Another")
    appended = store.replace_last_assistant("alice", conversation.id, "Sure")
    assert appended.id > new.id
    assert contents(store.messages("alice", conversation.id))[-2:] == [
        ("user", "Another"), ("assistant", "Sure"),
    ]


def test_truncate_after_and_clear(store: HistoryStore) -> None:
    conversation = store.create("alice", "kept title")
    other = store.create("alice")
    ids = [
        store.append("alice", conversation.id, role, text).id
        for role, text in [("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")]
    ]
    other_message = store.append("alice", other.id, "user", "elsewhere")

    assert store.truncate_after("alice", conversation.id, ids[1]) == 2
    assert contents(store.messages("alice", conversation.id)) == [
        ("user", "q1"), ("assistant", "a1"),
    ]
    assert store.truncate_after("alice", conversation.id, ids[1]) == 0
    with pytest.raises(MessageNotFound):
        store.truncate_after("alice", conversation.id, other_message.id)
    with pytest.raises(MessageNotFound):
        store.truncate_after("alice", conversation.id, ids[3])  # already gone

    store.clear("alice", conversation.id)
    assert store.messages("alice", conversation.id) == []
    assert store.get("alice", conversation.id).title == "kept title"
    assert contents(store.messages("alice", other.id)) == [("user", "elsewhere")]


def test_delete_removes_the_messages_too(store: HistoryStore, db_path: Path) -> None:
    conversation = store.create("alice")
    store.append("alice", conversation.id, "user", "bye")
    store.delete("alice", conversation.id)
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)


def test_opening_twice_applies_migrations_once(db_path: Path) -> None:
    first = HistoryStore(db_path)
    conversation = first.create("alice", "survives reopening")
    first.append("alice", conversation.id, "user", "hello")

    second = HistoryStore(db_path)
    assert second.get("alice", conversation.id).title == "survives reopening"
    assert contents(second.messages("alice", conversation.id)) == [("user", "hello")]

    with sqlite3.connect(db_path) as db:
        names = [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY name")]
        assert names == [m.__name__ for m in MIGRATIONS]
        assert migrate(db) == []  # nothing left to apply
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_foreign_keys_are_enforced(store: HistoryStore) -> None:
    """Each connection turns foreign keys on, so orphan messages cannot be written."""
    with store._write() as db, pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        db.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at)"
            " VALUES ('nope', 'user', 'x', '2024-01-01T00:00:00+00:00')"
        )


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_database_file_is_private(store: HistoryStore, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_concurrent_appends_from_threads(store: HistoryStore) -> None:
    """Gradio runs handlers in worker threads; each call's own connection keeps them apart."""
    conversations = {user: store.create(user) for user in ("alice", "bob", "carol", "dave")}
    errors: list[BaseException] = []

    def chat(user: str) -> None:
        try:
            for i in range(15):
                store.append(user, conversations[user].id, "user", f"{user} {i}")
                store.list(user)
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=chat, args=(user,)) for user in conversations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for user, conversation in conversations.items():
        assert [m.content for m in store.messages(user, conversation.id)] == [
            f"{user} {i}" for i in range(15)
        ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("How do I bake bread?", "How do I bake bread?"),
        ("  Summarise\n\nthis   PDF\tplease ", "Summarise this PDF please"),
        ("", "New chat"),
        ("   \n ", "New chat"),
        (
            "Explain the difference between a process and a thread in Linux",
            "Explain the difference between a process and a…",
        ),
        ("x" * 60, "x" * 47 + "…"),
        ("word " * 7 + "supercalifragilistic" * 2, "word word word word word word word…"),
    ],
)
def test_title_from_first_message(text: str, expected: str) -> None:
    title = title_from_first_message(text)
    assert title == expected
    assert len(title) <= 48


def test_title_limit_is_respected() -> None:
    assert title_from_first_message("one two three four", limit=10) == "one two…"
    assert title_from_first_message("exactly ten", limit=11) == "exactly ten"


def test_a_streaming_reply_is_saved_then_rewritten_in_place(store: HistoryStore) -> None:
    chat = store.create("alice", "Streaming")
    question = store.append("alice", chat.id, "user", "Tell me a story.")
    reply = store.append_reply("alice", chat.id, question.id, "Once", meta={"incomplete": True})
    store.update_message("alice", chat.id, reply.id, "Once upon a time.", meta={"stats": {"n": 4}})
    [_, saved] = store.messages("alice", chat.id)
    assert (saved.id, saved.content, saved.meta) == (reply.id, "Once upon a time.", {"stats": {"n": 4}})
    with pytest.raises(ConversationNotFound):
        store.update_message("bob", chat.id, reply.id, "hijacked")


def test_a_reply_to_a_cleared_or_deleted_chat_is_refused_not_saved_as_an_orphan(store: HistoryStore) -> None:
    chat = store.create("alice", "Cleared")
    question = store.append("alice", chat.id, "user", "Question?")
    reply = store.append_reply("alice", chat.id, question.id, "Half an", meta={"incomplete": True})
    store.clear("alice", chat.id)
    with pytest.raises(MessageNotFound):
        store.update_message("alice", chat.id, reply.id, "Half an answer")
    with pytest.raises(MessageNotFound):
        store.append_reply("alice", chat.id, question.id, "Late answer")
    assert store.messages("alice", chat.id) == []
    store.delete("alice", chat.id)
    with pytest.raises(ConversationNotFound):
        store.append_reply("alice", chat.id, question.id, "Later still")


def test_editing_a_question_drops_what_came_after_it(store: HistoryStore) -> None:
    chat = store.create("alice", "Edit")
    first = store.append("alice", chat.id, "user", "What is 2+2?")
    answer = store.append("alice", chat.id, "assistant", "4")
    store.append("alice", chat.id, "user", "And 3+3?")
    store.append("alice", chat.id, "assistant", "6")
    assert store.edit_and_truncate("alice", chat.id, first.id, "What is 2+3?") == 3
    assert contents(store.messages("alice", chat.id)) == [("user", "What is 2+3?")]
    with pytest.raises(MessageNotFound):
        store.edit_and_truncate("alice", chat.id, answer.id, "gone")
    reply = store.append("alice", chat.id, "assistant", "5")
    with pytest.raises(ValueError, match="only your own messages"):
        store.edit_and_truncate("alice", chat.id, reply.id, "7")
    with pytest.raises(ConversationNotFound):
        store.edit_and_truncate("bob", chat.id, first.id, "mine now")


@pytest.mark.parametrize("garbage", [b"this is not a database at all " * 200,
                                     b"SQLite format 3\x00" + b"\xff" * 4096])
def test_a_damaged_database_is_kept_aside_and_history_starts_empty(db_path: Path, garbage: bytes) -> None:
    db_path.write_bytes(garbage)
    Path(f"{db_path}-wal").write_bytes(b"a stray journal")
    store = HistoryStore(db_path)
    [kept] = set_aside_files(db_path.parent)
    assert kept.name.startswith(f"{db_path.name}.corrupt-") and kept.read_bytes() == garbage
    assert Path(f"{kept}-wal").read_bytes() == b"a stray journal"  # moved with its database
    assert [r.kept_as for r in store.set_aside] == [kept]
    conversation = store.create("alice", "after the damage")
    store.append("alice", conversation.id, "user", "hello")
    assert [m.content for m in HistoryStore(db_path).messages("alice", conversation.id)] == ["hello"]

