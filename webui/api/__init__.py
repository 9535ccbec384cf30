"""The HTTP API on the app's own port: OpenAI-compatible /v1 (and /health), Anthropic's /v1/messages,
Ollama-compatible /api.

All are thin translations of wire formats into service calls (webui.services); none touches
the engine, the model manager or a store.
"""

from __future__ import annotations

import fastapi

from webui.api.anthropic import build_anthropic_router
from webui.api.ollama import build_ollama_router
from webui.api.openai import build_health_router, build_openai_router
from webui.services import Services

__all__ = ["build_api_router"]


def build_api_router(services: Services) -> fastapi.APIRouter:
    """Every API route, to include in the parent app before the Gradio page is mounted at /."""
    router = fastapi.APIRouter()
    router.include_router(build_openai_router(services))
    router.include_router(build_anthropic_router(services))
    router.include_router(build_health_router(services))
    router.include_router(build_ollama_router(services))
    return router
