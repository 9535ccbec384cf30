"""What both API faces share: reading a bounded JSON body, request models, the caller, streaming.

Bodies are parsed here rather than by FastAPI's own validation so that every refusal comes back in
the shape the client's library parses (OpenAI's ``{"error": {...}}`` or Ollama's ``{"error": "..."}``)
with a 4xx status, never FastAPI's 422 layout or a 500. Fields this server does not apply are
accepted, as llama-server and vLLM accept them, and named in the ``X-Ignored-Fields`` header.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, TypeVar

import anyio
import fastapi
from pydantic import BaseModel, ConfigDict, ValidationError

from webui.config import MAX_REQUEST_BODY_BYTES
from webui.errors import UserError, unexpected_message
from webui.services import Services
from webui.services.access import NotAuthorized
from webui.services.completions import Generation, RequestRefused
from webui.services.types import (
    ContextExceeded,
    EngineError,
    InvalidGrammar,
    InvalidSampling,
    NoModelLoaded,
    StreamChunk,
    User,
)

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.25
IGNORED_FIELDS_HEADER = "X-Ignored-Fields"
# Clients read a header line into a fixed buffer (aiohttp: 8 KB), so a body with thousands of
# unknown fields must not make one they cannot read: the list stops here and says how many it left out.
MAX_IGNORED_HEADER_CHARS = 1000

Model = TypeVar("Model", bound=BaseModel)


class NotApplied:
    """Marks a known field this server accepts (its value is checked) but does not act on.

    Use as ``Annotated[int | None, NOT_APPLIED]``; a request that sets it sees it in ``X-Ignored-Fields``.
    """


NOT_APPLIED: Final = NotApplied()


class StrictModel(BaseModel):
    """Request bodies that refuse unknown fields by name, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")


class RequestModel(BaseModel):
    """Request bodies of the OpenAI and Ollama faces: unknown fields are kept aside, not refused.

    llama-server and vLLM accept fields they do not know, and benchmark clients (GuideLLM, vLLM's
    own) send their extensions to every server; ``ignored_fields`` names what was not applied.
    """

    model_config = ConfigDict(extra="allow")


