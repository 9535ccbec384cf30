"""Remote inference: an OpenAI-compatible server (llama.cpp's, llama-cpp-python's, vLLM, Ollama) as a backend.

It streams with httpx and yields the same ``StreamChunk``s as the local engine, stats last, with
time to first token and tokens/s measured here, on our side of the network. Chat formats are the
server's business: what the app would show as the exact prompt is only the list of messages sent.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from webui.engine.errors import EngineError
from webui.engine.fitting import reply_budget
from webui.engine.handoff import pump_in_background
from webui.engine.types import (
    FittedPrompt,
    GenerationStats,
    Message,
    ModelInfo,
    PromptRequest,
    SamplingParams,
    StreamChunk,
)
from webui.prompts.templates import RenderedPrompt
from webui.prompts.toolcalls import ToolCall, ToolCallError, ToolRequest

log = logging.getLogger(__name__)

# The OpenAI API says nothing of a model's context window; vLLM lists it (max_model_len), most others
# do not. 2048 is llama-cpp-python's server default and the smallest in common use, so passages and
# replies sized for it fit whichever server answers.
DEFAULT_REMOTE_CTX = 2048
# The OpenAI API has no tokenizer either: counts are estimated, on the high side (about 3 characters a
# token, where English averages 4) so that text sized by them fits the server's window.
CHARS_PER_TOKEN = 3
LIST_TIMEOUT_S = 3.0
STREAM_TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=30.0, pool=5.0)
SERVER_FORMATS_NOTE = "The server formats the prompt"


class RemoteError(EngineError):
    """A remote server refused a request, or stopped answering; the message names the server."""


def estimate_tokens(text: str) -> int:
    """A high estimate of ``text``'s tokens on a server whose tokenizer we cannot ask."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: Sequence[Message], tools: ToolRequest | None = None) -> int:
    """A high estimate of a chat's prompt tokens on a server: each message's text and tool calls, a few for its
    role, and the tools' descriptions the server adds to the prompt."""
    total = sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in messages)
    total += sum(estimate_tokens(json.dumps(m["tool_calls"], default=str)) for m in messages if m.get("tool_calls"))
    if tools is not None:
        total += estimate_tokens(json.dumps([tool.as_template_tool() for tool in tools.tools]))
    return total


def short_model_name(model_id: str) -> str:
    """llama.cpp servers name a model by the path they loaded; a file name reads better in a picker."""
    return Path(model_id).name if model_id.startswith(("/", "./", "~")) or model_id.endswith(".gguf") else model_id


@dataclass(frozen=True, kw_only=True)
class RemoteModelInfo(ModelInfo):
    """A model served by a remote backend, named ``<model> @ <host:port>`` so users see where it runs."""

    backend: str  # the server's URL, without credentials: which backend runs it
    server: str  # the server as users see it (``RemoteBackend.display``)
    model_id: str

    @property
    def file(self) -> str:
        return f"{short_model_name(self.model_id)} @ {self.server}"


def remote_model_info(backend: RemoteBackend, entry: dict[str, Any]) -> RemoteModelInfo:
    """One entry of GET /v1/models as ModelInfo (vLLM's max_model_len where given)."""
    model_id = str(entry.get("id", ""))
    n_ctx = entry.get("max_model_len")
    n_ctx = int(n_ctx) if isinstance(n_ctx, int) and n_ctx > 0 else DEFAULT_REMOTE_CTX
    return RemoteModelInfo(
        path=Path(model_id), architecture="remote", name=short_model_name(model_id), n_ctx=n_ctx, n_ctx_train=n_ctx,
        n_layers=0, n_gpu_layers=0, size_bytes=0, chat_format="server", chat_format_source="server",
        chat_format_note=f"{SERVER_FORMATS_NOTE} at {backend.display}.", flash_attn=None, backend=backend.url,
        server=backend.display, model_id=model_id,
    )


