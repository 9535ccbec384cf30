"""The Models tab: list local GGUFs, load/unload them hot with per-model settings, find, download, delete.

Every decision is ModelService's (which checks that the caller is an admin); :class:`ModelHandlers`
turns its answers and errors into the tab's outputs and one-sentence messages, and
:func:`build_models_tab` only lays out the components and wires them to those handlers.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from typing import Any

import gradio as gr

from webui.services import NotAuthorized, Services
from webui.services.models import (
    FLASH_ATTN_CHOICES,
    KV_CACHE_TYPES,
    DownloadJob,
    LoadedModel,
    LocalModel,
    ModelEntry,
    ModelLoadOptions,
    RemoteModelFile,
    capabilities,
    flash_attn_choice,
    parse_flash_attn_choice,
    parse_gpu_layers_text,
)
from webui.services.types import User
from webui.ui.feedback import as_user, handled, warn
from webui.ui.forms import with_form
from webui.ui.model_finder import (
    FOUND_HEADERS,
    FOUND_WIDTHS,
    RECOMMENDED_HEADERS,
    RECOMMENDED_WIDTHS,
    FinderHandlers,
    human_size,
    pick_found,
    pick_recommendation,
)
from webui.ui.rerankers import build_reranker_panel

SHARED_HEADERS = ["Model", "In use", "Runs on", "Size", "Quantization", "Context"]
LOCAL_HEADERS = ["File", "Loaded", "Architecture", "Parameters", "Quantization", "Trained context", "Size",
                 "Chat template", "Capabilities", "Note"]
REMOTE_HEADERS = ["File", "Parts", "Size", "Quantization", "Fits this machine", "Downloaded"]
_POLL_S = 0.5


def local_rows(models: list[LocalModel]) -> list[list[Any]]:
    return [
        [m.file_name, "● loaded" if m.loaded else "", m.architecture or "?", m.parameters or "?", m.quant or "?",
         m.context_length or "?", human_size(m.size_bytes), "yes" if m.has_chat_template else "no",
         "" if m.error else str(capabilities(m)), m.error or ("" if m.in_models_dir else "outside the models folder")]
        for m in models
    ]


def shared_rows(entries: list[ModelEntry]) -> list[list[Any]]:
    """The models as a user who cannot change them sees them: names and facts, never a path."""
    return [[e.name, "● in use" if e.loaded else "", "this machine" if e.where == "local" else e.where,
             human_size(e.size_bytes) if e.size_bytes else "", e.quant or "", e.context_length or ""]
            for e in entries]


def admins_only_sentence(admins: list[str]) -> str:
    """What the Models tab says to a user who is not an admin: who can change the models."""
    who = ", ".join(f"**{escape(name)}**" for name in admins) or "an admin"
    return (f"These are the models on this server. Only an admin can load, download or change them: ask {who}. "
            "Pick the model a chat uses in the Chat tab's model list.")


def remote_rows(files: list[RemoteModelFile]) -> list[list[Any]]:
    return [[f.filename, f.parts, human_size(f.size_bytes), f.quant or "?", f.fits, "yes" if f.downloaded else ""]
            for f in files]


def loaded_summary(info: LoadedModel | None) -> str:
    if info is None:
        return "**No model is loaded.** Pick one below and press Load."
    return (f"**Loaded:** {info.file} · {info.architecture} · context {info.n_ctx} · GPU layers {info.n_gpu_layers}"
            f" · chat format {info.chat_format}")


def remote_summary(entries: list[ModelEntry]) -> str:
    """The models on --backend servers, each with where it runs; empty when there are none."""
    if not entries:
        return ""
    lines = [f"- `{e.name}`: runs at {e.where}, context {e.context_length}" + (" · **in use**" if e.loaded else "")
             for e in entries]
    return ("\n\n**On model servers** (pick one and press Load to use it: it runs there, nothing loads here):\n"
            + "\n".join(lines))


def progress_html(job: DownloadJob | None) -> str:
    """A plain HTML progress bar: the page must not fetch anything, and this needs nothing."""
    if job is None:
        return ""
    percent = job.fraction * 100
    amount = f"{human_size(job.done)} of {human_size(job.total)}" if job.total else "starting…"
    state = {"running": amount, "done": "done", "cancelled": "cancelled", "failed": "failed"}[job.state]
    return (f'<div id="download-progress"><progress value="{percent:.1f}" max="100" style="width:100%"></progress>'
            f"<div>{escape(job.filename)}: {percent:.0f}% · {escape(state)}</div></div>")


@dataclass(frozen=True)
class LoadSettingsForm:
    """The "Load settings" boxes, in the page's order; an empty box means "default"."""

    n_ctx: float | None = None
    gpu_layers: str = "auto"
    threads: float | None = None
    n_batch: float | None = 512
    flash_attn: str = "auto"
    kv_cache_type: str = "f16"
    use_mmap: bool = True
    use_mlock: bool = False
    chat_format: str = ""
    prompt_lookup: bool = True
    draft_model: str = ""

    def options(self) -> ModelLoadOptions:
        """The form's values as options. Raises InvalidLoadOptions, whose sentence names the box."""
        return ModelLoadOptions(
            n_ctx=int(self.n_ctx) if self.n_ctx else None,
            n_gpu_layers=parse_gpu_layers_text(self.gpu_layers),
            n_threads=int(self.threads) if self.threads else None,
            n_batch=int(self.n_batch) if self.n_batch else 512,
            flash_attn=parse_flash_attn_choice(self.flash_attn),
            kv_cache_type=self.kv_cache_type or "f16",
            use_mmap=bool(self.use_mmap),
            use_mlock=bool(self.use_mlock),
            chat_format=(self.chat_format or "").strip() or None,
            prompt_lookup=bool(self.prompt_lookup),
            draft_model=(self.draft_model or "").strip() or None,
        )

    @classmethod
    def from_options(cls, options: ModelLoadOptions) -> LoadSettingsForm:
        return cls(options.n_ctx, "auto" if options.n_gpu_layers is None else str(options.n_gpu_layers),
                   options.n_threads, options.n_batch, flash_attn_choice(options.flash_attn), options.kv_cache_type,
                   options.use_mmap, options.use_mlock, options.chat_format or "", options.prompt_lookup,
                   options.draft_model or "")

    def values(self) -> tuple[Any, ...]:
        """One value per box, as the form's outputs."""
        return dataclasses.astuple(self)


