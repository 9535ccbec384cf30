"""Ollama-compatible routes under /api: tags, show, chat, generate, embed, version (NDJSON streaming).

Shapes follow Ollama's API docs, so the ``ollama`` Python package and LangChain's ``langchain-ollama``
talk to the app's address unchanged. Errors come back as Ollama's ``{"error": "..."}``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import fastapi
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field

from webui import __version__
from webui.api.common import (
    NOT_APPLIED,
    ApiProblem,
    Driven,
    RequestModel,
    caller,
    guarded,
    ndjson,
    read_json,
    threaded,
)
from webui.api.tool_wire import CallLedger, assistant_calls, call_as_ollama, tool_request
from webui.services import Services
from webui.services.completions import Generation, GenerationOptions
from webui.services.types import SamplingParams, SamplingRequest, ToolCall, sampling_from

OLLAMA_DEFAULTS = SamplingParams(max_tokens=None)  # what a request leaves out; its reply as long as fits


def ollama_error(problem: ApiProblem) -> JSONResponse:
    return JSONResponse({"error": problem.message}, status_code=problem.status)


class Options(RequestModel):
    """Ollama's model options; those that concern loading (num_ctx, num_gpu...) are accepted and not applied,
    as the admin's load settings decide them for everyone."""

    num_predict: int | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    stop: list[str] | None = None
    repeat_penalty: float | None = Field(None, gt=0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    typical_p: float | None = Field(None, gt=0, le=1)
    # accepted, not applied (those that concern loading are the admin's load settings, for everyone):
    numa: Annotated[bool | None, NOT_APPLIED] = None
    num_ctx: Annotated[int | None, NOT_APPLIED] = None
    num_batch: Annotated[int | None, NOT_APPLIED] = None
    num_gpu: Annotated[int | None, NOT_APPLIED] = None
    main_gpu: Annotated[int | None, NOT_APPLIED] = None
    low_vram: Annotated[bool | None, NOT_APPLIED] = None
    f16_kv: Annotated[bool | None, NOT_APPLIED] = None
    logits_all: Annotated[bool | None, NOT_APPLIED] = None
    vocab_only: Annotated[bool | None, NOT_APPLIED] = None
    use_mmap: Annotated[bool | None, NOT_APPLIED] = None
    use_mlock: Annotated[bool | None, NOT_APPLIED] = None
    embedding_only: Annotated[bool | None, NOT_APPLIED] = None
    num_thread: Annotated[int | None, NOT_APPLIED] = None
    num_keep: Annotated[int | None, NOT_APPLIED] = None
    tfs_z: Annotated[float | None, NOT_APPLIED] = None
    repeat_last_n: Annotated[int | None, NOT_APPLIED] = None
    mirostat: Annotated[int | None, NOT_APPLIED] = None
    mirostat_tau: Annotated[float | None, NOT_APPLIED] = None
    mirostat_eta: Annotated[float | None, NOT_APPLIED] = None
    penalize_newline: Annotated[bool | None, NOT_APPLIED] = None

    def sampling(self, response_format: dict[str, Any] | None) -> SamplingParams:
        asked = sampling_from(SamplingRequest(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
            repeat_penalty=self.repeat_penalty, presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty, seed=self.seed, stop=self.stop, max_tokens=self.max_tokens(),
            response_format=response_format,
        ), OLLAMA_DEFAULTS)
        return asked if self.typical_p is None else replace(asked, typical_p=self.typical_p)

    def max_tokens(self) -> int | None:
        """num_predict: -1 (or absent) means as much as fits, like Ollama; 0 is refused."""
        if self.num_predict is None or self.num_predict < 0:
            return None
        if self.num_predict == 0:
            raise ApiProblem(400, "options.num_predict must be positive (or -1 for as much as fits).",
                             "invalid_request")
        return self.num_predict


class Message(RequestModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""  # the ollama client leaves out an assistant turn's empty text beside its tool calls
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None
    thinking: str | None = None


def chat_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Ollama's messages in the services' normalized shape; Ollama's calls carry no ids, so each gets one
    and a tool result (named by ``tool_name``) answers the oldest unanswered call of that tool."""
    ledger = CallLedger()
    normalized: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "assistant" and message.tool_calls:
            ids = (f"call_{i}_{n}" for n in range(len(message.tool_calls)))
            item["tool_calls"] = assistant_calls(message.tool_calls, f"messages[{i}].tool_calls", ids=ids)
            ledger.add(item["tool_calls"])
        if message.role == "assistant" and message.thinking:
            item["reasoning_content"] = message.thinking
        if message.role == "tool":
            item["tool_call_id"], item["name"] = ledger.answer(None, message.tool_name, f"messages[{i}]")
        normalized.append(item)
    return normalized


class _Generating(RequestModel):
    model: str = Field(min_length=1)
    format: Literal["", "json"] | dict[str, Any] | None = None
    options: Options | None = None
    stream: bool = True
    keep_alive: Annotated[str | int | float | None, NOT_APPLIED] = None
    think: bool | Literal["low", "medium", "high"] | None = None  # a level (gpt-oss) means thinking on

    def generation_options(self, *, collections: list[str] | None = None) -> GenerationOptions:
        options = self.options or Options()
        if isinstance(self.format, dict):
            response_format: dict[str, Any] | None = {"type": "json_schema", "json_schema": {"schema": self.format}}
        else:
            response_format = {"type": "json_object"} if self.format == "json" else None
        thinking = None if self.think is None else self.think is not False
        return GenerationOptions(model=self.model, sampling=options.sampling(response_format),
                                 collections=tuple(collections or ()), thinking=thinking)


class ChatRequest(_Generating):
    messages: list[Message] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    collections: list[str] | None = None  # extension: answer from these document collections


class GenerateRequest(_Generating):
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None


class EmbedRequest(RequestModel):
    model: str = Field(min_length=1)
    input: str | list[str]
    truncate: bool | None = None
    options: Options | None = None
    keep_alive: Annotated[str | int | float | None, NOT_APPLIED] = None
    dimensions: int | None = None


class LegacyEmbedRequest(RequestModel):
    model: str = Field(min_length=1)
    prompt: str
    options: Options | None = None
    keep_alive: Annotated[str | int | float | None, NOT_APPLIED] = None


class ShowRequest(RequestModel):
    model: str | None = None
    name: str | None = None  # older clients
    verbose: bool | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _details(entry) -> dict[str, Any]:
    family = entry.architecture or "unknown"
    return {"parent_model": "", "format": "gguf", "family": family, "families": [family],
            "parameter_size": entry.parameters or "", "quantization_level": entry.quant or ""}


def build_ollama_router(services: Services) -> fastapi.APIRouter:
    router = fastapi.APIRouter(prefix="/api")
    on_error = guarded(ollama_error)

    @router.get("/version")
    @on_error
    async def version(request: fastapi.Request) -> fastapi.Response:
        caller(services, request)
        return JSONResponse({"version": __version__})

    @router.get("/tags")
    @on_error
    async def tags(request: fastapi.Request) -> fastapi.Response:
        caller(services, request)
        entries = await threaded(services.models.entries)
        return JSONResponse({"models": [
            {"name": e.name, "model": e.name,
             "modified_at": datetime.fromtimestamp(e.modified, timezone.utc).isoformat(),
             "size": e.size_bytes, "digest": "", "details": _details(e)} for e in entries]})

    @router.get("/ps")
    @on_error
    async def running(request: fastapi.Request) -> fastapi.Response:
        caller(services, request)
        entries = [e for e in await threaded(services.models.entries) if e.loaded]
        return JSONResponse({"models": [
            {"name": e.name, "model": e.name, "size": e.size_bytes, "digest": "", "details": _details(e),
             "expires_at": "0001-01-01T00:00:00Z", "size_vram": 0} for e in entries]})

    @router.post("/show")
    @on_error
    async def show(request: fastapi.Request) -> fastapi.Response:
        caller(services, request)
        body = await read_json(request, ShowRequest)
        name = body.model or body.name or ""
        entry = await threaded(services.models.find, name)
        if entry is None:
            raise ApiProblem(404, f"model '{name}' not found", "model_not_found")
        info = {"general.architecture": entry.architecture or "unknown"}
        if entry.context_length:
            info[f"{entry.architecture}.context_length"] = entry.context_length
        capabilities = ["completion", "tools"]
        if await threaded(services.models.thinks, entry.name):
            capabilities.append("thinking")
        return JSONResponse({"modelfile": "", "parameters": "", "template": "", "details": _details(entry),
                             "model_info": info, "capabilities": capabilities,
                             "modified_at": datetime.fromtimestamp(entry.modified, timezone.utc).isoformat()})

    @router.post("/chat")
    @on_error
    async def chat(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, ChatRequest)
        if any(m.images for m in body.messages):
            raise ApiProblem(400, "Images are not supported by this server.", "unsupported_parameter")
        options = replace(body.generation_options(collections=body.collections), tools=tool_request(body.tools))
        messages = chat_messages(body.messages)
        generation = await threaded(services.completions.chat, user, messages, options)
        return await _respond(request, generation, stream=body.stream, chat=True)

    @router.post("/generate")
    @on_error
    async def generate(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, GenerateRequest)
        if body.images or body.suffix or body.context or body.template:
            raise ApiProblem(400, "images, suffix, context and template are not supported by this server.",
                             "unsupported_parameter")
        options = body.generation_options()
        if not body.prompt:  # Ollama's way to ask "is the model loaded?"
            model = await threaded(services.completions.require_model, user, body.model)
            return JSONResponse({"model": model, "created_at": _now(), "response": "", "done": True,
                                 "done_reason": "load"})
        if body.raw:
            generation = await threaded(services.completions.complete, user, body.prompt, options)
        else:
            messages = ([{"role": "system", "content": body.system}] if body.system else []) + [
                {"role": "user", "content": body.prompt}]
            generation = await threaded(services.completions.chat, user, messages, options)
        return await _respond(request, generation, stream=body.stream, chat=False)

    @router.post("/embed")
    @on_error
    async def embed(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, EmbedRequest)
        texts = [body.input] if isinstance(body.input, str) else body.input
        started = time.perf_counter_ns()
        result = await threaded(services.completions.embed, user, body.model, texts)
        return JSONResponse({"model": body.model, "embeddings": result.vectors,
                             "total_duration": time.perf_counter_ns() - started, "load_duration": 0,
                             "prompt_eval_count": result.prompt_tokens})

    @router.post("/embeddings")
    @on_error
    async def embeddings(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, LegacyEmbedRequest)
        result = await threaded(services.completions.embed, user, body.model, [body.prompt])
        return JSONResponse({"embedding": result.vectors[0]})

    return router


async def _respond(request: fastapi.Request, generation: Generation, *, stream: bool, chat: bool) -> fastapi.Response:
    """NDJSON lines (one per piece, then a ``done`` line with counts and durations) or one object."""
    driven = Driven(request, generation)
    first = await driven.next()

    def line(text: str, thinking: str = "", calls: Sequence[ToolCall] = ()) -> dict[str, Any]:
        base: dict[str, Any] = {"model": generation.model, "created_at": _now()}
        if chat:
            base["message"] = {"role": "assistant", "content": text}
            if thinking:
                base["message"]["thinking"] = thinking
            if calls:
                base["message"]["tool_calls"] = [call_as_ollama(call) for call in calls]
        else:
            base["response"] = text
            if thinking:
                base["thinking"] = thinking
        return base

    def final(stats) -> dict[str, Any]:
        total = int((time.perf_counter() - driven.started) * 1e9)
        ttft = int(stats.ttft_s * 1e9) if stats else 0
        done = {**line(""), "done": True, "done_reason": "length" if stats and stats.finish_reason == "length"
                else "stop",  # Ollama says "stop" after tool calls too "total_duration": total, "load_duration": 0,
                "prompt_eval_count": generation.prompt_tokens, "prompt_eval_duration": ttft,
                "eval_count": stats.completion_tokens if stats else 0, "eval_duration": max(0, total - ttft)}
        if generation.sources:
            done["sources"] = generation.sources
        return done

    if not stream:
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        stats = None
        chunk = first
        try:
            while chunk is not None:
                stats = chunk.stats or stats
                texts.append(chunk.text)
                thinking.append(chunk.reasoning)
                calls += chunk.tool_calls
                chunk = await driven.next()
        finally:
            driven.close()
        return JSONResponse({**final(stats), **line("".join(texts), "".join(thinking), calls)})

    async def lines():
        chunk = first
        stats = None
        try:
            while chunk is not None:
                stats = chunk.stats or stats
                if chunk.text or chunk.reasoning or chunk.tool_calls:
                    yield ndjson({**line(chunk.text, chunk.reasoning, chunk.tool_calls), "done": False})
                chunk = await driven.next()
            yield ndjson(final(stats))
        except ApiProblem as problem:
            yield ndjson({"error": problem.message})
        finally:
            driven.close()

    return StreamingResponse(lines(), media_type="application/x-ndjson")
