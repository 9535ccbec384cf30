"""Anthropic's Messages API: /v1/messages, /v1/messages/count_tokens, and the models list in its shape.

Shapes follow Anthropic's API reference, so the official ``anthropic`` client and coding agents that
speak it work unchanged. A request becomes the normalized messages and ``ToolRequest`` every face
uses (webui.prompts.toolcalls.types describes them) and goes through ``services.completions``; the
reply's text, thinking and tool calls come back as content blocks. Model names starting ``claude-``
(what agents send by default) are served by the model in use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import fastapi
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from webui.api.common import (
    ApiProblem,
    Driven,
    StrictModel,
    caller,
    describe_validation,
    guarded,
    read_json,
    threaded,
)
from webui.services import Services
from webui.services.completions import Generation, GenerationOptions
from webui.services.models import ModelEntry
from webui.services.types import (
    MAX_TOOLS,
    GenerationStats,
    SamplingParams,
    SamplingRequest,
    StreamChunk,
    ToolCall,
    ToolChoice,
    ToolRequest,
    ToolSpec,
    sampling_from,
)

log = logging.getLogger(__name__)

# What an Anthropic request leaves out: no repeat penalty (its clients expect none); max_tokens is
# always given on /v1/messages.
ANTHROPIC_DEFAULTS = SamplingParams(repeat_penalty=1.0, max_tokens=None)
CLAUDE_PREFIX = "claude-"  # coding agents' default model names: served by the model in use

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                503: "overloaded_error", 529: "overloaded_error"}


def error_body(problem: ApiProblem) -> dict[str, Any]:
    """Anthropic's error object, by the problem's HTTP status."""
    kind = _ERROR_TYPES.get(problem.status) or ("invalid_request_error" if problem.status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": problem.message}}


def anthropic_error(problem: ApiProblem) -> JSONResponse:
    """The error response Anthropic's clients turn into typed exceptions by status."""
    return JSONResponse(error_body(problem), status_code=problem.status)


# -- request bodies ------------------------------------------------------------------------------


class TextBlock(StrictModel):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None  # prompt caching: llama.cpp reuses its KV cache on its own
    citations: list[dict[str, Any]] | None = None


class ToolUseBlock(StrictModel):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None
    caller: dict[str, Any] | None = None
    toolset_name: str | None = None


class ToolResultBlock(StrictModel):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[dict[str, Any]] | None = None
    is_error: bool = False
    cache_control: dict[str, Any] | None = None
    toolset_name: str | None = None


class InputMessage(StrictModel):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]  # blocks are read one by one (to_chat_messages), to name what is refused


class ToolDefinition(StrictModel):
    """A tool the client runs; Anthropic's own tools (web search, bash...) have another ``type`` and are refused."""

    name: str = Field(min_length=1, max_length=128)
    input_schema: dict[str, Any]
    description: str = ""
    type: Literal["custom"] | None = None
    cache_control: dict[str, Any] | None = None
    strict: bool | None = None
    input_examples: list[dict[str, Any]] | None = None
    eager_input_streaming: bool | None = None
    defer_loading: bool | None = None
    allowed_callers: list[str] | None = None


