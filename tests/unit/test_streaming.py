"""Paced streaming updates and per-session Stop flags, shared by chat and the notebook."""

from __future__ import annotations

import pytest

from webui.engine import GenerationStats, StreamChunk
from webui.services import streaming
from webui.services.streaming import CancelRegistry, paced_text

STATS = GenerationStats(prompt_tokens=1, completion_tokens=4, ttft_s=0.1, total_s=0.2,
                        stopped_by_user=False, dropped_messages=0, finish_reason="stop")


def test_updates_are_paced_and_the_last_one_has_all_text_and_the_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([10.0, 10.01, 10.02, 10.05])  # the 2nd and 3rd pieces come within the interval
    monkeypatch.setattr(streaming.time, "monotonic", lambda: next(clock))
    chunks = [StreamChunk(text=t) for t in ("a", "b", "c", "d")] + [StreamChunk(stats=STATS)]
    updates = list(paced_text(iter(chunks)))
    assert updates == [("a", None), ("abcd", None), ("abcd", STATS)]


def test_stop_flags_belong_to_one_session() -> None:
    registry = CancelRegistry()
    mine, theirs = registry.start("me"), registry.start("them")
    assert registry.stop("me") and mine.is_set() and not theirs.is_set()
    registry.finish("me", mine)
    assert not registry.stop("me"), "a finished request has nothing to stop"
