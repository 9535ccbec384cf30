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
(a flag with its dashes) and in its parts; FTS5 then stems every token with Porter. Short flags are
case-sensitive (``-b`` and ``-B``, ``-i`` and ``-I`` differ) while FTS5 folds case, so each also
gets an exact-case token of its own (see _exact).
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path

# A word, or words joined by - . / : _ (identifiers, paths, dotted names, versions); a flag keeps
# its leading dashes ("-B", "--with-lto") unless the dash follows a word ("non-empty").
_TOKEN = re.compile(r"(?<![\w-])-{1,2}\w+(?:[-./:]\w+)*|\w+(?:[-./:]\w+)*")
_PARTS = re.compile(r"[-./:_]+")
# The words of a camelCase or PascalCase name: "getTimeout" -> get, Timeout; "HTTPServer" -> HTTP,
# Server; "HfApi" -> Hf, Api.
_CAMEL_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+")
# FTS5 must keep what _TOKEN joined, so its own tokenizer treats the joiners as letters.
_FTS_TOKENIZER = "porter unicode61 remove_diacritics 2 tokenchars '-_./:=^'"
# Bumped whenever tokens or columns change, so an older index is rebuilt from Chroma.
INDEX_VERSION = 5
# BM25 weight of a chunk's own heading (the option, variable, function or section it belongs to)
# against its text: a question naming "-I" wants the chunk about -I, not a compiler flag list that
# mentions -I five times. Chosen with scripts/eval_retrieval.py on its tuning half.
HEADING_WEIGHT = 2.0
# BM25 gives a term found in more than half the chunks no weight (FTS5 floors its IDF near zero),
# so such terms are dropped from the query: they only cost time.
_COMMON_FRACTION = 0.5
_WRITE_BATCH = 500


def _exact(flag: str) -> str:
    """A short flag's case-exact token, which FTS5's case folding leaves distinct: "-B" becomes
    "=-b^" and "-b" becomes "=-b"."""
    return "=" + "".join(f"{c.lower()}^" if c.isupper() else c for c in flag)


def _parts(original: str) -> list[str]:
    """An identifier's lower-cased parts: split at its joiners, and a camelCase part also into
    its words ("llama_batch_init" -> llama, batch, init; "HfApi" -> hfapi, hf, api)."""
    parts: list[str] = []
    for part in _PARTS.split(original):
        if not part:
            continue
        parts.append(part.casefold())
        words = _CAMEL_WORDS.findall(part) if part.isalpha() else []
        if len(words) > 1:
            parts.extend(w.casefold() for w in words)
    return parts


def keyword_tokens(text: str) -> list[str]:
    """Lower-cased words; each joined or camelCase identifier both whole and split into its parts."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        original = match.group()
        whole = original.casefold()
        parts = _parts(original)
        joined = len(parts) > 1 or whole != (parts[0] if parts else "")
        if joined:
            tokens.append(whole)
        bare = whole.lstrip("-")
        if bare != whole and len(parts) > 1:
            tokens.append(bare)  # "ctx-size" in a question still finds "--ctx-size"
        if original.startswith("-") and not original.startswith("--"):
            tokens.append(_exact(original))
        tokens.extend(p for p in dict.fromkeys(parts) if not (joined and p == whole))
    return [t for t in tokens if t]


def query_tokens(text: str) -> list[str]:
    """A question's tokens without English function words ("what", "does", "the").

    BM25 weighs such words little but not nothing, and short chunks full of them ("Next topic:
    What now?") rise on them alone. Words inside an identifier are kept (``--system-site-packages``
    keeps "system"). The list is scikit-learn's, installed with sentence-transformers.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    kept: list[str] = []
    for match in _TOKEN.finditer(text):
        whole = match.group()
        if whole.casefold() in ENGLISH_STOP_WORDS:
            continue
        kept.extend(keyword_tokens(whole))
    return kept or keyword_tokens(text)


