"""Conversations with tool turns made ready for a chat template: pure helpers used by ``ChatFormat.render_tools``.

Templates that render tools themselves get OpenAI's message shape with a few per-family fixes
(Mistral's 9-character call ids, one call per Llama 3 assistant turn, harmony's ``thinking`` field);
templates that know no tools get the tools described in the system text and tool turns as plain text.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping, Sequence
from typing import Any

from webui.prompts.toolcalls.families import THINK_OPEN, has_thinking_switch
from webui.prompts.toolcalls.types import ToolCallError, ToolFamily, ToolRequest

_ALPHANUMERIC = string.ascii_letters + string.digits

# How each native family writes a call, for templates of that family that do not describe tools
# themselves (DeepSeek R1's, for one): the model is told its own format.
_CALL_FORMATS: Mapping[ToolFamily, str] = {
    "hermes": '<tool_call>\n{"name": "<function name>", "arguments": {<arguments>}}\n</tool_call>',
    "hermes-xml": ("<tool_call>\n<function=<function name>>\n<parameter=<argument name>>\n<value>\n</parameter>\n"
                   "</function>\n</tool_call>"),
    "llama3": '{"name": "<function name>", "parameters": {<arguments>}}',
    "mistral": '[TOOL_CALLS][{"name": "<function name>", "arguments": {<arguments>}}]',
    "gemma4": '<|tool_call>call:<function name>{<arguments>}<tool_call|>',
    "gpt-oss": "<|channel|>commentary to=functions.<function name> <|constrain|>json<|message|>{<arguments>}<|call|>",
    "deepseek": (
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜><function name>\n"
        "```json\n{<arguments>}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
    ),
}
# Endings of a prompt that leave the model inside a thinking block.
_OPEN_THINKING = (THINK_OPEN, "<|channel>thought", "<|channel|>analysis<|message|>")


def thinking_variables(template: str, thinking: bool | None) -> dict[str, Any]:
    """Template variables that turn thinking on or off; none when unasked (the template's own default)."""
    if thinking is None or not has_thinking_switch(template):
        return {}
    variables: dict[str, Any] = {"enable_thinking": thinking}
    if "reasoning_effort" in template and not thinking:
        variables["reasoning_effort"] = "low"  # harmony models always think; "low" is the least they do
    return variables


def ends_in_thinking(prompt: str) -> bool:
    """Whether the rendered prompt leaves the reply inside an opened thinking block."""
    return prompt.rstrip().endswith(_OPEN_THINKING)


def mistral_call_id(call_id: str) -> str:
    """Mistral's templates accept only 9-character alphanumeric ids: others map to one, the same each time."""
    if len(call_id) == 9 and all(c in _ALPHANUMERIC for c in call_id):
        return call_id
    digest = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        digest, index = divmod(digest, len(_ALPHANUMERIC))
        chars.append(_ALPHANUMERIC[index])
    return "".join(chars)


def template_messages(messages: Sequence[Mapping[str, Any]], family: ToolFamily) -> list[dict[str, Any]]:
    """OpenAI-shaped messages for a template that renders tool turns itself.

    Calls get object arguments, tool results their call's name, and thinking is kept only on the
    assistant turns after the last user message (the current turn, which templates such as Qwen 3's
    render); earlier thinking is dropped, as the models were trained.
    """
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    names_by_id: dict[str, str] = {}
    shaped: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        out = dict(message)
        reasoning = out.pop("reasoning_content", None)
        if out.get("role") == "assistant":
            calls = [_normalized_call(c) for c in out.pop("tool_calls", None) or ()]
            for call in calls:
                names_by_id[call["id"]] = call["function"]["name"]
            if reasoning and index > last_user:
                if family == "gpt-oss":
                    out["thinking"] = reasoning  # harmony's templates read "thinking"
                else:
                    out["reasoning_content"] = reasoning
            if calls:
                out["tool_calls"] = calls  # only when there are calls: Llama 3's template tests the key
        elif out.get("role") == "tool":
            call_id = str(out.get("tool_call_id") or "")
            out["tool_call_id"] = call_id
            out.setdefault("name", names_by_id.get(call_id, ""))
            if out.get("content") is None:
                out["content"] = ""
            elif not isinstance(out["content"], str):
                out["content"] = json.dumps(out["content"], ensure_ascii=False)
        shaped.append(out)
    if family == "mistral":
        shaped = [_with_mistral_ids(m) for m in shaped]
    if family in ("llama3", "gpt-oss"):
        shaped = _one_call_per_turn(shaped)
    return shaped


def _normalized_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = call.get("function", call)
    name = str(function.get("name", ""))
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise ToolCallError(
                f"The arguments of the earlier call to '{name}' are not valid JSON ({exc.msg}); fix or remove that turn."
            ) from exc
    return {"id": str(call.get("id") or ""), "type": "function", "function": {"name": name, "arguments": arguments}}


def _with_mistral_ids(message: dict[str, Any]) -> dict[str, Any]:
    if "tool_calls" in message:
        message["tool_calls"] = [{**c, "id": mistral_call_id(c["id"])} for c in message["tool_calls"]]
    if message.get("role") == "tool":
        message["tool_call_id"] = mistral_call_id(message["tool_call_id"])
    return message


def _one_call_per_turn(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Llama 3's and harmony's templates render one call per assistant turn (harmony names a result after
    the call just before it): a turn with several calls becomes one turn per call, each followed by its result."""
    out: list[dict[str, Any]] = []
    index = 0
    while index < len(messages):
        message = messages[index]
        index += 1
        calls = message.get("tool_calls") or []
        if len(calls) < 2:
            out.append(message)
            continue
        results = []
        while index < len(messages) and messages[index].get("role") == "tool":
            results.append(messages[index])
            index += 1
        for number, call in enumerate(calls):
            first = number == 0
            out.append({**message, "tool_calls": [call]} if first else {"role": "assistant", "content": "", "tool_calls": [call]})
            out.extend(r for r in results if r.get("tool_call_id") == call["id"])
        out.extend(r for r in results if r.get("tool_call_id") not in {c["id"] for c in calls})
    return out


def text_tool_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tool turns as text for templates that know only user and assistant turns (the generic fallback).

    An assistant's calls become the JSON object the generic format asks for; results become user
    text "Result of f (id): ...", merged with neighbouring user turns so roles still alternate.
    """
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content") or ""
        if not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        if role == "assistant" and message.get("tool_calls"):
            calls = [_normalized_call(c)["function"] for c in message["tool_calls"]]
            written = json.dumps({"tool_calls": calls}, ensure_ascii=False)
            turns.append({"role": "assistant", "content": f"{content}\n{written}" if content else written})
        elif role == "tool":
            name = message.get("name") or _called_name(messages, message.get("tool_call_id"))
            result = f"Result of {name} ({message.get('tool_call_id', '')}): {content}"
            _append_user_text(turns, result)
        elif role == "user" and turns and turns[-1].get("from_tool"):
            _append_user_text(turns, content)
        else:
            turns.append({"role": role, "content": content})
    return [{"role": t["role"], "content": t["content"]} for t in turns]


def _called_name(messages: Sequence[Mapping[str, Any]], call_id: object) -> str:
    for message in messages:
        for call in message.get("tool_calls") or ():
            if call.get("id") == call_id:
                return str(call.get("function", call).get("name", "a tool"))
    return "a tool"


def _append_user_text(turns: list[dict[str, Any]], text: str) -> None:
    if turns and turns[-1]["role"] == "user":
        turns[-1]["content"] = f"{turns[-1]['content']}\n\n{text}"
        turns[-1]["from_tool"] = True
    else:
        turns.append({"role": "user", "content": text, "from_tool": True})


def describe_tools(request: ToolRequest, family: ToolFamily, *, generic_json: bool) -> str:
    """System text that presents the tools and the exact reply format to a template that knows no tools."""
    listing = "\n".join(
        json.dumps({"name": t.name, "description": t.description, "parameters": dict(t.parameters)}, ensure_ascii=False)
        for t in request.tools
    )
    lines = [f"You can call these tools (JSON schemas of their arguments):\n{listing}\n"]
    choice = request.choice
    if generic_json:
        lines.append(
            "Reply with ONE JSON object and nothing else. To call tools: "
            '{"tool_calls": [{"name": "<tool name>", "arguments": {<arguments>}}]}.'
        )
        if choice.mode == "auto":
            lines.append('To answer without a tool: {"response": "<your answer>"}.')
    else:
        lines.append(f"To call a tool, write exactly:\n{_CALL_FORMATS.get(family, _CALL_FORMATS['hermes'])}")
    if choice.mode == "required":
        lines.append("You must call at least one tool now.")
    elif choice.mode == "named":
        lines.append(f"You must call the tool {choice.name} now.")
    if not request.parallel:
        lines.append("Call at most one tool.")
    return "\n".join(lines)


def with_system_text(messages: Sequence[Mapping[str, Any]], text: str) -> list[dict[str, Any]]:
    """``text`` added to the first system message, or as a new one at the start."""
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0].get('content') or ''}\n\n{text}".lstrip()
        return out
    return [{"role": "system", "content": text}, *out]
