"""OpenAI-compatible routes under /v1: models, chat/completions, completions, embeddings.

Shapes follow OpenAI's API reference, so the official client, LangChain's ChatOpenAI, editors and
Open WebUI work unchanged. ``collections`` (sent through ``extra_body``) answers from the caller's
document collections and returns the cited passages in ``sources``.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import replace
from typing import Annotated, Any, Literal

import fastapi
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import Field, StrictFloat

from webui.api.anthropic import model_info, model_list_page, wants_anthropic_shape
from webui.api.common import NOT_APPLIED, ApiProblem, Driven, RequestModel, caller, guarded, read_json, sse, threaded
from webui.api.tool_wire import CallLedger, assistant_calls, call_as_openai, tool_request
from webui.services import Services
from webui.services.completions import GenerationOptions, embedding_base64
from webui.services.types import SamplingParams, SamplingRequest, TokenLogprob, ToolCall, sampling_from

# What an OpenAI request leaves out: no repeat penalty (OpenAI clients expect none unless they ask for
# one), and a reply as long as the context window leaves.
OPENAI_DEFAULTS = SamplingParams(repeat_penalty=1.0, max_tokens=None)


def openai_error(problem: ApiProblem) -> JSONResponse:
    """OpenAI's error body, which its clients turn into typed exceptions by status."""
    kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
            413: "invalid_request_error", 429: "rate_limit_error"}.get(problem.status)
    kind = kind or ("invalid_request_error" if problem.status < 500 else "server_error")
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse({"error": {"message": problem.message, "type": kind, "param": problem.param,
                                   "code": problem.code}}, status_code=problem.status, headers=headers)


class TextPart(RequestModel):
    type: Literal["text"]
    text: str


class ChatMessage(RequestModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None  # an earlier reply's thinking, as llama.cpp's server and DeepSeek send it

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])


def chat_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """The request's messages in the services' normalized shape: tool calls with their arguments as
    objects, each tool result matched to the call it answers (a 400 for one that answers none)."""
    ledger = CallLedger()
    normalized: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = "system" if message.role == "developer" else message.role
        item: dict[str, Any] = {"role": role, "content": message.text()}
        if role == "assistant" and message.tool_calls:
            item["tool_calls"] = assistant_calls(message.tool_calls, f"{where}.tool_calls")
            ledger.add(item["tool_calls"])
        if role == "assistant" and message.reasoning_content:
            item["reasoning_content"] = message.reasoning_content
        if role == "tool":
            item["tool_call_id"], item["name"] = ledger.answer(message.tool_call_id, message.name, where)
        normalized.append(item)
    return normalized


class StreamOptions(RequestModel):
    include_usage: bool = False
    continuous_usage_stats: bool = False  # vLLM: usage in every chunk (with include_usage)
    include_obfuscation: Annotated[bool | None, NOT_APPLIED] = None


class ChatTemplateKwargs(RequestModel):
    """vLLM's and llama-server's variables for the chat template; only the thinking switch is applied."""

    enable_thinking: bool | None = None


# OpenAI's range; -100 is documented as a ban, and a ban must hold however far ahead a token's logit is.
LOGIT_BIAS_RANGE = (-100.0, 100.0)
# Each entry is applied at every step in the engine's one thread, as stop strings are looked for:
# a 4 MB body of entries would slow everyone's replies.
MAX_LOGIT_BIAS_ENTRIES = 1024
MAX_TOKEN_ID = 2**31 - 1  # llama.cpp's token ids are 32-bit signed


def parse_logit_bias(asked: dict[str, float] | None) -> tuple[tuple[int, float], ...]:
    """OpenAI's ``{"token id": bias}`` as (id, bias) pairs, -100 as a ban (-inf); 400 naming logit_bias.

    Whether an id is in the model's vocabulary is the engine's to check: only it knows the vocabulary.
    """
    if asked and len(asked) > MAX_LOGIT_BIAS_ENTRIES:
        raise ApiProblem(400, f"logit_bias holds {len(asked)} entries; at most {MAX_LOGIT_BIAS_ENTRIES} are allowed.",
                         "invalid_request", param="logit_bias")
    pairs: list[tuple[int, float]] = []
    for key, bias in (asked or {}).items():
        token = key.strip()
        if not (token.isascii() and token.isdigit() and len(token) <= 10 and int(token) <= MAX_TOKEN_ID):
            raise ApiProblem(400, f"logit_bias keys must be token ids (whole numbers, as strings); "
                                  f"{key[:40]!r} is not one.", "invalid_request", param="logit_bias")
        if not LOGIT_BIAS_RANGE[0] <= bias <= LOGIT_BIAS_RANGE[1]:
            raise ApiProblem(400, f"logit_bias for token {token} is {bias}; it must be between -100 and 100.",
                             "invalid_request", param="logit_bias")
        pairs.append((int(token), -math.inf if bias == LOGIT_BIAS_RANGE[0] else float(bias)))
    return tuple(pairs)


