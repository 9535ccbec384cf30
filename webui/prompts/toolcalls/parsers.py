"""Streaming reply parsers, one per tool family: the answer, the thinking and the tool calls split apart.

``parser_for(fmt)`` gives a parser whose ``feed`` takes each streamed piece of the reply and returns
what is known so far; text that may still turn out to be markup is held back until it is known, so
markup never reaches ``content`` or ``reasoning``. Thinking is split by one layer for every family
(``<think>``, Gemma 4's thought channel); tool calls by a layer that knows the family's syntax; GPT-OSS's
harmony format, where channels carry both, has its own parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Protocol

from webui.prompts.toolcalls import callsyntax
from webui.prompts.toolcalls.callsyntax import call_from_object, leading_json, malformed
from webui.prompts.toolcalls.families import THINK_CLOSE, THINK_OPEN
from webui.prompts.toolcalls.generic_json import GenericJsonAnswer
from webui.prompts.toolcalls.harmony import HarmonyParser
from webui.prompts.toolcalls.streamtext import BufferedAnswer, MarkerSplit, StreamParser, TextOut, split_at_marker
from webui.prompts.toolcalls.types import ReplyEvent, ReplyFormat, ReplyParser, ToolCall, ToolCallError



def parser_for(fmt: ReplyFormat) -> ReplyParser:
    """A fresh parser for one reply written in ``fmt``."""
    if fmt.family == "gpt-oss":
        return HarmonyParser(fmt.tool_names)
    answer = _answer_for(fmt)
    if not fmt.reasoning:
        return _AnswerOnly(answer)
    opening, closing = _THINKING_MARKERS.get(fmt.family, (THINK_OPEN, THINK_CLOSE))
    return _ThinkingSplit(answer, opening, closing, starts_inside=fmt.thinking_open)


_THINKING_MARKERS = {"gemma4": ("<|channel>thought", "<channel|>")}


class _Answer(Protocol):
    """The layer after thinking: plain text, or text with the family's tool calls in it."""

    def feed(self, text: str, events: list[ReplyEvent]) -> None: ...

    def finish(self, events: list[ReplyEvent]) -> None: ...

    def cut(self) -> None:
        """Thinking markup came: drop whitespace next to it."""


class _AnswerOnly(StreamParser):
    def __init__(self, answer: _Answer) -> None:
        super().__init__()
        self._answer = answer

    def _step(self, text: str, events: list[ReplyEvent], *, final: bool) -> None:
        self._answer.feed(text, events)
        if final:
            self._answer.finish(events)


class _ThinkingSplit(StreamParser):
    """Thinking between ``opening`` and ``closing`` becomes reasoning, streamed; the rest goes to the answer layer."""

    def __init__(self, answer: _Answer, opening: str, closing: str, *, starts_inside: bool) -> None:
        super().__init__()
        self._answer = answer
        self._markers = (opening, closing)
        self._starts_inside = starts_inside  # the prompt ended inside a thinking block
        self._state = "start"
        self._buffer = ""
        self._thinking = TextOut("reasoning", trim_start=True)

    def _step(self, text: str, events: list[ReplyEvent], *, final: bool) -> None:
        self._buffer += text
        opening, closing = self._markers
        while True:
            if self._state == "start":
                head = self._buffer.lstrip()
                if head.startswith(opening):  # (also when the prompt opened it and the model wrote it again)
                    self._buffer, self._state = head[len(opening):], "thinking"
                    continue
                if not final and opening.startswith(head):
                    return
                self._state = "thinking" if self._starts_inside else "answer"
            split = split_at_marker(self._buffer, (closing,) if self._state == "thinking" else self._markers)
            self._buffer = split.rest
            if self._state == "thinking":
                self._thinking.write(split.text, events)
            else:
                self._answer.feed(split.text, events)
            if split.marker is None:
                break
            if self._state == "thinking":
                self._thinking.cut()
            self._answer.cut()  # a closing marker with no opening (the prompt opened it) is dropped too
            self._state = "thinking" if split.marker == opening else "answer"
        if final:
            self._finish(events)

    def _finish(self, events: list[ReplyEvent]) -> None:
        if self._state == "thinking":
            self._thinking.write(self._buffer, events)  # the reply ended while thinking
        else:
            self._answer.feed(self._buffer, events)
        self._buffer = ""
        self._answer.finish(events)


