"""The engine the services see: the in-process llama.cpp engine, or a model on a remote server, as picked.

One model is "in use" for the whole app, as with the local engine alone: an admin picks a local file
(loaded here) or a remote model (nothing loaded; calls go to that server). Every call the services
make goes to whichever is in use at the time of the call. An API request may also name any listed remote
model: that one request goes to its server (``remote_engine``) and the model in use stays as it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from webui.engine.engine import Engine
from webui.engine.errors import NoModelLoaded
from webui.engine.remote import (
    RemoteBackend,
    RemoteError,
    RemoteModelInfo,
    estimate_tokens,
    fit_for_server,
    render_for_server,
)
from webui.engine.types import (
    FittedPrompt,
    LoadSettings,
    Message,
    ModelInfo,
    PromptRequest,
    PromptLookupStats,
    SamplingParams,
    StreamChunk,
)
from webui.prompts.templates import RenderedPrompt

log = logging.getLogger(__name__)

MODEL_LIST_TTL_S = 10.0  # how long a server's model list is reused: page loads must not each wait on it
NO_LOCAL_MODEL = ("This app runs as a front end only (--no-local-model): it loads no model itself. "
                  "Pick a model on one of its servers instead.")


class RemoteModelEngine:
    """One listed remote model as an engine for a single request: prepare and stream go to its server,
    whichever model the app has in use (an API client may name any listed remote model)."""

    def __init__(self, backend: RemoteBackend, model: RemoteModelInfo) -> None:
        self.backend = backend
        self.model = model

    def prepare(self, request: PromptRequest) -> FittedPrompt:
        return fit_for_server(self.model, request)

    def stream(self, prompt: FittedPrompt, *, cancel: threading.Event | None = None,
               on_wait: Callable[[int], None] | None = None, user: str | None = None,
               conversation: str | None = None) -> Iterator[StreamChunk]:
        """The reply from the server (``on_wait``, ``user`` and ``conversation`` concern the local queue only)."""
        if prompt.request.text is not None:
            return self.backend.stream_completion(self.model, prompt.request.text, prompt.sampling, cancel=cancel)
        return self.backend.stream_chat(self.model, prompt.messages, prompt.sampling, cancel=cancel,
                                        tools=prompt.request.tools, thinking=prompt.request.thinking)


class EngineRouter:
    """The local engine's interface, sending each call to the local engine or the remote model in use."""

    def __init__(self, local: Engine | None, backends: Sequence[RemoteBackend] = ()) -> None:
        """``local`` None: front end only (--no-local-model)."""
        self.local = local
        self.backends = tuple(backends)
        self._remote: RemoteModelInfo | None = None  # the remote model in use; None: the local engine
        self._guard = threading.Lock()
        self._listed: dict[str, tuple[float, list[RemoteModelInfo]]] = {}

    # -- which model is in use ------------------------------------------------------------------

    def remote_models(self) -> list[RemoteModelInfo]:
        """Every model the servers list now (a server that does not answer lists none, and is logged)."""
        found: list[RemoteModelInfo] = []
        for backend in self.backends:
            with self._guard:
                cached = self._listed.get(backend.url)
            if cached is not None and time.monotonic() - cached[0] < MODEL_LIST_TTL_S:
                found += cached[1]
                continue
            try:
                models = backend.models()
            except RemoteError as exc:
                log.warning("%s", exc)
                models = []
            with self._guard:
                self._listed[backend.url] = (time.monotonic(), models)
            found += models
        return found

    def find_remote(self, name: str) -> RemoteModelInfo | None:
        """The remote model shown as ``name`` (``<model> @ <host:port>``), or None."""
        return next((m for m in self.remote_models() if m.file == name), None)

    def remote_engine(self, name: str) -> RemoteModelEngine | None:
        """The remote model shown as ``name`` as an engine of its own, without putting it in use; or None."""
        model = self.find_remote(name)
        return RemoteModelEngine(self._backend(model), model) if model is not None else None

    def use_remote(self, model: RemoteModelInfo) -> ModelInfo:
        """Send every call to ``model`` from now on; the local model stays loaded for a switch back."""
        with self._guard:
            self._remote = model
        log.info("model in use: %s", model.file)
        return model

    @property
    def remote(self) -> RemoteModelInfo | None:
        return self._remote

    def _backend(self, model: RemoteModelInfo) -> RemoteBackend:
        return next(b for b in self.backends if b.url == model.backend)

    def _local(self) -> Engine:
        if self.local is None:
            raise NoModelLoaded(NO_LOCAL_MODEL)
        return self.local

    # -- state (as Engine) ----------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo | None:
        remote = self._remote
        if remote is not None:
            return remote
        return self.local.info if self.local is not None else None

    @property
    def load_settings(self) -> LoadSettings | None:
        return self.local.load_settings if self.local is not None and self._remote is None else None

    @property
    def parallel(self) -> int:
        return self.local.parallel if self.local is not None else 0

    @property
    def queue_length(self) -> int:
        return self.local.queue_length if self.local is not None else 0

    @property
    def switching_to(self) -> str | None:
        return self.local.switching_to if self.local is not None else None

    @property
    def evaluated_tokens(self) -> int:
        return self.local.evaluated_tokens if self.local is not None else 0

    @property
    def prompt_lookup(self) -> PromptLookupStats | None:
        """The local model's prompt lookup; None while a remote model is in use (its server decides)."""
        return self.local.prompt_lookup if self.local is not None and self._remote is None else None

    # -- loading (local files only) -------------------------------------------------------------

    def load(self, path: Path, settings: LoadSettings, *, on_wait: Callable[[int], None] | None = None) -> ModelInfo:
        """Load a local file and use it; asking for the file already loaded only switches back to it."""
        local = self._local()
        loaded = local.info
        if loaded is not None and loaded.path == Path(path) and local.load_settings == settings:
            info = loaded
        else:
            info = local.load(path, settings, on_wait=on_wait)
        with self._guard:
            self._remote = None
        return info

    def unload(self) -> None:
        if self.local is not None:
            self.local.unload()

    # -- prompts --------------------------------------------------------------------------------

    def render(self, messages: Sequence[Message]) -> RenderedPrompt:
        remote = self._remote
        return render_for_server(messages, remote) if remote is not None else self._local().render(messages)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text) if self._remote is not None else self._local().count_tokens(text)

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        remote = self._remote
        if remote is not None:  # a server's tokens are unknown: the estimate of what is sent serves
            return estimate_tokens(render_for_server(messages, remote).text)
        return self._local().count_prompt_tokens(messages)

    def prepare(self, request: PromptRequest) -> FittedPrompt:
        remote = self._remote
        return fit_for_server(remote, request) if remote is not None else self._local().prepare(request)

    # -- generation -----------------------------------------------------------------------------

    def stream(self, prompt: FittedPrompt, *, cancel: threading.Event | None = None,
               on_wait: Callable[[int], None] | None = None, user: str | None = None,
               conversation: str | None = None) -> Iterator[StreamChunk]:
        """The reply to a prepared prompt, from the model in use now (a local engine fits it again if
        it was prepared for another model)."""
        remote = self._remote
        if remote is None:
            return self._local().stream(prompt, cancel=cancel, on_wait=on_wait, user=user, conversation=conversation)
        return RemoteModelEngine(self._backend(remote), remote).stream(prompt, cancel=cancel)

    def stream_chat(self, messages: Sequence[Message], sampling: SamplingParams, *,
                    cancel: threading.Event | None = None, on_wait: Callable[[int], None] | None = None,
                    user: str | None = None, conversation: str | None = None) -> Iterator[StreamChunk]:
        remote = self._remote
        if remote is not None:
            return self._backend(remote).stream_chat(remote, messages, sampling, cancel=cancel)
        return self._local().stream_chat(messages, sampling, cancel=cancel, on_wait=on_wait, user=user,
                                         conversation=conversation)

    def stream_completion(self, text: str, sampling: SamplingParams, *,
                          cancel: threading.Event | None = None, on_wait: Callable[[int], None] | None = None,
                          user: str | None = None, conversation: str | None = None) -> Iterator[StreamChunk]:
        remote = self._remote
        if remote is not None:
            return self._backend(remote).stream_completion(remote, text, sampling, cancel=cancel)
        return self._local().stream_completion(text, sampling, cancel=cancel, on_wait=on_wait, user=user,
                                               conversation=conversation)


def as_router(engine: Engine | EngineRouter) -> EngineRouter:
    """The router for ``engine``: itself, or a router over a plain local engine (tests, tools)."""
    return engine if isinstance(engine, EngineRouter) else EngineRouter(engine)