class Sampling(RequestModel):
    """Sampling fields common to both generation routes: OpenAI's, then llama-server's and vLLM's extensions.

    Extensions with no counterpart here are typed (a malformed value is still a 400) and marked
    NOT_APPLIED, so the client sees them in X-Ignored-Fields.
    """

    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1, le=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logit_bias: dict[str, StrictFloat] | None = None
    user: Annotated[str | None, NOT_APPLIED] = None
    collections: list[str] | None = None  # extension: answer from these document collections
    passages: int | None = Field(None, ge=1, le=20)  # extension: how many passages to retrieve
    # llama-server and vLLM extensions applied here:
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    repetition_penalty: float | None = Field(None, gt=0)  # vLLM's name for repeat_penalty
    typical_p: float | None = Field(None, gt=0, le=1)
    ignore_eos: bool | None = None
    # ... accepted, not applied:
    min_tokens: Annotated[int | None, NOT_APPLIED, Field(ge=0)] = None
    cache_prompt: Annotated[bool | None, NOT_APPLIED] = None
    n_probs: Annotated[int | None, NOT_APPLIED, Field(ge=0)] = None
    return_tokens: Annotated[bool | None, NOT_APPLIED] = None
    top_n_sigma: Annotated[float | None, NOT_APPLIED] = None
    dry_multiplier: Annotated[float | None, NOT_APPLIED] = None
    dry_base: Annotated[float | None, NOT_APPLIED] = None
    dry_allowed_length: Annotated[int | None, NOT_APPLIED] = None
    dry_penalty_last_n: Annotated[int | None, NOT_APPLIED] = None
    dry_sequence_breakers: Annotated[list[str] | None, NOT_APPLIED] = None
    xtc_probability: Annotated[float | None, NOT_APPLIED] = None
    xtc_threshold: Annotated[float | None, NOT_APPLIED] = None
    mirostat: Annotated[int | None, NOT_APPLIED, Field(ge=0, le=2)] = None
    mirostat_tau: Annotated[float | None, NOT_APPLIED] = None
    mirostat_eta: Annotated[float | None, NOT_APPLIED] = None
    n_keep: Annotated[int | None, NOT_APPLIED] = None
    t_max_predict_ms: Annotated[int | None, NOT_APPLIED] = None
    id_slot: Annotated[int | None, NOT_APPLIED] = None
    samplers: Annotated[str | list[str] | None, NOT_APPLIED] = None

    def sampling(self, *, max_tokens: int | None, response_format: dict[str, Any] | None = None,
                 logprobs: int | None = None) -> SamplingParams:
        asked = sampling_from(SamplingRequest(
            temperature=self.temperature, top_p=self.top_p, top_k=self.top_k, min_p=self.min_p,
            repeat_penalty=self.repeat_penalty if self.repeat_penalty is not None else self.repetition_penalty,
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty, seed=self.seed,
            stop=self.stop, max_tokens=max_tokens, response_format=response_format, logprobs=logprobs,
        ), OPENAI_DEFAULTS)
        extensions: dict[str, Any] = {"logit_bias": parse_logit_bias(self.logit_bias)}
        if self.typical_p is not None:
            extensions["typical_p"] = self.typical_p
        if self.ignore_eos is not None:
            extensions["ignore_eos"] = self.ignore_eos
        return replace(asked, **extensions)

    def usage_in_every_chunk(self) -> bool:
        """vLLM's continuous usage stats: asked together with include_usage."""
        return bool(self.stream_options and self.stream_options.include_usage
                    and self.stream_options.continuous_usage_stats)


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: Any = None
    modalities: list[Literal["text"]] | None = None
    chat_template_kwargs: ChatTemplateKwargs | None = None
    metadata: Annotated[dict[str, Any] | None, NOT_APPLIED] = None
    store: Annotated[bool | None, NOT_APPLIED] = None
    service_tier: Annotated[str | None, NOT_APPLIED] = None
    reasoning_effort: Annotated[str | None, NOT_APPLIED] = None
    prompt_cache_key: Annotated[str | None, NOT_APPLIED] = None
    safety_identifier: Annotated[str | None, NOT_APPLIED] = None
    reasoning_format: Annotated[str | None, NOT_APPLIED] = None
    add_generation_prompt: Annotated[bool | None, NOT_APPLIED] = None

    def thinking(self) -> bool | None:
        """``chat_template_kwargs.enable_thinking``, as vLLM and llama-server read it; None: the template's default."""
        return self.chat_template_kwargs.enable_thinking if self.chat_template_kwargs else None


