"""Reading the engine's streamed chunks in tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def collect(chunks: Iterable) -> tuple[str, object]:
    """A stream's whole text and its final stats (None if it sent none)."""
    text, stats = "", None
    for chunk in chunks:
        text += chunk.text
        stats = chunk.stats or stats
    return text, stats


def all_at_once(ask: Callable[[str], T], prompts: Sequence[str], *, timeout: float = 600) -> dict[str, T]:
    """``ask(prompt)`` for every prompt, each from its own thread, all released at the same moment."""
    results: dict[str, T] = {}
    start = threading.Barrier(len(prompts))

    def run(prompt: str) -> None:
        start.wait()
        results[prompt] = ask(prompt)

    threads = [threading.Thread(target=run, args=(prompt,)) for prompt in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert len(results) == len(prompts), "every request finished"
    return results
