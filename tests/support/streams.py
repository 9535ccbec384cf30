"""Reading the engine's streamed chunks in tests."""

from __future__ import annotations

from collections.abc import Iterable


def collect(chunks: Iterable) -> tuple[str, object]:
    """A stream's whole text and its final stats (None if it sent none)."""
    text, stats = "", None
    for chunk in chunks:
        text += chunk.text
        stats = chunk.stats or stats
    return text, stats
