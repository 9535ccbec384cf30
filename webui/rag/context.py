"""Chunk context: what a chunk's embedding and keyword entry hold besides its own text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath

# What each chunk's embedding and keyword entry hold besides its text. 1: the text alone (its heading
# path is in the text, see context_line); 2: also the document's title (see embedded_text). A
# collection keeps the format it was indexed with (StoredCollection.index_format), and one older than this
# is re-indexed before its next file is added.
INDEX_FORMAT = 2
_MAX_TITLE_WORDS = 12


def document_title(file_name: str) -> str:
    """The words a file's name gives: "git-commit.1.txt" -> "git commit.1", "MPL-2.0.txt" ->
    "MPL 2.0". Why: a chunk from the middle of "sort.1" or "Apache-2.0" seldom says which
    command or licence it is about, and questions name them ("How do I make sort ...")."""
    words = re.sub(r"[-_]+", " ", PurePath(file_name).stem).split()
    return " ".join(words[:_MAX_TITLE_WORDS])


def embedded_text(text: str, file_name: str) -> str:
    """What is embedded for a chunk: its document's title on a line, then its text. The passage
    shown to the model and the user stays the text alone (the citation names the file)."""
    title = document_title(file_name)
    return f"{title}\n{text}" if title else text


def keyword_heading(metadata: Mapping[str, object]) -> str | None:
    """What a chunk's heading column in the keyword index holds: its document's title and the last
    part of its heading path ("ls.1 --sort"), weighed above its text (webui/rag/keyword.py)."""
    title = document_title(str(metadata.get("file_name") or ""))
    heading = str(metadata.get("heading") or "").rpartition(" > ")[2]
    return " ".join(part for part in (title, heading) if part) or None