DEFAULT_FORM = LoadSettingsForm.from_options(ModelLoadOptions()).values()


def _unchanged(count: int) -> tuple[Any, ...]:
    return (gr.update(),) * count


class ModelHandlers:
    """What the tab's events do, for a user name and the form's values (testable without a page).

    Model management is for admins: the tab is hidden from others, and every handler refuses them
    too, as a failed event (``gr.Error``), since a hidden button can still be called.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.models = services.models

    def admin(self, username: str | None) -> User:
        try:
            user = self.services.user(username)
            self.models.models_dir(user)  # raises NotAuthorized for non-admins
        except NotAuthorized as exc:
            raise gr.Error(str(exc)) from exc
        return user

    def listing(self, user: User, selected: str | None = None) -> tuple[list[list[Any]], Any, str]:
        """The table, the model dropdown (``selected`` kept if it still exists) and the loaded-model line."""
        local = self.models.list_models(user)
        remote = [e for e in self.models.entries() if e.where != "local"]
        names = [m.file_name for m in local] + [e.name for e in remote]
        loaded = next((m.file_name for m in local if m.loaded), None) or next((e.name for e in remote if e.loaded), None)
        value = selected if selected in names else loaded or (names[0] if names else None)
        return (local_rows(local), gr.update(choices=names, value=value),
                loaded_summary(self.models.loaded()) + remote_summary(remote))

    def on_load(self, username: str | None) -> tuple[Any, ...]:
        """The tab's first view; non-admins (whose tab is hidden) get nothing, not even paths."""
        try:
            user = self.services.user(username)
            folder = self.models.models_dir(user)
        except NotAuthorized:
            return "", [], gr.update(choices=[], value=None), ""
        intro = (f"GGUF files in `{folder}`. Copy files there by hand and press Refresh, "
                 "or download them from the hub below.")
        return intro, *self.listing(user)

    @handled("Showing the models tab", lambda message: (gr.update(), gr.update()))
    def panels(self, username: str | None) -> tuple[Any, Any]:
        """The managing controls for admins; for anyone else the read-only list (filled by ``shared_listing``)."""
        is_admin = self.services.user(username).is_admin
        return gr.update(visible=is_admin), gr.update(visible=not is_admin)

    @handled("Listing the models", lambda message: (f"⚠️ {message}", gr.update()))
    def shared_listing(self, username: str | None) -> tuple[str, list[list[Any]]]:
        """A non-admin's view: the sentence naming who can change the models, and the models, read-only."""
        if self.services.user(username).is_admin:
            return "", []
        return admins_only_sentence(self.services.user_actions.admin_names()), shared_rows(self.models.entries())

    def refresh_all(self, username: str | None, selected: str | None) -> tuple[Any, ...]:
        return self.listing(self.admin(username), selected)

    @handled("Reading a model's load settings", lambda message: (*DEFAULT_FORM, f"⚠️ {message}"))
    def fill_form(self, username: str | None, name: str | None) -> tuple[Any, ...]:
        """The picked model's saved settings, and a memory warning when it may not fit."""
        if not name:  # also the empty first view of a non-admin, whose tab is hidden
            return (*DEFAULT_FORM, "")
        user = self.admin(username)
        entries = self.models.entries()
        if any(e.name == name and e.where != "local" for e in entries):
            return (*DEFAULT_FORM, "Runs on a model server: its load settings are the server's.")
        options = self.models.settings_for(user, name)
        warning = self.models.memory_check(user, name, options)
        *values, draft = LoadSettingsForm.from_options(options).values()
        # The draft model is picked among the files on disk, which the box lists afresh for each model.
        local = [e.name for e in entries if e.where == "local"]
        return (*values, gr.update(choices=["", *local], value=draft), f"⚠️ {warning}" if warning else "")

    @handled("Checking a model's memory", lambda message: f"⚠️ {message}")
    def check_memory(self, username: str | None, name: str | None, settings: LoadSettingsForm) -> str:
        user = self.admin(username)
        if not name:
            return ""
        warning = self.models.memory_check(user, name, settings.options())
        return f"⚠️ {warning}" if warning else ""

    @handled("Loading a model", lambda message: (f"**Not loaded:** {message}", *_unchanged(3)))
    def do_load(self, username: str | None, name: str | None, ignore_memory: bool,
                settings: LoadSettingsForm) -> Iterator[tuple[Any, ...]]:
        """Load ``name``, saying meanwhile whether it waits for a reply still streaming; outputs: status, listing."""
        user = self.admin(username)
        if not name:
            gr.Warning("Pick a model to load first.")
            yield "Pick a model to load first.", *_unchanged(3)
            return
        options = settings.options()
        positions: queue.Queue[int] = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["info"] = self.models.load(user, name, options, on_wait=positions.put,
                                                   ignore_memory_check=ignore_memory)
            except Exception as exc:  # noqa: BLE001 - reported to the user below, from this thread
                outcome["error"] = exc

        # The load runs beside this handler so it can say it waits for a reply still streaming.
        worker = threading.Thread(target=work, name="load-model", daemon=True)
        worker.start()
        yield f"Loading {name}…", *_unchanged(3)
        while worker.is_alive():
            try:
                position = positions.get(timeout=0.2)
            except queue.Empty:
                continue
            yield f"Waiting for the current reply to finish before loading {name} (position {position})…", *_unchanged(3)
        error = outcome.get("error")
        if error is not None:
            still = self.models.loaded()
            keep_note = f" {still.file} is still loaded." if still else ""
            yield f"**Not loaded:** {warn(error, 'Loading a model')}{keep_note}", *self.listing(user, name)
            return
        info: LoadedModel = outcome["info"]
        gr.Info(f"Loaded {info.file}.")
        yield (f"Loaded {info.file}: {info.architecture}, context {info.n_ctx}, GPU layers {info.n_gpu_layers}.",
               *self.listing(user, name))

    def do_unload(self, username: str | None) -> tuple[Any, ...]:
        user = self.admin(username)
        self.models.unload(user)
        gr.Info("The model was unloaded.")
        return "Unloaded. Chats answer only after a model is loaded again.", *self.listing(user)

    @handled("Saving a model's load settings", lambda message: f"**Not saved:** {message}")
    def do_save(self, username: str | None, name: str | None, settings: LoadSettingsForm) -> str:
        user = self.admin(username)
        if not name:
            return "Pick a model first."
        self.models.save_settings(user, name, settings.options())
        return f"Saved the load settings of {name}; they apply on its next load."

    @staticmethod
    def ask_delete(name: str | None) -> tuple[Any, str, str]:
        """The confirmation row (a delete cannot be undone); outputs: row, question, status."""
        if not name:
            return gr.update(visible=False), "", "Pick a model to delete first."
        return gr.update(visible=True), f"Delete **{name}** from disk? This cannot be undone.", ""

    def do_delete(self, username: str | None, name: str | None) -> tuple[Any, ...]:
        """Delete the picked model; the list is read again either way (the file may be gone already)."""
        user = self.admin(username)
        return gr.update(visible=False), self._delete(user, name or ""), *self.listing(user, name)

    @handled("Deleting a model", lambda message: f"**Not deleted:** {message}")
    def _delete(self, user: User, name: str) -> str:
        self.models.delete(user, name)
        gr.Info(f"Deleted {name}.")
        return f"Deleted {name}."

    @handled("Listing a repository's files",
             lambda message: ([], gr.update(choices=[], value=None), f"**Cannot list files:** {message}"))
    def do_list(self, username: str | None, repo_id: str) -> tuple[Any, ...]:
        user = self.admin(username)
        files = self.models.remote_files(user, repo_id)
        if not files:
            return [], gr.update(choices=[], value=None), f"{repo_id} has no GGUF model files."
        choices = [(f"{f.filename} · {human_size(f.size_bytes)} · {f.quant or '?'} · fits: {f.fits}", f.filename)
                   for f in files]
        return (remote_rows(files), gr.update(choices=choices, value=files[0].filename),
                f"{len(files)} GGUF models in {repo_id}.")

    @handled("Starting a download",
             lambda message: (None, "", f"**Not downloading:** {message}", gr.update(active=False)))
    def do_download(self, username: str | None, repo_id: str, filename: str | None) -> tuple[Any, ...]:
        """Start a download in the background; outputs: job id, progress bar, status, the poll timer."""
        user = self.admin(username)
        job = self.models.start_download(user, repo_id, filename or "")
        return job.id, progress_html(job), f"Downloading {job.filename}…", gr.update(active=True)

    def poll(self, username: str | None, current: str | None, selected: str | None) -> tuple[Any, ...]:
        """The download's progress; when it ends, its outcome, the timer stopped and the list read again."""
        user = self.admin(username)
        job = self.models.download_job(user, current) if current else None
        if job is None:
            return progress_html(None), gr.update(), gr.update(active=False), *_unchanged(3)
        if not job.finished:
            return progress_html(job), *_unchanged(5)
        if job.state == "done":
            gr.Info(job.message)
        elif job.state == "failed":
            gr.Warning(job.message)
        return progress_html(job), job.message, gr.update(active=False), *self.listing(user, selected)

    def do_cancel(self, username: str | None, current: str | None) -> str:
        user = self.admin(username)
        if current and self.models.cancel_download(user, current):
            return "Cancelling… the data so far is kept, so a new Download resumes."
        return "No download is running."


