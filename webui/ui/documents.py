"""The Documents tab: collections of the user's files, uploaded, listed and deleted, for chat answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from webui.errors import UserError
from webui.services import Services
from webui.services.documents import document_rows, outcome_report, progress_line
from webui.services.types import SUPPORTED_EXTENSIONS
from webui.ui.chat import ChatControls
from webui.ui.feedback import as_user, handled, user_message
from webui.ui.retrieval_eval import build_retrieval_eval
from webui.ui.retrieval_settings import build_retrieval_settings
from webui.ui.summaries import build_summary_panel
from webui.ui.uploads import discard_uploads, uploaded_paths

INGEST_QUEUE = "ingest"  # its own queue: a long upload never holds up anyone's chat
# Ingests that run at once. They take turns batch by batch inside the document service, rotating
# between users, so another user's small file is not stuck behind a large one in this queue.
INGEST_CONCURRENCY = 8
DOCUMENT_HEADERS = ["File", "Pages", "Passages", "Size", "Added (UTC)"]

ProgressReport = Callable[[float, str], None]  # a fraction done and a caption, e.g. a gr.Progress
Listing = tuple[Any, Any, Any]  # the collection's summary line, its table rows, the Document picker


def _unchanged(count: int, *then: Any) -> tuple[Any, ...]:
    """``count`` outputs left as they are, then ``then``: what a refused action shows."""
    return (*[gr.update()] * count, *then)


class DocumentHandlers:
    """What the tab's events do, for a user name and the form's values (testable without a page).

    Collections belong to the user's id: the library shows each user their own and the shared
    ones, and says who may change what.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self.documents = services.document_actions

    def owner(self, username: str | None) -> str:
        return self.services.user(username).id

    def collection_choices(self, owner: str, selected: str | None) -> tuple[Any, str | None]:
        """The Collection picker (shared ones marked) and the name it shows: ``selected`` if still there."""
        infos = self.documents.collections(owner)
        names = [c.name for c in infos]
        value = selected if selected in names else (names[0] if names else None)
        choices = [(f"{c.name} (shared)" if c.shared else c.name, c.name) for c in infos]
        return gr.update(choices=choices, value=value), value

    def chat_choices(self, owner: str, picked: list[str] | None) -> Any:
        """The Chat tab's collection picker, keeping what is picked and still there."""
        names = self.documents.collection_names(owner)
        return gr.update(choices=names, value=[p for p in picked or [] if p in names])

    def describe(self, owner: str, name: str | None) -> Listing:
        """Summary line, table and document choices for the chosen collection."""
        if not name:
            return ("No collection yet: name one under *New collection* and create it.",
                    [], gr.update(choices=[], value=None))
        info = next((c for c in self.documents.collections(owner) if c.name == name), None)
        if info is None:
            return f"There is no collection named '{name}'.", [], gr.update(choices=[], value=None)
        listed = self.documents.documents(owner, name)
        line = (f"**{info.name}**{' · shared with the team' if info.shared else ''} · {info.documents} documents · "
                f"{info.chunks} passages · embedding model `{info.embedding_model}`")
        if not info.editable:
            line += f" · read-only (shared by {info.created_by or 'another user'})"
        return line, document_rows(listed), gr.update(choices=[d.file_name for d in listed], value=None)

    def _after_change(self, owner: str, selected: str | None, picked: list[str] | None) -> tuple[Any, ...]:
        """Both pickers and the listing once collections changed, ``selected`` shown if it exists."""
        choices, value = self.collection_choices(owner, selected)
        return (choices, *self.describe(owner, value), self.chat_choices(owner, picked))

    def on_load(self, username: str | None) -> tuple[Any, ...]:
        """The user's collections, the first one shown; the Shared box for admins in team mode."""
        user = self.services.user(username)
        sharing = gr.update(visible=self.services.auth_required and user.is_admin)
        try:
            choices, value = self.collection_choices(user.id, None)
            listing = self.describe(user.id, value)
        except Exception as exc:  # noqa: BLE001 - written in the tab, not toasted: the user asked for nothing yet
            choices, listing = gr.update(), (user_message(exc, "Listing the document library"), [], gr.update())
        return (choices, *listing, sharing)

    @handled("Refreshing the documents", lambda message: _unchanged(5))
    def refresh_all(self, username: str | None, selected: str | None, picked: list[str] | None) -> tuple[Any, ...]:
        return self._after_change(self.owner(username), selected, picked)

    @handled("Showing a collection", lambda message: _unchanged(3))
    def show(self, username: str | None, selected: str | None) -> Listing:
        return self.describe(self.owner(username), selected)

    @handled("Creating a collection", lambda message: _unchanged(6))
    def create_collection(
        self, username: str | None, name: str | None, share: bool | None, picked: list[str] | None
    ) -> tuple[Any, ...]:
        """Only an admin in team mode may share one; the new collection is shown and the name box cleared."""
        user = self.services.user(username)
        info = self.documents.create(user, name or "", shared=bool(share) and self.services.auth_required)
        gr.Info(f"Created the collection '{info.name}'.")
        return (*self._after_change(user.id, info.name, picked), "")

    @handled("Renaming a collection", lambda message: _unchanged(6))
    def rename_collection(
        self, username: str | None, selected: str | None, new_name: str | None, picked: list[str] | None
    ) -> tuple[Any, ...]:
        """The renamed collection stays picked in the chat under its new name."""
        owner = self.owner(username)
        if not selected:
            raise UserError("Choose a collection to rename first.")
        info = self.documents.rename(owner, selected, new_name or "")
        picked = [info.name if p == selected else p for p in picked or []]
        return (*self._after_change(owner, info.name, picked), "")

    @handled("Deleting a collection", lambda message: _unchanged(5, gr.update(visible=False)))
    def delete_collection(self, username: str | None, selected: str | None, picked: list[str] | None) -> tuple[Any, ...]:
        """Delete it with its documents; the confirmation button hides again either way."""
        owner = self.owner(username)
        if not selected:
            raise UserError("Choose a collection to delete first.")
        self.documents.delete(owner, selected)
        gr.Info(f"Deleted the collection '{selected}'.")
        return (*self._after_change(owner, None, picked), gr.update(visible=False))

    @handled("Adding files", lambda message: (f"**Nothing was added:** {message}", None, *_unchanged(3)))
    def add_files(
        self, username: str | None, selected: str | None, uploaded: list[str] | None,
        progress: ProgressReport | None = None,
    ) -> tuple[Any, ...]:
        """Ingest the uploads: a line per file saying what happened, the upload box emptied.

        A payload that is not the caller's upload (UploadRejected) reads and deletes nothing.
        """
        owner = self.owner(username)
        paths = uploaded_paths(uploaded)
        if not paths:
            gr.Warning("Choose or drop some files first.")
            return "**Nothing was added:** Choose or drop some files first.", *_unchanged(4)
        if not selected:
            # The drop zone is emptied: files left in it would be added again, unseen, with the next Add.
            discard_uploads(paths)
            names = ", ".join(path.name for path in paths)
            gr.Warning("Create or choose a collection first.")
            return (f"**Nothing was added:** Create or choose a collection first, then pick the files again "
                    f"({names}).", None, *_unchanged(3))
        report = progress or (lambda fraction, caption: None)
        try:
            report(0.0, "Reading the files…")
            outcomes = self.documents.ingest(owner, selected, paths, progress=lambda step: report(*progress_line(step)))
        finally:
            discard_uploads(paths)
        return outcome_report(outcomes), None, *self.describe(owner, selected)

    @handled("Cancelling an add", lambda message: None)
    def cancel_adding(self, username: str | None) -> None:
        """Cancel the caller's own running adds, never anyone else's."""
        if self.documents.cancel_ingest(self.owner(username)):
            gr.Info("Cancelling: files already added stay; the one in progress is removed.")
        else:
            gr.Info("Nothing of yours is being added right now.")

    @handled("Deleting a document", lambda message: _unchanged(3, gr.update(visible=False)))
    def delete_document(self, username: str | None, selected: str | None, file_name: str | None) -> tuple[Any, ...]:
        owner = self.owner(username)
        if not selected or not file_name:
            raise UserError("Choose a document to delete first.")
        self.documents.delete_document(owner, selected, file_name)
        gr.Info(f"Deleted '{file_name}' from '{selected}'.")
        return (*self.describe(owner, selected), gr.update(visible=False))