def _question_names(question: str) -> list[str]:
    """The question's names and identifiers: words with a capital letter past the first word
    ("Eclipse", "PyPI", "DMCA"), or with digits or joiners ("PYTHON_JIT", "--disable-gil")."""
    names = []
    for match in _TOKEN.finditer(question):
        word = match.group()
        capital = match.start() > 0 and any(c.isupper() for c in word)
        if capital or any(c.isdigit() or c in "-_./:" for c in word):
            names.append(word)
    return list(dict.fromkeys(names))


def _question_phrases(question: str) -> list[str]:
    """Names of several capitalised words past the first ("Apache Software Foundation",
    "Microsoft Store"): each word may be in the documents while the name is not. None from a
    question in title case, where capitals mark no names."""
    words = list(_TOKEN.finditer(question))
    capital = [w.start() > 0 and w.group()[:1].isupper() for w in words]
    if sum(capital) * 2 > len(words):
        return []
    phrases: list[str] = []
    run: list[re.Match[str]] = []
    for word, is_capital in zip(words, capital, strict=True):
        joined = run and not question[run[-1].end() : word.start()].strip()
        if is_capital and (not run or joined):
            run.append(word)
            continue
        if len(run) > 1:
            phrases.append(" ".join(w.group() for w in run))
        run = [word] if is_capital else []
    if len(run) > 1:
        phrases.append(" ".join(w.group() for w in run))
    return list(dict.fromkeys(phrases))


def _indexed_text(text: str) -> str:
    return " ".join(keyword_tokens(text))


def heading_term(heading: str | None) -> str:
    """The last part of a heading path ("venv > Options > --clear" gives "--clear")."""
    return (heading or "").rpartition(" > ")[2]


