"""The model picker at the top of the Chat tab: the model in use, switchable by admins.

Switching follows the Models tab's rules (the model service checks the caller is an admin; a reply
still streaming finishes first). In team mode other users see the model in use, read-only.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr

from webui.services import Services
from webui.services.models import LoadedModel
from webui.ui.feedback import as_user, user_message

log = logging.getLogger(__name__)


def picker_label(loaded: LoadedModel | None, *, can_switch: bool) -> str:
    if loaded is None:
        return "Model (none loaded)" + (": pick one to load it" if can_switch else "")
    return "Model in use" + ("" if can_switch else " (only an admin can switch it)")


class ModelPickerHandlers:
    """The picker's events, for a user name (testable without a page)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def current(self, username: str | None) -> Any:
        """The loaded model and (names only) the others; interactive only for those who may switch."""
        user = self.services.user(username)
        loaded = self.services.models.loaded()
        names = self.services.models.names()
        return gr.Dropdown(choices=names, value=loaded.file if loaded else None, interactive=user.is_admin,
                           label=picker_label(loaded, can_switch=user.is_admin))

    def switch(self, username: str | None, name: str | None) -> Iterator[tuple[Any, str]]:
        """Load the picked model, saying while it waits for replies still streaming; then the picker anew."""
        user = self.services.user(username)
        loaded = self.services.models.loaded()
        if not name or (loaded is not None and loaded.file == name):
            # Gradio may fire this twice for one pick: the second finds the model loaded and must
            # leave the first one's "Now using …" line standing.
            yield gr.update(), gr.update()
            return
        if not user.is_admin:
            yield self.current(username), "Only an admin can switch the model."
            return
        log.info("model picker: %s switches to %s", user.name, name)
        positions: queue.Queue[int] = queue.Queue()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["loaded"] = self.services.models.load(user, name, on_wait=positions.put)
            except Exception as exc:  # noqa: BLE001 - a refusal's sentence, or a bug's generic one (logged)
                outcome["error"] = user_message(exc, f"Switching to {name}")

        # The load waits for replies still streaming; running it beside the handler lets us say so.
        worker = threading.Thread(target=work, name="picker-load", daemon=True)
        worker.start()
        yield gr.update(), f"Loading {name}…"
        while worker.is_alive():
            try:
                position = positions.get(timeout=0.2)
            except queue.Empty:
                continue
            yield gr.update(), f"Waiting for the current reply to finish before loading {name} (position {position})…"
        if "error" in outcome:
            gr.Warning(outcome["error"])
            yield self.current(username), f"**Not switched:** {outcome['error']}"
            return
        yield self.current(username), f"Now using **{outcome['loaded'].file}**."


def build_model_picker(services: Services) -> gr.Dropdown:
    """A dropdown of local model names showing the loaded one, and a status line for switches."""
    with gr.Row(equal_height=True, elem_id="model-picker-row"):
        picker = gr.Dropdown(label="Model in use", choices=[], value=None, interactive=False, scale=5,
                             min_width=240, elem_id="model-picker", allow_custom_value=False)
        status = gr.Markdown(elem_id="model-picker-status")

    handlers = ModelPickerHandlers(services)
    gr.on(triggers=None, fn=as_user(handlers.current), inputs=None, outputs=[picker], queue=False)
    picker.input(as_user(handlers.switch), [picker], [picker, status])
    return picker