def build_documents_tab(services: Services, blocks: gr.Blocks, chat: ChatControls) -> None:
    max_mb = services.document_actions.max_upload_mb
    gr.Markdown(
        "Add your files to a **collection**, then pick the collection under *Documents* in the Chat tab "
        "to get answers that cite them. Files are read, indexed and kept on this machine only.  \n"
        f"Formats: {', '.join(SUPPORTED_EXTENSIONS)} · **up to {max_mb} MB per file**."
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
            files = gr.File(label=f"Add files (drag and drop; up to {max_mb} MB each)",
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
            build_retrieval_eval(services, collection)

    handlers = DocumentHandlers(services)

    # Gradio hands a progress bar only to a parameter that defaults to one, which as_user cannot pass on.
    def add_files(selected: str | None, uploaded: list[str] | None, request: gr.Request,
                  progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:
        return handlers.add_files(request.username, selected, uploaded,
                                  lambda fraction, caption: progress(fraction, desc=caption))

    listing = [summary, table, document]
    blocks.load(as_user(handlers.on_load), None, [collection, *listing, shared])
    refresh.click(as_user(handlers.refresh_all), [collection, chat.documents], [collection, *listing, chat.documents],
                  queue=False)
    collection.input(as_user(handlers.show), [collection], listing, queue=False)
    create.click(as_user(handlers.create_collection), [new_name, shared, chat.documents],
                 [collection, *listing, chat.documents, new_name])
    rename.click(as_user(handlers.rename_collection), [collection, rename_to, chat.documents],
                 [collection, *listing, chat.documents, rename_to])
    delete.click(lambda: gr.update(visible=True), None, [confirm_delete], queue=False)
    confirm_delete.click(as_user(handlers.delete_collection), [collection, chat.documents],
                         [collection, *listing, chat.documents, confirm_delete])
    # Ingestion has its own queue, off the "generate" one, so it never holds up a chat.
    # The last add's result is wiped first, so the one progress bar (on the result line only, not on
    # every output) never sits over a stale "Nothing was added".
    add.click(lambda: "", None, [result], queue=False).then(
        add_files, [collection, files], [result, files, *listing], show_progress_on=[result],
        concurrency_id=INGEST_QUEUE, concurrency_limit=INGEST_CONCURRENCY)
    # Unqueued: it must not wait behind the add.
    cancel.click(as_user(handlers.cancel_adding), None, None, queue=False)
    delete_doc.click(lambda: gr.update(visible=True), None, [confirm_delete_doc], queue=False)
    confirm_delete_doc.click(as_user(handlers.delete_document), [collection, document], [*listing, confirm_delete_doc])