class KeywordIndex:
    """One collection's BM25 index in its own SQLite file; every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # one writer at a time; readers use their own connections

    def exists(self) -> bool:
        return self.path.is_file()

    def version(self) -> int:
        """The INDEX_VERSION the file was written with (0 before versions were kept)."""
        if not self.exists():
            return 0
        with closing(sqlite3.connect(self.path, timeout=30)) as connection:
            return int(connection.execute("PRAGMA user_version").fetchone()[0])

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        connection = sqlite3.connect(path or self.path, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS chunks USING fts5("
            f"chunk_id UNINDEXED, heading, body, tokenize=\"{_FTS_TOKENIZER}\")"
        )
        connection.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5vocab(chunks, 'row')"
        )
        return connection

    @staticmethod
    def _write(
        connection: sqlite3.Connection,
        ids: Sequence[str],
        texts: Sequence[str],
        headings: Sequence[str | None] | None = None,
    ) -> None:
        headings = headings if headings is not None else [None] * len(ids)
        for start in range(0, len(ids), _WRITE_BATCH):
            batch_ids = list(ids[start : start + _WRITE_BATCH])
            marks = ",".join("?" * len(batch_ids))
            connection.execute(f"DELETE FROM chunks WHERE chunk_id IN ({marks})", batch_ids)
            connection.executemany(
                "INSERT INTO chunks (chunk_id, heading, body) VALUES (?, ?, ?)",
                [
                    (i, _indexed_text(heading_term(h)), _indexed_text(t))
                    for i, t, h in zip(batch_ids, texts[start:], headings[start:], strict=False)
                ],
            )

    def add(
        self, ids: Sequence[str], texts: Sequence[str], headings: Sequence[str | None] | None = None
    ) -> None:
        """Insert or replace chunks by id; ``headings`` are their heading paths (None: none)."""
        if len(ids) != len(texts) or (headings is not None and len(headings) != len(ids)):
            raise ValueError("ids, texts and headings differ in length")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, closing(self._connect()) as connection, connection:
            if not connection.execute("SELECT 1 FROM chunks_docsize LIMIT 1").fetchone():
                connection.execute(f"PRAGMA user_version = {INDEX_VERSION}")  # a new index
            self._write(connection, ids, texts, headings)

    def delete(self, ids: Iterable[str]) -> None:
        wanted = list(ids)
        if not wanted or not self.exists():
            return
        with self._lock, closing(self._connect()) as connection, connection:
            for start in range(0, len(wanted), _WRITE_BATCH):
                batch = wanted[start : start + _WRITE_BATCH]
                marks = ",".join("?" * len(batch))
                connection.execute(f"DELETE FROM chunks WHERE chunk_id IN ({marks})", batch)

    def rebuild(
        self, rows: Iterable[tuple[Sequence[str], Sequence[str], Sequence[str | None]]]
    ) -> None:
        """Replace the whole index with (ids, texts, headings) batches: built aside, then renamed
        into place."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(self.path.name + ".rebuild")
        for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            leftover.unlink(missing_ok=True)
        with self._lock:
            with closing(self._connect(temp)) as connection:
                with connection:
                    connection.execute(f"PRAGMA user_version = {INDEX_VERSION}")
                    for ids, texts, headings in rows:
                        self._write(connection, ids, texts, headings)
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
            return int(connection.execute("SELECT count(*) FROM chunks_docsize").fetchone()[0])

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
            # Rank by rowid first and read chunk ids for the k winners only: naming chunk_id in
            # the ranking query reads the stored row of every match (45 ms instead of 7 on
            # 10,000 chunks when a query word is common).
            rows = connection.execute(
                "SELECT c.chunk_id, best.rank FROM (SELECT rowid, "
                f"bm25(chunks, 0, {HEADING_WEIGHT}, 1.0) AS rank FROM chunks "
                "WHERE chunks MATCH ? ORDER BY rank LIMIT ?) AS best "
                "JOIN chunks AS c ON c.rowid = best.rowid ORDER BY best.rank",
                (expression, k),
            ).fetchall()
        return [(str(chunk_id), -float(rank)) for chunk_id, rank in rows]  # FTS5: lower is better

    def missing_names(self, question: str) -> list[str]:
        """The names and identifiers the question asks about that no chunk contains, as written.

        Why: a near-topic question the documents do not answer ("What does the Eclipse Public
        License say about patents?", "What does the PYTHON_JIT environment variable do?") finds
        passages as close in meaning as answerable ones; what gives it away is a name it asks about
        that appears nowhere in the documents. Plain lower-case words are not checked: a question
        may say "voyage" where the text says "four days". A joined name ("Apache-licensed") counts
        as present when its parts are; a name of several words ("Apache Software Foundation") only
        as that phrase.
        """
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        names = _question_names(question)
        phrases = _question_phrases(question)
        if not (names or phrases) or not self.exists():
            return []
        missing = []
        with closing(self._connect()) as connection:
            def present(token: str) -> bool:
                return connection.execute(
                    "SELECT 1 FROM chunks WHERE chunks MATCH ? LIMIT 1", (f'"{token}"',)
                ).fetchone() is not None

            for name in names:
                whole = name.casefold()
                if whole in ENGLISH_STOP_WORDS:
                    continue  # "US", "It"
                parts = [p for p in _PARTS.split(whole.lstrip("-")) if p]
                if present(whole) or (len(parts) > 1 and all(present(p) for p in parts)):
                    continue
                missing.append(name)
            missing += [phrase for phrase in phrases
                        if not present(" ".join(keyword_tokens(phrase)))]
        return missing

    @staticmethod
    def _useful_terms(connection: sqlite3.Connection, tokens: list[str]) -> list[str]:
        """The query's tokens minus those found in over half the chunks (see _COMMON_FRACTION)."""
        # The shadow table of row sizes counts rows without reading their text (0.5 ms, not 13).
        total = connection.execute("SELECT count(*) FROM chunks_docsize").fetchone()[0]
        if not total:
            return []
        # The vocabulary holds stemmed terms; most common words ("the", "of", "is") are their own
        # stem, which is all this filter is for. A token missing here is simply kept. One lookup
        # per term: fts5vocab answers "term = ?" from its index but scans for "term IN (...)".
        useful = []
        for token in tokens:
            found = connection.execute("SELECT doc FROM terms WHERE term = ?", (token,)).fetchone()
            if found is not None and total >= 4 and found[0] > _COMMON_FRACTION * total:
                continue
            useful.append(token)
        return useful
