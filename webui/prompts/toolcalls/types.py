"""Tool calls and reasoning as plain data: what a request offers, what a reply holds, and how it is read.

These types are shared by every layer: the API faces build ``ToolRequest`` from their wire formats,
the engine's prepare step renders the tools through the model's own template and fixes a
``ReplyFormat``, and a ``ReplyParser`` for that format splits the streamed text into answer,
thinking and tool calls, so tool markup never reaches ``content``.

Messages that carry tool turns use OpenAI's normalized shape (what chat templates expect):
``{"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function",
"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}`` (arguments as an object)
and ``{"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "18 C"}``.
An assistant message's thinking, when kept, is under ``"reasoning_content"``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from webui.errors import UserError

MAX_TOOLS = 128  # more than this in one request is refused (as OpenAI does)
TOOL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")  # OpenAI's rule for function names

# The families whose reply conventions are parsed. "generic" is the fallback for templates that know
# nothing of tools: the tools are described in the system prompt and the reply is one JSON object,
# {"tool_calls": [{"name": ..., "arguments": {...}}]} or {"response": "..."} (llama.cpp's server does the same).
# "hermes-xml" is Hermes' <tool_call> frame around Qwen 3.5 / Qwen3-Coder's <function=...> blocks.
ToolFamily = Literal["hermes", "hermes-xml", "llama3", "mistral", "gemma4", "gpt-oss", "deepseek", "generic"]

ChoiceMode = Literal["auto", "none", "required", "named"]


class ToolCallError(UserError):
    """A request's tools cannot be used (bad schema, unknown tool named) or a reply's call is malformed."""


@dataclass(frozen=True)
class ToolSpec:
    """One function the model may call: its name, what it is for, and its arguments as a JSON schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def as_template_tool(self) -> dict[str, Any]:
        """The shape chat templates' ``tools`` variable expects (OpenAI's)."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": dict(self.parameters)}}


@dataclass(frozen=True)
class ToolChoice:
    """``auto``: the model decides; ``none``: no call; ``required``: at least one call; ``named``: call ``name``."""

    mode: ChoiceMode = "auto"
    name: str | None = None


@dataclass(frozen=True)
class ToolRequest:
    """The tools a request offers and how the model must use them."""

    tools: tuple[ToolSpec, ...]
    choice: ToolChoice = ToolChoice()
    parallel: bool = True  # several calls in one reply allowed

    def __post_init__(self) -> None:
        """Refuse what no model could be asked sensibly, with the sentence the client sees (a 400)."""
        if not self.tools:
            raise ToolCallError("tools must list at least one function.")
        if len(self.tools) > MAX_TOOLS:
            raise ToolCallError(f"{len(self.tools)} tools were sent; at most {MAX_TOOLS} are accepted.")
        seen: set[str] = set()
        for tool in self.tools:
            if not TOOL_NAME.fullmatch(tool.name):
                raise ToolCallError(f"Tool name {tool.name!r} is not valid: use 1-64 letters, digits, '_', '-' or '.'.")
            if tool.name in seen:
                raise ToolCallError(f"Two tools are named {tool.name!r}; tool names must be unique.")
            seen.add(tool.name)
            schema = tool.parameters
            if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
                raise ToolCallError(f"The parameters of tool {tool.name!r} must be a JSON schema of type object, "
                                    'like {"type": "object", "properties": {...}}.')
        if self.choice.mode == "named" and self.choice.name not in seen:
            raise ToolCallError(f"tool_choice names the tool {self.choice.name!r}, which is not among the tools "
                                f"offered ({', '.join(self.names())}).")

    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tools)

    def schemas_as_text(self) -> tuple[tuple[str, str], ...]:
        """(name, parameters schema as JSON) per tool: ``ReplyFormat.tool_schemas``."""
        return tuple((t.name, json.dumps(dict(t.parameters), sort_keys=True)) for t in self.tools)


@dataclass(frozen=True)
class ToolCall:
    """A call the model made: ``arguments`` is the parsed object (the faces serialize as they need)."""

    id: str
    name: str
    arguments: Mapping[str, Any]

    def arguments_json(self) -> str:
        return json.dumps(dict(self.arguments), ensure_ascii=False)


@dataclass(frozen=True)
class ReplyFormat:
    """How the model will write this reply, fixed by the prepare step for the reply's parser."""

    family: ToolFamily = "generic"
    tool_names: tuple[str, ...] = ()  # offered tools; empty: no tool calls are parsed
    reasoning: bool = False  # the template writes thinking blocks (<think>, harmony's analysis channel...)
    thinking_open: bool = False  # the prompt already ends inside a thinking block (e.g. "...<think>\n")
    generic_json: bool = False  # the reply is the generic fallback's JSON object (tools offered, no native support)
    # (tool name, its parameters schema as JSON text): for formats that write values untyped (hermes-xml),
    # so the parser can give each argument its schema's type. Text keeps the format hashable.
    tool_schemas: tuple[tuple[str, str], ...] = ()

    def parameter_schemas(self) -> dict[str, Mapping[str, Any]]:
        """Each offered tool's parameters schema, by tool name."""
        return {name: json.loads(schema) for name, schema in self.tool_schemas}


@dataclass(frozen=True)
class ReplyEvent:
    """One piece of a parsed reply: answer text, thinking text, or one complete tool call."""

    content: str = ""
    reasoning: str = ""
    tool_call: ToolCall | None = None


class ReplyParser(Protocol):
    """Reads a reply as it streams; text that may still turn into markup is held back until it is known."""

    def feed(self, text: str) -> list[ReplyEvent]: ...

    def finish(self) -> list[ReplyEvent]:
        """Everything still held back, at the end of the reply; a call left unfinished is a ToolCallError."""
        ...


@dataclass(frozen=True)
class ToolPrompt:
    """A conversation with tools made ready for one model: its prompt text and how the reply is constrained."""

    text: str  # the rendered prompt (special tokens included)
    stop: tuple[str, ...]
    added_special: bool  # text already starts with BOS
    reply_format: ReplyFormat
    grammar: str | None = None  # GBNF for the reply (tool calls' arguments by their schemas), or None
    grammar_lazy: bool = False  # the grammar starts only where a trigger matches (tool_choice auto)
    grammar_triggers: tuple[str, ...] = ()  # regex patterns whose match starts the grammar (lazy only)
    grammar_trigger_tokens: tuple[str, ...] = ()  # token texts (special tokens) that start it (lazy only)