def ignored_fields(body: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names (``stream_options.x``, ``messages.0.y``) of what ``body`` holds that nothing applies:
    fields no model declares, and fields set that are marked NOT_APPLIED; nested models included."""
    names = [f"{prefix}{name}" for name in body.__pydantic_extra__ or {}]
    for name, field in type(body).model_fields.items():
        if name not in body.model_fields_set:
            continue
        value = getattr(body, name)
        if value is not None and any(isinstance(item, NotApplied) for item in field.metadata):
            names.append(f"{prefix}{name}")
        elif isinstance(value, BaseModel):
            names += ignored_fields(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    names += ignored_fields(item, f"{prefix}{name}.{index}.")
    return names


def ignored_header(names: list[str]) -> str:
    """``names`` as one header value: printable ASCII only (a name is the client's text), bounded in length."""
    shown: list[str] = []
    length = 0
    for index, name in enumerate(names):
        safe = "".join(c if " " <= c <= "~" and c != "," else "?" for c in name)
        if length + len(safe) + 2 > MAX_IGNORED_HEADER_CHARS:
            shown.append(f"... ({len(names) - index} more)")
            break
        shown.append(safe)
        length += len(safe) + 2
    return ", ".join(shown)


class ApiProblem(UserError):
    """A refusal on its way to the client: HTTP status, one sentence, a machine-readable code."""

    def __init__(self, status: int, message: str, code: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def describe_validation(error: ValidationError) -> tuple[str, str | None]:
    """The first problem of a body as a sentence, and the field it concerns."""
    problems = error.errors()
    # An unknown field is the likeliest cause of the rest (a typo), so it is named first.
    first = next((p for p in problems if p.get("type") == "extra_forbidden"), problems[0])
    where = ".".join(str(part) for part in first.get("loc", ()))
    if first.get("type") == "extra_forbidden":
        return f"Unknown field '{where}'.", where
    if first.get("type") == "missing":
        return f"The field '{where}' is required.", where
    return f"Invalid value for '{where}': {first.get('msg', 'not accepted')}.", where or None


async def read_json(request: fastapi.Request, model: type[Model]) -> Model:
    """The body as ``model``; too large, not JSON or not matching the model -> ApiProblem (4xx)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_REQUEST_BODY_BYTES:
        raise ApiProblem(413, f"The request body is larger than {MAX_REQUEST_BODY_BYTES // 2**20} MB.", "request_too_large")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_REQUEST_BODY_BYTES:
            raise ApiProblem(413, f"The request body is larger than {MAX_REQUEST_BODY_BYTES // 2**20} MB.",
                             "request_too_large")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, f"The request body is not valid JSON ({exc}).", "invalid_json") from exc
    except RecursionError as exc:  # Python's parser recurses per level: [[[[... a few thousand deep ends it
        raise ApiProblem(400, "The request body is nested too deeply to be read as JSON.", "invalid_json") from exc
    if not isinstance(data, dict):
        raise ApiProblem(400, "The request body must be a JSON object.", "invalid_json")
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        message, param = describe_validation(exc)
        raise ApiProblem(400, message, "invalid_request", param=param) from exc
    ignored = ignored_fields(body)
    if ignored:
        request.state.ignored_fields = ignored
        log.info("%s %s: accepted without applying: %s", request.method, request.url.path, ignored_header(ignored))
    return body


def caller(services: Services, request: fastapi.Request) -> User:
    """The user this call acts as (its API key's), or a 401.

    The key comes as ``Authorization: Bearer KEY`` (OpenAI, Ollama clients) or ``x-api-key: KEY``
    (Anthropic's clients); both name the same per-user keys.
    """
    authorization = request.headers.get("authorization")
    if not authorization and request.headers.get("x-api-key"):
        authorization = f"Bearer {request.headers['x-api-key']}"
    try:
        return services.api_access.caller(authorization)
    except NotAuthorized as exc:
        raise ApiProblem(401, str(exc), "invalid_api_key") from exc


def problem_from(exc: Exception) -> ApiProblem:
    """Service errors as HTTP refusals, by type (never by message text); each failure has one type and one code."""
    if isinstance(exc, ApiProblem):
        return exc
    if isinstance(exc, RequestRefused):
        return ApiProblem(exc.status, str(exc), exc.code)
    if isinstance(exc, NotAuthorized):
        return ApiProblem(403, str(exc), "forbidden")
    if isinstance(exc, ContextExceeded):
        return ApiProblem(400, str(exc), "context_length_exceeded")
    if isinstance(exc, InvalidGrammar):
        return ApiProblem(400, str(exc), "invalid_response_format", param="response_format")
    if isinstance(exc, InvalidSampling):
        return ApiProblem(400, str(exc), "invalid_request", param="logit_bias")
    if isinstance(exc, NoModelLoaded):
        return ApiProblem(503, str(exc), "model_not_loaded")
    if isinstance(exc, EngineError):
        return ApiProblem(500, str(exc), "engine_error")
    if isinstance(exc, UserError):  # any other refusal meant for people: its sentence, as a client error
        log.warning("API request refused: %s (%s)", exc, type(exc).__name__)
        return ApiProblem(400, str(exc), "invalid_request")
    log.error("API request failed unexpectedly", exc_info=exc)
    return ApiProblem(500, unexpected_message(exc), "internal_error")


async def _watch_disconnect(request: fastapi.Request, generation: Generation) -> None:
    """A client that goes away cancels its generation, also while it still waits in the queue."""
    while not generation.cancel.is_set():
        if await request.is_disconnected():
            log.info("API client went away; cancelling its generation")
            generation.close()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


class Driven:
    """A generation read from async code: each chunk is pulled in a worker thread (the engine blocks)."""

    def __init__(self, request: fastapi.Request, generation: Generation) -> None:
        self.generation = generation
        self.started = time.perf_counter()
        self._watcher = asyncio.create_task(_watch_disconnect(request, generation))
        self._done = False
        self._finished = False

    async def next(self) -> StreamChunk | None:
        """The next chunk, or None at the end; errors come out as ApiProblem."""
        if self._done:
            return None
        try:
            chunk = await anyio.to_thread.run_sync(next, self.generation.chunks, None, abandon_on_cancel=True)
        except Exception as exc:
            self.close()
            raise problem_from(exc) from exc
        if chunk is None:
            self._finished = True
            self.close()
        return chunk

    async def chunks(self) -> AsyncIterator[StreamChunk]:
        while (chunk := await self.next()) is not None:
            yield chunk

    def close(self) -> None:
        """Stop the generation if it still runs (client gone, or an error) and the watcher."""
        if not self._done:
            self._done = True
            self._watcher.cancel()
            if not self._finished:
                log.info("API generation cancelled before its end (the client went away or it failed)")
        self.generation.close()


async def threaded(function: Callable[..., Any], *args: Any) -> Any:
    """Service calls that may block (model files, tokenizing, retrieval) run off the event loop."""
    return await anyio.to_thread.run_sync(function, *args)


def ndjson(item: dict[str, Any]) -> bytes:
    return (json.dumps(item, ensure_ascii=False) + "\n").encode("utf-8")


def sse(item: dict[str, Any] | str) -> bytes:
    data = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def guarded(render: Callable[[ApiProblem], fastapi.Response]):
    """Wrap a route so any refusal or failure becomes ``render(problem)``, never a bare 500 page, and
    every answer names the fields ``read_json`` accepted without applying."""

    def decorate(route):
        async def run(request: fastapi.Request) -> fastapi.Response:
            try:
                response = await route(request)
            except Exception as exc:  # noqa: BLE001 - every error becomes a typed refusal or a logged 500
                response = render(problem_from(exc))
            ignored = getattr(request.state, "ignored_fields", None)
            if ignored:
                response.headers[IGNORED_FIELDS_HEADER] = ignored_header(ignored)
            return response

        run.__name__ = route.__name__
        run.__doc__ = route.__doc__
        return run

    return decorate
