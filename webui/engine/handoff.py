"""Handing a reply's chunks from the thread that makes them to the thread that reads them.

The producer never waits for the consumer; the consumer gets everything produced since it last
looked, merged into one chunk (a web page pays a thread hop, a diff and a network write per update).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence

from webui.engine.types import StreamChunk, TokenLogprob

STREAM_END = object()  # handed over after a reply's last chunk


def stream_ends(items: Sequence[object]) -> bool:
    """Whether a batch of handed-over items ends the reply (its end marker, or an error to raise)."""
    return any(item is STREAM_END or isinstance(item, BaseException) for item in items)


def merge_handed_over(items: Sequence[object]) -> Iterator[StreamChunk]:
    """Items a producer handed over since the consumer last looked: their texts merged into one chunk.

    A slow consumer (a web page: a thread hop, a diff and a network write per update) then gets one
    update for many tokens. Thinking is merged apart from the answer; tool calls end a merged chunk
    (text that came before a call stays before it); a chunk with stats stays apart and in order; an
    error is raised here.
    """
    text = reasoning = ""
    logprobs: list[TokenLogprob] | None = None
    for item in items:
        if isinstance(item, BaseException):
            raise item
        if not isinstance(item, StreamChunk):
            continue  # the end marker
        if item.stats is not None:
            if text or reasoning or logprobs:
                yield StreamChunk(text=text, reasoning=reasoning, logprobs=logprobs)
                text, reasoning, logprobs = "", "", None
            yield item
            continue
        text += item.text
        reasoning += item.reasoning
        if item.logprobs is not None:
            logprobs = (logprobs or []) + item.logprobs
        if item.tool_calls:
            yield StreamChunk(text=text, reasoning=reasoning, logprobs=logprobs, tool_calls=item.tool_calls)
            text, reasoning, logprobs = "", "", None
    if text or reasoning or logprobs:
        yield StreamChunk(text=text, reasoning=reasoning, logprobs=logprobs)


def pump_in_background(
    produce: Callable[[threading.Event], Iterator[StreamChunk]], cancel: threading.Event
) -> Iterator[StreamChunk]:
    """Run a generation in its own thread and hand the consumer everything produced since it last looked.

    Decoding then never waits for the consumer (a web page receiving each update costs a thread
    hop, a diff and a network write per token); a slow consumer gets the new text merged into one
    chunk. If the consumer goes away early, ``cancel`` is set so llama.cpp stops and frees the lock.
    """
    handoff: queue.SimpleQueue[object] = queue.SimpleQueue()

    def work() -> None:
        try:
            for chunk in produce(cancel):
                handoff.put(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            handoff.put(exc)
        finally:
            handoff.put(STREAM_END)

    threading.Thread(target=work, name="llama-generate", daemon=True).start()
    finished = False
    try:
        while not finished:
            batch = [handoff.get()]
            while not handoff.empty():
                batch.append(handoff.get())
            finished = stream_ends(batch)
            yield from merge_handed_over(batch)
    finally:
        if not finished:
            cancel.set()
