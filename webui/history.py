"""Conversations per user in SQLite: numbered migrations, WAL, one transaction per write.

A message is committed the moment it is complete, so a crash or ``kill -9`` loses at most the
reply being generated. Every query names the owner: another user's conversation is reported as
not found, never as forbidden, so its existence does not leak.

Search (titles and message text) uses an FTS5 trigram index of the messages when this Python's
SQLite has one (kept by triggers, rebuilt at start when missing), else a scan of the owner's
messages; both match substrings, case-insensitively.

Threads: each call opens its own connection and closes it. sqlite3 connections must not cross
threads, and a per-thread cache would keep connections (and their WAL read snapshots) alive in
Gradio's worker pool with no moment to close them; opening a local file costs well under a
millisecond, nothing next to a model reply. WAL lets readers proceed while one writer commits;
writers take the lock up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from webui.errors import UserError
from webui.quarantine import SQLITE_SIDECARS, SetAside, is_damaged_database, keep_aside

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
DEFAULT_TITLE = "New chat"
_BUSY_TIMEOUT_S = 30.0
MAX_SEARCH_WORDS = 8  # more words narrow a search no further in practice, and each costs a lookup
MAX_SEARCH_RESULTS = 100
SNIPPET_CHARS = 90


@dataclass(frozen=True)
class Conversation:
    """One chat as listed in the sidebar; ``updated_at`` moves when a message changes."""

    id: str
    owner: str
    title: str
    created_at: datetime
    updated_at: datetime
    model: str | None
    collections: tuple[str, ...] = ()  # the document collections this chat answers from
    renamed: bool = False  # its user chose the title: an edited first message leaves it as it is
    versions: dict[str, Any] | None = None  # the other versions of its first message's branch (edits)
    tools: tuple[str, ...] = ()  # the tools the model may call in this chat


@dataclass(frozen=True)
class StoredMessage:
    """One committed message; ``meta`` holds what the UI shows beside it (tokens, tok/s, ...).

    ``reasoning`` is a reply's thinking: shown folded above it, exported, never sent back to the model.
    """

    id: int
    role: str
    content: str
    created_at: datetime
    meta: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    # The other versions of what follows this message (earlier replies to it, earlier branches of an
    # edit after it), as saved: {"shown": i, "others": [branch, ...]}; None when there are none.
    versions: dict[str, Any] | None = None
    # When this message starts a branch that has other versions: (which one, 1-based; how many).
    version: tuple[int, int] | None = None


@dataclass(frozen=True)
class SearchHit:
    """A conversation that matches a search; ``snippet`` is the text around the match in one of its
    messages ("" when only the title matched)."""

    conversation: Conversation
    snippet: str


@dataclass(frozen=True)
class ImportedMessage:
    """A message read from an export, to be saved with its own time and meta."""

    role: str
    content: str
    created_at: datetime | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    reasoning: str = ""
    versions: dict[str, Any] | None = None  # the other versions of what follows it, as exported


@dataclass(frozen=True)
class ImportedChat:
    """A conversation read from an export; missing times are taken from its messages, else now."""

    title: str
    messages: tuple[ImportedMessage, ...]
    model: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    versions: dict[str, Any] | None = None  # the other versions of its first message's branch, as exported


class HistoryError(UserError):
    """Base class for history errors."""


class ConversationNotFound(HistoryError):
    """No conversation with that id belongs to that user (it may belong to someone else)."""

    def __str__(self) -> str:  # raised with the id, which is for the log (repr); the user gets a sentence
        return "That conversation no longer exists."


class MessageNotFound(HistoryError):
    """No message with that id is in that conversation."""

    def __str__(self) -> str:  # raised with the ids, which are for the log (repr)
        return "That message no longer exists in this conversation."


# -- migrations -------------------------------------------------------------------------------
# Each migration runs once, in its own transaction together with the row that records it, so a
# crash during an upgrade leaves the database either before or after that step. Never edit one
# that has shipped: add the next number.


def m001_initial(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            title TEXT NOT NULL,
            model TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            -- a counter bumped with updated_at: orders the list even when two updates share a
            -- clock reading (Windows ticks in ~15 ms) or the clock is set back
            activity INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX conversations_owner_activity ON conversations (owner, activity)")
    db.execute("CREATE INDEX conversations_activity ON conversations (activity)")
    db.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            created_at TEXT NOT NULL,
            meta TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE INDEX messages_conversation ON messages (conversation_id, id)")


def m002_chat_collections(db: sqlite3.Connection) -> None:
    """Each chat keeps the collections it answers from (a JSON list of names); existing chats get none."""
    db.execute("ALTER TABLE conversations ADD COLUMN collections TEXT NOT NULL DEFAULT '[]'")


def m003_message_reasoning(db: sqlite3.Connection) -> None:
    """A reply keeps its thinking apart from its answer; saved replies have none."""
    db.execute("ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT ''")


def m004_message_versions(db: sqlite3.Connection) -> None:
    """Regenerate and edit keep what they replace as versions: each message holds the other versions of
    what follows it, the chat those of its first message (JSON, '' for none); a chat renamed by its
    user keeps its title when the first message is edited."""
    db.execute("ALTER TABLE messages ADD COLUMN versions TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE conversations ADD COLUMN versions TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE conversations ADD COLUMN renamed INTEGER NOT NULL DEFAULT 0")


def m005_chat_tools(db: sqlite3.Connection) -> None:
    """Each chat keeps the tools its replies may call (a JSON list of names); existing chats get none."""
    db.execute("ALTER TABLE conversations ADD COLUMN tools TEXT NOT NULL DEFAULT '[]'")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    m001_initial, m002_chat_collections, m003_message_reasoning, m004_message_versions,
    m005_chat_tools)


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded in ``_migrations``; return the names applied now."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    applied_now = []
    for migration in MIGRATIONS:
        with _transaction(db):
            # Checked inside the write lock, so two processes starting together apply it once.
            done = db.execute(
                "SELECT 1 FROM _migrations WHERE name = ?", (migration.__name__,)
            ).fetchone()
            if done:
                continue
            migration(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (migration.__name__, _now().isoformat()),
            )
            applied_now.append(migration.__name__)
    return applied_now


# -- the store --------------------------------------------------------------------------------


class HistoryStore:
    """Conversations and their messages, always scoped to one owner."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.set_aside: builtins.list[SetAside] = []  # a damaged database kept aside at start, to report
        try:
            self._open()
        except sqlite3.DatabaseError as error:
            if not is_damaged_database(error):
                raise
            kept = keep_aside(self.db_path, str(error), sidecars=SQLITE_SIDECARS)
            self.set_aside += [kept] if kept else []
            self._open()

    def _open(self) -> None:
        """Create or upgrade the database; raises sqlite3.DatabaseError when the file is not one."""
        is_new = not self.db_path.exists()
        with closing(self._connect()) as db:
            if is_new and os.name == "posix":
                # History is private: SQLite creates its -wal and -shm files with the same mode.
                os.chmod(self.db_path, 0o600)
            # WAL is a property of the file, so setting it once here holds for every connection.
            db.execute("PRAGMA journal_mode = WAL")
            migrate(db)
            self._indexed = keep_search_index(db)

    def create(
        self, owner: str, title: str = DEFAULT_TITLE, *, model: str | None = None
    ) -> Conversation:
        """Start an empty conversation."""
        title = _clean_title(title)
        now = _now().isoformat()
        conversation_id = uuid.uuid4().hex
        with self._write() as db:
            db.execute(
                "INSERT INTO conversations"
                " (id, owner, title, model, created_at, updated_at, activity)"
                " VALUES (?, ?, ?, ?, ?, ?,"
                " (SELECT COALESCE(MAX(activity), 0) + 1 FROM conversations))",
                (conversation_id, owner, title, model, now, now),
            )
            return self._get(db, owner, conversation_id)

    def list(self, owner: str) -> builtins.list[Conversation]:  # `list` is this method here
        """The owner's conversations, the most recently updated first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM conversations WHERE owner = ? ORDER BY activity DESC", (owner,)
            ).fetchall()
        return [_conversation(row) for row in rows]

    def search(self, owner: str, text: str, *, limit: int = MAX_SEARCH_RESULTS) -> builtins.list[SearchHit]:
        """The owner's conversations in which every word of *text* is in the title or a shown message.

        Substrings match, case-insensitively ("rom" finds "Rome"); the most recently updated first.
        No words: no hits (the caller lists every conversation instead).
        """
        words = search_words(text)
        if not words:
            return []
        conditions, params = [], []
        for word in words:
            in_messages, word_params = self._holding(word)
            conditions.append(f"(folded_contains(c.title, ?) OR {in_messages})")
            params += [word, *word_params]
        by_length = sorted(words, key=len, reverse=True)
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM conversations c WHERE c.owner = ? AND " + " AND ".join(conditions)
                + " ORDER BY c.activity DESC LIMIT ?",
                (owner, *params, limit),
            ).fetchall()
            return [SearchHit(_conversation(row), self._snippet(db, row["id"], by_length)) for row in rows]

    def import_chats(self, owner: str, chats: Sequence[ImportedChat]) -> builtins.list[Conversation]:
        """Save chats read from an export as new conversations of *owner*, all or none.

        One transaction: a bad message (an unknown role, meta that is not JSON) saves nothing. Each
        keeps its messages' times and meta; they go to the top of the list in the order given, so
        the last one is listed first.
        """
        now = _now()
        prepared = []
        for chat in chats:
            rows = []
            for message in chat.messages:
                _check_role(message.role)
                rows.append((message.role, message.content, _aware(message.created_at or now).isoformat(),
                             _meta_json(message.meta), message.reasoning, _versions_json(message.versions)))
            created = _aware(chat.created_at or (chat.messages[0].created_at if chat.messages else None) or now)
            updated = _aware(chat.updated_at or (chat.messages[-1].created_at if chat.messages else None) or created)
            title = " ".join((chat.title or "").split()) or DEFAULT_TITLE
            prepared.append((title, chat.model, created.isoformat(), updated.isoformat(), rows,
                             _versions_json(chat.versions)))
        ids = []
        with self._write() as db:
            for title, model, created_at, updated_at, rows, versions in prepared:
                conversation_id = uuid.uuid4().hex
                db.execute(
                    "INSERT INTO conversations"
                    " (id, owner, title, model, created_at, updated_at, activity, versions)"
                    " VALUES (?, ?, ?, ?, ?, ?,"
                    " (SELECT COALESCE(MAX(activity), 0) + 1 FROM conversations), ?)",
                    (conversation_id, owner, title, model, created_at, updated_at, versions),
                )
                db.executemany(
                    "INSERT INTO messages (conversation_id, role, content, created_at, meta, reasoning, versions)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(conversation_id, *row) for row in rows],
                )
                ids.append(conversation_id)
            return [self._get(db, owner, conversation_id) for conversation_id in ids]

    def get(self, owner: str, conversation_id: str) -> Conversation:
        """One conversation; raises :class:`ConversationNotFound` unless the owner has it."""
        with self._read() as db:
            return self._get(db, owner, conversation_id)

    def rename(self, owner: str, conversation_id: str, title: str, *, by_user: bool = True) -> Conversation:
        """Change the title; the conversation keeps its place in the list. A title the user chose
        (``by_user``) is kept from then on when the first message is edited."""
        title = _clean_title(title)
        with self._write() as db:
            self._get(db, owner, conversation_id)
            db.execute("UPDATE conversations SET title = ?, renamed = MAX(renamed, ?) WHERE id = ?",
                       (title, int(by_user), conversation_id))
            return self._get(db, owner, conversation_id)

    def set_collections(self, owner: str, conversation_id: str, collections: Sequence[str]) -> Conversation:
        """Keep the collections this chat answers from; like a rename, the chat keeps its place in the list."""
        names = json.dumps(list(dict.fromkeys(str(name) for name in collections)), ensure_ascii=False)
        with self._write() as db:
            self._get(db, owner, conversation_id)
            db.execute("UPDATE conversations SET collections = ? WHERE id = ?", (names, conversation_id))
            return self._get(db, owner, conversation_id)

    def set_tools(self, owner: str, conversation_id: str, tools: Sequence[str]) -> Conversation:
        """Keep the tools this chat's replies may call; the chat keeps its place in the list."""
        names = json.dumps(list(dict.fromkeys(str(name) for name in tools)), ensure_ascii=False)
        with self._write() as db:
            self._get(db, owner, conversation_id)
            db.execute("UPDATE conversations SET tools = ? WHERE id = ?", (names, conversation_id))
            return self._get(db, owner, conversation_id)

    def delete(self, owner: str, conversation_id: str) -> None:
        """Delete a conversation and its messages."""
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)
            )
            if cursor.rowcount == 0:
                raise ConversationNotFound(conversation_id)

    def messages(self, owner: str, conversation_id: str) -> builtins.list[StoredMessage]:
        """The conversation's messages, oldest first."""
        with self._read() as db:
            self._get(db, owner, conversation_id)
            root = db.execute("SELECT versions FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            rows = db.execute(
                "SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,)
            ).fetchall()
        # A message's versions are those of the branch that follows it: that next message is marked
        # with which version it starts (the chat's own versions mark its first message).
        before = _versions(root["versions"])
        shown = []
        for row in rows:
            message = _message(row)
            if before:
                message = dataclasses.replace(message, version=(before["shown"] + 1, len(before["others"]) + 1))
            shown.append(message)
            before = message.versions
        return shown

    def append(
        self,
        owner: str,
        conversation_id: str,
        role: str,
        content: str,
        *,
        meta: dict[str, Any] | None = None,
    ) -> StoredMessage:
        """Commit one complete message and move the conversation to the top of the list."""
        _check_role(role)
        meta_json = _meta_json(meta)
        now = _now().isoformat()
        with self._write() as db:
            self._get(db, owner, conversation_id)
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, meta)"
                " VALUES (?, ?, ?, ?, ?)",
                (conversation_id, role, content, now, meta_json),
            )
            self._touch(db, conversation_id, now)
            row = db.execute("SELECT * FROM messages WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return _message(row)

    def replace_last_assistant(
        self,
        owner: str,
        conversation_id: str,
        content: str,
        *,
        meta: dict[str, Any] | None = None,
    ) -> StoredMessage:
        """Swap the last message's text when it is the assistant's (Regenerate), else append one."""
        meta_json = _meta_json(meta)
        now = _now().isoformat()
        with self._write() as db:
            self._get(db, owner, conversation_id)
            last = db.execute(
                "SELECT id, role FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
            if last is not None and last["role"] == "assistant":
                message_id = last["id"]
                db.execute(
                    "UPDATE messages SET content = ?, meta = ?, created_at = ? WHERE id = ?",
                    (content, meta_json, now, message_id),
                )
            else:
                message_id = db.execute(
                    "INSERT INTO messages (conversation_id, role, content, created_at, meta)"
                    " VALUES (?, 'assistant', ?, ?, ?)",
                    (conversation_id, content, now, meta_json),
                ).lastrowid
            self._touch(db, conversation_id, now)
            row = db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return _message(row)

    def append_reply(
        self,
        owner: str,
        conversation_id: str,
        question_id: int | None,
        content: str,
        *,
        meta: dict[str, Any] | None = None,
        reasoning: str = "",
    ) -> StoredMessage:
        """Commit an assistant reply (and its thinking) to message ``question_id``, if that message is still there.

        A reply that finishes after its chat was cleared (or its question edited away) would
        otherwise come back as an orphan: :class:`MessageNotFound` is raised instead.
        """
        meta_json = _meta_json(meta)
        now = _now().isoformat()
        with self._write() as db:
            self._get(db, owner, conversation_id)
            if question_id is not None:
                self._require_message(db, conversation_id, question_id)
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, meta, reasoning)"
                " VALUES (?, 'assistant', ?, ?, ?, ?)",
                (conversation_id, content, now, meta_json, reasoning),
            )
            self._touch(db, conversation_id, now)
            row = db.execute("SELECT * FROM messages WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return _message(row)

    def update_message(
        self,
        owner: str,
        conversation_id: str,
        message_id: int,
        content: str,
        *,
        meta: dict[str, Any] | None = None,
        reasoning: str = "",
    ) -> None:
        """Rewrite one message's text, thinking and meta (a reply saved as it streams); the list keeps its order."""
        meta_json = _meta_json(meta)
        with self._write() as db:
            self._get(db, owner, conversation_id)
            cursor = db.execute(
                "UPDATE messages SET content = ?, meta = ?, reasoning = ? WHERE id = ? AND conversation_id = ?",
                (content, meta_json, reasoning, message_id, conversation_id),
            )
            if cursor.rowcount == 0:
                raise MessageNotFound(f"message {message_id} is not in conversation {conversation_id}")

    def edit_and_truncate(
        self, owner: str, conversation_id: str, message_id: int, content: str, *, keep_version: bool = False
    ) -> int:
        """Replace a user message's text and drop every message after it (edit, then regenerate).

        ``keep_version`` keeps the branch it replaces (the message as it was and all that followed)
        as a version the chat can switch back to. One transaction, so a crash never leaves the edited
        question with the old reply after it. Returns how many later messages were dropped.
        """
        with self._write() as db:
            self._get(db, owner, conversation_id)
            row = self._require_message(db, conversation_id, message_id)
            if row["role"] != "user":
                raise ValueError("only your own messages can be edited")
            if keep_version:
                _keep_branch(db, conversation_id, message_id)
            db.execute("UPDATE messages SET content = ?, versions = '' WHERE id = ?", (content, message_id))
            cursor = db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id > ?",
                (conversation_id, message_id),
            )
            self._touch(db, conversation_id, _now().isoformat())
            return cursor.rowcount

    def truncate_after(self, owner: str, conversation_id: str, message_id: int, *, keep_version: bool = False) -> int:
        """Drop the messages after *message_id* (to edit or regenerate); return how many.

        ``keep_version`` keeps them as a version of what follows *message_id* (Regenerate), to switch back to.
        """
        with self._write() as db:
            self._get(db, owner, conversation_id)
            found = db.execute(
                "SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                (message_id, conversation_id),
            ).fetchone()
            if not found:
                raise MessageNotFound(
                    f"message {message_id} is not in conversation {conversation_id}"
                )
            following = db.execute("SELECT MIN(id) FROM messages WHERE conversation_id = ? AND id > ?",
                                   (conversation_id, message_id)).fetchone()[0]
            if keep_version and following is not None:
                _keep_branch(db, conversation_id, following)
            cursor = db.execute(
                "DELETE FROM messages WHERE conversation_id = ? AND id > ?",
                (conversation_id, message_id),
            )
            if cursor.rowcount:
                self._touch(db, conversation_id, _now().isoformat())
            return cursor.rowcount

    def switch_version(self, owner: str, conversation_id: str, message_id: int, number: int) -> None:
        """Show version *number* (1-based) of the branch that *message_id* starts; the branch shown
        until now is kept as a version in its place. What follows continues from the version shown."""
        with self._write() as db:
            self._get(db, owner, conversation_id)
            self._require_message(db, conversation_id, message_id)
            anchor = _anchor_of(db, conversation_id, message_id)
            versions = _read_anchor(db, conversation_id, anchor)
            if not versions or not 1 <= number <= len(versions["others"]) + 1 \
                    or number - 1 == versions["shown"]:
                raise MessageNotFound(f"no version {number} of the branch at message {message_id}")
            branches = list(versions["others"])
            branches.insert(versions["shown"], _branch(db, conversation_id, message_id))
            chosen = branches.pop(number - 1)
            db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (conversation_id, message_id))
            for saved in chosen:
                db.execute(
                    "INSERT INTO messages (conversation_id, role, content, created_at, meta, reasoning, versions)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (conversation_id, saved["role"], saved["content"], saved["created_at"],
                     _meta_json(saved.get("meta")), saved.get("reasoning", ""), _versions_json(saved.get("versions"))),
                )
            _write_anchor(db, conversation_id, anchor, {"shown": number - 1, "others": branches})
            self._touch(db, conversation_id, _now().isoformat())

    def clear(self, owner: str, conversation_id: str) -> None:
        """Delete every message but keep the conversation (its title and model)."""
        with self._write() as db:
            self._get(db, owner, conversation_id)
            db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            db.execute("UPDATE conversations SET versions = '' WHERE id = ?", (conversation_id,))
            self._touch(db, conversation_id, _now().isoformat())

    # -- internals --------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; _write and _read open them explicitly.
        db = sqlite3.connect(self.db_path, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.create_function("folded_contains", 2, _folded_contains, deterministic=True)
        db.execute("PRAGMA foreign_keys = ON")  # per connection, and needed for ON DELETE CASCADE
        # FULL: a committed message survives a power cut too, not only a crash (WAL + NORMAL
        # would). One fsync per finished message is cheap.
        db.execute("PRAGMA synchronous = FULL")
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as db, _transaction(db):
            yield db

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # A read transaction gives one snapshot across the ownership check and the query.
        with closing(self._connect()) as db:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("ROLLBACK")

    def _holding(self, word: str) -> tuple[str, builtins.list[str]]:
        """An SQL condition on conversation ``c``: one of its shown messages holds *word*.

        Through the trigram index when there is one and the word is long enough for it (three
        characters), as one lookup for every conversation; else a scan of each one's messages.
        """
        if self._indexed and len(word) >= 3:
            phrase = '"' + word.replace('"', '""') + '"'  # a quoted FTS5 string: the word as typed
            return ("c.id IN (SELECT m.conversation_id FROM messages m WHERE m.role != 'system' AND m.id IN"
                    f" (SELECT rowid FROM {SEARCH_INDEX} WHERE {SEARCH_INDEX} MATCH ?))", [phrase])
        return ("EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.role != 'system'"
                " AND folded_contains(m.content, ?))", [word])

    @staticmethod
    def _snippet(db: sqlite3.Connection, conversation_id: str, words: builtins.list[str]) -> str:
        """The text around the first of *words* that a shown message holds, from the first such message."""
        for word in words:
            row = db.execute(
                "SELECT content FROM messages WHERE conversation_id = ? AND role != 'system'"
                " AND folded_contains(content, ?) ORDER BY id LIMIT 1", (conversation_id, word),
            ).fetchone()
            if row is not None:
                return snippet(row["content"], word)
        return ""

    @staticmethod
    def _get(db: sqlite3.Connection, owner: str, conversation_id: str) -> Conversation:
        row = db.execute(
            "SELECT * FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)
        ).fetchone()
        if row is None:
            raise ConversationNotFound(conversation_id)
        return _conversation(row)

    @staticmethod
    def _require_message(db: sqlite3.Connection, conversation_id: str, message_id: int) -> sqlite3.Row:
        row = db.execute(
            "SELECT id, role FROM messages WHERE id = ? AND conversation_id = ?",
            (message_id, conversation_id),
        ).fetchone()
        if row is None:
            raise MessageNotFound(f"message {message_id} is not in conversation {conversation_id}")
        return row

    @staticmethod
    def _touch(db: sqlite3.Connection, conversation_id: str, now: str) -> None:
        db.execute(
            "UPDATE conversations SET updated_at = ?,"
            " activity = (SELECT MAX(activity) + 1 FROM conversations) WHERE id = ?",
            (now, conversation_id),
        )


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error.

    IMMEDIATE takes the write lock at the start: a deferred transaction that reads and then
    writes can fail with "database is locked" at once, without waiting for busy_timeout.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


# -- versions ---------------------------------------------------------------------------------
# A branch is the messages from one message to the end of the chat, saved as JSON (each with its
# own versions, so nested branches come back with it). Its versions are kept on the message before
# it (its anchor), or on the chat when it starts the chat.


def _anchor_of(db: sqlite3.Connection, conversation_id: str, message_id: int) -> int | None:
    """The message before *message_id*, whose versions are those of the branch it starts; None: the chat."""
    return db.execute("SELECT MAX(id) FROM messages WHERE conversation_id = ? AND id < ?",
                      (conversation_id, message_id)).fetchone()[0]


def _read_anchor(db: sqlite3.Connection, conversation_id: str, anchor: int | None) -> dict[str, Any] | None:
    if anchor is None:
        row = db.execute("SELECT versions FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
    else:
        row = db.execute("SELECT versions FROM messages WHERE id = ?", (anchor,)).fetchone()
    return _versions(row["versions"])


def _write_anchor(db: sqlite3.Connection, conversation_id: str, anchor: int | None, versions: dict[str, Any]) -> None:
    if anchor is None:
        db.execute("UPDATE conversations SET versions = ? WHERE id = ?", (_versions_json(versions), conversation_id))
    else:
        db.execute("UPDATE messages SET versions = ? WHERE id = ?", (_versions_json(versions), anchor))


def _branch(db: sqlite3.Connection, conversation_id: str, first_id: int) -> builtins.list[dict[str, Any]]:
    """The messages from *first_id* to the end, as a saved branch."""
    rows = db.execute("SELECT * FROM messages WHERE conversation_id = ? AND id >= ? ORDER BY id",
                      (conversation_id, first_id)).fetchall()
    return [{"role": row["role"], "content": row["content"], "created_at": row["created_at"],
             "meta": json.loads(row["meta"]), "reasoning": row["reasoning"],
             **({"versions": _versions(row["versions"])} if _versions(row["versions"]) else {})} for row in rows]


def _keep_branch(db: sqlite3.Connection, conversation_id: str, first_id: int) -> None:
    """Keep the branch from *first_id* as a version before it is replaced; the one to come is shown, last."""
    anchor = _anchor_of(db, conversation_id, first_id)
    versions = _read_anchor(db, conversation_id, anchor) or {"shown": 0, "others": []}
    others = list(versions["others"])
    others.insert(versions["shown"], _branch(db, conversation_id, first_id))
    _write_anchor(db, conversation_id, anchor, {"shown": len(others), "others": others})


def _versions(stored: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """Saved versions as {"shown": i, "others": [...]}; none (None) when empty or unreadable (logged)."""
    if not stored:
        return None
    try:
        versions = json.loads(stored) if isinstance(stored, str) else stored
        others = versions["others"]
        shown = int(versions["shown"])
    except (ValueError, TypeError, KeyError):
        log.warning("a message's saved versions cannot be read (%r): shown without them", str(stored)[:80])
        return None
    if not isinstance(others, builtins.list) or not others:
        return None
    return {"shown": min(max(shown, 0), len(others)), "others": others}


def _versions_json(versions: dict[str, Any] | None) -> str:
    checked = _versions(versions)
    return json.dumps(checked, ensure_ascii=False) if checked else ""


# -- search -----------------------------------------------------------------------------------
# The index is derived data, not schema: it follows the SQLite build that opens the file (made and
# filled when missing, its triggers dropped where FTS5 is absent so that writes still work there),
# so it is kept here at every start rather than by a numbered migration.

SEARCH_INDEX = "message_search"
_SEARCH_TRIGGERS = {
    "message_search_insert": "AFTER INSERT ON messages BEGIN"
    " INSERT INTO message_search (rowid, content) VALUES (new.id, new.content); END",
    "message_search_delete": "AFTER DELETE ON messages BEGIN"
    " INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.id, old.content); END",
    "message_search_update": "AFTER UPDATE OF content ON messages BEGIN"
    " INSERT INTO message_search (message_search, rowid, content) VALUES ('delete', old.id, old.content);"
    " INSERT INTO message_search (rowid, content) VALUES (new.id, new.content); END",
}


def trigram_search_available(db: sqlite3.Connection) -> bool:
    """Whether this SQLite has FTS5 with its trigram tokenizer (3.34 and later, when compiled in)."""
    try:
        db.execute("CREATE VIRTUAL TABLE temp.trigram_probe USING fts5(text, tokenize='trigram')")
    except sqlite3.OperationalError:
        return False
    db.execute("DROP TABLE temp.trigram_probe")
    return True


def keep_search_index(db: sqlite3.Connection) -> bool:
    """Make the messages' search index and its triggers when missing; False where FTS5 is absent."""
    with _transaction(db):
        present = {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE name IN (?, ?, ?, ?)", (SEARCH_INDEX, *_SEARCH_TRIGGERS))}
        if not trigram_search_available(db):
            for trigger in _SEARCH_TRIGGERS:
                db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
            log.info("this SQLite has no FTS5 trigram index: chat search scans the messages instead")
            return False
        if SEARCH_INDEX not in present:
            db.execute(f"CREATE VIRTUAL TABLE {SEARCH_INDEX} USING fts5("
                       "content, content='messages', content_rowid='id', tokenize='trigram')")
        for trigger, body in _SEARCH_TRIGGERS.items():
            db.execute(f"CREATE TRIGGER IF NOT EXISTS {trigger} {body}")
        if not present >= {SEARCH_INDEX, *_SEARCH_TRIGGERS}:  # new, or messages written without triggers
            count = db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            if count:
                log.info("indexing %d saved messages for chat search (once)", count)
            db.execute(f"INSERT INTO {SEARCH_INDEX} ({SEARCH_INDEX}) VALUES ('rebuild')")
    return True


def search_words(text: str) -> builtins.list[str]:
    """The distinct words of a search, case-folded, at most MAX_SEARCH_WORDS of them."""
    return builtins.list(dict.fromkeys(text.casefold().split()))[:MAX_SEARCH_WORDS]


def snippet(text: str, word: str, width: int = SNIPPET_CHARS) -> str:
    """About *width* characters of *text* on one line around the first *word*, cut at spaces, with '…'."""
    line = " ".join(text.split())
    if not line:
        return ""
    found = re.search(re.escape(word), line, re.IGNORECASE)
    start = max(0, (found.start() if found else 0) - width // 3)
    end = min(len(line), start + width)
    start = max(0, end - width)
    if start > 0:
        space = line.find(" ", start, (found.start() if found else end))
        start = space + 1 if space != -1 else start
    if end < len(line):
        space = line.rfind(" ", (found.end() if found else start), end)
        end = space if space != -1 else end
    return ("…" if start > 0 else "") + line[start:end] + ("…" if end < len(line) else "")


def _folded_contains(text: str | None, folded_word: str) -> bool:
    return text is not None and folded_word in text.casefold()


def title_from_first_message(text: str, limit: int = 48) -> str:
    """A conversation title from the user's first message: one line, cut at a word, with '…'."""
    words = " ".join(text.split())
    if not words:
        return DEFAULT_TITLE
    if len(words) <= limit:
        return words
    cut = words[: limit - 1]
    # Cut at the last word boundary unless that would throw away most of the text.
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def _clean_title(title: str) -> str:
    title = re.sub(r"\s+", " ", title).strip()
    if not title:
        raise ValueError("a conversation title cannot be empty")
    return title


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown message role {role!r}; expected one of {', '.join(ROLES)}")


def _meta_json(meta: dict[str, Any] | None) -> str:
    try:
        return json.dumps(meta or {}, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"message meta must be JSON-serialisable: {error}") from error


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    """A time with a zone; one without is taken as UTC (an export that left the zone out)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        owner=row["owner"],
        title=row["title"],
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        model=row["model"],
        collections=tuple(_names(row["collections"])),
        renamed=bool(row["renamed"]),
        versions=_versions(row["versions"]),
        tools=tuple(_names(row["tools"])),
    )


def _names(stored: str) -> builtins.list[str]:
    """The collection names saved with a chat; a value that is not a list of names reads as none (logged)."""
    try:
        names = json.loads(stored)
    except ValueError:
        names = None
    if not isinstance(names, builtins.list) or not all(isinstance(name, str) for name in names):
        log.warning("a chat's saved collections or tools are not a list of names (%r): read as none", stored[:80])
        return []
    return names


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        role=row["role"],
        content=row["content"],
        created_at=datetime.fromisoformat(row["created_at"]),
        meta=json.loads(row["meta"]),
        reasoning=row["reasoning"],
        versions=_versions(row["versions"]),
    )