class _PlainAnswer:
    """No tools offered (or none to parse): everything is content, even text that looks like markup."""

    def __init__(self) -> None:
        self._content = TextOut("content", trim_start=False)

    def feed(self, text: str, events: list[ReplyEvent]) -> None:
        self._content.write(text, events)

    def finish(self, events: list[ReplyEvent]) -> None:
        self._content.flush(events)

    def cut(self) -> None:
        self._content.cut()


# How a call section reads: (the text after its opening marker, whether the reply has ended) ->
# (the calls, how much of the text they used), or None while it needs more text.
_CallReader = Callable[[str, bool], tuple[list[ToolCall], int] | None]


class _MarkedCalls(BufferedAnswer):
    """Content with calls that start at the family's markers; ``readers`` says how the call after each one reads."""

    def __init__(self, readers: dict[str, _CallReader], dropped: Sequence[str] = ()) -> None:
        super().__init__()
        self._readers = readers
        self._dropped = tuple(dropped)  # stray markup that is dropped wherever it appears
        self._opened: str | None = None  # the marker of the call being read
        self._line_start = True  # the buffer starts a line (Llama 3 writes its JSON calls on their own lines)

    def _find(self, buffer: str, *, final: bool) -> MarkerSplit:
        """The first opening or dropped marker in ``buffer``; subclasses find calls with no marker of their own."""
        return split_at_marker(buffer, (*self._readers, *self._dropped))

    def _drain(self, events: list[ReplyEvent], *, final: bool) -> None:
        while True:
            if self._opened is None:
                split = self._find(self._buffer, final=final)
                if split.marker is None and final:
                    split = MarkerSplit(self._buffer, None, "")
                self._content.write(split.text, events)
                if split.text:
                    self._line_start = split.text.endswith("\n")
                self._buffer = split.rest
                if split.marker is None:
                    return
                self._content.cut()
                self._line_start = True
                if split.marker in self._dropped:
                    continue
                self._opened = split.marker
            read = self._readers[self._opened](self._buffer, final)
            if read is None:
                if final:
                    raise malformed("the reply ended before the call was complete", self._buffer)
                return
            calls, used = read
            events.extend(ReplyEvent(tool_call=call) for call in calls)
            self._buffer, self._opened = self._buffer[used:], None
            self._line_start = True


def _closed_by(closing: str, read_one: Callable[[str], ToolCall]) -> _CallReader:
    """A reader for calls that end at ``closing``; if the reply ends first (a stop string), a whole call counts."""

    def read(text: str, final: bool) -> tuple[list[ToolCall], int] | None:
        end = text.find(closing)
        if end >= 0:
            return [read_one(text[:end])], end + len(closing)
        if final and text.strip():
            try:
                return [read_one(text)], len(text)
            except ToolCallError:
                return None
        return None

    return read


def _json_calls(offered: Sequence[str]) -> _CallReader:
    """One JSON object (or a list of them, as Mistral Nemo writes), then an optional ``;`` separator."""

    def read(text: str, final: bool) -> tuple[list[ToolCall], int] | None:
        found = leading_json(text)
        if found is None:
            if final and text.strip():
                raise malformed(f"it is not valid JSON ({callsyntax.json_error(text)})", text)
            return None
        value, end = found
        items = value if isinstance(value, list) else [value]
        calls = [call_from_object(item, offered, text[:end]) for item in items]
        separator = re.match(r"[ \t]*;", text[end:])
        return calls, end + (separator.end() if separator else 0)

    return read


def _mistral_calls(offered: Sequence[str]) -> _CallReader:
    """After ``[TOOL_CALLS]``: Nemo's JSON list, or Small 3.2's ``name[CALL_ID]id[ARGS]{...}``."""
    json_calls = _json_calls(offered)

    def read(text: str, final: bool) -> tuple[list[ToolCall], int] | None:
        head = text.lstrip()
        if head[:1] in ("[", "{"):
            return json_calls(text, final)
        args_at = text.find("[ARGS]")
        if args_at < 0:
            if final and head:
                raise malformed("it has no [ARGS] after the function name", text)
            return None
        name, _, call_id = text[:args_at].partition("[CALL_ID]")
        found = leading_json(text[args_at + len("[ARGS]"):])
        if found is None:
            if final:
                raise malformed("its arguments are not valid JSON", text)
            return None
        arguments, end = found
        whole = text[:args_at + len("[ARGS]") + end]
        call = callsyntax.make_call(name, arguments, offered, text=whole, call_id=call_id.strip() or None)
        return [call], len(whole)

    return read


