"""Keyword search: BM25 over a collection's chunks, in an SQLite FTS5 index kept beside Chroma.

Why SQLite FTS5 and not Chroma or a BM25 package:
- Chroma 1.x's sparse/BM25 index and its Search API run only on Chroma's cloud; a local
  PersistentClient refuses them ("Sparse vector indexing is not enabled in local"), and
  ``where_document={"$contains": ...}`` filters without ranking.
- bm25s and rank-bm25 score well but hold the whole index in memory and rebuild it on every change;
  with files added one at a time to a 10,000-chunk collection that rebuild costs more than the
  embedding it follows. FTS5 ships with Python's sqlite3, scores with the same Okapi BM25, updates
  row by row inside a transaction, and answers from disk in a few milliseconds.

The tokenizer is ours because no built-in one keeps identifiers both whole and in parts: a question
naming ``--ctx-size``, ``HF_HUB_OFFLINE`` or ``pyproject.toml`` must find that exact token, and a
question saying "pyproject" must still find "pyproject.toml". So each identifier is indexed whole
(leading dashes dropped) and in its parts; FTS5 then stems every token with Porter.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path

# A word, or words joined by - . / : _ (identifiers, flags, paths, dotted names, versions).
_TOKEN = re.compile(r"\w+(?:[-./:]\w+)*")
_PARTS = re.compile(r"[-./:_]+")
# FTS5 must keep what _TOKEN joined, so its own tokenizer treats the joiners as letters.
_FTS_TOKENIZER = "porter unicode61 remove_diacritics 2 tokenchars '-_./:'"
# BM25 gives a term found in more than half the chunks no weight (FTS5 floors its IDF near zero),
# so such terms are dropped from the query: they only cost time.
_COMMON_FRACTION = 0.5
_WRITE_BATCH = 500


def keyword_tokens(text: str) -> list[str]:
    """Lower-cased words; each joined identifier both whole and split into its parts."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text.casefold()):
        whole = match.group()
        parts = [p for p in _PARTS.split(whole) if p]
        if len(parts) > 1 or whole != (parts[0] if parts else ""):
            tokens.append(whole)
        tokens.extend(parts)
    return [t for t in tokens if t]


def query_tokens(text: str) -> list[str]:
    """A question's tokens without English function words ("what", "does", "the").

    BM25 weighs such words little but not nothing, and short chunks full of them ("Next topic:
    What now?") rise on them alone. Words inside an identifier are kept (``--system-site-packages``
    keeps "system"). The list is scikit-learn's, installed with sentence-transformers.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    kept: list[str] = []
    for match in _TOKEN.finditer(text.casefold()):
        whole = match.group()
        if whole in ENGLISH_STOP_WORDS:
            continue
        kept.extend(keyword_tokens(whole))
    return kept or keyword_tokens(text)


def _indexed_text(text: str) -> str:
    return " ".join(keyword_tokens(text))


class KeywordIndex:
    """One collection's BM25 index in its own SQLite file; every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # one writer at a time; readers use their own connections

    def exists(self) -> bool:
        return self.path.is_file()

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        connection = sqlite3.connect(path or self.path, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5("
            f"chunk_id UNINDEXED, body, tokenize=\"{_FTS_TOKENIZER}\")"
        )
        connection.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5vocab(chunks, 'row')"
        )
        return connection

    @staticmethod
    def _write(connection: sqlite3.Connection, ids: Sequence[str], texts: Sequence[str]) -> None:
        for start in range(0, len(ids), _WRITE_BATCH):
            batch_ids = list(ids[start : start + _WRITE_BATCH])
            marks = ",".join("?" * len(batch_ids))
            connection.execute(f"DELETE FROM chunks WHERE chunk_id IN ({marks})", batch_ids)
            connection.executemany(
                "INSERT INTO chunks (chunk_id, body) VALUES (?, ?)",
                [(i, _indexed_text(t)) for i, t in zip(batch_ids, texts[start:], strict=False)],
            )

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Insert or replace chunks by id."""
        if len(ids) != len(texts):
            raise ValueError("ids and texts differ in length")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, closing(self._connect()) as connection, connection:
            self._write(connection, ids, texts)

    def delete(self, ids: Iterable[str]) -> None:
        wanted = list(ids)
        if not wanted or not self.exists():
            return
        with self._lock, closing(self._connect()) as connection, connection:
            for start in range(0, len(wanted), _WRITE_BATCH):
                batch = wanted[start : start + _WRITE_BATCH]
                marks = ",".join("?" * len(batch))
                connection.execute(f"DELETE FROM chunks WHERE chunk_id IN ({marks})", batch)

    def rebuild(self, rows: Iterable[tuple[Sequence[str], Sequence[str]]]) -> None:
        """Replace the whole index with (ids, texts) batches: built aside, then renamed into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".rebuild")
        for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            leftover.unlink(missing_ok=True)
        with self._lock:
            with closing(self._connect(temp)) as connection:
                with connection:
                    for ids, texts in rows:
                        self._write(connection, ids, texts)
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                connection.execute("PRAGMA journal_mode=DELETE")
            for stale in (Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                stale.unlink(missing_ok=True)
            os.replace(temp, self.path)

    def remove(self) -> None:
        with self._lock:
            for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                path.unlink(missing_ok=True)

    def move_to(self, target: Path) -> KeywordIndex:
        """The same index under a new file name (the collection was renamed)."""
        moved = KeywordIndex(target)
        if not self.exists():
            return moved
        with self._lock:
            with closing(sqlite3.connect(self.path)) as connection:  # fold the WAL into the file
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path, target)
            for stale in (Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                stale.unlink(missing_ok=True)
        return moved

    def count(self) -> int:
        if not self.exists():
            return 0
        with closing(self._connect()) as connection:
            return int(connection.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Up to k (chunk id, BM25 score) pairs, best first; higher scores match better."""
        tokens = list(dict.fromkeys(query_tokens(query)))
        if not tokens or k <= 0 or not self.exists():
            return []
        with closing(self._connect()) as connection:
            terms = self._useful_terms(connection, tokens)
            if not terms:
                return []
            expression = " OR ".join(f'"{t}"' for t in terms)
            rows = connection.execute(
                "SELECT chunk_id, bm25(chunks) AS rank FROM chunks WHERE chunks MATCH ? "
                "ORDER BY rank LIMIT ?",
                (expression, k),
            ).fetchall()
        return [(str(chunk_id), -float(rank)) for chunk_id, rank in rows]  # FTS5: lower is better

    @staticmethod
    def _useful_terms(connection: sqlite3.Connection, tokens: list[str]) -> list[str]:
        """The query's tokens minus those found in over half the chunks (see _COMMON_FRACTION)."""
        total = connection.execute("SELECT count(*) FROM chunks").fetchone()[0]
        if not total:
            return []
        # The vocabulary holds stemmed terms; most common words ("the", "of", "is") are their own
        # stem, which is all this filter is for. A token missing here is simply kept.
        marks = ",".join("?" * len(tokens))
        known = dict(
            connection.execute(f"SELECT term, doc FROM terms WHERE term IN ({marks})", tokens)
        )
        useful = []
        for token in tokens:
            docs = known.get(token)
            if docs is not None and total >= 4 and docs > _COMMON_FRACTION * total:
                continue
            useful.append(token)
        return useful
