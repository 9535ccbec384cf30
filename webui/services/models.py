"""Models as the front ends see them: who may list paths, load, delete or download, and what is loaded.

The page's Models tab, its model picker and the HTTP API all come through here; this service owns
the ModelManager (files, settings, downloads) and asks it for the work. Admins manage models; every
other user sees model names only, never where the files live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from webui.auth import User
from webui.config import Settings
from webui.engine import Engine, EngineError, ModelInfo
from webui.engine.router import EngineRouter, as_router
from webui.hardware import HardwareInfo
from webui.models.download import DownloadError
from webui.models.manager import (
    DownloadJob,
    HubModelFile,
    LocalModel,
    ModelManager,
    ModelManagerError,
    RemoteModelFile,
    UnknownModel,
)
from webui.models.model_settings import (
    FLASH_ATTN_CHOICES,
    KV_CACHE_TYPES,
    InvalidLoadOptions,
    ModelLoadOptions,
    flash_attn_choice,
    parse_flash_attn_choice,
    parse_gpu_layers_text,
)
from webui.models.recommend import Recommendation
from webui.prompts.toolcalls import has_thinking_switch, reply_family, supports_tools, writes_reasoning
from webui.services.access import NotAuthorized

# What the front ends need to name (types and errors), so they import this service, not the manager.
__all__ = [
    "KV_CACHE_TYPES", "DownloadError", "DownloadJob", "EngineError", "InvalidLoadOptions", "LoadedModel", "LocalModel",
    "ModelEntry", "ModelLoadOptions", "ModelManagerError", "ModelService", "RemoteModelFile", "UnknownModel",
    "FLASH_ATTN_CHOICES", "flash_attn_choice", "parse_flash_attn_choice", "parse_gpu_layers_text",
    "ModelCapabilities", "capabilities", "HubModelFile", "Recommendation",
]

GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class LoadedModel:
    """The loaded model without its path: what any signed-in user (or API client) may know."""

    file: str
    name: str
    architecture: str
    n_ctx: int
    n_gpu_layers: int
    chat_format: str
    chat_format_source: str
    chat_format_note: str | None
    flash_attn: str  # auto | on | off, as loaded

    @classmethod
    def from_info(cls, info: ModelInfo) -> LoadedModel:
        return cls(file=info.file, name=info.name, architecture=info.architecture, n_ctx=info.n_ctx,
                   n_gpu_layers=info.n_gpu_layers, chat_format=info.chat_format,
                   chat_format_source=info.chat_format_source, chat_format_note=info.chat_format_note,
                   flash_attn=flash_attn_choice(info.flash_attn))


@dataclass(frozen=True)
class ModelEntry:
    """One local model by name, with the facts an API client shows (no path)."""

    name: str
    loaded: bool
    size_bytes: int
    modified: float  # seconds since the epoch
    architecture: str | None
    parameters: str
    quant: str | None
    context_length: int | None
    where: str = "local"  # "local", or the remote server that runs it (host:port, never its credentials)


@dataclass(frozen=True)
class ModelCapabilities:
    """What a model's chat template can do with tools and thinking, for the Models tab."""

    tools: str  # the native tool-call family ("hermes", "llama3"...), or "generic JSON" (described in the prompt)
    thinking: str  # "yes" (always thinks), "switchable" (the Think switch works), "no"

    def __str__(self) -> str:
        return f"tools: {self.tools} · thinking: {self.thinking}"


def capabilities(model: LocalModel) -> ModelCapabilities:
    """Read from the GGUF's chat template; a model without one gets the generic tool fallback, no thinking."""
    template = model.chat_template
    tools = reply_family(template) if template and supports_tools(template) else "generic JSON"
    if template and has_thinking_switch(template):
        thinking = "switchable"
    elif template and writes_reasoning(template):
        thinking = "yes"
    else:
        thinking = "no"
    return ModelCapabilities(tools, thinking)


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise NotAuthorized("Only an admin can manage models.")


def model_name_matches(requested: str, file_name: str) -> bool:
    """API clients name a model by its file name, with or without ``.gguf``, or Ollama-style with ``:latest``."""
    wanted = requested.strip()
    if wanted.endswith(":latest"):
        wanted = wanted[: -len(":latest")]
    stem = file_name[: -len(GGUF_SUFFIX)] if file_name.lower().endswith(GGUF_SUFFIX) else file_name
    return wanted in (file_name, stem)