_LLAMA_END_MARKERS = ("<|eom_id|>", "<|eot_id|>")


def _python_tag_calls(offered: Sequence[str]) -> _CallReader:
    """After Llama 3.1's ``<|python_tag|>``: a JSON call, or a built-in tool's ``name.call(key="value")``."""
    json_calls = _json_calls(offered)

    def read(text: str, final: bool) -> tuple[list[ToolCall], int] | None:
        head = text.lstrip()
        if head.startswith("{") or (not head and not final):
            return json_calls(text, final)
        ends = [at for at in (text.find(marker) for marker in _LLAMA_END_MARKERS) if at >= 0]
        if not ends and not final:
            return None
        end = min(ends) if ends else len(text)
        if not text[:end].strip():
            raise malformed("nothing follows <|python_tag|>", text)
        return callsyntax.python_calls(text[:end], offered), end

    return read


# A Llama 3 call is a JSON object that starts a line with "name" (some write "type": "function" first).
_LLAMA_HEAD = re.compile(r'\{\s*(?:"type"\s*:\s*"function"\s*,\s*)?"name"\s*:')
_LLAMA_HEAD_FORMS = ('{"name":', '{"type":"function","name":')
_LINE_BRACE = re.compile(r"^[ \t]*(?:;[ \t]*)?\{", re.M)  # (a ";" may separate it from the call before)
_TRAILING_LINE_START = re.compile(r"\n[ \t]*$")
_LINE_START_ONLY = re.compile(r"[ \t]*;?[ \t]*")


_OWN_LINE = ""  # the "marker" of a Llama 3 call that is a JSON object on its own line: nothing is dropped


class _LlamaCalls(_MarkedCalls):
    """Llama 3: calls are JSON objects on their own lines, or follow ``<|python_tag|>``."""

    def __init__(self, offered: Sequence[str]) -> None:
        super().__init__({"<|python_tag|>": _python_tag_calls(offered), _OWN_LINE: _json_calls(offered)},
                         dropped=_LLAMA_END_MARKERS)

    def _find(self, buffer: str, *, final: bool) -> MarkerSplit:
        tagged = split_at_marker(buffer, ("<|python_tag|>", *self._dropped))
        for line in _LINE_BRACE.finditer(buffer, 0, len(tagged.text) + 1):
            if line.start() == 0 and not self._line_start:
                continue
            brace = line.end() - 1
            if _LLAMA_HEAD.match(buffer, brace):
                return MarkerSplit(buffer[:line.start()], _OWN_LINE, buffer[brace:])
            compact = re.sub(r"\s+", "", buffer[brace:])
            if not final and any(form.startswith(compact) for form in _LLAMA_HEAD_FORMS):
                return MarkerSplit(buffer[:line.start()], None, buffer[line.start():])  # may still become a call
        if tagged.marker is None and not final:
            line_end = _TRAILING_LINE_START.search(tagged.text)
            if line_end is not None:  # the next line may start with a call
                return MarkerSplit(buffer[:line_end.start()], None, buffer[line_end.start():])
            if self._line_start and _LINE_START_ONLY.fullmatch(tagged.text):
                return MarkerSplit("", None, buffer)
        return tagged


def _answer_for(fmt: ReplyFormat) -> _Answer:
    offered = fmt.tool_names
    if not offered:
        return _PlainAnswer()
    if fmt.generic_json:
        return GenericJsonAnswer(offered)
    if fmt.family in ("hermes", "hermes-xml"):
        schemas = fmt.parameter_schemas()
        hermes = _closed_by("</tool_call>", lambda body: callsyntax.hermes_call(body, offered, schemas))
        return _MarkedCalls({"<tool_call>": hermes}, dropped=("</tool_call>",))
    if fmt.family == "gemma4":
        gemma4 = _closed_by("<tool_call|>", lambda body: callsyntax.gemma4_call(body, offered))
        return _MarkedCalls({"<|tool_call>": gemma4}, dropped=("<tool_call|>", "<|tool_response>"))
    if fmt.family == "deepseek":
        begin, end = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>"
        return _MarkedCalls({begin: _closed_by(end, lambda body: callsyntax.deepseek_call(body, offered))},
                            dropped=("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", end))
    if fmt.family == "mistral":
        return _MarkedCalls({"[TOOL_CALLS]": _mistral_calls(offered)})
    if fmt.family == "llama3":
        return _LlamaCalls(offered)
    return _PlainAnswer()  # "generic" without the JSON reply: nothing to parse