def _with_settings(handler: Any) -> Any:
    """The event of a handler whose last parameter is the load settings form."""
    return as_user(with_form(handler, LoadSettingsForm))


def build_models_tab(services: Services, tab: gr.Tab | None = None) -> None:
    """The tab's content: the managing controls for admins, a read-only list for other users (filled each
    time ``tab`` is opened, so it is drawn while in view)."""
    with gr.Column(visible=False, elem_id="models-shared") as shared:
        shared_note = gr.Markdown(elem_id="models-shared-note")
        shared_table = gr.Dataframe(headers=SHARED_HEADERS, type="array", interactive=False, label="Models",
                                    elem_id="models-shared-table")
        shared_recommended = gr.Dataframe(headers=RECOMMENDED_HEADERS, type="array", interactive=False, wrap=True,
                                          column_widths=RECOMMENDED_WIDTHS,
                                          label="Recommended for this machine (an admin can download them)",
                                          elem_id="models-shared-recommended")
    with gr.Column(elem_id="models-manage") as manage:
        _build_managing_controls(services)
    handlers = ModelHandlers(services)
    finder = FinderHandlers(services)
    gr.on(triggers=None, fn=as_user(handlers.panels), inputs=None, outputs=[manage, shared], queue=False)
    if tab is not None:
        opened = tab.select(as_user(handlers.shared_listing), None, [shared_note, shared_table], queue=False)
        opened.then(as_user(finder.read_only_table), None, [shared_recommended], queue=False)


