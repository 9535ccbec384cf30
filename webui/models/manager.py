"""Model management for the Models tab: list local GGUFs, load with per-model settings, download, delete.

The UI calls only this service; it holds the decisions (which file, which settings, whether it fits)
and hands the llama.cpp work to the engine and the hub work to ``download``.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from webui.config import Settings
from webui.engine import Engine, LoadSettings, ModelInfo, ModelLoadError, check_gguf_file
from webui.errors import UserError
from webui.hardware import HardwareInfo
from webui.models import download
from webui.models.download import (
    REPO_ID,
    DownloadCancelled,
    DownloadError,
    HubUnreachable,
    RemoteGguf,
    split_parts,
)
from webui.models.fit import (
    GgufFacts,
    ModelShape,
    fit_verdict,
    fits_label,
    llama_file_type_names,
    load_settings_from_options,
    memory_warning,
    param_count_label,
    quant_label,
    read_gguf_facts,
    resolve_n_ctx,
)
from webui.models.model_settings import ModelLoadOptions, ModelSettingsStore
from webui.models.recommend import Recommendation, recommend
from webui.models.registry import local_gguf_files

log = logging.getLogger(__name__)



class ModelManagerError(UserError):
    """A Models-tab request that cannot be done; the message is one sentence for the user."""


class UnknownModel(ModelManagerError):
    """No model file of that name (it was deleted or renamed since the list was shown)."""


class ModelInUse(ModelManagerError):
    """The file is the loaded model, so it is not deleted."""


class NotEnoughMemory(ModelLoadError):
    """The memory check says the model cannot fit; nothing was unloaded."""


class InvalidRepoId(DownloadError):
    """The text is not of the form owner/name."""


@dataclass(frozen=True)
class LocalModel:
    """One model file as the Models tab lists it, from its GGUF metadata."""

    file_name: str
    path: Path
    size_bytes: int  # all parts of a split model
    architecture: str | None
    parameters: str  # "135M", "" when unknown
    quant: str | None
    context_length: int | None  # trained context
    has_chat_template: bool
    loaded: bool
    in_models_dir: bool
    error: str | None = None  # why the metadata could not be read (damaged, not GGUF)
    chat_template: str = ""  # the GGUF's tokenizer.chat_template (the Models tab reads its capabilities)


@dataclass(frozen=True)
class RemoteModelFile:
    """A downloadable GGUF with what the Models tab shows before a download."""

    filename: str
    parts: int
    size_bytes: int
    quant: str | None
    fits: str  # "yes" | "tight" | "no" (fit.fits_label)
    downloaded: bool


@dataclass(frozen=True)
class HubModelFile:
    """A GGUF model a hub search found: where it is, how big, and whether it fits this machine."""

    repo_id: str
    filename: str
    parts: int
    size_bytes: int
    quant: str | None
    fits: str  # "yes" | "tight" | "no" (fit.fit_verdict)
    fit_reason: str
    downloaded: bool


@dataclass
class DownloadJob:
    """A download running in a background thread; the UI polls ``done``/``total``/``state``."""

    id: str
    repo_id: str
    filename: str
    done: int = 0
    total: int = 0
    state: str = "running"  # running | done | failed | cancelled
    message: str = ""
    path: Path | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def fraction(self) -> float:
        if self.state == "done":
            return 1.0
        return self.done / self.total if self.total > 0 else 0.0

    @property
    def finished(self) -> bool:
        return self.state != "running"


@dataclass(frozen=True)
class _CachedFacts:
    mtime_ns: int
    size: int
    facts: GgufFacts | None
    error: str | None


def _where(path: Path) -> Path:
    """A path with its folder resolved but not the file itself, so a symlinked model keeps its own name."""
    return path.parent.resolve() / path.name


class ModelManager:
    """The Models tab's service; safe to call from Gradio's worker threads."""

    def __init__(
        self, settings: Settings, hardware: HardwareInfo, engine: Engine, *, hub_endpoint: str | None = None
    ) -> None:
        self.settings = settings
        self.hardware = hardware
        self.engine = engine
        self.store = ModelSettingsStore(settings.model_settings_file)
        self._hub_endpoint = hub_endpoint  # None: HF_ENDPOINT or the public hub, read per call
        self._guard = threading.Lock()
        self._facts: dict[Path, _CachedFacts] = {}
        self._external: dict[str, Path] = {}  # models loaded from outside models_dir, by file name
        self._jobs: dict[str, DownloadJob] = {}
        self._file_types: dict[int, str] | None = None

    # -- files and their metadata ---------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir

    def _remember_loaded_external(self) -> None:
        info = self.engine.info
        if info is not None and _where(info.path).parent != self.models_dir.resolve():
            with self._guard:
                self._external[info.path.name] = info.path

    def _path_for(self, file_name: str) -> Path:
        """The file behind a listed name; only plain names inside models_dir (or a model loaded from elsewhere)."""
        self._remember_loaded_external()
        with self._guard:
            external = self._external.get(file_name)
        if external is not None and external.is_file():
            return external
        if not file_name or Path(file_name).name != file_name or file_name in (".", ".."):
            raise UnknownModel(f"'{file_name}' is not a model file name.")
        path = self.models_dir / file_name
        if not path.is_file():
            raise UnknownModel(f"There is no model named {file_name} in {self.models_dir} any more; press Refresh.")
        return path

    def _facts_for(self, path: Path) -> _CachedFacts:
        """GGUF facts, read once per (path, mtime, size) so a Refresh does not re-read every file."""
        stat = path.stat()
        with self._guard:
            cached = self._facts.get(path)
        if cached is not None and (cached.mtime_ns, cached.size) == (stat.st_mtime_ns, stat.st_size):
            return cached
        facts: GgufFacts | None = None
        error: str | None = None
        try:
            check_gguf_file(path)
            facts = read_gguf_facts(path)
        except ModelLoadError as exc:
            error = str(exc)
        except (ValueError, RuntimeError, OSError) as exc:
            log.warning("cannot read the metadata of %s: %s", path, exc)
            error = f"{path.name} is damaged or incomplete: llama.cpp cannot read it."
        entry = _CachedFacts(stat.st_mtime_ns, stat.st_size, facts, error)
        with self._guard:
            self._facts[path] = entry
        return entry

    def _file_type_names(self) -> dict[int, str]:
        if self._file_types is None:
            self._file_types = llama_file_type_names()
        return self._file_types

    @staticmethod
    def _size_of(path: Path) -> int:
        """Bytes of the model: every part of a split model."""
        parts = split_parts(path.name)
        return sum((path.parent / part).stat().st_size for part in parts if (path.parent / part).is_file())

    def _describe(self, path: Path, loaded_path: Path | None, in_models_dir: bool) -> LocalModel:
        cached = self._facts_for(path)
        loaded = loaded_path is not None and _where(loaded_path) == _where(path)
        if cached.facts is None:
            return LocalModel(
                file_name=path.name, path=path, size_bytes=self._size_of(path), architecture=None, parameters="",
                quant=None, context_length=None, has_chat_template=False, loaded=loaded,
                in_models_dir=in_models_dir, error=cached.error,
            )
        metadata = cached.facts.metadata
        shape = ModelShape.from_metadata(metadata)
        return LocalModel(
            file_name=path.name,
            path=path,
            size_bytes=self._size_of(path),
            architecture=metadata.get("general.architecture"),
            parameters=param_count_label(metadata, cached.facts.n_params),
            quant=quant_label(metadata, path.name, self._file_type_names()),
            context_length=shape.n_ctx_train or None,
            has_chat_template=bool(metadata.get("tokenizer.chat_template")),
            chat_template=str(metadata.get("tokenizer.chat_template") or ""),
            loaded=loaded,
            in_models_dir=in_models_dir,
        )

    def list_models(self) -> list[LocalModel]:
        """The GGUF files in models_dir (newest first), plus the loaded model if it lives elsewhere."""
        self._remember_loaded_external()
        info = self.engine.info
        loaded_path = info.path if info else None
        paths = local_gguf_files(self.models_dir)
        # Also list files llama.cpp cannot read (a truncated download copied in by hand): the user
        # should see them, with the reason, rather than wonder where they went.
        models = [self._describe(path, loaded_path, True) for path in paths]
        with self._guard:
            external = [p for p in self._external.values() if p.is_file()]
        models += [self._describe(path, loaded_path, False) for path in external]
        with self._guard:  # forget files that are gone
            for gone in [p for p in self._facts if not p.exists()]:
                del self._facts[gone]
        return models

    # -- settings -------------------------------------------------------------------------------

    def settings_for(self, file_name: str) -> ModelLoadOptions:
        """The options saved for ``file_name``, or the defaults (auto) when none were saved."""
        return self.store.get(file_name) or ModelLoadOptions()

    def save_settings(self, file_name: str, options: ModelLoadOptions) -> None:
        self.store.save(file_name, options)

    def _shape_of(self, path: Path) -> ModelShape:
        cached = self._facts_for(path)
        if cached.facts is None:
            raise ModelLoadError(cached.error or f"{path.name} cannot be read as a GGUF model.")
        return ModelShape.from_metadata(cached.facts.metadata)

    def load_settings_for_path(self, path: Path, options: ModelLoadOptions | None = None) -> LoadSettings:
        """Engine settings for ``path``: the options given, else those saved for its file name."""
        options = options or self.settings_for(path.name)
        settings = load_settings_from_options(
            path, self._shape_of(path), options, self.hardware, self.settings, size_bytes=self._size_of(path)
        )
        if options.draft_model:
            try:
                draft = self._path_for(options.draft_model)
            except UnknownModel as exc:
                raise ModelLoadError(f"The draft model cannot be used: {exc}") from exc
            settings = replace(settings, draft_model=draft)
        return settings

    def memory_check(self, file_name: str, options: ModelLoadOptions | None = None) -> str | None:
        """A warning when file + KV cache clearly exceed RAM + VRAM; None when it may fit."""
        path = self._path_for(file_name)
        options = options or self.settings_for(file_name)
        shape = self._shape_of(path)
        n_ctx = resolve_n_ctx(options.n_ctx, self.settings.ctx_size, shape.n_ctx_train)
        return memory_warning(
            file_name, self._size_of(path), shape.kv_cache_mb(n_ctx, options.kv_cache_type), n_ctx, self.hardware
        )

    # -- loading --------------------------------------------------------------------------------

    def load(
        self,
        file_name: str,
        options: ModelLoadOptions | None = None,
        *,
        on_wait: Callable[[int], None] | None = None,
        ignore_memory_check: bool = False,
    ) -> ModelInfo:
        """Load a model hot; the current one stays loaded if this one is unreadable or too large.

        Options given here are saved for the file once the load succeeds; without them, the saved
        ones (or defaults) are used. A running reply finishes first (``on_wait`` hears the position).
        """
        path = self._path_for(file_name)
        chosen = options or self.settings_for(file_name)
        # Read the metadata before touching the engine: a damaged file is refused with the current
        # model untouched, instead of being unloaded and restored.
        load_settings = self.load_settings_for_path(path, chosen)
        if not ignore_memory_check:
            warning = self.memory_check(file_name, chosen)
            if warning:
                raise NotEnoughMemory(warning)
        info = self.engine.load(path, load_settings, on_wait=on_wait)
        if options is not None:
            self.save_settings(file_name, options)
        return info

    def unload(self) -> None:
        """Free the model's memory; chats answer "no model loaded" until one is loaded."""
        self.engine.unload()

    def delete(self, file_name: str) -> Path:
        """Delete a model file (every part of a split one) and its saved settings.

        The loaded model is refused rather than unloaded behind the user's back: a delete that also
        stops every user's chat should be two deliberate steps (Unload, then Delete), and Windows
        could not delete a memory-mapped file anyway.
        """
        path = self._path_for(file_name)
        if _where(path).parent != self.models_dir.resolve():
            raise ModelManagerError(f"{file_name} is not in {self.models_dir}, so it is not deleted from here.")
        info = self.engine.info
        if info is not None and _where(info.path) == _where(path):
            raise ModelInUse(f"{file_name} is the loaded model: unload it (or load another) before deleting it.")
        for part in split_parts(file_name):
            (self.models_dir / part).unlink(missing_ok=True)
        self.store.remove(file_name)
        with self._guard:
            self._facts.pop(path, None)
        log.info("deleted model %s", path)
        return path

    # -- the hub --------------------------------------------------------------------------------

    def _check_hub_allowed(self, repo_id: str) -> str:
        repo_id = (repo_id or "").strip()
        if not REPO_ID.match(repo_id):
            raise InvalidRepoId(
                f"'{repo_id}' is not a hub repository id; it looks like owner/name, "
                "e.g. ggml-org/Qwen3-4B-GGUF."
            )
        self._check_online()
        return repo_id

    def _check_online(self) -> None:
        if self.settings.offline:
            raise HubUnreachable("The app runs offline (--offline), so it does not contact the hub.")

    def _local_names(self) -> set[str]:
        return {path.name for path in local_gguf_files(self.models_dir)}

    def recommendations(self) -> list[Recommendation]:
        """The catalog's models suited to this machine, best first; the hub is not contacted."""
        return recommend(self.hardware, self._local_names())

    def search_hub(self, query: str) -> list[HubModelFile]:
        """GGUF models in hub repositories whose name contains ``query``, each with whether it fits here."""
        self._check_online()
        repos = download.search_gguf_repos(query, endpoint=self._hub_endpoint)
        local = self._local_names()
        found = []
        for repo in repos:
            for item in repo.files:
                verdict = fit_verdict(item.size_bytes, self.hardware)
                found.append(HubModelFile(
                    repo_id=repo.repo_id, filename=item.filename, parts=len(item.parts), size_bytes=item.size_bytes,
                    quant=item.quant, fits=verdict.label, fit_reason=verdict.reason,
                    downloaded=Path(item.filename).name in local,
                ))
        return found

    def remote_files(self, repo_id: str) -> list[RemoteModelFile]:
        """The GGUF models in a hub repo, smallest first, with whether each fits this machine."""
        repo_id = self._check_hub_allowed(repo_id)
        remote: list[RemoteGguf] = download.list_gguf_files(repo_id, endpoint=self._hub_endpoint)
        local = self._local_names()
        return [
            RemoteModelFile(
                filename=item.filename,
                parts=len(item.parts),
                size_bytes=item.size_bytes,
                quant=item.quant,
                fits=fits_label(item.size_bytes, self.hardware),
                downloaded=Path(item.filename).name in local,
            )
            for item in remote
        ]

    def start_download(self, repo_id: str, filename: str) -> DownloadJob:
        """Download in a background thread; the same file already downloading returns that job."""
        repo_id = self._check_hub_allowed(repo_id)
        if not filename or not filename.lower().endswith(".gguf"):
            raise DownloadError("Pick a .gguf file to download first.")
        with self._guard:
            for job in self._jobs.values():
                if (job.repo_id, job.filename) == (repo_id, filename) and not job.finished:
                    return job
            job = DownloadJob(id=uuid.uuid4().hex[:12], repo_id=repo_id, filename=filename)
            self._jobs[job.id] = job
        job.thread = threading.Thread(target=self._run_download, args=(job,), name=f"download-{job.id}", daemon=True)
        job.thread.start()
        return job

    def _run_download(self, job: DownloadJob) -> None:
        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            path = download.download_gguf(
                job.repo_id, job.filename, self.models_dir,
                progress=progress, cancel=job.cancel_event, endpoint=self._hub_endpoint,
            )
        except DownloadCancelled as exc:
            job.message, job.state = str(exc), "cancelled"
        except DownloadError as exc:
            log.warning("download of %s from %s failed: %s", job.filename, job.repo_id, exc)
            job.message, job.state = str(exc), "failed"
        except Exception as exc:  # a thread has no caller to raise to: record it for the UI, log the detail
            log.exception("download of %s from %s failed unexpectedly", job.filename, job.repo_id)
            job.message = f"The download of {job.filename} failed unexpectedly ({type(exc).__name__})."
            job.state = "failed"
        else:
            job.path = path
            job.done = job.total = self._size_of(path)
            job.message, job.state = f"Downloaded {path.name} to {self.models_dir}.", "done"
            log.info("downloaded %s from %s", path.name, job.repo_id)

    def download_job(self, job_id: str) -> DownloadJob | None:
        with self._guard:
            return self._jobs.get(job_id)

    def cancel_download(self, job_id: str) -> bool:
        """Ask a running download to stop (the partial data is kept to resume); True if one was running."""
        job = self.download_job(job_id)
        if job is None or job.finished:
            return False
        job.cancel_event.set()
        return True
