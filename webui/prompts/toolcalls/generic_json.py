"""The generic fallback's reply, one JSON object: ``{"response": "..."}`` streamed, or ``{"tool_calls": [...]}``.

Models whose template knows no tools are told (in the system prompt) to answer this way; the
``response`` text is decoded as it streams, even when a piece ends in the middle of an escape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from webui.prompts.toolcalls.callsyntax import call_from_object, json_error, leading_json, malformed
from webui.prompts.toolcalls.streamtext import BufferedAnswer, decode_json_string, json_string_prefix
from webui.prompts.toolcalls.types import ReplyEvent

log = logging.getLogger(__name__)


class GenericJsonAnswer(BufferedAnswer):
    """The fallback's one JSON object: ``{"response": "..."}`` streamed as content, or ``{"tool_calls": [...]}``.

    A reply that is no JSON object at all (the model ignored the instructions) is shown as it is.
    """

    _FENCE = re.compile(r"\s*(?:```[A-Za-z]*\s*)?")
    _RESPONSE_HEAD = re.compile(r'\{\s*"response"\s*:\s*"')

    def __init__(self, offered: Sequence[str]) -> None:
        super().__init__()
        self._offered = offered
        self._state = "start"  # start | response | object | after | plain
        self._closing = ""  # what must still close the object after a streamed response

    def _drain(self, events: list[ReplyEvent], *, final: bool) -> None:
        while True:
            if self._state == "start":
                fence = self._FENCE.match(self._buffer)
                rest = self._buffer[fence.end():] if fence else self._buffer
                if not rest.startswith("{"):
                    if not final and (not rest.strip() or "```".startswith(rest.lstrip())):
                        return  # still only whitespace or the start of a code fence
                    self._state = "plain"
                    continue
                head = self._RESPONSE_HEAD.match(rest)
                if head is not None:
                    self._buffer, self._state = rest[head.end():], "response"
                    continue
                compact = re.sub(r"\s+", "", rest)
                if not final and '{"response":"'.startswith(compact):
                    return
                self._buffer, self._state = rest, "object"
            elif self._state == "response":
                length, closed = json_string_prefix(self._buffer)
                self._write_json_text(self._buffer[:length], events)
                self._buffer = self._buffer[length:]
                if not closed:
                    return  # (a reply cut off inside its text keeps what came)
                self._buffer, self._state, self._closing = self._buffer[1:], "after", "}"
            elif self._state == "object":
                found = leading_json(self._buffer)
                if found is None:
                    if final:
                        self._unreadable(events)
                    return
                value, end = found
                self._take_object(value, self._buffer[:end], events)
                self._buffer, self._state = self._buffer[end:], "after"
            elif self._state == "after":
                if final:
                    self._leftover(events)
                return
            else:  # plain
                self._content.write(self._buffer, events)
                self._buffer = ""
                return

    def _write_json_text(self, body: str, events: list[ReplyEvent]) -> None:
        if not body:
            return
        try:
            self._content.write(decode_json_string(body), events)
        except ValueError as exc:
            raise malformed("its \"response\" text is not a valid JSON string", body) from exc

    def _take_object(self, value: object, text: str, events: list[ReplyEvent]) -> None:
        if not isinstance(value, dict) or not ({"tool_calls", "tool_call", "response"} & value.keys()):
            log.warning("The model's reply is JSON without \"response\" or \"tool_calls\"; shown as text")
            self._content.write(text, events)
            return
        if isinstance(value.get("response"), str):
            self._content.write(value["response"], events)
        calls = value.get("tool_calls", [value["tool_call"]] if "tool_call" in value else [])
        if not isinstance(calls, list):
            raise malformed("\"tool_calls\" is not a list", text)
        events.extend(ReplyEvent(tool_call=call_from_object(item, self._offered, text)) for item in calls)

    def _unreadable(self, events: list[ReplyEvent]) -> None:
        if '"tool_call' in self._buffer:
            raise malformed(f"the reply's JSON is incomplete or invalid ({json_error(self._buffer)})",
                            self._buffer)
        log.warning("The model's reply is not the JSON object asked for; shown as text")
        self._content.write(self._buffer, events)
        self._buffer = ""

    def _leftover(self, events: list[ReplyEvent]) -> None:
        """After the object: its closing brace (after a streamed response) and a closing fence are expected."""
        rest = self._buffer.strip()
        if self._closing and rest.startswith(self._closing):
            rest = rest[len(self._closing):]
        rest = rest.strip().removesuffix("```").strip()
        if rest:
            log.warning("The model wrote text after its JSON reply: %r", rest)
            self._content.write(rest, events)
        self._buffer = ""
