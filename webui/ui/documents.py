"""The Documents tab: collections of the user's files, uploaded, listed and deleted, for chat answers."""

from __future__ import annotations

import gradio as gr

from webui.rag import IngestProgress, RagError
from webui.rag.loaders import SUPPORTED_EXTENSIONS
from webui.services import Services
from webui.services.documents import document_rows, outcome_report, progress_line
from webui.ui.chat import ChatControls
from webui.ui.feedback import user_message, warn
from webui.ui.retrieval_settings import build_retrieval_settings
from webui.ui.summaries import build_summary_panel
from webui.ui.uploads import UploadRejected, discard_uploads, uploaded_paths

INGEST_QUEUE = "ingest"  # its own queue: a long upload never holds up anyone's chat
# Ingests that run at once. They take turns batch by batch inside the document service, rotating
# between users, so another user's small file is not stuck behind a large one in this queue.
INGEST_CONCURRENCY = 8
DOCUMENT_HEADERS = ["File", "Pages", "Passages", "Size", "Added (UTC)"]


def build_documents_tab(services: Services, blocks: gr.Blocks, chat: ChatControls) -> None:
    docs = services.document_actions
    gr.Markdown(
        "Add your files to a **collection**, then pick the collection under *Documents* in the Chat tab "
        "to get answers that cite them. Files are read, indexed and kept on this machine only.  \n"
        f"Formats: {', '.join(SUPPORTED_EXTENSIONS)} · **up to {docs.max_upload_mb} MB per file**."
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=260):
            collection = gr.Dropdown(label="Collection", choices=[], value=None, elem_id="doc-collection")
            refresh = gr.Button("↻ Refresh", size="sm")
            with gr.Accordion("New collection", open=True):
                new_name = gr.Textbox(label="New collection name", max_lines=1)
                shared = gr.Checkbox(label="Shared with the team", value=False, visible=False)
                create = gr.Button("Create collection", size="sm")
            with gr.Accordion("Rename or delete this collection", open=False):
                rename_to = gr.Textbox(label="Rename to", max_lines=1)
                rename = gr.Button("Rename collection", size="sm")
                delete = gr.Button("Delete collection", size="sm", variant="stop")
                confirm_delete = gr.Button("Yes, delete the collection and all its documents", size="sm",
                                           variant="stop", visible=False)
            build_retrieval_settings(services, collection)
        with gr.Column(scale=3):
            summary = gr.Markdown(elem_id="doc-summary")
            files = gr.File(label=f"Add files (drag and drop; up to {docs.max_upload_mb} MB each)",
                            file_count="multiple", elem_id="doc-files")
            with gr.Row():
                add = gr.Button("Add to collection", variant="primary", scale=3)
                cancel = gr.Button("Cancel adding", size="sm", variant="stop", scale=1, elem_id="doc-cancel")
            result = gr.Markdown(elem_id="ingest-result")
            table = gr.Dataframe(headers=DOCUMENT_HEADERS, value=[], interactive=False, wrap=True,
                                 label="Documents in this collection", elem_id="doc-table")
            with gr.Row():
                document = gr.Dropdown(label="Document", choices=[], value=None, scale=3)
                delete_doc = gr.Button("Delete document", size="sm", variant="stop", scale=1)
                confirm_delete_doc = gr.Button("Yes, delete it", size="sm", variant="stop", visible=False, scale=1)
            build_summary_panel(services, collection=collection, document=document, chat=chat)

    def owner_of(request: gr.Request) -> str:
        return services.user(request.username).id

    def collection_update(owner: str, selected: str | None):
        infos = docs.collections(owner)
        choices = [(f"{c.name} (shared)" if c.shared else c.name, c.name) for c in infos]
        names = [c.name for c in infos]
        value = selected if selected in names else (names[0] if names else None)
        return gr.update(choices=choices, value=value), value

    def chat_update(owner: str, picked: list[str] | None):
        names = docs.collection_names(owner)
        return gr.update(choices=names, value=[p for p in picked or [] if p in names])

    def describe(owner: str, name: str | None):
        """Summary, table and document choices for the chosen collection."""
        if not name:
            return ("No collection yet: name one under *New collection* and create it.",
                    [], gr.update(choices=[], value=None))
        info = next((c for c in docs.collections(owner) if c.name == name), None)
        if info is None:
            return f"There is no collection named '{name}'.", [], gr.update(choices=[], value=None)
        listed = docs.documents(owner, name)
        line = (f"**{info.name}**{' · shared with the team' if info.shared else ''} · {info.documents} documents · "
                f"{info.chunks} passages · embedding model `{info.embedding_model}`")
        if not info.editable:
            line += f" · read-only (shared by {info.created_by or 'another user'})"
        return line, document_rows(listed), gr.update(choices=[d.file_name for d in listed], value=None)

    def refresh_all(selected: str | None, picked: list[str] | None, request: gr.Request):
        owner = owner_of(request)
        try:
            choices, value = collection_update(owner, selected)
            return (choices, *describe(owner, value), chat_update(owner, picked))
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Refreshing the documents")
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()

    def on_load(request: gr.Request):
        user = services.user(request.username)
        team = services.auth_required
        owner = user.id
        try:
            choices, value = collection_update(owner, None)
            described = describe(owner, value)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            choices, described = gr.update(), (user_message(exc, "Listing the document library"), [], gr.update())
        return (choices, *described, gr.update(visible=team and user.is_admin))

    def show(selected: str | None, request: gr.Request):
        try:
            return describe(owner_of(request), selected)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Showing a collection")
            return gr.update(), gr.update(), gr.update()

    def create_collection(name: str, share: bool, picked: list[str] | None, request: gr.Request):
        user = services.user(request.username)
        try:
            info = docs.create(user, name or "", shared=bool(share) and services.auth_required)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Creating a collection")
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        gr.Info(f"Created the collection '{info.name}'.")
        choices, value = collection_update(user.id, info.name)
        return (choices, *describe(user.id, value), chat_update(user.id, picked), "")

    def rename_collection(selected: str | None, new: str, picked: list[str] | None, request: gr.Request):
        owner = owner_of(request)
        try:
            if not selected:
                raise RagError("Choose a collection to rename first.")
            info = docs.rename(owner, selected, new or "")
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Renaming a collection")
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        picked = [info.name if p == selected else p for p in picked or []]
        choices, value = collection_update(owner, info.name)
        return (choices, *describe(owner, value), chat_update(owner, picked), "")

    def delete_collection(selected: str | None, picked: list[str] | None, request: gr.Request):
        owner = owner_of(request)
        hide = gr.update(visible=False)
        try:
            if not selected:
                raise RagError("Choose a collection to delete first.")
            docs.delete(owner, selected)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Deleting a collection")
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), hide
        gr.Info(f"Deleted the collection '{selected}'.")
        choices, value = collection_update(owner, None)
        return (choices, *describe(owner, value), chat_update(owner, picked), hide)

    def add_files(selected: str | None, uploaded: list[str] | None, request: gr.Request,
                  progress: gr.Progress = gr.Progress()):
        owner = owner_of(request)
        try:
            paths = uploaded_paths(uploaded)
        except UploadRejected as exc:  # a crafted payload: read nothing, delete nothing
            gr.Warning(str(exc))
            return f"**Nothing was added:** {exc}", None, gr.update(), gr.update(), gr.update()
        unchanged = gr.update(), gr.update(), gr.update(), gr.update()
        if not paths or not selected:  # the chosen files stay, so the user can fix this and retry
            problem = "Choose or drop some files first." if not paths else "Create or choose a collection first."
            gr.Warning(problem)
            return f"**Nothing was added:** {problem}", *unchanged
        try:
            progress(0, desc="Reading the files…")

            def report(step: IngestProgress) -> None:
                fraction, caption = progress_line(step)
                progress(fraction, desc=caption)

            outcomes = docs.ingest(owner, selected, paths, progress=report)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            return f"**Nothing was added:** {warn(exc, 'Adding files')}", None, gr.update(), gr.update(), gr.update()
        finally:
            discard_uploads(paths)
        summary_line, rows, doc_choices = describe(owner, selected)
        return outcome_report(outcomes), None, summary_line, rows, doc_choices

    def cancel_adding(request: gr.Request) -> None:
        running = docs.cancel_ingest(owner_of(request))
        if running:
            gr.Info("Cancelling: files already added stay; the one in progress is removed.")
        else:
            gr.Info("Nothing of yours is being added right now.")

    def delete_document(selected: str | None, file_name: str | None, request: gr.Request):
        owner = owner_of(request)
        hide = gr.update(visible=False)
        try:
            if not selected or not file_name:
                raise RagError("Choose a document to delete first.")
            docs.delete_document(owner, selected, file_name)
        except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
            warn(exc, "Deleting a document")
            return gr.update(), gr.update(), gr.update(), hide
        gr.Info(f"Deleted '{file_name}' from '{selected}'.")
        return (*describe(owner, selected), hide)

    listing = [summary, table, document]
    blocks.load(on_load, None, [collection, *listing, shared])
    refresh.click(refresh_all, [collection, chat.documents], [collection, *listing, chat.documents], queue=False)
    collection.input(show, [collection], listing, queue=False)
    create.click(create_collection, [new_name, shared, chat.documents],
                 [collection, *listing, chat.documents, new_name])
    rename.click(rename_collection, [collection, rename_to, chat.documents],
                 [collection, *listing, chat.documents, rename_to])
    delete.click(lambda: gr.update(visible=True), None, [confirm_delete], queue=False)
    confirm_delete.click(delete_collection, [collection, chat.documents],
                         [collection, *listing, chat.documents, confirm_delete])
    # Ingestion has its own queue, off the "generate" one, so it never holds up a chat.
    add.click(add_files, [collection, files], [result, files, *listing],
              concurrency_id=INGEST_QUEUE, concurrency_limit=INGEST_CONCURRENCY)
    cancel.click(cancel_adding, None, None, queue=False)  # unqueued: it must not wait behind the add
    delete_doc.click(lambda: gr.update(visible=True), None, [confirm_delete_doc], queue=False)
    confirm_delete_doc.click(delete_document, [collection, document], [*listing, confirm_delete_doc])
