"""The Models tab: list local GGUFs, load/unload them hot with per-model settings, download, delete.

Every decision is ModelService's (which checks that the caller is an admin); this module turns its answers and errors into components and
one-sentence messages.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from html import escape
from typing import Any

import gradio as gr

from webui.auth import User
from webui.services import NotAuthorized, Services
from webui.services.models import (
    FLASH_ATTN_CHOICES,
    KV_CACHE_TYPES,
    DownloadJob,
    InvalidLoadOptions,
    LoadedModel,
    LocalModel,
    ModelEntry,
    ModelLoadOptions,
    ModelManagerError,
    RemoteModelFile,
    flash_attn_choice,
    parse_flash_attn_choice,
    parse_gpu_layers_text,
)
from webui.ui.feedback import user_message, warn

log = logging.getLogger(__name__)

LOCAL_HEADERS = ["File", "Loaded", "Architecture", "Parameters", "Quantization", "Trained context", "Size",
                 "Chat template", "Note"]
REMOTE_HEADERS = ["File", "Parts", "Size", "Quantization", "Fits this machine", "Downloaded"]
_POLL_S = 0.5


def human_size(size_bytes: int) -> str:
    if size_bytes >= 2**30:
        return f"{size_bytes / 2**30:.1f} GB"
    return f"{size_bytes / 2**20:.0f} MB"


def local_rows(models: list[LocalModel]) -> list[list[Any]]:
    return [
        [m.file_name, "● loaded" if m.loaded else "", m.architecture or "?", m.parameters or "?", m.quant or "?",
         m.context_length or "?", human_size(m.size_bytes), "yes" if m.has_chat_template else "no",
         m.error or ("" if m.in_models_dir else "outside the models folder")]
        for m in models
    ]


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


def options_from_form(n_ctx: float | None, gpu_layers: str, threads: float | None, n_batch: float | None,
                      flash_attn: str, kv_cache_type: str, use_mmap: bool, use_mlock: bool,
                      chat_format: str, prompt_lookup: bool = True) -> ModelLoadOptions:
    """The form's values as options; empty boxes mean "default". Raises InvalidLoadOptions."""
    return ModelLoadOptions(
        n_ctx=int(n_ctx) if n_ctx else None,
        n_gpu_layers=parse_gpu_layers_text(gpu_layers),
        n_threads=int(threads) if threads else None,
        n_batch=int(n_batch) if n_batch else 512,
        flash_attn=parse_flash_attn_choice(flash_attn),
        kv_cache_type=kv_cache_type or "f16",
        use_mmap=bool(use_mmap),
        use_mlock=bool(use_mlock),
        chat_format=(chat_format or "").strip() or None,
        prompt_lookup=bool(prompt_lookup),
    )


def form_from_options(options: ModelLoadOptions) -> tuple[Any, ...]:
    return (options.n_ctx, "auto" if options.n_gpu_layers is None else str(options.n_gpu_layers), options.n_threads,
            options.n_batch, flash_attn_choice(options.flash_attn), options.kv_cache_type, options.use_mmap, options.use_mlock,
            options.chat_format or "", options.prompt_lookup)