class ModelService:
    """Model management for admins, model names and the loaded model for everyone."""

    def __init__(self, settings: Settings, hardware: HardwareInfo, engine: Engine | EngineRouter,
                 *, hub_endpoint: str | None = None) -> None:
        self._settings = settings
        self._engine = engine
        self._router = as_router(engine)  # remote servers' models, and which model is in use
        self._manager = ModelManager(settings, hardware, engine, hub_endpoint=hub_endpoint)
        self._switch_guard = threading.Lock()  # one switch at a time, so duplicates can be seen as such

    # -- for everyone -------------------------------------------------------------------------

    def loaded(self) -> LoadedModel | None:
        info = self._engine.info
        return LoadedModel.from_info(info) if info is not None else None

    @property
    def switching_to(self) -> str | None:
        """The file a switch is loading, so waiting users can be told why their reply waits."""
        return self._engine.switching_to

    @property
    def queue_length(self) -> int:
        return self._engine.queue_length

    @property
    def parallel(self) -> int:
        """Replies the engine decodes together (0 before a model is loaded), for the page's queue."""
        return self._engine.parallel

    def names(self) -> list[str]:
        """Every local model's file name, the loaded one first."""
        return [entry.name for entry in self.entries()]

    def entries(self) -> list[ModelEntry]:
        """Local models by name (loaded first) with their metadata facts, for API listings."""
        entries = [self._entry(model) for model in self._manager.list_models()] if self._router.local is not None else []
        in_use = self._router.remote
        entries += [ModelEntry(name=m.file, loaded=in_use is not None and in_use.file == m.file, size_bytes=0,
                               modified=0.0, architecture=None, parameters="", quant=None, context_length=m.n_ctx,
                               where=m.server) for m in self._router.remote_models()]
        return sorted(entries, key=lambda e: not e.loaded)

    def find(self, requested: str) -> ModelEntry | None:
        """The local model an API client means by ``requested``, or None."""
        return next((e for e in self.entries() if model_name_matches(requested, e.name)), None)

    def thinks(self, name: str) -> bool:
        """Whether model ``name`` is loaded with a chat template that writes thinking (Ollama's "thinking"
        capability); a model not loaded is not known to (its template is read when it loads)."""
        info = self._engine.info
        return info is not None and info.file == name and info.writes_reasoning

    @staticmethod
    def _entry(model: LocalModel) -> ModelEntry:
        try:
            modified = model.path.stat().st_mtime
        except OSError:
            modified = 0.0
        return ModelEntry(name=model.file_name, loaded=model.loaded, size_bytes=model.size_bytes, modified=modified,
                          architecture=model.architecture, parameters=model.parameters, quant=model.quant,
                          context_length=model.context_length)

    def recommendations(self, user: User) -> list[Recommendation]:
        """The catalog's models suited to this machine, for every signed-in user (no paths, no hub call)."""
        return self._manager.recommendations()

    def status(self) -> dict[str, object] | None:
        """The loaded model for /status, without its path."""
        loaded = self.loaded()
        return None if loaded is None else {**loaded.__dict__}

    # -- admins only --------------------------------------------------------------------------

    def models_dir(self, user: User) -> Path:
        _require_admin(user)
        return self._manager.models_dir

    def settings_file(self, user: User) -> Path:
        _require_admin(user)
        return self._manager.store.path

    def list_models(self, user: User) -> list[LocalModel]:
        """Every local model with its path and metadata (admins); others get ``names()``."""
        _require_admin(user)
        return self._manager.list_models()

    def settings_for(self, user: User, name: str) -> ModelLoadOptions:
        _require_admin(user)
        return self._manager.settings_for(name)

    def save_settings(self, user: User, name: str, options: ModelLoadOptions) -> None:
        _require_admin(user)
        try:
            self._manager.save_settings(name, options)
        except OSError as exc:
            raise ModelManagerError(f"The settings file {self._manager.store.path} cannot be written"
                                    f" ({exc.strerror or exc}).") from exc

    def memory_check(self, user: User, name: str, options: ModelLoadOptions | None = None) -> str | None:
        _require_admin(user)
        return self._manager.memory_check(name, options)

    def load(self, user: User, name: str, options: ModelLoadOptions | None = None, *,
             on_wait: Callable[[int], None] | None = None, ignore_memory_check: bool = False) -> LoadedModel:
        """Switch models; a running reply finishes first (``on_wait`` hears the position in line).

        Without ``options``, asking for the model already loaded changes nothing: a second click (or
        two admins picking the same model) must not unload and reload it under everyone's replies.
        """
        _require_admin(user)
        with self._switch_guard:
            current = self._engine.info
            if options is None and current is not None and current.file == name:
                return LoadedModel.from_info(current)
            remote = self._router.find_remote(name)
            if remote is not None:  # a model on a --backend server: nothing to load, calls go there now
                return LoadedModel.from_info(self._router.use_remote(remote))
            info = self._manager.load(name, options, on_wait=on_wait, ignore_memory_check=ignore_memory_check)
        return LoadedModel.from_info(info)

    def load_by_request(self, user: User, requested: str) -> LoadedModel:
        """Load the model an API client named (the admin-only opt-in switch)."""
        entry = self.find(requested)
        if entry is None:
            raise UnknownModel(f"There is no model named {requested}.")
        return self.load(user, entry.name)

    def unload(self, user: User) -> None:
        _require_admin(user)
        self._manager.unload()

    def delete(self, user: User, name: str) -> None:
        _require_admin(user)
        try:
            self._manager.delete(name)
        except OSError as exc:
            raise ModelManagerError(f"{name} could not be deleted ({exc.strerror or exc}).") from exc

    def remote_files(self, user: User, repo_id: str) -> list[RemoteModelFile]:
        _require_admin(user)
        return self._manager.remote_files(repo_id)

    def search_hub(self, user: User, query: str) -> list[HubModelFile]:
        """GGUF models on the hub whose repository name contains ``query``: a network call, admins only."""
        _require_admin(user)
        return self._manager.search_hub(query)

    def start_download(self, user: User, repo_id: str, filename: str) -> DownloadJob:
        _require_admin(user)
        return self._manager.start_download(repo_id, filename)

    def download_job(self, user: User, job_id: str) -> DownloadJob | None:
        _require_admin(user)
        return self._manager.download_job(job_id)

    def cancel_download(self, user: User, job_id: str) -> bool:
        _require_admin(user)
        return self._manager.cancel_download(job_id)
