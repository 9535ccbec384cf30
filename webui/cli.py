"""Command line: flags and WEBUI_* variables -> Settings; wires Services; serves the app."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

from webui import __version__
from webui.config import DEFAULT_DATA_DIR, DEFAULT_MODELS_DIR, Settings

log = logging.getLogger("webui")

# Privacy: these switch off Gradio analytics, Chroma and hub telemetry. They must be in the
# environment before those libraries are imported, which is why cli sets them first.
PRIVACY_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"WEBUI_{name}", default)


def _env_flag(name: str) -> bool:
    return (_env(name) or "").strip().lower() in {"1", "true", "yes", "on"}


def parse_gpu_layers(value: str) -> int | None:
    """``auto`` -> None (decided from free VRAM); a number -> that many layers (-1 = all)."""
    if value.strip().lower() == "auto":
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--n-gpu-layers takes a number or 'auto', not {value!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launcher.py",
        description="A private local-LLM web UI. Every flag can also be set as an environment variable "
        "(shown in brackets). Manage team users with: launcher.py users --help",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="address to bind [WEBUI_HOST]")
    parser.add_argument("--port", type=int, default=int(_env("PORT", "7860") or 7860), help="port [WEBUI_PORT]")
    parser.add_argument("--listen", action="store_true", default=_env_flag("LISTEN"),
                        help="serve on the LAN (bind 0.0.0.0); requires users [WEBUI_LISTEN]")
    parser.add_argument("--model", default=_env("MODEL"),
                        help="a GGUF path, a file name in the models dir, or repo_id:filename on the hub [WEBUI_MODEL]")
    parser.add_argument("--models-dir", type=Path, default=Path(_env("MODELS_DIR") or DEFAULT_MODELS_DIR),
                        help="where GGUF files live [WEBUI_MODELS_DIR]")
    parser.add_argument("--data-dir", type=Path, default=Path(_env("DATA_DIR") or DEFAULT_DATA_DIR),
                        help="chats, documents, presets, users and settings [WEBUI_DATA_DIR]")
    parser.add_argument("--offline", action="store_true", default=_env_flag("OFFLINE"),
                        help="never contact the hub; use local or embedded models [WEBUI_OFFLINE]")
    parser.add_argument("--n-gpu-layers", type=parse_gpu_layers, default=parse_gpu_layers(_env("N_GPU_LAYERS", "auto") or "auto"),
                        help="layers to offload to the GPU: a number, -1 for all, or auto [WEBUI_N_GPU_LAYERS]")
    parser.add_argument("--ctx-size", type=int, default=int(_env("CTX_SIZE", "4096") or 4096),
                        help="context window in tokens [WEBUI_CTX_SIZE]")
    parser.add_argument("--threads", type=int, default=int(_env("THREADS", "0") or 0) or None,
                        help="CPU threads (default: physical cores) [WEBUI_THREADS]")
    parser.add_argument("--prompt-cache-mb", type=int, default=int(_env("PROMPT_CACHE_MB", "1024") or 1024),
                        help="RAM for cached conversation states, so users taking turns keep their prompt "
                        "prefix; 0 turns it off [WEBUI_PROMPT_CACHE_MB]")
    parser.add_argument("--parallel", type=int, default=int(_env("PARALLEL", "0") or 0) or None,
                        help="replies decoded at once, each with its own context of --ctx-size (default: up to 4, "
                        "as free memory allows; 1 = one at a time) [WEBUI_PARALLEL]")
    parser.add_argument("--embedding-model", default=_env("EMBEDDING_MODEL"),
                        help="sentence-transformers model for documents (default: the packaged all-MiniLM-L6-v2) "
                        "[WEBUI_EMBEDDING_MODEL]")
    parser.add_argument("--reranker-model", default=_env("RERANKER_MODEL"),
                        help="local sentence-transformers cross-encoder folder that rescores document "
                        "passages, over the Models tab's pick (off by default) [WEBUI_RERANKER_MODEL]")
    parser.add_argument("--chroma-url", default=_env("CHROMA_URL"),
                        help="a Chroma server (chroma run ...) for the document library instead of the local "
                        "database under the data dir [WEBUI_CHROMA_URL]")
    parser.add_argument("--chroma-token", default=_env("CHROMA_TOKEN"),
                        help="token for that Chroma server, sent as a Bearer header [WEBUI_CHROMA_TOKEN]")
    parser.add_argument("--backend", action="append", default=None, metavar="URL",
                        help="a remote OpenAI-compatible server (llama.cpp server, vLLM, ...) whose models can be "
                        "picked beside the local ones; repeat for several, or separate with commas [WEBUI_BACKEND]")
    parser.add_argument("--backend-key", action="append", default=None, metavar="[URL=]KEY",
                        help="the API key a --backend server wants, sent as a Bearer token and never shown: URL=KEY "
                        "for one server, or KEY alone when there is one; repeat or separate with commas. A "
                        "user:password@ in a --backend URL is sent as HTTP Basic, also never shown [WEBUI_BACKEND_KEY]")
    parser.add_argument("--no-local-model", action="store_true", default=_env_flag("NO_LOCAL_MODEL"),
                        help="front end only: load no model in this process, use the --backend servers "
                        "[WEBUI_NO_LOCAL_MODEL]")
    parser.add_argument("--max-upload-mb", type=int, default=int(_env("MAX_UPLOAD_MB", "100") or 100),
                        help="largest file accepted in the Documents tab, in MB [WEBUI_MAX_UPLOAD_MB]")
    parser.add_argument("--insecure-no-auth", action="store_true", default=_env_flag("INSECURE_NO_AUTH"),
                        help="allow serving on the network without login (not recommended) [WEBUI_INSECURE_NO_AUTH]")
    parser.add_argument("--ssl-certfile", type=Path, default=_env("SSL_CERTFILE"), help="HTTPS certificate [WEBUI_SSL_CERTFILE]")
    parser.add_argument("--ssl-keyfile", type=Path, default=_env("SSL_KEYFILE"), help="HTTPS key [WEBUI_SSL_KEYFILE]")
    parser.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                        help="another web origin (https://host:port) allowed to call the app with a signed-in "
                        "user's cookie; repeat or separate with commas. Default: this app's own origin only "
                        "[WEBUI_CORS_ORIGIN]")
    parser.add_argument("--session-idle-hours", type=float, default=float(_env("SESSION_IDLE_HOURS", "12") or 12),
                        help="sign out a login unused for this many hours [WEBUI_SESSION_IDLE_HOURS]")
    parser.add_argument("--session-max-days", type=float, default=float(_env("SESSION_MAX_DAYS", "7") or 7),
                        help="sign out every login this many days after it began [WEBUI_SESSION_MAX_DAYS]")
    parser.add_argument("--login-max-failures", type=int, default=int(_env("LOGIN_MAX_FAILURES", "10") or 10),
                        help="wrong passwords in a row that lock a user name (an address gets 5 times as many) "
                        "[WEBUI_LOGIN_MAX_FAILURES]")
    parser.add_argument("--login-lockout-minutes", type=float,
                        default=float(_env("LOGIN_LOCKOUT_MINUTES", "15") or 15),
                        help="how long such a lock lasts [WEBUI_LOGIN_LOCKOUT_MINUTES]")
    parser.add_argument("--api-key", default=_env("API_KEY"),
                        help="on a single-user app, a key every request must carry: API calls as a Bearer (or "
                        "x-api-key) header, the browser once through the address the launcher prints "
                        "(default: none needed on localhost; team mode uses logins and per-user keys) [WEBUI_API_KEY]")
    parser.add_argument("--allowed-host", action="append", default=None, metavar="NAME",
                        help="another host name the app may be reached as (a reverse proxy's or a DNS name); "
                        "requests naming any other host are refused, against DNS rebinding. Repeat or separate "
                        "with commas [WEBUI_ALLOWED_HOST]")
    parser.add_argument("--forwarded-allow-ips", default=_env("FORWARDED_ALLOW_IPS"), metavar="IPS",
                        help="addresses of reverse proxies whose X-Forwarded-For/-Proto headers are believed "
                        "(comma-separated, or *); by default nobody's, so a client cannot pick the address "
                        "that logins are throttled and logged by [WEBUI_FORWARDED_ALLOW_IPS]")
    parser.add_argument("--api-allow-model-switch", action="store_true", default=_env_flag("API_ALLOW_MODEL_SWITCH"),
                        help="let an admin's API call that names another local model load it (default: such "
                        "calls get 404) [WEBUI_API_ALLOW_MODEL_SWITCH]")
    parser.add_argument("--max-streams-per-user", type=int, default=_env("MAX_STREAMS_PER_USER"), metavar="N",
                        help="replies one user (or, on a single-user app, its one key) may generate at once through "
                        "the API; more get 429. 0: no limit. Default: 4 in team mode, no limit otherwise "
                        "[WEBUI_MAX_STREAMS_PER_USER]")
    parser.add_argument("--mcp-config", type=Path, default=_env("MCP_CONFIG"), metavar="FILE",
                        help="MCP servers whose tools the model may call, in the mcpServers JSON shape of Claude "
                        "Desktop and LM Studio (default: mcp.json in the data dir, if it exists) [WEBUI_MCP_CONFIG]")
    parser.add_argument("--tool-timeout", type=float, default=float(_env("TOOL_TIMEOUT", "30") or 30),
                        metavar="SECONDS", help="a tool call the model makes is abandoned, and the model told so, "
                        "after this long [WEBUI_TOOL_TIMEOUT]")
    parser.add_argument("--max-tool-calls", type=int, default=int(_env("MAX_TOOL_CALLS", "8") or 8), metavar="N",
                        help="tool calls in one chat reply; after that the model must answer [WEBUI_MAX_TOOL_CALLS]")
    return parser


def parse_settings(argv: Sequence[str]) -> Settings:
    """Flags and environment -> the one Settings object."""
    args = build_parser().parse_args(list(argv))
    host = "0.0.0.0" if args.listen and args.host == "127.0.0.1" else args.host
    backends = parse_backends(args.backend if args.backend is not None else [_env("BACKEND") or ""])
    if args.max_streams_per_user is not None and args.max_streams_per_user < 0:
        raise SystemExit("error: --max-streams-per-user takes 0 (no limit) or more")
    if args.mcp_config and not Path(args.mcp_config).is_file():
        raise SystemExit(f"error: --mcp-config {args.mcp_config}: no such file")
    if args.tool_timeout <= 0 or args.max_tool_calls < 1:
        raise SystemExit("error: --tool-timeout takes seconds above 0, --max-tool-calls 1 or more")
    return Settings(
        host=host,
        port=args.port,
        models_dir=args.models_dir.resolve(),
        data_dir=args.data_dir.resolve(),
        model=args.model,
        offline=args.offline,
        n_gpu_layers=args.n_gpu_layers,
        ctx_size=args.ctx_size,
        threads=args.threads,
        insecure_no_auth=args.insecure_no_auth,
        prompt_cache_mb=args.prompt_cache_mb,
        parallel=args.parallel,
        embedding_model=args.embedding_model or None,
        reranker_model=args.reranker_model or None,
        chroma_url=args.chroma_url or None,
        chroma_token=args.chroma_token or None,
        backends=backends,
        backend_keys=parse_backend_keys(args.backend_key if args.backend_key is not None
                                        else [_env("BACKEND_KEY") or ""], backends),
        no_local_model=args.no_local_model,
        max_upload_mb=args.max_upload_mb,
        ssl_certfile=Path(args.ssl_certfile) if args.ssl_certfile else None,
        ssl_keyfile=Path(args.ssl_keyfile) if args.ssl_keyfile else None,
        cors_origins=parse_origins(args.cors_origin if args.cors_origin is not None else [_env("CORS_ORIGIN") or ""]),
        session_idle_hours=args.session_idle_hours,
        session_max_days=args.session_max_days,
        login_max_failures=args.login_max_failures,
        login_lockout_minutes=args.login_lockout_minutes,
        api_key=args.api_key or None,
        api_model_switch=args.api_allow_model_switch,
        allowed_hosts=parse_host_names(args.allowed_host if args.allowed_host is not None
                                       else [_env("ALLOWED_HOST") or ""]),
        forwarded_allow_ips=(args.forwarded_allow_ips or "").strip() or None,
        max_streams_per_user=args.max_streams_per_user,
        mcp_config=Path(args.mcp_config).resolve() if args.mcp_config else None,
        tool_timeout_s=args.tool_timeout,
        max_tool_calls=args.max_tool_calls,
    )


def parse_host_names(values: Sequence[str]) -> tuple[str, ...]:
    """``--allowed-host`` values (repeated, or comma-separated) -> lower-case host names."""
    from webui.web.hosts import host_name

    names: list[str] = []
    for value in values:
        for item in value.split(","):
            if not item.strip():
                continue
            name = host_name(item)
            if name is None:
                raise SystemExit(f"error: --allowed-host takes a host name like llm.example.org, not {item.strip()!r}")
            names.append(name)
    return tuple(dict.fromkeys(names))


def parse_origins(values: Sequence[str]) -> tuple[str, ...]:
    """``--cors-origin`` values (repeated, or comma-separated) -> normalised ``scheme://host[:port]`` origins."""
    origins: list[str] = []
    for value in values:
        for item in value.split(","):
            origin = item.strip().rstrip("/").lower()
            if not origin:
                continue
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise SystemExit(f"error: --cors-origin takes origins like https://host:port, not {item.strip()!r}")
            origins.append(origin)
    return tuple(dict.fromkeys(origins))


