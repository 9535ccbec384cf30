"""The Gradio app: one page with a tab per feature, mounted on a FastAPI app with /status."""

from __future__ import annotations

import fastapi
import gradio as gr

from webui import __version__
from webui.services import Services
from webui.ui.chat import build_chat_tab

# System fonts only: the page must not fetch anything from the internet (privacy), and Gradio's
# default theme would otherwise be the only reason a browser reaches out.
THEME = gr.themes.Soft(
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)


def build_blocks(services: Services) -> gr.Blocks:
    """The page: tabs named in plain words, each built by its own module."""
    with gr.Blocks(title="Local LLM", analytics_enabled=False) as blocks:
        gr.Markdown(f"### Local LLM <small>v{__version__} · everything stays on this machine</small>")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                build_chat_tab(services)
    blocks.queue(default_concurrency_limit=4)
    return blocks


def build_app(services: Services) -> fastapi.FastAPI:
    """The ASGI app served by uvicorn: /status plus the Gradio page at /."""
    app = fastapi.FastAPI(title="Local LLM web UI", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/status")
    def status() -> dict:
        return services.status()

    blocks = build_blocks(services)
    settings = services.settings
    return gr.mount_gradio_app(
        app,
        blocks,
        path="",
        server_name=settings.host,
        server_port=settings.port,
        footer_links=["settings"],
        theme=THEME,
        max_file_size=f"{settings.max_upload_mb}mb",
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
    )
