"""Reading the text of one tool call, in each family's own syntax, into a ToolCall or a clear ToolCallError.

The streaming parsers find where a call starts and ends; these functions turn what is between
into a name and a JSON object of arguments, and say in one sentence what is wrong when they cannot.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from webui.prompts.toolcalls.types import ToolCall, ToolCallError

log = logging.getLogger(__name__)

_EXCERPT_CHARS = 80
_JSON = json.JSONDecoder(strict=False)


def new_call_id() -> str:
    """An id in OpenAI's shape, for calls whose model wrote none."""
    return "call_" + uuid.uuid4().hex[:24]


def malformed(problem: str, text: str) -> ToolCallError:
    """The error for a call that cannot be used; the whole text goes to the log, a short excerpt to the user."""
    log.warning("Malformed tool call in the model's reply (%s): %r", problem, text)
    flat = " ".join(text.split())
    excerpt = flat if len(flat) <= _EXCERPT_CHARS else flat[:_EXCERPT_CHARS - 3] + "..."
    return ToolCallError(f"The model wrote a tool call that cannot be used: {problem}: {excerpt}")


def make_call(name: str, arguments: Any, offered: Sequence[str], *, text: str, call_id: str | None = None) -> ToolCall:
    """A ToolCall once its arguments are a JSON object; a name the request did not offer is logged, not refused."""
    name = name.strip()
    if not name:
        raise malformed("it names no function", text)
    if isinstance(arguments, str):
        arguments = json_arguments(arguments, text) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        raise malformed("its arguments are not a JSON object", text)
    if name not in offered:
        log.warning("The model called '%s', which this request does not offer (offered: %s)", name, ", ".join(offered))
    return ToolCall(id=call_id or new_call_id(), name=name, arguments=arguments)


def json_arguments(arguments: str, text: str) -> Any:
    try:
        return json.loads(arguments, strict=False)
    except json.JSONDecodeError as exc:
        raise malformed(f"its arguments are not valid JSON ({exc.msg})", text) from exc
    except RecursionError as exc:
        raise malformed("its arguments are nested too deeply", text) from exc


def call_from_object(value: Any, offered: Sequence[str], text: str) -> ToolCall:
    """``{"name": ..., "arguments"|"parameters": {...}, "id"?}``: Hermes, Llama 3, Mistral Nemo, the fallback."""
    if not isinstance(value, dict):
        raise malformed("it is not a JSON object", text)
    function = value["function"] if isinstance(value.get("function"), dict) else value  # OpenAI's own shape
    name = function.get("name")
    if not isinstance(name, str):
        raise malformed("it names no function", text)
    arguments = function["arguments"] if "arguments" in function else function.get("parameters", {})
    call_id = value.get("id") if isinstance(value.get("id"), str) and value.get("id") else None
    return make_call(name, arguments, offered, text=text, call_id=call_id)


def call_from_json(text: str, offered: Sequence[str]) -> ToolCall:
    try:
        value = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise malformed(f"it is not valid JSON ({exc.msg})", text) from exc
    except RecursionError as exc:
        raise malformed("it is nested too deeply", text) from exc
    return call_from_object(value, offered, text)


def leading_json(text: str) -> tuple[Any, int] | None:
    """The JSON value ``text`` starts with (after whitespace) and where it ends; None while incomplete or invalid."""
    start = len(text) - len(text.lstrip())
    try:
        return _JSON.raw_decode(text, start)
    except (json.JSONDecodeError, RecursionError):
        return None


def json_error(text: str) -> str:
    """Why ``text`` does not start with a JSON value, in the decoder's words."""
    try:
        _JSON.raw_decode(text, len(text) - len(text.lstrip()))
    except json.JSONDecodeError as exc:
        return exc.msg
    except RecursionError:
        return "nested too deeply"
    return "unexpected text after it"


# Qwen 3.5 (and Qwen3-Coder) write <function=NAME> with one <parameter=KEY> block per argument.
_XML_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)</function>", re.S)
_XML_PARAMETER = re.compile(r"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", re.S)


def hermes_call(body: str, offered: Sequence[str], schemas: Mapping[str, Mapping[str, Any]] | None = None) -> ToolCall:
    """What is inside ``<tool_call>...</tool_call>``: a JSON object, or Qwen 3.5's ``<function=...>`` block.

    ``schemas`` (parameters schema by tool name) types the ``<parameter=...>`` values, which the template
    writes untyped: a string parameter keeps its text as written, even "42" or "true".
    """
    text = body.strip()
    if not text.startswith("<function="):
        return call_from_json(text, offered)
    match = _XML_FUNCTION.fullmatch(text)
    if match is None:
        raise malformed("its <function=...> block is not closed", text)
    name = match.group(1).strip()
    properties = (schemas or {}).get(name, {}).get("properties", {})
    arguments: dict[str, Any] = {}
    inner = match.group(2)
    for parameter in _XML_PARAMETER.finditer(inner):
        key = parameter.group(1).strip()
        arguments[key] = xml_value(parameter.group(2), properties.get(key) if isinstance(properties, Mapping) else None)
    if _XML_PARAMETER.sub("", inner).strip():
        raise malformed("it has text outside its <parameter=...> blocks", text)
    return make_call(name, arguments, offered, text=text)


