"""The Gradio page: one tab per feature, each built by its own module (web/app.py mounts it)."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from webui import __version__
from webui.services import Services
from webui.ui.api_keys import build_api_keys_tab
from webui.ui.chat import build_chat_tab
from webui.ui.documents import build_documents_tab
from webui.ui.feedback import as_user
from webui.ui.model_picker import build_model_picker
from webui.ui.models import build_models_tab
from webui.ui.notebook import build_notebook_tab
from webui.ui.presets import build_presets_tab
from webui.ui.users import build_users_tab

log = logging.getLogger(__name__)

APP_NAME = "Local LLM"
# The login page's words above the form (Gradio shows it as HTML): the app's name, and where accounts come from.
LOGIN_MESSAGE = (f"<h2 style=\"margin:0; font-size: 1.5em\">{APP_NAME}</h2>"
                 "<p>Sign in with the user name and password your admin created for you.</p>")
# The login form's words (Gradio's frontend keys login.*; its own are "username" and "password").
LOGIN_WORDS = gr.I18n(en={"login.username": "User name", "login.password": "Password"})


class PageHandlers:
    """What the page does when it opens, for the signed-in user."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def show_role(self, username: str | None) -> tuple[str, Any]:
        """Who is signed in (team mode), and the Users tab for admins only (everyone sees the Models tab,
        read-only unless an admin); an admin also sees, until closed, which damaged data files were kept aside."""
        user = self.services.user(username)
        team = self.services.auth_required
        notice = self.services.set_aside_notice() if user.is_admin else None
        if notice:
            gr.Warning(notice, duration=None)  # stays until closed: data may need restoring
        return (
            f"Signed in as **{user.name}**" + (" (admin)" if user.is_admin else "") if team else "",
            gr.update(visible=team and user.is_admin),
        )


def build_blocks(services: Services) -> gr.Blocks:
    """The page: tabs named in plain words, each built by its own module."""
    with gr.Blocks(title=APP_NAME, analytics_enabled=False) as blocks:
        with gr.Row():
            gr.Markdown(f"### {APP_NAME} <small>v{__version__} · everything stays on this machine</small>")
            signed_in = gr.Markdown(elem_id="signed-in")
            if services.auth_required:
                gr.Button("Log out", size="sm", link="/logout", scale=0, min_width=90)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                build_model_picker(services)
                chat = build_chat_tab(services, blocks)
            with gr.Tab("Documents", id="documents"):
                build_documents_tab(services, blocks, chat)
            with gr.Tab("Models", id="models") as models_tab:
                build_models_tab(services, models_tab)
            with gr.Tab("Presets", id="presets"):
                build_presets_tab(services, chat)
            with gr.Tab("Notebook", id="notebook"):
                build_notebook_tab(services)
            if services.auth_required:  # in team mode every API call needs a key of its user
                with gr.Tab("API keys", id="api-keys") as keys_tab:
                    build_api_keys_tab(services, keys_tab)
            with gr.Tab("Users", id="users", visible=False) as users_tab:
                build_users_tab(services, users_tab)

        blocks.load(as_user(PageHandlers(services).show_role), None, [signed_in, users_tab])
    blocks.queue(default_concurrency_limit=4)
    calm_queue_polling(blocks)
    keep_api_private(blocks, PUBLIC_API_NAMES)
    return blocks


# How often Gradio's queue looks for new events (it polls; Gradio's own is every 1 ms off Windows) and
# for progress updates (every 10 ms): a new request starts at most this much later.
QUEUE_POLL_S = 0.01
PROGRESS_POLL_S = 0.05


def calm_queue_polling(blocks: gr.Blocks) -> None:
    """Poll Gradio's queue every 10 ms, not every 1 ms, for as long as the app runs.

    Its 1,000 wake-ups a second took ~4% of a core with nobody using the app (0.44 s of CPU in 10 s,
    1% at 10 ms), and on a 2-core machine each one, during a reply, preempts one of llama.cpp's two
    threads while the other waits for it. Gradio has no setting for it; its Windows value is 50 ms.
    """
    queue = getattr(blocks, "_queue", None)
    if queue is not None and hasattr(queue, "sleep_when_free"):
        queue.sleep_when_free = QUEUE_POLL_S
        queue.progress_update_sleep_when_free = PROGRESS_POLL_S
    else:
        log.warning("Gradio's queue has changed: its polling interval is left as Gradio sets it")


# The events scripts may call by name (scripts/bench.py and API clients use "chat"); every other event
# is the page's own, callable by the page but neither listed at /gradio_api/info nor named for clients.
PUBLIC_API_NAMES = frozenset({"chat"})


def keep_api_private(blocks: gr.Blocks, public: frozenset[str]) -> None:
    """Mark every event outside *public* ``api_visibility="private"``, in one place for all tabs."""
    for fn in blocks.fns.values():
        if fn.api_name not in public:
            fn.api_visibility = "private"
