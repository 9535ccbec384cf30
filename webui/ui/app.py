"""The Gradio app: one page with a tab per feature, mounted on a FastAPI app with /status."""

from __future__ import annotations

import base64
import binascii

import fastapi
import gradio as gr
from starlette.routing import Mount

from webui import __version__
from webui.api import build_api_router
from webui.services import NotAuthorized, Services
from webui.ui.api_keys import build_api_keys_section
from webui.ui.chat import build_chat_tab
from webui.ui.documents import build_documents_tab
from webui.ui.model_picker import build_model_picker
from webui.ui.models import build_models_tab
from webui.ui.notebook import build_notebook_tab
from webui.ui.presets import build_presets_tab
from webui.ui.users import build_users_tab

# System fonts only: the page must not fetch anything from the internet (privacy), and Gradio's
# default theme would otherwise be the only reason a browser reaches out.
THEME = gr.themes.Soft(
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)


def build_blocks(services: Services) -> gr.Blocks:
    """The page: tabs named in plain words, each built by its own module."""
    with gr.Blocks(title="Local LLM", analytics_enabled=False) as blocks:
        with gr.Row():
            gr.Markdown(f"### Local LLM <small>v{__version__} · everything stays on this machine</small>")
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
                build_models_tab(services)
            with gr.Tab("Presets", id="presets"):
                build_presets_tab(services, chat)
            with gr.Tab("Notebook", id="notebook"):
                build_notebook_tab(services)
            with gr.Tab("Users", id="users", visible=False) as users_tab:
                build_users_tab(services)
        if services.auth_required:  # in team mode every API call needs a key of its user
            with gr.Accordion("API keys", open=False, elem_id="api-keys"):
                build_api_keys_section(services)

        def show_role(request: gr.Request):
            user = services.user(request.username)
            team = services.auth_required
            return (
                f"Signed in as **{user.name}**" + (" (admin)" if user.is_admin else "") if team else "",
                gr.update(visible=user.is_admin),
                gr.update(visible=team and user.is_admin),
            )

        blocks.load(show_role, None, [signed_in, models_tab, users_tab])
    blocks.queue(default_concurrency_limit=4)
    return blocks


def basic_auth_user(services: Services, header: str | None) -> str | None:
    """The user named by a valid ``Authorization: Basic`` header, for scripts calling /status."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user = services.users.verify(name, password)
    return user.name if user else None


# Gradio refuses a whole drop of files when one is over its limit, so its limit sits above the
# per-file document limit: a file somewhat too large then gets its own message from the library while
# the rest of the drop is added; only a file over this multiple is refused by Gradio (naming it).
TRANSPORT_LIMIT_FACTOR = 4


def transport_limit_mb(document_limit_mb: int) -> int:
    """The largest single upload Gradio accepts, for a per-file document limit in MB."""
    return max(1, document_limit_mb) * TRANSPORT_LIMIT_FACTOR


def build_app(services: Services) -> fastapi.FastAPI:
    """The ASGI app served by uvicorn: /status plus the Gradio page at /."""
    app = fastapi.FastAPI(title="Local LLM web UI", docs_url=None, redoc_url=None, openapi_url=None)
    settings = services.settings

    def gradio_user(request: fastapi.Request) -> str | None:
        gradio_app = next(route.app for route in app.routes if isinstance(route, Mount))
        token = request.cookies.get(f"access-token-{gradio_app.cookie_id}") or request.cookies.get(
            f"access-token-unsecure-{gradio_app.cookie_id}")
        return gradio_app.tokens.get(token)

    @app.get("/status")
    def status(request: fastapi.Request) -> dict:
        if services.auth_required:
            username = gradio_user(request) or basic_auth_user(services, request.headers.get("authorization"))
            try:
                services.user(username)
            except NotAuthorized as exc:
                raise fastapi.HTTPException(status_code=401, detail="Log in first.",
                                            headers={"WWW-Authenticate": "Basic"}) from exc
        return services.status()

    # OpenAI- and Ollama-compatible /v1 and /api routes; included before the page is mounted at /,
    # which would otherwise answer every path. They check their own Bearer keys.
    app.include_router(build_api_router(services))

    blocks = build_blocks(services)
    return gr.mount_gradio_app(
        app,
        blocks,
        path="",
        server_name=settings.host,
        server_port=settings.port,
        footer_links=["settings"],
        theme=THEME,
        auth=services.users.check if services.auth_required else None,
        auth_message="Sign in with the account your admin created for you.",
        max_file_size=f"{transport_limit_mb(settings.max_upload_mb)}mb",
        # Nothing under the data dir (other users' uploads, history, users file) is ever served as a file.
        blocked_paths=[str(settings.data_dir)],
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
    )