def build_models_tab(services: Services) -> None:
    models = services.models

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
            lookup = gr.Checkbox(label="Prompt lookup (drafts replies from the prompt: same text, faster when it quotes)",
                                 value=True, elem_id="models-prompt-lookup")
        chat_format = gr.Textbox(label="Chat format override (empty: the model's own template)")
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

    with gr.Accordion("Download from the hub", open=False):
        with gr.Row():
            repo = gr.Textbox(label="Repository id", placeholder="bartowski/Qwen2.5-1.5B-Instruct-GGUF", scale=4)
            list_files = gr.Button("List files", scale=1)
        remote_table = gr.Dataframe(headers=REMOTE_HEADERS, type="array", interactive=False, label="GGUF files")
        remote_pick = gr.Dropdown(label="File", choices=[])
        with gr.Row():
            download = gr.Button("Download", variant="primary")
            cancel = gr.Button("Cancel download")
        progress = gr.HTML(elem_id="download-progress-box")
        download_status = gr.Markdown()
    job_id = gr.State(None)
    timer = gr.Timer(_POLL_S, active=False)

    form = [n_ctx, gpu_layers, threads, n_batch, flash, kv_type, mmap, mlock, chat_format, lookup]

    def listing(user: User, selected: str | None = None) -> tuple[Any, Any, str]:
        local = models.list_models(user)
        remote = [e for e in models.entries() if e.where != "local"]
        names = [m.file_name for m in local] + [e.name for e in remote]
        loaded = next((m.file_name for m in local if m.loaded), None) or next((e.name for e in remote if e.loaded), None)
        value = selected if selected in names else loaded or (names[0] if names else None)
        return (local_rows(local), gr.Dropdown(choices=names, value=value),
                loaded_summary(models.loaded()) + remote_summary(remote))

    def caller(request: gr.Request) -> User:
        """Model management is for admins: hidden from others in the page, and refused here too."""
        try:
            user = services.user(request.username)
            models.models_dir(user)  # raises NotAuthorized for non-admins
        except NotAuthorized as exc:
            raise gr.Error(str(exc)) from exc
        return user

    def on_load(request: gr.Request):
        """The tab's first view; non-admins (whose tab is hidden) get nothing, not even paths."""
        try:
            user = services.user(request.username)
            folder = models.models_dir(user)
        except NotAuthorized:
            return "", [], gr.Dropdown(choices=[], value=None), ""
        intro = (f"GGUF files in `{folder}`. Copy files there by hand and press Refresh, "
                 "or download them from the hub below.")
        return intro, *listing(user)

    def refresh_all(request: gr.Request, selected: str | None = None):
        return listing(caller(request), selected)

    def fill_form(request: gr.Request, name: str | None):
        if not name:  # also the empty first view of a non-admin, whose tab is hidden
            return (*form_from_options(ModelLoadOptions()), "")
        user = caller(request)
        if any(e.name == name and e.where != "local" for e in models.entries()):
            return (*form_from_options(ModelLoadOptions()), "Runs on a model server: its load settings are the server's.")
        try:
            options = models.settings_for(user, name)
            warning = models.memory_check(user, name, options)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            message = user_message(exc, f"Reading the settings of {name}")
            return (*form_from_options(ModelLoadOptions()), f"⚠️ {message}")
        return (*form_from_options(options), f"⚠️ {warning}" if warning else "")

    def check_memory(request: gr.Request, name: str | None, *values: Any) -> str:
        user = caller(request)
        if not name:
            return ""
        try:
            warning = models.memory_check(user, name, options_from_form(*values))
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return f"⚠️ {user_message(exc, f'Checking the memory for {name}')}"
        return f"⚠️ {warning}" if warning else ""

    def do_load(request: gr.Request, name: str | None, ignore_memory: bool, *values: Any) -> Iterator[tuple[Any, ...]]:
        user = caller(request)
        unchanged = (gr.update(), gr.update(), gr.update())
        if not name:
            gr.Warning("Pick a model to load first.")
            yield "Pick a model to load first.", *unchanged
            return
        try:
            options = options_from_form(*values)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            yield f"**Not loaded:** {warn(exc, f'Loading {name}')}", *unchanged
            return
        positions: queue.Queue[int] = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["info"] = models.load(user, name, options, on_wait=positions.put,
                                              ignore_memory_check=ignore_memory)
            except Exception as exc:  # noqa: BLE001 - reported to the user below
                outcome["error"] = exc

        # The load runs beside this handler so it can say it waits for a reply still streaming.
        worker = threading.Thread(target=work, name="load-model", daemon=True)
        worker.start()
        yield f"Loading {name}…", *unchanged
        while worker.is_alive():
            try:
                position = positions.get(timeout=0.2)
            except queue.Empty:
                continue
            yield f"Waiting for the current reply to finish before loading {name} (position {position})…", *unchanged
        error = outcome.get("error")
        if error is not None:
            still = models.loaded()
            detail = warn(error, f"Loading {name}")
            keep_note = f" {still.file} is still loaded." if still else ""
            yield f"**Not loaded:** {detail}{keep_note}", *listing(user, name)
            return
        info: LoadedModel = outcome["info"]
        gr.Info(f"Loaded {info.file}.")
        yield (f"Loaded {info.file}: {info.architecture}, context {info.n_ctx}, GPU layers {info.n_gpu_layers}.",
               *listing(user, name))

    def do_unload(request: gr.Request):
        user = caller(request)
        models.unload(user)
        gr.Info("The model was unloaded.")
        return "Unloaded. Chats answer only after a model is loaded again.", *listing(user)

    def do_save(request: gr.Request, name: str | None, *values: Any) -> str:
        user = caller(request)
        if not name:
            return "Pick a model first."
        try:
            models.save_settings(user, name, options_from_form(*values))
        except InvalidLoadOptions as exc:
            gr.Warning(str(exc))
            return f"**Not saved:** {exc}"
        except OSError as exc:
            log.error("cannot save the settings of %s: %s", name, exc)
            settings_file = models.settings_file(user)
            gr.Warning(f"The settings could not be written to {settings_file}.")
            return f"**Not saved:** the settings file {settings_file} cannot be written."
        return f"Saved the load settings of {name}; they apply on its next load."

    def ask_delete(name: str | None):
        if not name:
            return gr.Row(visible=False), "", "Pick a model to delete first."
        return gr.Row(visible=True), f"Delete **{name}** from disk? This cannot be undone.", ""

    def do_delete(request: gr.Request, name: str | None):
        user = caller(request)
        try:
            models.delete(user, name or "")
        except ModelManagerError as exc:
            gr.Warning(str(exc))
            return gr.Row(visible=False), f"**Not deleted:** {exc}", *listing(user, name)
        except OSError as exc:
            log.error("cannot delete %s: %s", name, exc)
            gr.Warning(f"{name} could not be deleted.")
            message = f"**Not deleted:** {name} could not be deleted ({exc.strerror})."
            return gr.Row(visible=False), message, *listing(user, name)
        gr.Info(f"Deleted {name}.")
        return gr.Row(visible=False), f"Deleted {name}.", *listing(user)

    def do_list(request: gr.Request, repo_id: str):
        user = caller(request)
        try:
            files = models.remote_files(user, repo_id)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            message = warn(exc, f"Listing the files of {repo_id!r}")
            return [], gr.Dropdown(choices=[], value=None), f"**Cannot list files:** {message}"
        if not files:
            return [], gr.Dropdown(choices=[], value=None), f"{repo_id} has no GGUF model files."
        choices = [(f"{f.filename} · {human_size(f.size_bytes)} · {f.quant or '?'} · fits: {f.fits}", f.filename)
                   for f in files]
        return remote_rows(files), gr.Dropdown(choices=choices, value=files[0].filename), f"{len(files)} GGUF models in {repo_id}."

    def do_download(request: gr.Request, repo_id: str, filename: str | None):
        user = caller(request)
        try:
            job = models.start_download(user, repo_id, filename or "")
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return None, "", f"**Not downloading:** {warn(exc, f'Downloading {filename}')}", gr.Timer(active=False)
        return job.id, progress_html(job), f"Downloading {job.filename}…", gr.Timer(active=True)

    def poll(request: gr.Request, current: str | None, selected: str | None):
        user = caller(request)
        job = models.download_job(user, current) if current else None
        if job is None:
            return progress_html(None), gr.update(), gr.Timer(active=False), gr.update(), gr.update(), gr.update()
        if not job.finished:
            return progress_html(job), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        if job.state == "done":
            gr.Info(job.message)
        elif job.state == "failed":
            gr.Warning(job.message)
        return (progress_html(job), job.message, gr.Timer(active=False), *listing(user, selected))

    def do_cancel(request: gr.Request, current: str | None) -> str:
        user = caller(request)
        if current and models.cancel_download(user, current):
            return "Cancelling… the data so far is kept, so a new Download resumes."
        return "No download is running."

    listing_outputs = [table, pick, loaded_md]
    gr.on(triggers=None, fn=on_load, inputs=None, outputs=[where, *listing_outputs], queue=False)
    refresh.click(refresh_all, [pick], listing_outputs, queue=False)
    pick.change(fill_form, [pick], [*form, memory_md], queue=False)
    for box in (n_ctx, kv_type):
        box.change(check_memory, [pick, *form], [memory_md], queue=False)
    load.click(do_load, [pick, force, *form], [status, *listing_outputs])
    unload.click(do_unload, None, [status, *listing_outputs])
    save.click(do_save, [pick, *form], [status], queue=False)
    delete.click(ask_delete, [pick], [confirm_row, confirm_md, status], queue=False)
    keep.click(lambda: gr.Row(visible=False), None, [confirm_row], queue=False)
    confirm.click(do_delete, [pick], [confirm_row, status, *listing_outputs])
    list_files.click(do_list, [repo], [remote_table, remote_pick, download_status])
    repo.submit(do_list, [repo], [remote_table, remote_pick, download_status])
    download.click(do_download, [repo, remote_pick], [job_id, progress, download_status, timer])
    timer.tick(poll, [job_id, pick], [progress, download_status, timer, *listing_outputs])
    cancel.click(do_cancel, [job_id], [download_status], queue=False)
