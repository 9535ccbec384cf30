"""A chat's collections saved with it (migration m002), and one reply at a time per page."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from webui.history import HistoryStore, m001_initial
from webui.services.chat import BusyPages


def test_a_database_from_before_m002_opens_with_its_chats_plain_and_keeps_collections_from_then_on(
        tmp_path: Path) -> None:
    db_path = tmp_path / "history.sqlite3"
    with closing(sqlite3.connect(db_path)) as db:  # the schema as version 1 left it, with one chat
        m001_initial(db)
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        db.execute("INSERT INTO _migrations VALUES ('m001_initial', '2026-01-01T00:00:00+00:00')")
        db.execute("INSERT INTO conversations VALUES ('c1', 'alice', 'Old chat', NULL, "
                   "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00', 1)")
        db.commit()
    store = HistoryStore(db_path)
    assert store.get("alice", "c1").collections == () and store.get("alice", "c1").title == "Old chat"
    store.set_collections("alice", "c1", ["manuals", "recipes", "manuals"])
    assert HistoryStore(db_path).get("alice", "c1").collections == ("manuals", "recipes")
    assert [c.id for c in store.list("alice")] == ["c1"]


def test_saved_collections_that_are_not_a_list_of_names_read_as_none(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite3")
    chat = store.create("alice", "Hello")
    with closing(sqlite3.connect(store.db_path)) as db:
        db.execute("UPDATE conversations SET collections = '{oops' WHERE id = ?", (chat.id,))
        db.commit()
    assert store.get("alice", chat.id).collections == ()


def test_a_page_has_one_reply_at_a_time_and_a_stop_before_its_first_token_is_kept() -> None:
    pages = BusyPages()
    stop = pages.claim("page-1")
    assert stop is not None and pages.claim("page-1") is None and pages.holds("page-1")
    assert pages.stop("page-1") and stop.is_set(), "pressed while the prompt is read: kept for the stream"
    pages.release("page-1")
    assert not pages.holds("page-1") and not pages.stop("page-1")
