"""GPT-OSS's harmony format: a reply is messages on channels, each read as thinking, answer or a tool call.

``<|channel|>analysis<|message|>...<|end|>`` is thinking, ``<|channel|>final<|message|>...`` the
answer, and a message addressed ``to=functions.NAME`` (before or after its channel) is a call
whose body is the JSON arguments, ended by ``<|call|>`` (often a stop token, so the end of the reply
ends it too). Commentary without a recipient is a preamble the user sees, so it is content.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from webui.prompts.toolcalls.callsyntax import json_arguments, make_call, malformed
from webui.prompts.toolcalls.streamtext import MarkerSplit, StreamParser, TextOut, split_at_marker
from webui.prompts.toolcalls.types import ReplyEvent

log = logging.getLogger(__name__)

_START, _MESSAGE = "<|start|>", "<|message|>"
_MESSAGE_ENDS = ("<|end|>", "<|call|>", "<|return|>", _START)
_CHANNEL = re.compile(r"<\|channel\|>\s*([\w-]+)")
_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
_HEADER_STARTS = ("<|", "to=", "assistant")
_LONGEST_HEADER = 300  # more text than this without <|message|> is no header


class HarmonyParser(StreamParser):
    """Reads message headers (held back until ``<|message|>``) and routes each body by its channel and recipient."""

    def __init__(self, offered: Sequence[str]) -> None:
        super().__init__()
        self._offered = offered
        self._content = TextOut("content", trim_start=False)
        self._thinking = TextOut("reasoning", trim_start=True)
        self._buffer = ""
        self._in_header = True  # the prompt ends with "<|start|>assistant": the reply starts with a header
        self._kind = "content"  # the current body's: content | reasoning | call
        self._call_name = ""
        self._call_text = ""

    def _step(self, text: str, events: list[ReplyEvent], *, final: bool) -> None:
        self._buffer += text
        while True:
            if self._in_header:
                at = self._buffer.find(_MESSAGE)
                if at < 0:
                    if not final and _may_be_header(self._buffer):
                        return
                    if "<|" in self._buffer:  # a header the reply ended in: nothing to show
                        log.warning("The reply ended inside a harmony message header: %r", self._buffer)
                        self._buffer = ""
                        break
                    self._open("")  # no harmony framing at all: the model wrote plain text
                    continue
                self._open(self._buffer[:at])
                self._buffer = self._buffer[at + len(_MESSAGE):]
            split = split_at_marker(self._buffer, _MESSAGE_ENDS)
            if split.marker is None and final:
                split = MarkerSplit(self._buffer, None, "")
            self._write(split.text, events)
            self._buffer = split.rest
            if split.marker is None:
                break
            self._close(events)
        if final:
            if not self._in_header:
                self._close(events)
            self._content.flush(events)

    def _open(self, header: str) -> None:
        channel = _CHANNEL.search(header)
        recipient = _RECIPIENT.search(header)
        if recipient is not None and self._offered:
            self._kind, self._call_name, self._call_text = "call", recipient.group(1).removeprefix("functions."), ""
        elif channel is not None and channel.group(1) == "analysis":
            self._kind = "reasoning"
        else:
            self._kind = "content"
        self._in_header = False

    def _write(self, text: str, events: list[ReplyEvent]) -> None:
        if self._kind == "call":
            self._call_text += text
        elif self._kind == "reasoning":
            self._thinking.write(text, events)
        else:
            self._content.write(text, events)

    def _close(self, events: list[ReplyEvent]) -> None:
        if self._kind == "call":
            text = self._call_text.strip()
            if not text:
                raise malformed("it has no arguments", f"to=functions.{self._call_name}")
            arguments = json_arguments(text, text)
            events.append(ReplyEvent(tool_call=make_call(self._call_name, arguments, self._offered, text=text)))
        self._thinking.cut()
        self._content.cut()
        self._in_header = True


def _may_be_header(text: str) -> bool:
    head = text.lstrip()
    if len(head) > _LONGEST_HEADER:
        return False
    return head.startswith(_HEADER_STARTS) or any(start.startswith(head) for start in _HEADER_STARTS)