def xml_value(raw: str, schema: Any = None) -> Any:
    """One ``<parameter=...>`` value: the template writes strings as they are and other values as JSON.

    With the parameter's schema, a string stays text and other types are read as JSON; without one,
    whatever reads as JSON is JSON and the rest is text.
    """
    types = schema_types(schema)
    if types == {"string"}:
        return raw
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        if "boolean" in types and raw.strip() in ("True", "False"):  # Python's str() of a bool, as jinja writes it
            return raw.strip() == "True"
        if types and "string" not in types:
            log.warning("A tool call's parameter is not the %s its schema asks for: %r", "/".join(sorted(types)), raw)
        return raw
    if types and _json_type(value) not in types and not (_json_type(value) == "integer" and "number" in types):
        return raw if "string" in types else value
    return value


def schema_types(schema: Any) -> set[str]:
    """The JSON types a parameter schema allows (from ``type``, ``enum``/``const``, ``anyOf``/``oneOf``); empty when any."""
    if not isinstance(schema, Mapping):
        return set()
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return {_json_type(v) for v in values} if isinstance(values, list) else set()
    branches = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(branches, list):
        found = [schema_types(branch) for branch in branches]
        return set().union(*found) if all(found) else set()
    return set()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


_GEMMA_QUOTE = '<|"|>'
_GEMMA_CALL = re.compile(r"\s*call:([^{\s]+)\s*(\{.*\})\s*", re.S)
_BARE_WORD = re.compile(r"[A-Za-z_][\w.\-]*")
_KEY_COLON = re.compile(r"\s*:")
_BARE_CONSTANTS = {"None": "null", "True": "true", "False": "false"}


def gemma4_call(body: str, offered: Sequence[str]) -> ToolCall:
    """What is inside ``<|tool_call>...<tool_call|>``: ``call:NAME{key:<|"|>text<|"|>,n:3}``."""
    match = _GEMMA_CALL.fullmatch(body)
    if match is None:
        raise malformed("it is not in the form call:name{...}", body)
    try:
        arguments = json.loads(gemma4_to_json(match.group(2)), strict=False)
    except (ValueError, RecursionError) as exc:
        raise malformed("its arguments cannot be read as an object", body) from exc
    return make_call(match.group(1), arguments, offered, text=body)


def gemma4_to_json(text: str) -> str:
    """Gemma 4's argument syntax (bare keys, strings between ``<|"|>``) rewritten as JSON."""
    parts: list[str] = []
    at = 0
    while at < len(text):
        if text.startswith(_GEMMA_QUOTE, at):
            end = text.find(_GEMMA_QUOTE, at + len(_GEMMA_QUOTE))
            if end < 0:
                raise ValueError("a string is not closed")
            parts.append(json.dumps(text[at + len(_GEMMA_QUOTE):end], ensure_ascii=False))
            at = end + len(_GEMMA_QUOTE)
        elif text[at] == '"':
            string, at = _JSON.raw_decode(text, at)
            parts.append(json.dumps(string, ensure_ascii=False))
        elif (word := _BARE_WORD.match(text, at)) is not None:
            at = word.end()
            is_key = _KEY_COLON.match(text, at) is not None
            parts.append(json.dumps(word.group()) if is_key else _BARE_CONSTANTS.get(word.group(), word.group()))
        else:
            parts.append(text[at])
            at += 1
    return "".join(parts)


_FENCED = re.compile(r"\s*```[A-Za-z]*\s*(.*?)\s*```\s*", re.S)
DEEPSEEK_SEP = "<｜tool▁sep｜>"


def deepseek_call(body: str, offered: Sequence[str]) -> ToolCall:
    """R1: ``function<sep>NAME\\n```json\\n{...}\\n```````; V3.1: ``NAME<sep>{...}``."""
    head, sep, rest = body.partition(DEEPSEEK_SEP)
    if not sep:
        raise malformed("it has no separator between its name and its arguments", body)
    if head.strip() in ("", "function"):
        name, _, arguments = rest.partition("\n")
    else:
        name, arguments = head, rest
    fenced = _FENCED.fullmatch(arguments)
    arguments = fenced.group(1) if fenced else arguments
    return make_call(name, json_arguments(arguments, body), offered, text=body)


def python_calls(text: str, offered: Sequence[str]) -> list[ToolCall]:
    """Llama 3.1's built-in tools: ``brave_search.call(query="...")``, arguments by name as Python literals."""
    try:
        statements = ast.parse(text.strip(), mode="exec").body
    except SyntaxError as exc:
        raise malformed(f"it is not a function call ({exc.msg})", text) from exc
    except (ValueError, RecursionError) as exc:  # a NUL character; absurd nesting
        raise malformed("it is not a function call", text) from exc
    calls = []
    for statement in statements:
        if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)):
            raise malformed("it is not a function call", text)
        call = statement.value
        if call.args or any(keyword.arg is None for keyword in call.keywords):
            raise malformed("its arguments are not given by name", text)
        try:
            arguments = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
        except (ValueError, TypeError, SyntaxError, RecursionError) as exc:
            raise malformed("its arguments are not plain values", text) from exc
        name = ast.unparse(call.func).removesuffix(".call")
        calls.append(make_call(name, arguments, offered, text=text))
    return calls
