"""The engine's pure decisions: which turns to keep, the FIFO lock, the background pump."""

from __future__ import annotations

import threading
import time

import pytest

from webui.engine import (
    FifoLock,
    GenerationStats,
    StreamChunk,
    choose_messages_to_keep,
    pump_in_background,
)


def conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "sys"}]
    for i in range(turns):
        messages += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    return messages + [{"role": "user", "content": "last"}]


def test_keeps_everything_when_it_fits() -> None:
    kept, dropped = choose_messages_to_keep(conversation(3), lambda c: True)
    assert dropped == 0 and len(kept) == 8


def test_drops_oldest_exchanges_first_and_keeps_system_and_newest() -> None:
    kept, dropped = choose_messages_to_keep(conversation(4), lambda c: len(c) <= 4)
    assert [m["content"] for m in kept] == ["sys", "q3", "a3", "last"]
    assert dropped == 6


def test_never_drops_the_newest_message() -> None:
    kept, dropped = choose_messages_to_keep(conversation(2), lambda c: False)
    assert [m["content"] for m in kept] == ["sys", "last"]
    assert dropped == 4


def test_fifo_lock_grants_in_arrival_order_and_reports_positions() -> None:
    lock = FifoLock()
    order: list[int] = []
    positions: dict[int, list[int]] = {i: [] for i in range(1, 4)}

    def worker(i: int) -> None:
        with lock.hold(positions[i].append):
            order.append(i)

    with lock.hold():
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 4)]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        assert lock.waiting == 3
    for thread in threads:
        thread.join(5)
    assert order == [1, 2, 3]
    assert positions[1][0] == 1 and positions[3][0] == 3


def stats() -> GenerationStats:
    return GenerationStats(prompt_tokens=1, completion_tokens=3, ttft_s=0.1, total_s=0.4,
                           stopped_by_user=False, dropped_messages=0, finish_reason="stop")


def test_pump_merges_what_a_slow_consumer_missed_and_ends_with_stats() -> None:
    def produce(cancel: threading.Event):
        for piece in ("a", "b", "c"):
            yield StreamChunk(text=piece)
        yield StreamChunk(stats=stats())

    chunks = pump_in_background(produce, threading.Event())
    time.sleep(0.2)  # the consumer is late: everything is produced already
    received = list(chunks)
    assert "".join(c.text for c in received) == "abc"
    assert len([c for c in received if c.text]) == 1, "missed pieces arrive merged"
    assert received[-1].stats is not None


def test_pump_reraises_errors_in_the_consumer() -> None:
    def produce(cancel: threading.Event):
        yield StreamChunk(text="x")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(pump_in_background(produce, threading.Event()))


def test_pump_cancels_generation_when_the_consumer_leaves_early() -> None:
    cancel = threading.Event()
    stopped = threading.Event()

    def produce(flag: threading.Event):
        while not flag.is_set():
            yield StreamChunk(text=".")
            time.sleep(0.01)
        stopped.set()

    chunks = pump_in_background(produce, cancel)
    next(chunks)
    chunks.close()
    assert stopped.wait(2), "the producer saw the cancel flag"