class ToolChoiceSetting(StrictModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingSetting(StrictModel):
    """``enabled``: think (the budget is not enforced: thinking counts toward max_tokens); ``disabled``:
    ask the template not to think; ``adaptive``: the template's default."""

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(None, ge=1)
    display: Literal["summarized", "omitted"] | None = None


class OutputFormat(StrictModel):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(StrictModel):
    effort: str | None = None  # a hint for Claude's thinking depth; local models have none to take
    format: OutputFormat | None = None


class ConversationRequest(StrictModel):
    """What /v1/messages and /v1/messages/count_tokens share: the conversation and the tools offered."""

    model: str = Field(min_length=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[dict[str, Any]] | None = None  # read one by one (tool_request), to refuse server tools by name
    tool_choice: ToolChoiceSetting | None = None
    thinking: ThinkingSetting | None = None
    output_config: OutputConfig | None = None
    # Accepted and ignored: none of these changes the reply of a local model.
    cache_control: dict[str, Any] | None = None
    context_management: dict[str, Any] | None = None
    speed: str | None = None
    user_profile_id: str | None = None
    workspace_id: str | None = None
    mcp_servers: list[dict[str, Any]] | None = None  # refused when not empty (remote servers)


class MessagesRequest(ConversationRequest):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    stream: bool = False
    metadata: dict[str, Any] | None = None
    # Accepted and ignored: how Anthropic schedules or bills a request.
    service_tier: str | None = None
    inference_geo: str | None = None
    diagnostics: dict[str, Any] | None = None
    container: str | dict[str, Any] | None = None  # refused when set (code execution runs on Anthropic's side)


# -- request -> service call ----------------------------------------------------------------


def _block(model: type[BaseModel], raw: dict[str, Any], where: str) -> Any:
    """One content block as ``model``; a bad one is refused naming where it is in the request."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        message, _ = describe_validation(exc)
        raise ApiProblem(400, f"{where}: {message}", "invalid_request", param=where) from exc


def _unsupported_block(kind: object, where: str) -> ApiProblem:
    if kind in ("image", "document", "search_result", "container_upload"):
        return ApiProblem(400, f"{where}: {kind} content blocks are not supported by this server; its models "
                               "read text only.", "unsupported_parameter", param=where)
    return ApiProblem(400, f"{where}: content blocks of type {kind!r} are not supported here (text, tool_use, "
                           "tool_result and thinking are).", "unsupported_parameter", param=where)


def _tool_result_text(block: ToolResultBlock, where: str) -> str:
    if block.content is None or isinstance(block.content, str):
        text = block.content or ""
    else:
        parts = []
        for j, raw in enumerate(block.content):
            if raw.get("type") != "text":
                raise _unsupported_block(raw.get("type"), f"{where}.content.{j}")
            parts.append(_block(TextBlock, raw, f"{where}.content.{j}").text)
        text = "\n".join(parts)
    # Chat templates have no field for a failed call, so the model reads it in the result itself.
    return f"Error: {text}" if block.is_error else text


def _system_text(system: str | list[TextBlock] | None) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    return "\n\n".join(block.text for block in system)


def to_chat_messages(body: ConversationRequest) -> list[dict[str, Any]]:
    """The request's turns as normalized messages: tool_use -> an assistant's tool_calls, each
    tool_result -> a ``tool`` message in place; thinking blocks are dropped (not sent to the model)."""
    system = _system_text(body.system)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system.strip() else []
    tool_names: dict[str, str] = {}  # tool_use id -> name, for the tool messages that answer them
    for i, turn in enumerate(body.messages):
        if isinstance(turn.content, str):
            messages.append({"role": turn.role, "content": turn.content})
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []

        def flush_user_text() -> None:
            if texts:
                messages.append({"role": "user", "content": "\n\n".join(texts)})
                texts.clear()

        for j, raw in enumerate(turn.content):
            where = f"messages.{i}.content.{j}"
            kind = raw.get("type")
            if kind == "text":
                texts.append(_block(TextBlock, raw, where).text)
            elif kind in ("thinking", "redacted_thinking") and turn.role == "assistant":
                continue
            elif kind == "tool_use" and turn.role == "assistant":
                use = _block(ToolUseBlock, raw, where)
                tool_names[use.id] = use.name
                calls.append({"id": use.id, "type": "function",
                              "function": {"name": use.name, "arguments": use.input}})
            elif kind == "tool_result" and turn.role == "user":
                result = _block(ToolResultBlock, raw, where)
                if result.tool_use_id not in tool_names:
                    raise ApiProblem(400, f"{where}: tool_use_id {result.tool_use_id!r} answers no tool_use block "
                                          "of an earlier assistant message.", "invalid_request", param=where)
                flush_user_text()  # the turn's order is kept: text written before a result comes before it
                messages.append({"role": "tool", "tool_call_id": result.tool_use_id,
                                 "name": tool_names[result.tool_use_id], "content": _tool_result_text(result, where)})
            elif kind in ("tool_use", "tool_result", "thinking", "redacted_thinking"):
                raise ApiProblem(400, f"{where}: a {kind} block cannot be in a {turn.role} message.",
                                 "invalid_request", param=where)
            else:
                raise _unsupported_block(kind, where)
        if turn.role == "user":
            flush_user_text()
        else:
            assistant: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
            if calls:
                assistant["tool_calls"] = calls
            messages.append(assistant)
    if body.messages[-1].role == "assistant":
        raise ApiProblem(400, "The last message is the assistant's: continuing a prefilled reply is not supported "
                              "by this server. End with a user message.", "unsupported_parameter", param="messages")
    return messages


def tool_request(body: ConversationRequest) -> ToolRequest | None:
    """The tools offered and tool_choice as a ToolRequest; Anthropic's own tools are refused by name."""
    choice = body.tool_choice
    if not body.tools:
        if choice is not None and choice.type in ("any", "tool"):
            raise ApiProblem(400, f"tool_choice {choice.type!r} needs tools, and the request offers none.",
                             "invalid_request", param="tool_choice")
        return None
    if len(body.tools) > MAX_TOOLS:
        raise ApiProblem(400, f"The request offers {len(body.tools)} tools; at most {MAX_TOOLS} are allowed.",
                         "invalid_request", param="tools")
    specs: list[ToolSpec] = []
    for i, raw in enumerate(body.tools):
        kind = raw.get("type")
        if kind not in (None, "custom"):
            raise ApiProblem(400, f"tools.{i}: {raw.get('name') or kind!s} ({kind}) is one of Anthropic's own tools, "
                                  "which this server cannot run. Offer it as a tool your client runs: name, "
                                  "description and input_schema.", "unsupported_parameter", param=f"tools.{i}")
        tool = _block(ToolDefinition, raw, f"tools.{i}")
        if tool.name in (s.name for s in specs):
            raise ApiProblem(400, f"tools.{i}: the tool name {tool.name!r} is used twice.", "invalid_request",
                             param=f"tools.{i}")
        specs.append(ToolSpec(tool.name, tool.description, tool.input_schema))
    mode = {"auto": "auto", "any": "required", "tool": "named", "none": "none"}[choice.type if choice else "auto"]
    name = choice.name if choice else None
    if mode == "named" and name not in (s.name for s in specs):
        raise ApiProblem(400, f"tool_choice names the tool {name!r}, which is not among the request's tools.",
                         "invalid_request", param="tool_choice.name")
    parallel = not (choice and choice.disable_parallel_tool_use)
    return ToolRequest(tuple(specs), ToolChoice(mode, name if mode == "named" else None), parallel=parallel)


def thinking_wanted(setting: ThinkingSetting | None) -> bool | None:
    """GenerationOptions.thinking: on, off, or (not given, adaptive) the template's default."""
    if setting is None or setting.type == "adaptive":
        return None
    return setting.type == "enabled"


def _refuse_unsupported(body: ConversationRequest) -> None:
    if body.mcp_servers:
        raise ApiProblem(400, "mcp_servers are not supported: this server makes no network calls of its own. "
                              "Run the MCP tools in your client and offer them as tools.",
                         "unsupported_parameter", param="mcp_servers")
    if isinstance(body, MessagesRequest) and body.container is not None:
        raise ApiProblem(400, "container is not supported: code execution runs on Anthropic's servers only.",
                         "unsupported_parameter", param="container")


def _response_format(body: ConversationRequest) -> dict[str, Any] | None:
    """output_config.format in OpenAI's response_format shape, which the engine turns into a grammar."""
    wanted = body.output_config.format if body.output_config else None
    return {"type": "json_schema", "json_schema": {"schema": wanted.schema_}} if wanted else None


def _serving_model(services: Services, requested: str) -> str:
    """The model a request names; ``claude-...`` means the one in use (agents send such names)."""
    if not requested.startswith(CLAUDE_PREFIX):
        return requested
    in_use = next((entry.name for entry in services.models.entries() if entry.loaded), None)
    if in_use is None:
        raise ApiProblem(503, f"No model is loaded, so {requested!r} (served by the loaded model) cannot answer. "
                              "Load one in the Models tab.", "model_not_loaded")
    return in_use


def generation_options(services: Services, body: ConversationRequest) -> GenerationOptions:
    """The request's model, sampling, tools and thinking as the services take them."""
    _refuse_unsupported(body)
    asked = SamplingRequest(response_format=_response_format(body))
    if isinstance(body, MessagesRequest):
        asked = SamplingRequest(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
                                stop=body.stop_sequences, max_tokens=body.max_tokens,
                                response_format=asked.response_format)
    return GenerationOptions(model=_serving_model(services, body.model),
                             sampling=sampling_from(asked, ANTHROPIC_DEFAULTS),
                             tools=tool_request(body), thinking=thinking_wanted(body.thinking))


# -- reply -> content blocks ------------------------------------------------------------------


def tool_use_id(call: ToolCall) -> str:
    """Anthropic-style ids (``toolu_...``) for the ids this server makes; a model's own id is kept."""
    return "toolu_" + call.id.removeprefix("call_") if call.id.startswith("call_") else call.id


def thinking_signature(thinking: str) -> str:
    """The ``signature`` Anthropic's clients expect on a thinking block. This server never checks it
    (thinking is not sent to the model again), so a digest of the text is enough to tell blocks apart."""
    return hashlib.sha256(thinking.encode("utf-8")).hexdigest()


class ReplyBlocks:
    """A reply's chunks as content blocks, in the order the model wrote them, and the stream events
    that build them; the non-streaming answer is ``blocks`` once ``finish`` ran."""

    def __init__(self, *, show_thinking: bool = True) -> None:
        self.blocks: list[dict[str, Any]] = []
        self.stats: GenerationStats | None = None
        self._show_thinking = show_thinking  # thinking.display "omitted": blocks stay, their text is left out
        self._open = False
        self._thought = ""

    def feed(self, chunk: StreamChunk) -> list[dict[str, Any]]:
        """The events for one chunk (each a dict whose ``type`` is the event's name)."""
        if chunk.stats is not None:
            self.stats = chunk.stats
        events: list[dict[str, Any]] = []
        if chunk.reasoning:
            events += self._grow("thinking", chunk.reasoning)
        if chunk.text:
            events += self._grow("text", chunk.text)
        for call in chunk.tool_calls:
            events += self._start({"type": "tool_use", "id": tool_use_id(call), "name": call.name, "input": {}})
            self.blocks[-1]["input"] = dict(call.arguments)
            events.append(self._delta({"type": "input_json_delta", "partial_json": call.arguments_json()}))
            events += self._close()
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Close the last block; a reply with no block at all gets one empty text block."""
        events = [] if self.blocks else self._start({"type": "text", "text": ""})
        return events + self._close()

    @property
    def stop_reason(self) -> str:
        if any(block["type"] == "tool_use" for block in self.blocks):
            return "tool_use"
        if self.stop_sequence is not None:
            return "stop_sequence"
        return "max_tokens" if self.stats is not None and self.stats.finish_reason == "length" else "end_turn"

    @property
    def stop_sequence(self) -> str | None:
        """Which of the request's stop_sequences ended the reply (the engine names it), if one did."""
        return self.stats.stop_sequence if self.stats is not None else None

    @property
    def output_tokens(self) -> int:
        return self.stats.completion_tokens if self.stats is not None else 0

    def _grow(self, kind: Literal["thinking", "text"], text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if not (self._open and self.blocks[-1]["type"] == kind):
            events += self._start({"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking"
                                  else {"type": "text", "text": ""})
        if kind == "text":
            self.blocks[-1]["text"] += text
            events.append(self._delta({"type": "text_delta", "text": text}))
        else:
            self._thought += text
            if self._show_thinking:
                self.blocks[-1]["thinking"] += text
                events.append(self._delta({"type": "thinking_delta", "thinking": text}))
        return events

    def _start(self, block: dict[str, Any]) -> list[dict[str, Any]]:
        """Close the open block, if any, and open ``block``."""
        events = self._close()
        self.blocks.append(block)
        self._open = True
        self._thought = ""
        return [*events, {"type": "content_block_start", "index": len(self.blocks) - 1, "content_block": dict(block)}]

    def _delta(self, delta: dict[str, Any]) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": len(self.blocks) - 1, "delta": delta}

    def _close(self) -> list[dict[str, Any]]:
        if not self._open:
            return []
        self._open = False
        events = []
        block = self.blocks[-1]
        if block["type"] == "thinking":
            block["signature"] = thinking_signature(self._thought)
            events.append(self._delta({"type": "signature_delta", "signature": block["signature"]}))
        return [*events, {"type": "content_block_stop", "index": len(self.blocks) - 1}]


def message_body(ident: str, model: str, reply: ReplyBlocks, input_tokens: int) -> dict[str, Any]:
    """A complete (non-streamed) reply: Anthropic's Message object."""
    return {"id": ident, "type": "message", "role": "assistant", "model": model, "content": reply.blocks,
            "stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence,
            "usage": {"input_tokens": input_tokens, "output_tokens": reply.output_tokens}}


def sse_event(event: dict[str, Any]) -> bytes:
    """One server-sent event named by its ``type``, as Anthropic's stream writes them."""
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


async def reply_events(driven: Driven, first: StreamChunk | None, generation: Generation,
                       reply: ReplyBlocks, ident: str) -> AsyncIterator[bytes]:
    """The reply as Anthropic's event stream; a failure after the start travels as an ``error`` event."""
    try:
        start = {"id": ident, "type": "message", "role": "assistant", "model": generation.model, "content": [],
                 "stop_reason": None, "stop_sequence": None,
                 "usage": {"input_tokens": generation.prompt_tokens, "output_tokens": 0}}
        yield sse_event({"type": "message_start", "message": start})
        yield sse_event({"type": "ping"})
        chunk = first
        while chunk is not None:
            for event in reply.feed(chunk):
                yield sse_event(event)
            chunk = await driven.next()
        for event in reply.finish():
            yield sse_event(event)
        yield sse_event({"type": "message_delta", "delta": {"stop_reason": reply.stop_reason,
                                                             "stop_sequence": reply.stop_sequence},
                         "usage": {"output_tokens": reply.output_tokens}})
        yield sse_event({"type": "message_stop"})
    except ApiProblem as problem:  # after the status was sent: the error travels as an event
        log.warning("Anthropic stream %s ended with an error: %s", ident, problem.message)
        yield sse_event(error_body(problem))
    finally:
        driven.close()


# -- models in Anthropic's shape ----------------------------------------------------------------


def model_info(entry: ModelEntry) -> dict[str, Any]:
    """One model as Anthropic's ModelInfo (sent when the request carries an anthropic-version header)."""
    created = datetime.fromtimestamp(entry.modified, UTC).isoformat().replace("+00:00", "Z")
    return {"type": "model", "id": entry.name, "display_name": entry.name, "created_at": created,
            "lifecycle": "active", "max_input_tokens": entry.context_length}


def model_list_page(entries: Sequence[ModelEntry]) -> dict[str, Any]:
    """Every model on one page, as Anthropic's models list."""
    data = [model_info(entry) for entry in entries]
    return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


def wants_anthropic_shape(request: fastapi.Request) -> bool:
    """Anthropic's clients send ``anthropic-version`` on every call; OpenAI's never do."""
    return "anthropic-version" in request.headers


# -- routes ---------------------------------------------------------------------------------------


def build_anthropic_router(services: Services) -> fastapi.APIRouter:
    router = fastapi.APIRouter(prefix="/v1")
    on_error = guarded(anthropic_error)

    @router.post("/messages")
    @on_error
    async def create_message(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, MessagesRequest)
        messages = to_chat_messages(body)
        options = await threaded(generation_options, services, body)
        generation = await threaded(services.completions.chat, user, messages, options)
        show_thinking = not (body.thinking and body.thinking.display == "omitted")
        reply = ReplyBlocks(show_thinking=show_thinking)
        ident = f"msg_{uuid.uuid4().hex[:24]}"
        driven = Driven(request, generation)
        first = await driven.next()  # awaited before the status is sent: an engine refusal still gets its 4xx
        if body.stream:
            return StreamingResponse(reply_events(driven, first, generation, reply, ident),
                                     media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        try:
            chunk = first
            while chunk is not None:
                reply.feed(chunk)
                chunk = await driven.next()
        finally:
            driven.close()
        reply.finish()
        return JSONResponse(message_body(ident, generation.model, reply, generation.prompt_tokens))

    @router.post("/messages/count_tokens")
    @on_error
    async def count_tokens(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, ConversationRequest)
        messages = to_chat_messages(body)
        options = await threaded(generation_options, services, body)
        tokens = await threaded(services.completions.count_chat_tokens, user, messages, options)
        return JSONResponse({"input_tokens": tokens})

    return router
