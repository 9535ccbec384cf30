"""Paced streaming updates and per-session Stop flags, shared by chat and the notebook."""

from __future__ import annotations

import pytest

from webui.engine import GenerationStats, StreamChunk
from webui.services import streaming
from webui.services.streaming import CancelRegistry, UpdatePacer

STATS = GenerationStats(prompt_tokens=1, completion_tokens=4, ttft_s=0.1, total_s=0.2,
                        stopped_by_user=False, dropped_messages=0, finish_reason="stop")


def test_updates_are_paced_and_the_last_one_has_all_text_and_the_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([10.0, 10.01, 10.02, 10.06])  # the 2nd and 3rd pieces come within a lone reply's interval
    monkeypatch.setattr(streaming.time, "monotonic", lambda: next(clock))
    chunks = [StreamChunk(text=t) for t in ("a", "b", "c", "d")] + [StreamChunk(stats=STATS)]
    updates = list(UpdatePacer().paced_text(iter(chunks)))
    assert updates == [("a", None), ("abcd", None), ("abcd", STATS)]


def test_replies_streaming_at_once_share_the_redraws(monkeypatch: pytest.MonkeyPatch) -> None:
    pacer = UpdatePacer(updates_per_s=16, slowest_s=0.5)
    now = [10.0]
    monkeypatch.setattr(streaming.time, "monotonic", lambda: now[0])
    others = [pacer.paced_text(iter([StreamChunk(text="x"), StreamChunk(stats=STATS)])) for _ in range(3)]
    for other in others:
        assert next(other) == ("x", None)  # each has started and now streams
    assert pacer.streams == 3

    def mine():
        for index in range(12):
            now[0] = 10.0 + index * 0.0625  # a token every 62.5 ms
            yield StreamChunk(text=str(index % 10))
        yield StreamChunk(stats=STATS)

    updates = list(pacer.paced_text(mine()))
    # Four streams share 16 redraws a second: this one is redrawn every 250 ms, not every token.
    assert [text for text, _ in updates] == ["0", "01234", "012345678", "012345678901"]
    assert updates[-1][1] is STATS
    for other in others:
        assert list(other) == [("x", STATS)]
    assert pacer.streams == 0, "a finished reply no longer takes a share"


def test_many_streams_are_still_redrawn_every_half_second() -> None:
    pacer = UpdatePacer(updates_per_s=20, slowest_s=0.5)
    running = [pacer.paced_text(iter([StreamChunk(text="x"), StreamChunk(stats=STATS)])) for _ in range(30)]
    for stream in running:
        next(stream)
    assert pacer.interval() == 0.5
    for stream in running:
        stream.close()
    assert pacer.streams == 0, "a reply whose reader left gives its share back"


def test_stop_flags_belong_to_one_session() -> None:
    registry = CancelRegistry()
    mine, theirs = registry.start("me"), registry.start("them")
    assert registry.stop("me") and mine.is_set() and not theirs.is_set()
    registry.finish("me", mine)
    assert not registry.stop("me"), "a finished request has nothing to stop"
