"""A reply's text split into answer, thinking and tool calls as it streams, by the model family's parser.

The engine decodes text; what the text means (a ``<tool_call>`` block, a ``<think>`` section) is the
family's convention, fixed for each reply by the prepare step (``FittedPrompt.reply_format``). Replies
with no tools offered and no thinking to split pass through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace

from webui.engine.types import StreamChunk
from webui.prompts.toolcalls import ReplyEvent, ReplyFormat, ToolCallError
from webui.prompts.toolcalls.parsers import parser_for

log = logging.getLogger(__name__)


def needs_parsing(reply_format: ReplyFormat) -> bool:
    return bool(reply_format.tool_names) or reply_format.reasoning or reply_format.generic_json


def _chunk_of(events: list[ReplyEvent], base: StreamChunk | None = None) -> StreamChunk | None:
    """The events of one step as one chunk (text and thinking joined, calls in order); None if empty."""
    text = "".join(e.content for e in events)
    reasoning = "".join(e.reasoning for e in events)
    calls = tuple(e.tool_call for e in events if e.tool_call is not None)
    logprobs = base.logprobs if base is not None else None
    if not (text or reasoning or calls or logprobs):
        return None
    return StreamChunk(text=text, reasoning=reasoning, tool_calls=calls, logprobs=logprobs)


def parsed_reply(chunks: Iterator[StreamChunk], reply_format: Callable[[], ReplyFormat]) -> Iterator[StreamChunk]:
    """``chunks`` with their text parsed; ``reply_format`` is asked at the first chunk (the prompt may be
    prepared again, for a model loaded while the request waited, until it starts)."""
    parser = None
    made_calls = False
    for chunk in chunks:
        if parser is None:
            fmt = reply_format()
            if not needs_parsing(fmt):
                yield chunk
                yield from chunks
                return
            parser = parser_for(fmt)
        if chunk.stats is not None:
            try:
                tail = _chunk_of(parser.finish())
            except ToolCallError as exc:
                if not (chunk.stats.stopped_by_user or chunk.stats.finish_reason == "length"):
                    raise
                # Cut off by Stop or by its token budget: the unfinished call is dropped, the reason kept.
                log.warning("A reply ended inside a tool call (%s): %s", chunk.stats.finish_reason, exc)
                tail = None
            if tail is not None:
                made_calls = made_calls or bool(tail.tool_calls)
                yield tail
            stats = chunk.stats
            if made_calls and stats.finish_reason == "stop":
                stats = replace(stats, finish_reason="tool_calls")
            yield StreamChunk(stats=stats)
            continue
        parsed = _chunk_of(parser.feed(chunk.text), chunk)
        if parsed is not None:
            made_calls = made_calls or bool(parsed.tool_calls)
            yield parsed
