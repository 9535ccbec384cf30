"""A fake ModelService for the Models tab's handlers: the models a test sets, refusals worded as the real one's."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from webui.services import NotAuthorized
from webui.services.models import (
    DownloadJob,
    HubModelFile,
    LoadedModel,
    LocalModel,
    ModelEntry,
    ModelLoadOptions,
    ModelManagerError,
    Recommendation,
    RemoteModelFile,
)
from webui.services.rerankers import RerankerState
from webui.services.types import User

from tests.unit.ui.fakes import FakeServices

MODELS_DIR = Path("/srv/models")


def local_model(file_name: str, *, loaded: bool = False) -> LocalModel:
    return LocalModel(file_name=file_name, path=MODELS_DIR / file_name, size_bytes=3 * 2**30, architecture="llama",
                      parameters="1B", quant="Q4_K_M", context_length=8192, has_chat_template=True, loaded=loaded,
                      in_models_dir=True)


def loaded_model(file_name: str) -> LoadedModel:
    return LoadedModel(file=file_name, name=file_name, architecture="llama", n_ctx=4096, n_gpu_layers=0,
                       chat_format="gguf", chat_format_source="gguf", chat_format_note=None, flash_attn="off")


@dataclass
class FakeModelService:
    """Local models in a list, settings in a dict, downloads that a test finishes by hand."""

    local: list[LocalModel] = field(default_factory=list)
    remote_entries: list[ModelEntry] = field(default_factory=list)
    settings: dict[str, ModelLoadOptions] = field(default_factory=dict)
    memory_warning: str | None = None
    load_error: Exception | None = None
    waits: list[int] = field(default_factory=list)  # queue positions a load reports before it loads
    released: threading.Event | None = None  # when set, a load waits for it after reporting its positions
    delete_error: Exception | None = None
    repos: dict[str, list[RemoteModelFile]] = field(default_factory=dict)
    recommended: list[Recommendation] = field(default_factory=list)
    found: list[HubModelFile] = field(default_factory=list)  # what any hub search finds
    search_error: Exception | None = None
    jobs: dict[str, DownloadJob] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    @staticmethod
    def _admin(user: User) -> None:
        if not user.is_admin:
            raise NotAuthorized("Only an admin can manage models.")

    def loaded(self) -> LoadedModel | None:
        return next((loaded_model(m.file_name) for m in self.local if m.loaded), None)

    def entries(self) -> list[ModelEntry]:
        given = {entry.name for entry in self.remote_entries}  # a test may give a local entry's facts itself
        local = [ModelEntry(name=m.file_name, loaded=m.loaded, size_bytes=m.size_bytes, modified=0.0,
                            architecture=m.architecture, parameters=m.parameters, quant=m.quant,
                            context_length=m.context_length) for m in self.local if m.file_name not in given]
        return [*local, *self.remote_entries]

    def models_dir(self, user: User) -> Path:
        self._admin(user)
        return MODELS_DIR

    def settings_file(self, user: User) -> Path:
        self._admin(user)
        return Path("/srv/data/model-settings.json")

    def list_models(self, user: User) -> list[LocalModel]:
        self._admin(user)
        return list(self.local)

    def settings_for(self, user: User, name: str) -> ModelLoadOptions:
        self._admin(user)
        return self.settings.get(name, ModelLoadOptions())

    def save_settings(self, user: User, name: str, options: ModelLoadOptions) -> None:
        self._admin(user)
        self.settings[name] = options

    def memory_check(self, user: User, name: str, options: ModelLoadOptions | None = None) -> str | None:
        self._admin(user)
        self.calls.append(f"memory_check {name} n_ctx={options.n_ctx if options else None}")
        return self.memory_warning

    def load(self, user: User, name: str, options: ModelLoadOptions | None = None, *,
             on_wait: Callable[[int], None] | None = None, ignore_memory_check: bool = False) -> LoadedModel:
        self._admin(user)
        self.calls.append(f"load {name} n_ctx={options.n_ctx if options else None} ignore={ignore_memory_check}")
        for position in self.waits:
            if on_wait:
                on_wait(position)
        if self.released is not None:
            self.released.wait(timeout=10)
        if self.load_error is not None:
            raise self.load_error
        self.local = [replace(m, loaded=m.file_name == name) for m in self.local]
        return loaded_model(name)

    def unload(self, user: User) -> None:
        self._admin(user)
        self.local = [replace(m, loaded=False) for m in self.local]

    def delete(self, user: User, name: str) -> None:
        self._admin(user)
        if self.delete_error is not None:
            raise self.delete_error
        if name not in [m.file_name for m in self.local]:
            raise ModelManagerError(f"There is no model named {name}.")
        self.local = [m for m in self.local if m.file_name != name]

    def remote_files(self, user: User, repo_id: str) -> list[RemoteModelFile]:
        self._admin(user)
        if repo_id not in self.repos:
            raise ModelManagerError(f"There is no repository {repo_id} on the hub.")
        return self.repos[repo_id]

    def recommendations(self, user: User) -> list[Recommendation]:
        return list(self.recommended)

    def search_hub(self, user: User, query: str) -> list[HubModelFile]:
        self._admin(user)
        self.calls.append(f"search {query}")
        if self.search_error is not None:
            raise self.search_error
        return list(self.found)

    def start_download(self, user: User, repo_id: str, filename: str) -> DownloadJob:
        self._admin(user)
        job = DownloadJob(id=f"job{len(self.jobs) + 1}", repo_id=repo_id, filename=filename)
        self.jobs[job.id] = job
        return job

    def download_job(self, user: User, job_id: str) -> DownloadJob | None:
        self._admin(user)
        return self.jobs.get(job_id)

    def cancel_download(self, user: User, job_id: str) -> bool:
        self._admin(user)
        job = self.jobs.get(job_id)
        if job is None or job.finished:
            return False
        job.state = "cancelled"
        return True


@dataclass
class FakeRerankerService:
    """The reranker choice in memory; a download reports two progress steps, or raises ``download_error``."""

    installed: list[str] = field(default_factory=list)
    in_use: str | None = None
    flag: str | None = None
    download_error: Exception | None = None

    def _admin(self, user: User) -> None:
        if not user.is_admin:
            raise NotAuthorized("Only an admin can change the reranker.")

    def state(self, user: User) -> RerankerState:
        self._admin(user)
        return RerankerState(in_use=self.flag or self.in_use, set_by_flag=self.flag is not None,
                             installed=tuple(self.installed))

    def use(self, user: User, name: str | None) -> RerankerState:
        self._admin(user)
        self.in_use = name
        return self.state(user)

    def download(self, user: User, repo_id: str, *, progress: Callable[[int, int], None] | None = None
                 ) -> RerankerState:
        self._admin(user)
        if self.download_error is not None:
            raise self.download_error
        if progress is not None:
            progress(0, 2_000_000)
            progress(2_000_000, 2_000_000)
        name = repo_id.replace("/", "--")
        self.installed.append(name)
        return self.use(user, name)

    def cancel_download(self, user: User) -> bool:
        self._admin(user)
        return False

    def delete(self, user: User, name: str) -> RerankerState:
        self._admin(user)
        self.installed.remove(name)
        self.in_use = None if self.in_use == name else self.in_use
        return self.state(user)


@dataclass
class ModelServices(FakeServices):
    """FakeServices with the model service the Models tab calls."""

    models: FakeModelService = field(default_factory=FakeModelService)
    rerankers: FakeRerankerService = field(default_factory=FakeRerankerService)


def model_services(*file_names: str, loaded: str | None = None) -> ModelServices:
    """Alice (admin) and Bob, with these models in the folder and ``loaded`` loaded."""
    models = FakeModelService(local=[local_model(name, loaded=name == loaded) for name in file_names])
    return ModelServices(users={"alice": User("alice", is_admin=True), "bob": User("bob", is_admin=False)},
                         models=models)
