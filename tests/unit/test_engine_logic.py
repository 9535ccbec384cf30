"""The engine's pure decisions: which turns to keep, stop strings, fairness, slot count, locks, the pump."""

from __future__ import annotations

import threading
import time

import pytest

from webui.engine import (
    GenerationStats,
    ReadWriteLock,
    StopScanner,
    StreamChunk,
    choose_messages_to_keep,
    choose_parallel,
    common_prefix,
    kv_bytes_per_token,
    pick_next,
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


def test_stop_strings_split_across_pieces_are_found_and_never_shown() -> None:
    scanner = StopScanner(["<|im_end|>", "\n\nUser:"])
    shown = []
    for piece in ["Hello", " world", "<|im", "_e", "nd|>", "more"]:
        text, stopped = scanner.feed(piece)
        shown.append(text)
        if stopped:
            break
    assert "".join(shown) == "Hello world" and stopped


def test_text_that_only_looks_like_a_stop_start_is_released_later() -> None:
    scanner = StopScanner(["\n\nUser:"])
    assert scanner.feed("a\n") == ("a", False)
    assert scanner.feed("\nUs") == ("", False)
    assert scanner.feed("e it") == ("\n\nUse it", False)
    assert scanner.feed("\n") == ("", False)
    assert scanner.flush() == "\n"


def test_a_free_slot_goes_first_come_first_served_without_users() -> None:
    assert pick_next([None, None, None], {}) == 0


def test_a_user_holding_a_slot_waits_behind_one_holding_none() -> None:
    assert pick_next(["ann", "ann", "bob"], {"ann": 1}) == 2
    assert pick_next(["ann", "bob"], {"ann": 2, "bob": 1}) == 1
    assert pick_next(["ann", "bob"], {"ann": 1, "bob": 1}) == 0, "equal holders: first come first served"
    assert pick_next(["ann"], {"ann": 3}) == 0, "nobody else waits: the user gets another slot"


def test_parallel_defaults_to_four_where_the_kv_cache_fits_and_obeys_the_flag() -> None:
    gib = 2**30
    assert choose_parallel(None, kv_bytes_per_sequence=gib // 8, free_bytes=8 * gib) == 4
    assert choose_parallel(None, kv_bytes_per_sequence=2 * gib, free_bytes=8 * gib) == 2
    assert choose_parallel(None, kv_bytes_per_sequence=8 * gib, free_bytes=8 * gib) == 1
    assert choose_parallel(1, kv_bytes_per_sequence=1, free_bytes=8 * gib) == 1
    assert choose_parallel(8, kv_bytes_per_sequence=gib, free_bytes=gib) == 8


def test_kv_bytes_per_token_from_gguf_metadata() -> None:
    smollm2 = {"general.architecture": "llama", "llama.block_count": "30", "llama.attention.head_count": "9",
               "llama.attention.head_count_kv": "3", "llama.embedding_length": "576"}
    assert kv_bytes_per_token(smollm2, 2.0) == 30 * 3 * (64 + 64) * 2
    assert kv_bytes_per_token({}, 2.0) == 0


def test_common_prefix_of_a_cached_and_a_new_prompt() -> None:
    assert common_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0


def test_readers_share_the_lock_and_a_writer_waits_for_them() -> None:
    lock = ReadWriteLock()
    events: list[str] = []
    with lock.read():
        with lock.read():  # a reader may read again while a writer waits
            writer = threading.Thread(target=lambda: (lock.write().__enter__(), events.append("write")))
            writer.start()
            time.sleep(0.1)
            with lock.read():
                events.append("nested read")
        time.sleep(0.1)
        assert events == ["nested read"], "the writer waits for the reader"
    writer.join(2)
    assert events == ["nested read", "write"]


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