def parse_backends(values: Sequence[str]) -> tuple[str, ...]:
    """``--backend`` values (repeated, or comma-separated) -> base URLs without a trailing / or /v1."""
    urls: list[str] = []
    for value in values:
        for item in value.split(","):
            url = item.strip().rstrip("/")
            if not url:
                continue
            if not url.startswith(("http://", "https://")):
                raise SystemExit(f"error: --backend takes a URL like http://host:8080, not {item.strip()!r}")
            urls.append(url[: -len("/v1")] if url.endswith("/v1") else url)
    return tuple(dict.fromkeys(urls))


def parse_backend_keys(values: Sequence[str], backends: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``--backend-key`` values -> (backend URL, key): ``URL=KEY`` names its server, a bare KEY needs exactly one."""

    def without_userinfo(url: str) -> str:
        scheme, _, rest = url.partition("://")
        address, slash, path = rest.partition("/")
        return f"{scheme}://{address.rpartition('@')[2].lower()}{slash}{path}"

    keys: dict[str, str] = {}
    for item in (part.strip() for value in values for part in value.split(",")):
        if not item:
            continue
        if not backends:
            raise SystemExit("error: --backend-key is for a --backend server, and none is given")
        named, sep, key = item.partition("=")
        if not (sep and named.startswith(("http://", "https://"))):
            if len(backends) > 1:
                raise SystemExit("error: with several --backend servers, say whose key it is: --backend-key URL=KEY")
            target, key = backends[0], item
        else:
            wanted = without_userinfo(parse_backends([named])[0])
            target = next((url for url in backends if without_userinfo(url) == wanted), "")
            if not target:
                raise SystemExit(f"error: --backend-key names {named}, which is not one of the --backend servers")
        if not key.strip():
            raise SystemExit(f"error: --backend-key {named}= gives no key")
        keys[target] = key.strip()
    return tuple(keys.items())


def chroma_problem(settings: Settings) -> str | None:
    """Why the --chroma-url server cannot be used (checked at start, so a typo fails at once), or None."""
    if not settings.chroma_url:
        return None
    from webui.rag import ChromaServer, DocumentStoreUnavailable
    from webui.rag.chroma_server import connect

    try:
        connect(ChromaServer(settings.chroma_url, settings.chroma_token)).heartbeat()
    except (DocumentStoreUnavailable, ValueError) as exc:
        return str(exc).splitlines()[0] if str(exc) else f"cannot reach the Chroma server at {settings.chroma_url}"
    return None


def configure_logging(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr), logging.FileHandler(data_dir / "webui.log")]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers)
    for noisy in ("httpx", "httpcore", "uvicorn.access", "chromadb", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "users":
        from webui.auth import run_users_command

        return run_users_command(argv[1:])
    for key, value in PRIVACY_ENV.items():
        os.environ.setdefault(key, value)
    settings = parse_settings(argv)
    if settings.offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    from webui.private_files import fresh_temp_dir, make_private

    make_private(settings.data_dir)  # before the log file or any store is created in it
    # Gradio's uploads and outputs hold document text: in the private data dir, not the shared /tmp.
    # Gradio reads this when it is imported, which happens later (run_server).
    os.environ["GRADIO_TEMP_DIR"] = str(fresh_temp_dir(settings.data_dir))
    configure_logging(settings.data_dir)
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    return serve(settings)


def network_access_problem(settings: Settings, users_exist: bool) -> str | None:
    """Why the app must not start as configured, or None; a LAN server without logins is refused."""
    if not settings.listens_on_network or settings.insecure_no_auth or users_exist:
        return None
    return (
        f"refusing to serve on {settings.host} without logins: anyone on the network could read every chat "
        f"and document. Add a user first (python3 launcher.py users add NAME --admin --data-dir {settings.data_dir}), "
        "or pass --insecure-no-auth if this network is truly private."
    )


def serve(settings: Settings) -> int:
    """Detect hardware, load the model and serve until interrupted."""
    from webui.auth import AuthError, UserStore

    users = UserStore(settings.users_file)
    try:
        users_exist = users.exists()
    except AuthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for kept in users.set_aside:  # before a team-mode refusal for want of users, which this explains
        print(f"warning: {kept.message()}", file=sys.stderr)
    problem = network_access_problem(settings, users_exist)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    problem = chroma_problem(settings)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if settings.listens_on_network and settings.insecure_no_auth:
        log.warning("serving on %s WITHOUT logins (--insecure-no-auth): anyone who can reach this port "
                    "can read and use everything", settings.host)
    from webui import hardware
    from webui.engine import Engine, EngineError
    from webui.models import catalog
    from webui.models.manager import ModelManager
    from webui.models.registry import ModelNotFound, resolve_model

    hw = hardware.detect()
    print("Hardware:")
    for line in hw.summary_lines():
        print(f"  {line}")
    hint = hardware.rebuild_hint(hw)
    if hint:
        print(hint)
    router = remote_router(settings)
    if settings.no_local_model:
        return run_server(settings, hw, router)
    try:
        resolved = resolve_model(
            settings.model, settings.models_dir, offline=settings.offline,
            choose_catalog_entry=lambda: catalog.announce_default(hw, print), log=print,
        )
    except ModelNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Model: {resolved.path} ({resolved.note})")
    engine = Engine(prompt_cache_mb=settings.prompt_cache_mb, parallel=settings.parallel)
    try:
        # The settings remembered for this file in the Models tab, the flags for the rest.
        load = ModelManager(settings, hw, engine).load_settings_for_path(resolved.path)
        info = engine.load(resolved.path, load)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Loaded {info.file}: {info.architecture}, context {info.n_ctx}, GPU layers {info.n_gpu_layers}, "
          f"chat format {info.chat_format}" + (f" ({info.chat_format_note})" if info.chat_format_note else ""))
    router.local = engine
    return run_server(settings, hw, router)


def remote_router(settings: Settings):
    """The router over the --backend servers (the local engine joins it once loaded); lists their models."""
    from webui.engine.remote import RemoteBackend, RemoteError
    from webui.engine.router import EngineRouter

    keys = dict(settings.backend_keys)
    backends = [RemoteBackend(url, key=keys.get(url)) for url in settings.backends]
    for backend in backends:
        try:
            print(f"Model server {backend.display}: " + (", ".join(m.file for m in backend.models()) or "no models"))
        except RemoteError as exc:
            print(f"warning: {exc} Its models appear once it answers.", file=sys.stderr)
    router = EngineRouter(None, backends)
    if settings.no_local_model:
        first = next(iter(router.remote_models()), None)
        if first is not None:
            router.use_remote(first)
        print("Front end only (--no-local-model): " + (f"using {first.file}" if first else "no model yet"))
    return router


def run_server(settings: Settings, hw, engine) -> int:
    import uvicorn

    from webui.services import Services
    from webui.web import build_app

    services = Services(settings, hw, engine)
    notice = services.set_aside_notice()
    if notice:
        print(f"warning: {notice}", file=sys.stderr)
    mcp_problem = services.tools.config_error()  # the file is read now; its servers start on first use
    if mcp_problem:
        print(f"warning: MCP servers are off: {mcp_problem}", file=sys.stderr)
    app = build_app(services)
    scheme = "https" if settings.ssl_certfile else "http"
    shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning",
        ssl_certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        ssl_keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        timeout_graceful_shutdown=2,
        # X-Forwarded-For is believed only from the proxies named (uvicorn believes loopback by default,
        # which let any local client pick the address that logins are throttled and logged by).
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = uvicorn.Server(config)
    address = f"{scheme}://{shown_host}:{settings.port}"
    if settings.api_key and not services.auth_required:  # the browser's one way in; then a cookie
        address += "/?" + urlencode({"key": settings.api_key})
    print(f"Web UI running on {address}", flush=True)
    try:
        server.run()
    finally:
        services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
