"""The Models tab's *Reranker for documents* panel: download a cross-encoder, pick it or turn it off.

Every decision is RerankerService's (admins only); :class:`RerankerHandlers` turns its answers into
the panel's outputs and sentences, and :func:`build_reranker_panel` lays the panel out.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from html import escape
from typing import Any

import gradio as gr

from webui.services import Services
from webui.services.rerankers import SUGGESTED_RERANKERS, RerankerState
from webui.ui.feedback import as_user, handled, warn
from webui.ui.model_finder import human_size

OFF = "Off"
_INTRO = ("A reranker reads the question and each passage together and puts the passage that answers "
          "first, so document answers get the right passage more often; each search takes a little "
          "longer. Downloaded once from the hub, then it runs on this machine.")


def state_sentence(state: RerankerState) -> str:
    if state.set_by_flag:
        return f"In use: `{escape(state.in_use or '')}` (set by `--reranker-model` when the app started)."
    if state.in_use:
        return f"In use: **{escape(state.in_use)}**. Document searches are reranked."
    if state.installed:
        return "Off: document searches are not reranked. Pick one below to use it."
    return "Off: no reranker is downloaded. Download one below to rerank document searches."


def progress_sentence(done: int, total: int) -> str:
    if total <= 0:
        return "Downloading…"
    return f"Downloading… {human_size(done)} of {human_size(total)} ({100 * done // total}%)"


class RerankerHandlers:
    """What the panel's events do, for a user name and the panel's values (testable without a page)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.rerankers = services.rerankers

    def view(self, state: RerankerState) -> tuple[str, Any]:
        """The status line and the Use dropdown (Off, then each installed reranker)."""
        return (state_sentence(state),
                gr.update(choices=[OFF, *state.installed], value=state.in_use if state.in_use in state.installed
                          else OFF, interactive=not state.set_by_flag))

    def on_load(self, username: str | None) -> tuple[Any, ...]:
        """The panel's first view; non-admins (whose controls are hidden) get nothing."""
        user = self.services.user(username)
        if not user.is_admin:
            return "", gr.update(choices=[OFF], value=OFF)
        return self.view(self.rerankers.state(user))

    @handled("Choosing the reranker", lambda message: (f"⚠️ {message}", gr.update()))
    def do_use(self, username: str | None, choice: str | None) -> tuple[Any, ...]:
        user = self.services.user(username)
        current = self.rerankers.state(user)
        wanted = None if choice in (None, "", OFF) else choice
        if current.set_by_flag or wanted == current.in_use:
            return self.view(current)
        return self.view(self.rerankers.use(user, wanted))

    @handled("Downloading a reranker", lambda message: (f"**Not downloaded:** {message}", gr.update(), ""))
    def do_download(self, username: str | None, repo_id: str | None) -> Iterator[tuple[Any, ...]]:
        """Download beside this handler, reporting bytes; outputs: status, Use dropdown, progress."""
        user = self.services.user(username)
        repo_id = (repo_id or "").strip()
        self.rerankers.state(user)  # refuses non-admins before anything starts
        updates: queue.Queue[tuple[int, int]] = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["state"] = self.rerankers.download(user, repo_id, progress=lambda d, t: updates.put((d, t)))
            except Exception as exc:  # noqa: BLE001 - reported to the user below, from this thread
                outcome["error"] = exc

        worker = threading.Thread(target=work, name="download-reranker", daemon=True)
        worker.start()
        yield gr.update(), gr.update(), f"Downloading {escape(repo_id)}…"
        while worker.is_alive():
            try:
                done, total = updates.get(timeout=0.3)
            except queue.Empty:
                continue
            while not updates.empty():
                done, total = updates.get_nowait()
            yield gr.update(), gr.update(), progress_sentence(done, total)
        error = outcome.get("error")
        if error is not None:
            yield (f"**Not downloaded:** {warn(error, 'Downloading a reranker')}", gr.update(), "")
            return
        state: RerankerState = outcome["state"]
        gr.Info(f"Downloaded {repo_id}.")
        yield *self.view(state), f"Downloaded {escape(repo_id)}."

    @handled("Cancelling the reranker download", lambda message: f"⚠️ {message}")
    def do_cancel(self, username: str | None) -> str:
        if self.rerankers.cancel_download(self.services.user(username)):
            return "Cancelling… nothing of this download is kept."
        return "No reranker download is running."

    @handled("Deleting a reranker", lambda message: (f"⚠️ {message}", gr.update()))
    def do_delete(self, username: str | None, choice: str | None) -> tuple[Any, ...]:
        user = self.services.user(username)
        if choice in (None, "", OFF):
            return "Pick the reranker to delete in the list first.", gr.update()
        state = self.rerankers.delete(user, choice)
        return self.view(state)


def build_reranker_panel(services: Services) -> None:
    """The panel, inside the admin's Models tab."""
    handlers = RerankerHandlers(services)
    with gr.Accordion("Reranker for documents", open=False, elem_id="rerankers"):
        gr.Markdown(_INTRO)
        status = gr.Markdown(elem_id="rerankers-status")
        with gr.Row():
            use = gr.Dropdown([OFF], value=OFF, label="Rerank document searches with", elem_id="rerankers-use",
                              scale=4)
            delete = gr.Button("Delete", variant="stop", scale=1, elem_id="rerankers-delete")
        suggestions = [f"{repo} ({about})" for repo, about in SUGGESTED_RERANKERS]
        with gr.Row():
            repo = gr.Textbox(label="Cross-encoder repository on the hub", value=SUGGESTED_RERANKERS[0][0],
                              info="Suggested: " + "; ".join(suggestions), elem_id="rerankers-repo", scale=4)
            download = gr.Button("Download reranker", variant="primary", scale=1, elem_id="rerankers-download")
            cancel = gr.Button("Cancel", scale=0, min_width=100, elem_id="rerankers-cancel")
        progress = gr.Markdown(elem_id="rerankers-progress")
    gr.on(triggers=None, fn=as_user(handlers.on_load), inputs=None, outputs=[status, use], queue=False)
    use.input(as_user(handlers.do_use), [use], [status, use])
    download.click(as_user(handlers.do_download), [repo], [status, use, progress])
    cancel.click(as_user(handlers.do_cancel), None, [progress], queue=False)
    delete.click(as_user(handlers.do_delete), [use], [status, use])