class CompletionRequest(Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1)  # OpenAI's default for this route
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(None, ge=1, le=1)


class EmbeddingRequest(RequestModel):
    model: str = Field(min_length=1)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(reason: str | None) -> str:
    return reason if reason in ("length", "tool_calls") else "stop"


def _chat_logprobs(items: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if not items:
        return None
    return {"content": [
        {"token": t.token, "logprob": t.logprob, "bytes": list(t.token.encode("utf-8")),
         "top_logprobs": [{"token": k, "logprob": v, "bytes": list(k.encode("utf-8"))} for k, v in t.top.items()]}
        for t in items]}


def _text_logprobs(items: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if not items:
        return None
    return {"tokens": [t.token for t in items], "token_logprobs": [t.logprob for t in items],
            "top_logprobs": [t.top for t in items], "text_offset": []}


def build_openai_router(services: Services) -> fastapi.APIRouter:
    router = fastapi.APIRouter(prefix="/v1")
    on_error = guarded(openai_error)

    @router.get("/models")
    @on_error
    async def list_models(request: fastapi.Request) -> fastapi.Response:
        caller(services, request)
        entries = await threaded(services.models.entries)
        if wants_anthropic_shape(request):
            return JSONResponse(model_list_page(entries))
        return JSONResponse({"object": "list", "data": [
            {"id": e.name, "object": "model", "created": int(e.modified), "owned_by": "local"} for e in entries]})

    @router.get("/models/{name:path}")
    @on_error
    async def one_model(request: fastapi.Request) -> fastapi.Response:
        caller(services, request)
        name = request.path_params["name"]
        entry = await threaded(services.models.find, name)
        if entry is None:
            raise ApiProblem(404, f"The model {name!r} does not exist.", "model_not_found")
        if wants_anthropic_shape(request):
            return JSONResponse(model_info(entry))
        return JSONResponse({"id": entry.name, "object": "model", "created": int(entry.modified), "owned_by": "local"})

    @router.post("/chat/completions")
    @on_error
    async def chat_completions(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, ChatRequest)
        if body.functions:  # the legacy form of tools (answered as tool_calls)
            tools = tool_request(body.functions, body.function_call, parallel=False, param="functions")
        else:
            tools = tool_request(body.tools, body.tool_choice, parallel=body.parallel_tool_calls)
        sampling = body.sampling(max_tokens=body.max_completion_tokens or body.max_tokens,
                                 response_format=body.response_format,
                                 logprobs=(body.top_logprobs or 0) if body.logprobs else None)
        options = GenerationOptions(model=body.model, sampling=sampling, collections=tuple(body.collections or ()),
                                    passages=body.passages or GenerationOptions.passages, thinking=body.thinking(),
                                    tools=tools)
        messages = chat_messages(body.messages)
        generation = await threaded(services.completions.chat, user, messages, options)
        return await _respond(request, generation, body, chat=True)

    @router.post("/completions")
    @on_error
    async def completions(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, CompletionRequest)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise ApiProblem(400, "Send one prompt per request.", "unsupported_parameter", param="prompt")
        if body.echo or body.suffix:
            raise ApiProblem(400, "echo and suffix are not supported by this server.", "unsupported_parameter")
        if body.collections:
            raise ApiProblem(400, "collections work with /v1/chat/completions only.", "unsupported_parameter",
                             param="collections")
        options = GenerationOptions(model=body.model,
                                    sampling=body.sampling(max_tokens=body.max_tokens, logprobs=body.logprobs))
        generation = await threaded(services.completions.complete, user, prompts[0], options)
        return await _respond(request, generation, body, chat=False)

    @router.post("/embeddings")
    @on_error
    async def embeddings(request: fastapi.Request) -> fastapi.Response:
        user = caller(services, request)
        body = await read_json(request, EmbeddingRequest)
        texts = [body.input] if isinstance(body.input, str) else body.input
        result = await threaded(services.completions.embed, user, body.model, texts)
        if body.dimensions is not None and result.vectors and body.dimensions != len(result.vectors[0]):
            raise ApiProblem(400, f"{result.model} makes vectors of {len(result.vectors[0])} dimensions only.",
                             "unsupported_parameter", param="dimensions")
        encode = embedding_base64 if body.encoding_format == "base64" else list
        return JSONResponse({
            "object": "list", "model": result.model,
            "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(result.vectors)],
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
        })

    return router


def build_health_router(services: Services) -> fastapi.APIRouter:
    """``GET /health`` as llama-server and vLLM answer it: benchmark clients (GuideLLM) probe it before they start."""
    router = fastapi.APIRouter()
    on_error = guarded(openai_error)

    @router.get("/health")
    @on_error
    async def health(request: fastapi.Request) -> fastapi.Response:
        caller(services, request)
        if services.models.loaded() is None:
            raise ApiProblem(503, "No model is loaded.", "model_not_loaded")
        return JSONResponse({"status": "ok"})

    return router


async def _respond(request: fastapi.Request, generation, body: ChatRequest | CompletionRequest, *,
                   chat: bool) -> fastapi.Response:
    """Stream (SSE ending in ``data: [DONE]``) or answer at once; the first chunk is awaited before the
    status is sent, so a refusal from the engine (prompt too long, bad grammar) still gets its 4xx."""
    driven = Driven(request, generation)
    first = await driven.next()
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    kind = "chat.completion" if chat else "text_completion"
    extra = {"sources": generation.sources} if generation.sources else {}

    def envelope(choice: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"id": ident, "object": kind + (".chunk" if chat and body.stream else ""), "created": created,
                "model": generation.model, "system_fingerprint": None, "choices": [choice] if choice else [], **more}

    if not body.stream:
        texts: list[str] = []
        thinking: list[str] = []
        calls: list[ToolCall] = []
        logprobs: list[TokenLogprob] = []
        chunk = first
        stats = None
        try:
            while chunk is not None:
                if chunk.stats is not None:
                    stats = chunk.stats
                texts.append(chunk.text)
                thinking.append(chunk.reasoning)
                calls += chunk.tool_calls
                logprobs += chunk.logprobs or []
                chunk = await driven.next()
        finally:
            driven.close()
        text = "".join(texts)
        completion_tokens = stats.completion_tokens if stats else 0
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""),
                                       "refusal": None}
            if "".join(thinking):
                message["reasoning_content"] = "".join(thinking)
            if calls:
                message["tool_calls"] = [call_as_openai(call) for call in calls]
            choice = {"index": 0, "message": message,
                      "logprobs": _chat_logprobs(logprobs), "finish_reason": _finish(stats and stats.finish_reason)}
        else:
            choice = {"index": 0, "text": text, "logprobs": _text_logprobs(logprobs),
                      "finish_reason": _finish(stats and stats.finish_reason)}
        return JSONResponse(envelope(choice, usage=_usage(generation.prompt_tokens, completion_tokens), **extra))

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    usage_in_every_chunk = body.usage_in_every_chunk()

    calls_sent = 0  # tool calls streamed so far: each delta carries its index among them

    def piece(chunk_text: str, items: list[TokenLogprob] | None, finish: str | None = None,
              first_piece: bool = False, reasoning: str = "", calls: tuple[ToolCall, ...] = ()) -> dict[str, Any]:
        nonlocal calls_sent
        if chat:
            delta: dict[str, Any] = {"content": chunk_text} if chunk_text or not (finish or reasoning or calls) else {}
            if reasoning:
                delta["reasoning_content"] = reasoning
            if calls:
                delta["tool_calls"] = [call_as_openai(call, calls_sent + i) for i, call in enumerate(calls)]
                calls_sent += len(calls)
            if first_piece:
                delta = {"role": "assistant", **delta}
            return {"index": 0, "delta": delta, "logprobs": _chat_logprobs(items), "finish_reason": finish}
        return {"index": 0, "text": chunk_text, "logprobs": _text_logprobs(items), "finish_reason": finish}

    async def events():
        chunk = first
        stats = None
        opened = False
        tokens_so_far = 0  # a lower bound: the engine merges the tokens a slow reader has not taken yet

        def running_usage() -> dict[str, Any]:
            # vLLM's continuous usage: None in each chunk unless asked for; exact once the stats came.
            if not usage_in_every_chunk:
                return {"usage": None}
            return {"usage": _usage(generation.prompt_tokens, stats.completion_tokens if stats else tokens_so_far)}

        try:
            while chunk is not None:
                if chunk.stats is not None:
                    stats = chunk.stats
                if chunk.text or chunk.reasoning or chunk.tool_calls or chunk.logprobs or not opened:
                    tokens_so_far += len(chunk.logprobs or ()) or (1 if chunk.text or chunk.reasoning else 0)
                    yield sse(envelope(piece(chunk.text, chunk.logprobs, first_piece=not opened,
                                             reasoning=chunk.reasoning, calls=chunk.tool_calls),
                                       **({**extra, **running_usage()} if not opened else running_usage())))
                    opened = True
                chunk = await driven.next()
            finish = _finish(stats.finish_reason if stats else None)
            yield sse(envelope(piece("", None, finish), **running_usage()))
            if include_usage:
                completion_tokens = stats.completion_tokens if stats else 0
                yield sse(envelope({}, usage=_usage(generation.prompt_tokens, completion_tokens)))
            yield sse("[DONE]")
        except ApiProblem as problem:  # after the status was sent: the error travels as an event
            yield sse({"error": {"message": problem.message, "type": "server_error", "code": problem.code}})
        finally:
            driven.close()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
