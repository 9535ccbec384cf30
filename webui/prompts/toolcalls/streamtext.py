"""Streaming text helpers for the reply parsers: markers that arrive split, whitespace at block edges, JSON strings.

A streamed reply arrives in arbitrary pieces, so a marker such as ``<tool_call>`` may come one
character at a time; these helpers say what can be let out now and what must wait.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from webui.prompts.toolcalls.types import ReplyEvent, ToolCallError


class StreamParser:
    """feed/finish around one ``_step``; a malformed call fails the reply without losing the text before it."""

    def __init__(self) -> None:
        self._failure: ToolCallError | None = None

    def feed(self, text: str) -> list[ReplyEvent]:
        return self._run(text, final=False)

    def finish(self) -> list[ReplyEvent]:
        return self._run("", final=True)

    def _run(self, text: str, *, final: bool) -> list[ReplyEvent]:
        if self._failure is not None:
            raise self._failure
        events: list[ReplyEvent] = []
        try:
            self._step(text, events, final=final)
        except ToolCallError as exc:
            self._failure = exc
            if final or not events:
                raise
            # The text before the bad call goes out now; the error comes with the next feed or finish.
        return merged(events)

    def _step(self, text: str, events: list[ReplyEvent], *, final: bool) -> None:
        raise NotImplementedError



@dataclass(frozen=True)
class MarkerSplit:
    """``text`` comes before ``marker`` (None: no whole marker yet); ``rest`` follows it, or is held back."""

    text: str
    marker: str | None
    rest: str


def split_at_marker(buffer: str, markers: Sequence[str]) -> MarkerSplit:
    """Cut ``buffer`` at its first marker; without one, hold back the end that may still become a marker."""
    found: tuple[int, str] | None = None
    for marker in markers:
        at = buffer.find(marker)
        if at >= 0 and (found is None or at < found[0] or (at == found[0] and len(marker) > len(found[1]))):
            found = (at, marker)
    if found is not None:
        at, marker = found
        return MarkerSplit(buffer[:at], marker, buffer[at + len(marker):])
    keep = len(buffer) - _marker_start_length(buffer, markers)
    return MarkerSplit(buffer[:keep], None, buffer[keep:])


def _marker_start_length(buffer: str, markers: Sequence[str]) -> int:
    """Length of the longest end of ``buffer`` that is the start of a marker."""
    longest = 0
    for marker in markers:
        for length in range(min(len(marker) - 1, len(buffer)), longest, -1):
            if buffer.endswith(marker[:length]):
                longest = length
                break
    return longest


class TextOut:
    """One stream of reply text (the answer or the thinking) whose whitespace next to markup is dropped.

    Trailing whitespace is held until more text follows it, so that the whitespace a model writes
    before a tool call or a closing marker never reaches the user.
    """

    def __init__(self, kind: Literal["content", "reasoning"], *, trim_start: bool) -> None:
        self._kind = kind
        self._trim_start = trim_start
        self._held = ""

    def write(self, text: str, events: list[ReplyEvent]) -> None:
        if self._trim_start:
            text = text.lstrip()
            if not text:
                return
            self._trim_start = False
        body = text.rstrip()
        if body:
            events.append(self._event(self._held + body))
            self._held = text[len(body):]
        else:
            self._held += text

    def cut(self) -> None:
        """Markup came: the whitespace before it and the whitespace right after it are dropped."""
        self._held = ""
        self._trim_start = True

    def flush(self, events: list[ReplyEvent]) -> None:
        if self._held:
            events.append(self._event(self._held))
            self._held = ""

    def _event(self, text: str) -> ReplyEvent:
        return ReplyEvent(content=text) if self._kind == "content" else ReplyEvent(reasoning=text)


class BufferedAnswer:
    """An answer layer that keeps what it has not placed yet in ``_buffer`` and writes content through one
    TextOut; subclasses say in ``_drain`` how the buffer is read (calls at markers, one JSON object)."""

    def __init__(self) -> None:
        self._content = TextOut("content", trim_start=False)
        self._buffer = ""

    def feed(self, text: str, events: list[ReplyEvent]) -> None:
        self._buffer += text
        self._drain(events, final=False)

    def finish(self, events: list[ReplyEvent]) -> None:
        self._drain(events, final=True)
        self._content.flush(events)

    def cut(self) -> None:
        self._content.cut()

    def _drain(self, events: list[ReplyEvent], *, final: bool) -> None:
        raise NotImplementedError


def merged(events: list[ReplyEvent]) -> list[ReplyEvent]:
    """Neighbouring pieces of the same text joined, so one feed gives one event per kind of text."""
    result: list[ReplyEvent] = []
    for event in events:
        last = result[-1] if result else None
        if last is not None and event.tool_call is None and last.tool_call is None:
            if not (last.reasoning or event.reasoning):
                result[-1] = ReplyEvent(content=last.content + event.content)
                continue
            if not (last.content or event.content):
                result[-1] = ReplyEvent(reasoning=last.reasoning + event.reasoning)
                continue
        result.append(event)
    return result


def json_string_prefix(raw: str) -> tuple[int, bool]:
    """How much of a JSON string's body (the text after its opening quote) can be decoded now.

    Returns the length that ends on no half-written escape (``\\u00e`` or a surrogate pair cut in
    two), and whether the closing quote is right after it.
    """
    at = 0
    while at < len(raw):
        char = raw[at]
        if char == '"':
            return at, True
        if char != "\\":
            at += 1
            continue
        if at + 1 >= len(raw):
            return at, False
        if raw[at + 1] != "u":
            at += 2
            continue
        if at + 6 > len(raw):
            return at, False
        if _is_high_surrogate(raw[at + 2:at + 6]):
            follow = raw[at + 6:at + 12]
            if len(follow) < 6 and "\\u".startswith(follow[:2]):
                return at, False  # the pair's second half may still come
            at += 12 if follow.startswith("\\u") else 6
            continue
        at += 6
    return at, False


def _is_high_surrogate(hex_digits: str) -> bool:
    try:
        return 0xD800 <= int(hex_digits, 16) <= 0xDBFF
    except ValueError:
        return False


def decode_json_string(body: str) -> str:
    """The text of a JSON string's body (without quotes); raises ValueError when an escape is invalid."""
    return json.loads(f'"{body}"', strict=False)
