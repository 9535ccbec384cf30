"""The Gradio app: one page with a tab per feature, mounted on a FastAPI app with /status and its guards."""

from __future__ import annotations

import base64
import binascii
import logging

import fastapi
import gradio as gr
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount

from webui import __version__
from webui.api import build_api_router
from webui.private_files import never_served
from webui.services import NotAuthorized, Services
from webui.ui.api_keys import build_api_keys_section
from webui.ui.chat import build_chat_tab
from webui.ui.documents import build_documents_tab
from webui.ui.model_picker import build_model_picker
from webui.ui.models import build_models_tab
from webui.ui.notebook import build_notebook_tab
from webui.ui.presets import build_presets_tab
from webui.ui.security import (
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
from webui.ui.uploads import STATE_KEY, UploadOwners
from webui.ui.users import build_users_tab

# System fonts only: the page must not fetch anything from the internet (privacy), and Gradio's
# default theme would otherwise be the only reason a browser reaches out.
THEME = gr.themes.Soft(
    font=["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)

log = logging.getLogger(__name__)


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
            notice = services.set_aside_notice() if user.is_admin else None
            if notice:
                gr.Warning(notice, duration=None)  # stays until closed: data may need restoring
            return (
                f"Signed in as **{user.name}**" + (" (admin)" if user.is_admin else "") if team else "",
                gr.update(visible=user.is_admin),
                gr.update(visible=team and user.is_admin),
            )

        blocks.load(show_role, None, [signed_in, models_tab, users_tab])
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
    guard = LoginGuard(services.users, LoginThrottle(policy.max_failures, policy.lockout_seconds))
    sessions = SessionRegistry(services.users, idle_seconds=policy.session_idle_seconds,
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
        auth=guard.check if team else None,  # async: the password check runs off the event loop
        auth_message="Sign in with the account your admin created for you.",
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