def sampling_body(sampling: SamplingParams) -> dict[str, Any]:
    """Our sampling settings as OpenAI fields, plus the llama.cpp/vLLM extras (top_k, min_p, repeat_penalty)."""
    body: dict[str, Any] = {
        "temperature": sampling.temperature, "top_p": sampling.top_p,
        "presence_penalty": sampling.presence_penalty, "frequency_penalty": sampling.frequency_penalty,
        "top_k": sampling.top_k, "min_p": sampling.min_p, "repeat_penalty": sampling.repeat_penalty,
    }
    if sampling.max_tokens is not None:  # None: as many as the server's context leaves
        body["max_tokens"] = sampling.max_tokens
    if sampling.seed >= 0:
        body["seed"] = sampling.seed
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if sampling.grammar and not sampling.grammar_lazy:  # a lazy grammar is for tools, which the server handles
        body["grammar"] = sampling.grammar  # llama.cpp servers; others ignore it
    if 0 < sampling.typical_p < 1:
        body["typical_p"] = sampling.typical_p
    if sampling.logit_bias:  # OpenAI's range: a ban (-inf here) is -100 there, as JSON has no infinity
        body["logit_bias"] = {str(token): max(-100.0, min(100.0, bias)) for token, bias in sampling.logit_bias}
    if sampling.ignore_eos:  # llama.cpp's server and vLLM
        body["ignore_eos"] = True
    return body


def tools_body(tools: ToolRequest) -> dict[str, Any]:
    """A request's tools as OpenAI's ``tools``, ``tool_choice`` and ``parallel_tool_calls``."""
    choice: str | dict[str, Any] = tools.choice.mode
    if tools.choice.mode == "named":
        choice = {"type": "function", "function": {"name": tools.choice.name}}
    return {"tools": [tool.as_template_tool() for tool in tools.tools], "tool_choice": choice,
            "parallel_tool_calls": tools.parallel}


def wire_messages(messages: Sequence[Message]) -> list[Message]:
    """Messages as OpenAI sends them: a tool call's arguments as a JSON string, not the object templates take."""
    sent: list[Message] = []
    for message in messages:
        calls = message.get("tool_calls")
        if calls:
            message = {**message, "tool_calls": [_wire_call(call) for call in calls]}
        sent.append(message)
    return sent


