"""The one HTTP root: the ASGI app that serves the page, the API routes and /status behind the guards.

Host allow-list, cross-site and login checks, CORS and body limits are decided here, once, for every
route; ``webui.ui`` builds only the Gradio page and ``webui.api`` only its routers.
"""

from __future__ import annotations

import base64
import binascii
import logging

import fastapi
import gradio as gr
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount

from webui.api import build_api_router
from webui.private_files import never_served
from webui.services import NotAuthorized, Services
from webui.ui.app import LOGIN_MESSAGE, build_blocks
from webui.ui.chat_script import CHAT_PAGE_SCRIPT
from webui.ui.theme import PAGE_CSS, THEME
from webui.ui.uploads import STATE_KEY, UploadOwners
from webui.web.security import (
    LoginGuard,
    LoginLocked,
    LoginThrottle,
    PageKey,
    SecurityMiddleware,
    SecurityPolicy,
    SessionRegistry,
    TokenTable,
    session_token,
)

log = logging.getLogger(__name__)


async def basic_auth_user(guard: LoginGuard, header: str | None, address: str) -> str | None:
    """The user named by a valid ``Authorization: Basic`` header, for scripts calling /status.

    Throttled like the page's login; raises :class:`LoginLocked` while locked.
    """
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user = await guard.attempt(name, password, address)
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
    policy = SecurityPolicy.from_settings(settings)
    team = services.auth_required
    guard = LoginGuard(services.user_actions, LoginThrottle(policy.max_failures, policy.lockout_seconds))
    sessions = SessionRegistry(services.user_actions, idle_seconds=policy.session_idle_seconds,
                               max_seconds=policy.session_max_seconds)
    mounted: list[TokenTable] = []  # the Gradio app, once mounted below: its login tokens
    upload_owners = UploadOwners() if team else None  # who uploaded which copy in Gradio's shared folder

    def gradio_app() -> TokenTable | None:
        return mounted[0] if mounted else None

    def gradio_logins() -> TokenTable | None:
        return gradio_app() if team else None

    @app.get("/status")
    async def status(request: fastapi.Request) -> dict:
        if team:
            logins = gradio_logins()
            token = session_token(logins, dict(request.cookies)) if logins else None
            username = logins.tokens.get(token) if logins and token else None
            address = request.client.host if request.client else "unknown"
            try:
                username = username or await basic_auth_user(guard, request.headers.get("authorization"), address)
                services.user(username)
            except LoginLocked as exc:
                raise fastapi.HTTPException(status_code=429, detail=str(exc),
                                            headers={"Retry-After": str(int(exc.seconds_left) + 1)}) from exc
            except NotAuthorized as exc:
                raise fastapi.HTTPException(status_code=401, detail="Log in first.",
                                            headers={"WWW-Authenticate": "Basic"}) from exc
        return services.status()

    # OpenAI- and Ollama-compatible /v1 and /api routes; included before the page is mounted at /,
    # which would otherwise answer every path. They check their own Bearer keys.
    app.include_router(build_api_router(services))

    # Our own cross-origin policy on the parent app: Gradio then adds none of its own (its middleware
    # reflects any Origin with credentials once the app is reached by a LAN address).
    app.add_middleware(CORSMiddleware, allow_origins=list(policy.cors_origins), allow_credentials=True,
                       allow_methods=["*"], allow_headers=["*"])
    # A single-user app started with --api-key needs the key on every route, the page's own included.
    page_key = PageKey(settings.api_key, LoginThrottle(policy.max_failures, policy.lockout_seconds)) \
        if settings.api_key and not team else None
    app.add_middleware(SecurityMiddleware, policy=policy, guard=guard if team else None,
                       sessions=sessions if team else None, gradio=gradio_app, uploads=upload_owners,
                       page_key=page_key)
    log.info("answering as the hosts %s (add more with --allowed-host)", ", ".join(policy.hosts.describe()))
    blocks = build_blocks(services)
    gr.mount_gradio_app(
        app,
        blocks,
        path="",
        server_name=settings.host,
        server_port=settings.port,
        footer_links=["settings"],
        theme=THEME,
        css=PAGE_CSS,  # the page's own CSS (webui/ui/theme.py): the full-height chat, sources
        head=CHAT_PAGE_SCRIPT,  # citation chips open their passage; version arrows (webui/ui/chat_script.py)
        auth=guard.check if team else None,  # async: the password check runs off the event loop
        auth_message=LOGIN_MESSAGE,  # the app's name above the form
        max_file_size=f"{transport_limit_mb(settings.max_upload_mb)}mb",
        # Nothing under the data dir (history, users file, documents) is ever served as a file, except
        # Gradio's own temporary folder there (uploads shown back, exported presets).
        blocked_paths=never_served(settings.data_dir),
        ssr_mode=False,
        mcp_server=False,
        run_history=False,  # its page and bucket routes are served to anyone; nothing here needs them
        pwa=False,
        # Gradio's sub-app would otherwise serve its whole route list at /openapi.json without a login.
        app_kwargs={"openapi_url": None},
    )
    mounted.append(next(route.app for route in app.routes if isinstance(route, Mount)))
    if upload_owners is not None:  # where handlers find it (webui/ui/uploads.py), through their request
        setattr(mounted[0].state, STATE_KEY, upload_owners)
    # Gradio checks file paths sent by clients (upload folder only, never blocked_paths) only in apps
    # it launched itself; launch() and Gradio's reloader mark that with this flag. A mounted app never
    # launches, so without it any client could name any file on the server as an "upload".
    blocks.has_launched = True
    return app