def _build_managing_controls(services: Services) -> None:
    """An admin's tab: the local models, their load settings, Load/Unload/Delete, downloads."""
    where = gr.Markdown(elem_id="models-where")
    loaded_md = gr.Markdown(elem_id="models-loaded")
    table = gr.Dataframe(headers=LOCAL_HEADERS, type="array", interactive=False, label="Local models",
                         elem_id="models-table")
    with gr.Row():
        pick = gr.Dropdown(label="Model", choices=[], elem_id="models-pick", scale=4)
        refresh = gr.Button("Refresh", scale=1)
    with gr.Accordion("Load settings (remembered for each model)", open=False):
        with gr.Row():
            n_ctx = gr.Number(label="Context size (empty: default)", precision=0, minimum=0)
            gpu_layers = gr.Textbox(label="GPU layers (auto, -1 = all, or a number)", value="auto")
            threads = gr.Number(label="Threads (empty: default)", precision=0, minimum=0)
            n_batch = gr.Number(label="Batch size", value=512, precision=0, minimum=1)
        with gr.Row():
            kv_type = gr.Dropdown(list(KV_CACHE_TYPES), value="f16", label="KV cache type (q8_0/q4_0 need flash attention)")
            flash = gr.Dropdown(list(FLASH_ATTN_CHOICES), value="auto", elem_id="models-flash-attn",
                                label="Flash attention (auto: on where layers run on a GPU)")
            mmap = gr.Checkbox(label="mmap", value=True)
            mlock = gr.Checkbox(label="mlock")
            lookup = gr.Checkbox(label="Prompt lookup (drafts replies from the prompt and checks them in one pass: "
                                       "faster when a reply quotes; greedy replies keep their exact text)",
                                 value=True, elem_id="models-prompt-lookup")
        with gr.Row():
            chat_format = gr.Textbox(label="Chat format override (empty: the model's own template)")
            draft = gr.Dropdown(["", ], value="", allow_custom_value=True, elem_id="models-draft",
                                label="Draft model (a smaller model with the same vocabulary guesses, this one "
                                      "checks; empty: none)")
        save = gr.Button("Save settings", size="sm")
    memory_md = gr.Markdown(elem_id="models-memory")
    with gr.Row():
        load = gr.Button("Load", variant="primary")
        unload = gr.Button("Unload")
        delete = gr.Button("Delete", variant="stop")
        force = gr.Checkbox(label="Load even if the memory check warns")
    with gr.Row(visible=False) as confirm_row:
        confirm_md = gr.Markdown()
        confirm = gr.Button("Yes, delete it", variant="stop")
        keep = gr.Button("Keep it")
    status = gr.Markdown(elem_id="models-status")

    # Finding models: nothing reaches the hub until Search or a Download button is pressed.
    with gr.Accordion("Recommended for this machine", open=True):
        recommended = gr.Dataframe(headers=RECOMMENDED_HEADERS, type="array", interactive=False, wrap=True,
                                   column_widths=RECOMMENDED_WIDTHS,
                                   label="From the built-in catalog, best first (click a row to select it)",
                                   elem_id="models-recommended")
        with gr.Row():
            recommended_picked = gr.Markdown(elem_id="models-recommended-picked")
            download_recommended = gr.Button("Download selected", variant="primary", scale=0, min_width=230)
    recommended_files = gr.State([])
    picked_repo, picked_file = gr.State(None), gr.State(None)

    with gr.Accordion("Download from the hub", open=False):
        with gr.Row():
            query = gr.Textbox(label="Search the hub by name", placeholder="qwen3 gguf", scale=4)
            search = gr.Button("Search", scale=1)
        search_status = gr.Markdown(elem_id="models-search-status")
        found_table = gr.Dataframe(headers=FOUND_HEADERS, type="array", interactive=False, wrap=True,
                                   column_widths=FOUND_WIDTHS,
                                   label="Found on the hub (click a row to fill the download below)",
                                   elem_id="models-search-results")
        with gr.Row():
            repo = gr.Textbox(label="Repository id", placeholder="bartowski/Qwen2.5-1.5B-Instruct-GGUF", scale=4)
            list_files = gr.Button("List files", scale=1)
        remote_table = gr.Dataframe(headers=REMOTE_HEADERS, type="array", interactive=False, label="GGUF files")
        remote_pick = gr.Dropdown(label="File", choices=[])
        download = gr.Button("Download", variant="primary")
    # Outside the accordions: both Download buttons report here.
    progress = gr.HTML(elem_id="download-progress-box")
    with gr.Row():
        download_status = gr.Markdown()
        cancel = gr.Button("Cancel download", scale=0, min_width=180)
    job_id = gr.State(None)
    timer = gr.Timer(_POLL_S, active=False)

    # In LoadSettingsForm's order.
    form = [n_ctx, gpu_layers, threads, n_batch, flash, kv_type, mmap, mlock, chat_format, lookup, draft]
    listing = [table, pick, loaded_md]
    handlers = ModelHandlers(services)

    gr.on(triggers=None, fn=as_user(handlers.on_load), inputs=None, outputs=[where, *listing], queue=False)
    refresh.click(as_user(handlers.refresh_all), [pick], listing, queue=False)
    pick.change(as_user(handlers.fill_form), [pick], [*form, memory_md], queue=False)
    for box in (n_ctx, kv_type):
        box.change(_with_settings(handlers.check_memory), [pick, *form], [memory_md], queue=False)
    load.click(_with_settings(handlers.do_load), [pick, force, *form], [status, *listing])
    unload.click(as_user(handlers.do_unload), None, [status, *listing])
    save.click(_with_settings(handlers.do_save), [pick, *form], [status], queue=False)
    delete.click(handlers.ask_delete, [pick], [confirm_row, confirm_md, status], queue=False)
    keep.click(lambda: gr.update(visible=False), None, [confirm_row], queue=False)
    confirm.click(as_user(handlers.do_delete), [pick], [confirm_row, status, *listing])
    list_files.click(as_user(handlers.do_list), [repo], [remote_table, remote_pick, download_status])
    repo.submit(as_user(handlers.do_list), [repo], [remote_table, remote_pick, download_status])
    download.click(as_user(handlers.do_download), [repo, remote_pick], [job_id, progress, download_status, timer])
    timer.tick(as_user(handlers.poll), [job_id, pick], [progress, download_status, timer, *listing])

    finder = FinderHandlers(services)
    picked = [picked_repo, picked_file, recommended_picked]
    gr.on(triggers=None, fn=as_user(finder.recommended_view), inputs=None,
          outputs=[recommended, recommended_files, *picked], queue=False)
    # A download, a delete or Refresh changes the local list: the Downloaded column follows it.
    table.change(as_user(finder.recommended_table), None, [recommended, recommended_files], queue=False)
    recommended.select(pick_recommendation, [recommended_files, recommended], picked, queue=False)
    download_recommended.click(as_user(handlers.do_download), [picked_repo, picked_file],
                               [job_id, progress, download_status, timer])
    search.click(as_user(finder.search), [query], [found_table, search_status])
    query.submit(as_user(finder.search), [query], [found_table, search_status])
    found_table.select(pick_found, [found_table], [repo, remote_pick, download_status], queue=False)
    cancel.click(as_user(handlers.do_cancel), [job_id], [download_status], queue=False)

    build_reranker_panel(services)