def _wire_call(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    if not isinstance(function.get("arguments"), str):
        function["arguments"] = json.dumps(function.get("arguments") or {}, ensure_ascii=False)
    return {**call, "type": call.get("type", "function"), "function": function}


def fit_for_server(model: RemoteModelInfo, request: PromptRequest) -> FittedPrompt:
    """A request as a remote server gets it: the server renders, tokenizes and fits it itself.

    Its prompt tokens are estimated; a strict request (the API's) has its reply budget checked
    against the server's window as listed (or ``DEFAULT_REMOTE_CTX``) with that estimate.
    """
    if request.text is not None:
        estimate = estimate_tokens(request.text)
    else:
        estimate = estimate_prompt_tokens(request.messages, request.tools)
    sampling = request.sampling
    if request.strict:
        sampling = replace(sampling, max_tokens=reply_budget(model.n_ctx, estimate, sampling.max_tokens, strict=True))
    return FittedPrompt(request=request, tokens=[], prompt_tokens=estimate, sampling=sampling, stop=sampling.stop,
                        messages=request.messages)


def render_for_server(messages: Sequence[Message], model: RemoteModelInfo) -> RenderedPrompt:
    """What the exact-prompt view shows for a remote model: the messages sent, and who formats them."""
    lines = [f"[{SERVER_FORMATS_NOTE} ({model.file}); these messages are sent as they are.]", ""]
    for m in messages:
        calls = [f"{c['function']['name']}({json.dumps(c['function'].get('arguments'), default=str)})"
                 for c in m.get("tool_calls") or [] if isinstance(c.get("function"), dict)]
        lines.append(f"{m['role']}: {m.get('content') or ''}" + (f" [calls {', '.join(calls)}]" if calls else ""))
    return RenderedPrompt(text="\n".join(lines), stop=(), added_special=True)


class _ReplyReader(Protocol):
    def read(self, choice: dict[str, Any]) -> StreamChunk | None: ...

    def finish(self) -> StreamChunk | None: ...


class _CompletionReader:
    """A streamed /v1/completions reply: each event's text."""

    def read(self, choice: dict[str, Any]) -> StreamChunk | None:
        text = choice.get("text")
        return StreamChunk(text=text) if isinstance(text, str) and text else None

    def finish(self) -> StreamChunk | None:
        return None


@dataclass
class _CallSoFar:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class ChatDeltaReader:
    """A streamed chat reply read delta by delta: answer and thinking text as they come, tool calls once complete.

    OpenAI streams a call in pieces under its ``index`` (id and name first, then fragments of the
    arguments' JSON): a call is complete when another index starts, or when the stream ends. Thinking
    comes as ``reasoning_content`` (llama.cpp's server, DeepSeek) or ``reasoning`` (vLLM, Ollama).
    """

    server: str  # how errors name the server
    _open: dict[int, _CallSoFar] = field(default_factory=dict)

    def read(self, choice: dict[str, Any]) -> StreamChunk | None:
        delta = choice.get("delta") or {}
        completed: list[ToolCall] = []
        for position, piece in enumerate(delta.get("tool_calls") or []):
            index = piece.get("index", position)
            if index not in self._open:
                completed += self._complete()
                self._open[index] = _CallSoFar()
            call = self._open[index]
            call.id = piece.get("id") or call.id
            function = piece.get("function") or {}
            call.name += function.get("name") or ""
            fragment = function.get("arguments")
            call.arguments += json.dumps(fragment) if isinstance(fragment, dict) else (fragment or "")
        return _chunk(_text(delta.get("content")), _text(delta.get("reasoning_content") or delta.get("reasoning")),
                      completed)

    def finish(self) -> StreamChunk | None:
        return _chunk("", "", self._complete())

    def _complete(self) -> list[ToolCall]:
        calls = [self._parsed(call) for call in self._open.values()]
        self._open.clear()
        return calls

    def _parsed(self, call: _CallSoFar) -> ToolCall:
        if not call.name:
            raise ToolCallError(f"The model server at {self.server} sent a tool call without a function name.")
        try:
            arguments = json.loads(call.arguments) if call.arguments.strip() else {}
        except json.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise ToolCallError(f"The model server at {self.server} sent a call to {call.name} whose arguments are "
                                f"not a JSON object: {call.arguments[:200]!r}.")
        return ToolCall(id=call.id or f"call_{uuid.uuid4().hex[:24]}", name=call.name, arguments=arguments)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _chunk(text: str, reasoning: str, calls: list[ToolCall]) -> StreamChunk | None:
    return StreamChunk(text=text, reasoning=reasoning, tool_calls=tuple(calls)) if text or reasoning or calls else None


def _server_message(response: httpx.Response) -> str:
    """The error a server put in its reply body (OpenAI's {"error": {"message": ...}} or FastAPI's detail)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("detail"):
            return str(body["detail"])[:300]
    return str(body)[:300]


def _bearer(key: str) -> Callable[[httpx.Request], httpx.Request]:
    """httpx auth that sends ``key`` as ``Authorization: Bearer``, as OpenAI-compatible servers expect."""

    def sign(request: httpx.Request) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {key}"
        return request

    return sign


class RemoteBackend:
    """One OpenAI-compatible server: its model list and streamed generations; safe from any thread.

    Its credentials (``key``, sent as a Bearer token, or a ``user:password@`` in the URL, sent as
    HTTP Basic) go to the server only: ``url`` and ``display`` never hold them.
    """

    def __init__(self, url: str, *, key: str | None = None, client: httpx.Client | None = None) -> None:
        parts = urlsplit(url.rstrip("/"))
        address = parts.netloc.rpartition("@")[2]
        self.url = urlunsplit(parts._replace(netloc=address))
        # How every list, message and log line names the server: host:port (and a path, where two
        # servers behind one proxy differ by it). The one place this is decided.
        self.display = address + parts.path
        self._auth: httpx.Auth | Callable[[httpx.Request], httpx.Request] | None = None
        if key:
            self._auth = _bearer(key)
        elif parts.username is not None or parts.password is not None:
            self._auth = httpx.BasicAuth(unquote(parts.username or ""), unquote(parts.password or ""))
        # One pooled client (httpx.Client is thread-safe), so replies reuse connections.
        self._client = client or httpx.Client(timeout=STREAM_TIMEOUT)

    def models(self) -> list[RemoteModelInfo]:
        """GET /v1/models; raises RemoteError when the server does not answer."""
        try:
            response = self._client.get(f"{self.url}/v1/models", timeout=LIST_TIMEOUT_S, auth=self._auth)
            response.raise_for_status()
            data = response.json().get("data", [])
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            raise RemoteError(f"The model server at {self.display} did not list its models ({exc}).") from exc
        return [remote_model_info(self, entry) for entry in data if isinstance(entry, dict) and entry.get("id")]

    def stream_chat(self, model: RemoteModelInfo, messages: Sequence[Message], sampling: SamplingParams, *,
                    cancel: threading.Event | None = None, tools: ToolRequest | None = None,
                    thinking: bool | None = None) -> Iterator[StreamChunk]:
        """The reply to a chat; ``tools`` go to the server as OpenAI's, its calls come back as ``ToolCall``s.

        ``thinking`` is passed as the template's ``enable_thinking`` (llama.cpp's server and vLLM read it).
        """
        body = {"model": model.model_id, "messages": wire_messages(messages), "stream": True, **sampling_body(sampling)}
        if tools is not None:
            body.update(tools_body(tools))
        if thinking is not None:
            body["chat_template_kwargs"] = {"enable_thinking": thinking}
        return self._stream("/v1/chat/completions", body, estimate_prompt_tokens(messages, tools), cancel,
                            lambda: ChatDeltaReader(self.display))

    def stream_completion(self, model: RemoteModelInfo, text: str, sampling: SamplingParams, *,
                          cancel: threading.Event | None = None) -> Iterator[StreamChunk]:
        body = {"model": model.model_id, "prompt": text, "stream": True, **sampling_body(sampling)}
        return self._stream("/v1/completions", body, estimate_tokens(text), cancel, _CompletionReader)

    def _stream(self, path: str, body: dict[str, Any], prompt_estimate: int, cancel: threading.Event | None,
                reader: Callable[[], _ReplyReader]) -> Iterator[StreamChunk]:
        """The reply in a background thread (as the local engine does), so a slow page never slows the read."""
        return pump_in_background(lambda event: self._read(path, body, prompt_estimate, event, reader()),
                                  cancel or threading.Event())

    def _read(self, path: str, body: dict[str, Any], prompt_estimate: int, cancel: threading.Event,
              reader: _ReplyReader) -> Iterator[StreamChunk]:
        started = time.perf_counter()
        first: float | None = None
        pieces = 0
        usage: dict[str, Any] = {}
        finish = "stop"
        stopped = False
        try:
            with self._client.stream("POST", f"{self.url}{path}", json=body, auth=self._auth) as response:
                if response.status_code >= 400:
                    response.read()
                    raise RemoteError(f"The model server at {self.display} refused the request: "
                                      f"{_server_message(response)}")
                for line in response.iter_lines():
                    if cancel.is_set():
                        stopped = True
                        break  # leaving the block closes the connection, which stops the server's decoding
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        raise RemoteError(f"The model server at {self.display} failed: {chunk['error']}")
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        finish = choice.get("finish_reason") or finish
                        piece = reader.read(choice)
                        if piece is not None:
                            first = first if first is not None else time.perf_counter()
                            pieces += 1
                            yield piece
        except httpx.HTTPError as exc:
            got = "after part of the reply" if pieces else "before replying"
            raise RemoteError(f"The model server at {self.display} stopped answering {got} "
                              f"({type(exc).__name__}); what arrived is kept.") from exc
        except json.JSONDecodeError as exc:
            raise RemoteError(f"The model server at {self.display} sent something that is not JSON.") from exc
        last = None if stopped else reader.finish()  # a call cut short by the user is dropped, not an error
        if last is not None:
            yield last
        now = time.perf_counter()
        yield StreamChunk(stats=GenerationStats(
            prompt_tokens=int(usage.get("prompt_tokens") or prompt_estimate),
            # llama.cpp servers send one token per event, so events count tokens when usage is absent.
            completion_tokens=int(usage.get("completion_tokens") or pieces),
            ttft_s=(first or now) - started, total_s=now - started, stopped_by_user=stopped,
            dropped_messages=0, finish_reason="cancelled" if stopped else finish,
        ))

    def close(self) -> None:
        self._client.close()
