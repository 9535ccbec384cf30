"""Tools and tool turns on the wire: OpenAI's and Ollama's shapes to and from the services' ToolRequest,
ToolCall and normalized messages (described in ``webui.prompts.toolcalls.types``).

Refusals name the field they concern and come back as the face's own 400, never a 500 or a 422.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from webui.api.common import ApiProblem
from webui.services.types import ToolCall, ToolCallError, ToolChoice, ToolRequest, ToolSpec


def _refused(message: str, param: str) -> ApiProblem:
    return ApiProblem(400, message, "invalid_request", param=param)


def _function_spec(item: Any, where: str) -> ToolSpec:
    """One ``{"type": "function", "function": {...}}`` entry (or a bare legacy function) as a ToolSpec."""
    if not isinstance(item, Mapping):
        raise _refused(f"{where} must be an object.", where)
    kind = item.get("type", "function")
    if kind != "function":
        raise _refused(f"{where}.type {kind!r} is not supported here: only 'function' tools are.", f"{where}.type")
    function = item.get("function", item if "name" in item else None)
    if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
        raise _refused(f"{where}.function must be an object with a 'name'.", f"{where}.function")
    description = function.get("description") or ""
    parameters = function.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    if not isinstance(description, str):
        raise _refused(f"{where}.function.description must be a string.", f"{where}.function.description")
    if not isinstance(parameters, Mapping):
        raise _refused(f"{where}.function.parameters must be a JSON schema object.", f"{where}.function.parameters")
    return ToolSpec(name=function["name"], description=description, parameters=dict(parameters))


def _choice(tool_choice: Any, param: str) -> ToolChoice:
    if tool_choice is None:
        return ToolChoice()
    if tool_choice in ("auto", "none", "required"):
        return ToolChoice(tool_choice)
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        if tool_choice.get("type", "function") == "function" and isinstance(name, str):
            return ToolChoice("named", name)
    raise _refused(f"{param} must be 'none', 'auto', 'required' or {{\"type\": \"function\", "
                   f"\"function\": {{\"name\": ...}}}}.", param)


def tool_request(tools: Sequence[Any] | None, tool_choice: Any = None, *, parallel: bool | None = None,
                 param: str = "tools") -> ToolRequest | None:
    """OpenAI's (and Ollama's) ``tools`` and ``tool_choice`` as a ToolRequest; None when no tools are sent."""
    if not tools:
        if tool_choice not in (None, "none", "auto"):
            raise _refused("tool_choice needs tools to choose from.", "tool_choice")
        return None
    specs = tuple(_function_spec(item, f"{param}[{i}]") for i, item in enumerate(tools))
    choice = _choice(tool_choice, "tool_choice" if param == "tools" else "function_call")
    try:
        return ToolRequest(specs, choice, parallel=True if parallel is None else parallel)
    except ToolCallError as exc:
        raise _refused(str(exc), param) from exc


def _arguments(raw: Any, where: str) -> dict[str, Any]:
    """A call's arguments as an object: OpenAI sends a JSON string, Ollama an object."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise _refused(f"{where} is not valid JSON ({exc.msg}).", where) from exc
    if not isinstance(raw, Mapping):
        raise _refused(f"{where} must be a JSON object.", where)
    return dict(raw)


def assistant_calls(calls: Iterable[Any], where: str, *, ids: Iterable[str] = ()) -> list[dict[str, Any]]:
    """An assistant turn's ``tool_calls`` from the wire, normalized (arguments as objects, ids kept or given)."""
    spare = iter(ids)
    normalized = []
    for i, call in enumerate(calls):
        if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
            raise _refused(f"{where}[{i}] must be an object with a 'function'.", f"{where}[{i}]")
        function = call["function"]
        if not isinstance(function.get("name"), str):
            raise _refused(f"{where}[{i}].function.name is required.", f"{where}[{i}].function.name")
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else next(spare, None)
        normalized.append({"id": call_id or f"call_{i}", "type": "function", "function": {
            "name": function["name"], "arguments": _arguments(function.get("arguments", {}),
                                                               f"{where}[{i}].function.arguments")}})
    return normalized


class CallLedger:
    """The calls a conversation made so far, so each tool result can be matched to its call."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._unanswered: list[str] = []

    def add(self, calls: Sequence[Mapping[str, Any]]) -> None:
        for call in calls:
            self._names[call["id"]] = call["function"]["name"]
            self._unanswered.append(call["id"])

    def answer(self, call_id: str | None, name: str | None, where: str) -> tuple[str, str]:
        """The id and tool name a result answers: by id (OpenAI), else the next unanswered call of that
        name (Ollama's ``tool_name``), else the oldest unanswered call."""
        if call_id is not None:
            if call_id not in self._names:
                raise _refused(f"{where}.tool_call_id {call_id!r} answers no tool call made earlier in the "
                               f"conversation.", f"{where}.tool_call_id")
        else:
            candidates = [c for c in self._unanswered if name is None or self._names[c] == name]
            if not candidates:
                what = f"a call to {name!r}" if name else "a tool call"
                raise _refused(f"{where} is a tool result, but no earlier message made {what} left unanswered.", where)
            call_id = candidates[0]
        if call_id in self._unanswered:
            self._unanswered.remove(call_id)
        return call_id, self._names[call_id]


def call_as_openai(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    """A call in OpenAI's reply shape (arguments as a JSON string); with ``index``, as a streamed delta."""
    item: dict[str, Any] = {"id": call.id, "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments_json()}}
    return item if index is None else {"index": index, **item}


def call_as_ollama(call: ToolCall) -> dict[str, Any]:
    """A call in Ollama's reply shape (arguments as an object)."""
    return {"function": {"name": call.name, "arguments": dict(call.arguments)}}
